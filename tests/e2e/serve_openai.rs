//! OpenAI's own Python client (`openai` from PyPI, pinned in
//! scripts/requirements-test.txt) against the OpenAI-compatible routes of
//! a real `wasmpod serve` endpoint running the real `llm` component on a
//! tiny random-weight Llama (tests/fixtures/llm/make_model.py): models,
//! chat and legacy completions with and without streaming, logprobs,
//! seeded sampling, errors in OpenAI's shape, and a client that goes away
//! (closing its stream, or timing out) cancelling its job.

use std::process::Command;

use serde_json::json;

use crate::common;
use crate::common::server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_python_client_works_against_the_llm_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let made = Command::new("python3")
        .arg(common::root().join("tests/fixtures/llm/make_model.py"))
        .arg(&models)
        .output()
        .expect("running python3 tests/fixtures/llm/make_model.py");
    assert!(
        made.status.success(),
        "make_model.py failed (it needs numpy and tokenizers: scripts/setup.sh installs them): {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let has_openai = Command::new("python3")
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_openai,
        "the Python on PATH lacks the openai package; run scripts/setup.sh (it installs scripts/requirements-test.txt into .venv) and put .venv/bin first on PATH"
    );

    let s = server::start(&dir.path().join("home"), &[]);
    let llm = s.upload_example("llm").await;
    s.create_endpoint(
        "llm",
        &llm,
        json!({"models_dir": models.to_str().unwrap(), "env": {"LLM_MODEL": "llama"}}),
    )
    .await;
    let script = common::root().join("tests/serve_openai_client.py");
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(base)
            .arg(server::ADMIN_KEY)
            .arg("llm")
            .output()
            .expect("running the openai client script")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "openai client checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"));
}
