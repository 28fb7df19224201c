//! Executor processes: a real `wasmpod executor` child serves a slice's
//! workers; its death fails exactly the jobs it held and a new one serves.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmpod::executor::{ExecutorError, ExecutorProcess, SliceSpec, WorkerSpec};
use wasmpod::gpu::DeviceInfo;
use wasmpod::runtime::{JobSink, LogLevel};

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl JobSink for Recorder {
    fn progress(&self, value: serde_json::Value) {
        self.0.lock().unwrap().push(format!("progress {value}"));
    }
    fn stream(&self, chunk: serde_json::Value) {
        self.0.lock().unwrap().push(format!("stream {chunk}"));
    }
    fn log(&self, _: LogLevel, message: &str) {
        self.0.lock().unwrap().push(format!("log {message}"));
    }
}

fn cpu_slice() -> SliceSpec {
    SliceSpec {
        id: "cpu0".into(),
        devices: vec![DeviceInfo::host_cpu()],
        cuda_visible_devices: None,
        cuda: false,
    }
}

fn spec() -> WorkerSpec {
    WorkerSpec {
        memory_limit: 256 << 20,
        tensor_quota: 1 << 30,
        models_dir: None,
        env: vec![],
        concurrency: 2,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_runs_jobs_and_its_death_fails_only_its_jobs() {
    let stream = common::example_wasm("stream");
    let sleep = common::example_wasm("sleep");
    let digest = |p: &std::path::Path| wasmpod::runtime::digest(&std::fs::read(p).unwrap());
    let cache = tempfile::tempdir().unwrap();
    let exe = common::wasmpod_bin();

    let exec = ExecutorProcess::spawn(&exe, cpu_slice(), Some(cache.path().into()))
        .await
        .unwrap();
    assert!(exec.is_alive());
    exec.start_worker("w-stream", &stream, &digest(&stream), spec())
        .await
        .unwrap();
    exec.start_worker("w-sleep", &sleep, &digest(&sleep), spec())
        .await
        .unwrap();

    let rec = Arc::new(Recorder::default());
    let out = exec
        .run_job(
            "w-stream",
            "j1",
            r#"{"n":3}"#,
            Duration::from_secs(30),
            rec.clone(),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!({"count": 3})
    );
    let events = rec.0.lock().unwrap().clone();
    let chunks: Vec<&String> = events.iter().filter(|e| e.starts_with("stream")).collect();
    assert_eq!(
        chunks,
        vec![
            r#"stream {"i":0}"#,
            r#"stream {"i":1}"#,
            r#"stream {"i":2}"#
        ],
        "{events:?}"
    );

    // A worker that fails init is reported, not fatal.
    let err = exec
        .start_worker("w-bad", &stream, "not-the-digest", spec())
        .await
        .unwrap_err();
    assert!(matches!(err, ExecutorError::WorkerFailed(_)), "{err:?}");

    // Kill the executor while a job runs: that job reports Died.
    let running = {
        let exec = Arc::clone(&exec);
        tokio::spawn(async move {
            exec.run_job(
                "w-sleep",
                "j2",
                r#"{"ms":60000}"#,
                Duration::from_secs(120),
                Arc::new(Recorder::default()),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    exec.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome, Err(ExecutorError::Died(_))),
        "{outcome:?}"
    );
    tokio::time::timeout(Duration::from_secs(5), exec.died())
        .await
        .unwrap();
    assert!(!exec.is_alive());

    // A replacement executor serves the slice again, from the warm cache.
    let again = ExecutorProcess::spawn(&exe, cpu_slice(), Some(cache.path().into()))
        .await
        .unwrap();
    again
        .start_worker("w-sleep", &sleep, &digest(&sleep), spec())
        .await
        .unwrap();
    let out = again
        .run_job(
            "w-sleep",
            "j3",
            r#"{"ms":1}"#,
            Duration::from_secs(30),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
    assert!(out.is_ok(), "{out:?}");
}
