//! `echo`: returns its input unchanged, whatever JSON it is. The smallest
//! handler there is: one function and [`wasmpod_sdk::handler!`].

use wasmpod_sdk::serde_json::Value;

fn handle(input: Value) -> Result<Value, std::convert::Infallible> {
    Ok(input)
}

wasmpod_sdk::handler!(handle);
