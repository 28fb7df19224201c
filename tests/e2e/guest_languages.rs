//! Python and JavaScript handlers, built in the test flow with the SDKs'
//! own tooling (guest-sdk/build-all.sh installs componentize-py from PyPI
//! and componentize-js/jco from npm on first use) and run by the real
//! `wasmpod` binary: outputs, streaming order, progress, host tensors
//! through the SDK, and errors raised in the guest arriving as clean job
//! errors with their message, and FlashBoot snapshots of them restoring
//! host tensors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::common;

/// One `--home` per language so each component is compiled once and the
/// later runs load it from the on-disk cache.
fn home(lang: &str) -> PathBuf {
    let dir = common::root().join(format!("target/guest-test-home/{lang}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(lang: &str, name: &str, input: &Value, extra: &[&str]) -> Output {
    Command::new(common::wasmpod_bin())
        .arg("--home")
        .arg(home(lang))
        .arg("run")
        .arg(common::sdk_component(lang, name))
        .args(["--input", &input.to_string(), "--timeout", "120s"])
        .args(extra)
        .output()
        .expect("running wasmpod")
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            stderr(out)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn echo_round_trips(lang: &str) {
    let input = json!({"text": "héllo", "n": [1, 2.5, -3], "nested": {"ok": true, "none": null}});
    let out = run(lang, "echo", &input, &[]);
    assert!(out.status.success(), "{lang} echo: {}", stderr(&out));
    assert_eq!(stdout_json(&out), input, "{lang} echo");
}

fn stream_in_order(lang: &str) {
    let out = run(lang, "stream", &json!({"n": 4}), &[]);
    assert!(out.status.success(), "{lang} stream: {}", stderr(&out));
    assert_eq!(stdout_json(&out), json!({"count": 4}));
    let err = stderr(&out);
    let chunks: Vec<Value> = err
        .lines()
        .filter_map(|l| l.strip_prefix("stream: "))
        .map(|c| serde_json::from_str(c).expect("chunk is JSON"))
        .collect();
    let expected: Vec<Value> = (0..4).map(|i| json!({"i": i})).collect();
    assert_eq!(chunks, expected, "{lang} stream; stderr: {err}");
    let progress: Vec<Value> = err
        .lines()
        .filter_map(|l| l.strip_prefix("progress: "))
        .map(|c| serde_json::from_str(c).expect("progress is JSON"))
        .collect();
    let expected: Vec<Value> = (1..=4).map(|d| json!({"done": d, "total": 4})).collect();
    assert_eq!(progress, expected, "{lang} progress; stderr: {err}");
}

fn raised_error_is_the_job_error(lang: &str, expected: &str) {
    let out = run(lang, "stream", &json!({"n": -1}), &[]);
    assert_eq!(out.status.code(), Some(1), "{lang}: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("error: {expected}")), "{lang}: {err}");
    assert!(out.stdout.is_empty(), "{lang}: no output on failure");
}

fn mlp_with_host_tensors(lang: &str) {
    let models = tempfile::tempdir().unwrap();
    common::make_mlp_models(models.path());
    let models = models.path().to_str().unwrap();
    let input = json!({"inputs": [[1.0, 1.0], [-2.0, 0.5], [-0.5, -3.0], [4.0, -1.0]]});
    let out = run(lang, "mlp", &input, &["--models", models]);
    assert!(out.status.success(), "{lang} mlp: {}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["classes"], json!([0, 1, 2, 3]), "{lang} mlp: {v}");
    for row in v["probs"].as_array().expect("probs") {
        let sum: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .sum();
        assert!(
            (sum - 1.0).abs() < 1e-4,
            "{lang}: probabilities sum to {sum}"
        );
    }
    // FlashBoot: started from the snapshot taken after init (the guest holds
    // the model and host tensors across it), the answer is init's.
    let flashboot = || {
        let out = run(
            lang,
            "mlp",
            &input,
            &["--models", models, "--flashboot", "--timings"],
        );
        assert!(out.status.success(), "{lang} mlp: {}", stderr(&out));
        (stdout_json(&out), stderr(&out))
    };
    let (first, log) = flashboot();
    assert!(log.contains("snapshot taken"), "{lang}: {log}");
    assert_eq!(first, v, "{lang}");
    let (restored, log) = flashboot();
    assert!(log.contains("served by pre-initialised"), "{lang}: {log}");
    assert_eq!(restored, v, "{lang}");
    // A row of the wrong width is a tensor error from the host, not a trap.
    let out = run(
        lang,
        "mlp",
        &json!({"inputs": [[1.0, 2.0, 3.0]]}),
        &["--models", models],
    );
    assert_eq!(out.status.code(), Some(1), "{lang}: {}", stderr(&out));
    assert!(stderr(&out).contains("shape"), "{lang}: {}", stderr(&out));
}

fn check_language(lang: &str, error: &str) {
    echo_round_trips(lang);
    stream_in_order(lang);
    raised_error_is_the_job_error(lang, error);
    mlp_with_host_tensors(lang);
}

#[test]
fn python_handlers_run_through_the_host() {
    check_language(
        "python",
        "ValueError: n must be a non-negative integer, got -1",
    );
}

#[test]
fn javascript_handlers_run_through_the_host() {
    check_language("js", "RangeError: n must be a non-negative integer, got -1");
}

/// Guard against a silently empty build: every example directory became a
/// component.
#[test]
fn every_python_and_js_example_is_built() {
    for lang in ["python", "js"] {
        let dir = common::root().join("examples").join(lang);
        for app in std::fs::read_dir(&dir).unwrap() {
            let name = app.unwrap().file_name();
            let path = common::sdk_component(lang, name.to_str().unwrap());
            assert!(Path::new(&path).metadata().unwrap().len() > 1_000_000);
        }
    }
}
