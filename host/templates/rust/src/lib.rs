//! {{name}}: a wasmpod handler. Try it with `wasmpod run .` (it reads
//! test_input.json); serve it with `wasmpod deploy . --endpoint {{name}}`.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Input {
    #[serde(default = "world")]
    name: String,
}

fn world() -> String {
    "world".to_string()
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

fn handle(input: Input) -> Result<Output, wasmpod_sdk::JobError> {
    // Log lines and stdout go to the job's logs (`wasmpod logs {{name}}`).
    wasmpod_sdk::info!("greeting {}", input.name);
    wasmpod_sdk::progress(&"greeting")?;
    Ok(Output {
        greeting: format!("hello, {}", input.name),
    })
}

wasmpod_sdk::handler!(handle);
