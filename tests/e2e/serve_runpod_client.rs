//! RunPod's own Python client (`runpod` from PyPI, installed here when the
//! Python on PATH lacks it) drives run, run_sync, status, stream, cancel,
//! health and purge_queue against `wasmpod serve`, synchronous and asyncio.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::common;
use crate::common::server;

/// The runpod version the checks were written against.
const RUNPOD: &str = "runpod==1.12.0";

/// A Python that can `import runpod`: the one on PATH (scripts/setup.sh's
/// venv), else a venv under target/ with runpod installed from PyPI.
fn python_with_runpod() -> PathBuf {
    let has = |py: &std::path::Path| {
        Command::new(py)
            .args(["-c", "import runpod"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let system = PathBuf::from("python3");
    if has(&system) {
        return system;
    }
    let venv = common::root().join("target/serve-test-venv");
    let py = venv.join("bin/python3");
    if !py.exists() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv")
            .success();
        assert!(ok, "creating a venv for the runpod client failed");
    }
    if !has(&py) {
        let ok = Command::new(&py)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                RUNPOD,
            ])
            .status()
            .expect("pip install runpod")
            .success();
        assert!(ok, "pip install {RUNPOD} failed");
    }
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runpod_python_client_works_unchanged() {
    let python = tokio::task::spawn_blocking(python_with_runpod)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = server::start(dir.path(), &[]);
    let echo = s.upload_example("echo").await;
    let stream = s.upload_example("stream").await;
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("echo", &echo, json!({})).await;
    s.create_endpoint("stream", &stream, json!({})).await;
    s.create_endpoint("sleep", &sleep, json!({"max_workers": 1}))
        .await;
    s.create_endpoint("paused", &sleep, json!({"max_workers": 0}))
        .await;
    let script = common::root().join("tests/serve_runpod_client.py");
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(base)
            .arg(server::ADMIN_KEY)
            .output()
            .expect("running the runpod client script")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "runpod client checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"));
}
