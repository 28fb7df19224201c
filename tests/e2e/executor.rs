//! Executor processes: a real `wasmpod executor` child serves a slice's
//! workers; its death fails exactly the jobs it held and a new one serves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmpod::executor::{ExecutorError, ExecutorProcess, SandboxPolicy, SliceSpec, WorkerSpec};
use wasmpod::gpu::DeviceInfo;
use wasmpod::runtime::{BootLayer, JobSink, LogLevel, OutputStream};

use crate::common;

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
    fn output(&self, stream: OutputStream, line: &str) {
        self.0.lock().unwrap().push(format!("{stream:?} {line}"));
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

/// The executor's sandbox: it reads the example components (and models)
/// from these directories only.
fn sandbox(reads: &[&std::path::Path]) -> SandboxPolicy {
    SandboxPolicy {
        disabled: false,
        read_only: reads.iter().map(|p| p.to_path_buf()).collect(),
        read_write: Vec::new(),
    }
}

fn spec() -> WorkerSpec {
    WorkerSpec {
        memory_limit: 256 << 20,
        tensor_quota: 1 << 30,
        models_dir: None,
        env: vec![],
        concurrency: 2,
        flashboot: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_runs_jobs_and_its_death_fails_only_its_jobs() {
    let stream = common::example_wasm("stream");
    let sleep = common::example_wasm("sleep");
    let digest = |p: &std::path::Path| wasmpod::runtime::digest(&std::fs::read(p).unwrap());
    let cache = tempfile::tempdir().unwrap();
    let exe = common::wasmpod_bin();

    let wasm_dir = stream.parent().unwrap();
    let exec = ExecutorProcess::spawn(
        &exe,
        cpu_slice(),
        Some(cache.path().into()),
        1 << 30,
        sandbox(&[wasm_dir]),
        None,
    )
    .await
    .unwrap();
    assert!(exec.is_alive());
    exec.start_worker("w-stream", "ep", &stream, &digest(&stream), spec())
        .await
        .unwrap();
    exec.start_worker("w-sleep", "ep", &sleep, &digest(&sleep), spec())
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
    // Its log call and its stdout lines come back in order, as the job's.
    let lines: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("log") || e.starts_with("Stdout"))
        .collect();
    assert_eq!(
        lines,
        vec![
            "log streaming 3 chunk(s)",
            "Stdout chunk 0",
            "Stdout chunk 1",
            "Stdout chunk 2"
        ],
        "{events:?}"
    );

    // A worker that fails init is reported, not fatal.
    let err = exec
        .start_worker("w-bad", "ep", &stream, "not-the-digest", spec())
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
    let again = ExecutorProcess::spawn(
        &exe,
        cpu_slice(),
        Some(cache.path().into()),
        1 << 30,
        sandbox(&[wasm_dir]),
        None,
    )
    .await
    .unwrap();
    again
        .start_worker("w-sleep", "ep", &sleep, &digest(&sleep), spec())
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

async fn run(exec: &ExecutorProcess, worker: &str, job: &str, input: &str) -> serde_json::Value {
    let out = exec
        .run_job(
            worker,
            job,
            input,
            Duration::from_secs(60),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("job {job} failed: {e:?}"));
    serde_json::from_str(&out).unwrap()
}

/// FlashBoot on an executor: a stopped worker's instances are parked (their
/// tensors and the slice's weights paged out) and the endpoint's next
/// worker pages them back in; another endpoint of the same handler starts
/// from the snapshot taken after `init`, and so does a worker after the
/// executor process restarted (the snapshot is on disk). A new handler
/// version never takes the old version's parked instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flashboot_parks_stopped_workers_and_restores_them() {
    const INPUT: &str = r#"{"inputs":[[1.0,1.0],[-2.0,0.5],[-0.5,-3.0],[4.0,-1.0]]}"#;
    let mlp = common::example_wasm("mlp");
    let echo = common::example_wasm("echo");
    let digest = |p: &std::path::Path| wasmpod::runtime::digest(&std::fs::read(p).unwrap());
    let models = tempfile::tempdir().unwrap();
    common::make_mlp_models(models.path());
    let cache = tempfile::tempdir().unwrap();
    let exe = common::wasmpod_bin();
    let spec = WorkerSpec {
        models_dir: Some(models.path().to_path_buf()),
        concurrency: 1,
        flashboot: true,
        ..spec()
    };
    let (mlp_digest, echo_digest) = (digest(&mlp), digest(&echo));

    let reads = [mlp.parent().unwrap(), models.path()];
    let exec = ExecutorProcess::spawn(
        &exe,
        cpu_slice(),
        Some(cache.path().into()),
        1 << 30,
        sandbox(&reads),
        None,
    )
    .await
    .unwrap();
    let first = exec
        .start_worker("w1", "ep", &mlp, &mlp_digest, spec.clone())
        .await
        .unwrap();
    assert_eq!(first.boot, BootLayer::Cold, "{:?}", first.note);
    assert_eq!(first.note, None, "the snapshot should have been taken");
    let expected = run(&exec, "w1", "j1", INPUT).await;
    assert_eq!(expected["classes"], serde_json::json!([0, 1, 2, 3]));

    exec.stop_worker("w1", Some(("ep", &mlp_digest))).await;
    let parked = exec.parked("ep").expect("the stopped worker is parked");
    assert_eq!(parked.handler, mlp_digest);
    assert_eq!(parked.report.instances, 1);
    assert!(parked.report.bytes > 0, "{:?}", parked.report);

    let restored = exec
        .start_worker("w2", "ep", &mlp, &mlp_digest, spec.clone())
        .await
        .unwrap();
    assert_eq!(restored.boot, BootLayer::VramRestored, "{restored:?}");
    assert!(exec.parked("ep").is_none(), "taken over by w2");
    assert_eq!(run(&exec, "w2", "j2", INPUT).await, expected);

    let other = exec
        .start_worker("w3", "ep2", &mlp, &mlp_digest, spec.clone())
        .await
        .unwrap();
    assert_eq!(other.boot, BootLayer::Preinitialised, "{other:?}");
    assert_eq!(run(&exec, "w3", "j3", INPUT).await, expected);

    // Park w2 again, then start a new handler version for the endpoint.
    exec.stop_worker("w2", Some(("ep", &mlp_digest))).await;
    assert!(exec.parked("ep").is_some());
    let swapped = exec
        .start_worker("w4", "ep", &echo, &echo_digest, spec.clone())
        .await
        .unwrap();
    assert_ne!(swapped.boot, BootLayer::VramRestored);
    assert_ne!(swapped.boot, BootLayer::Preinitialised);
    assert_eq!(
        run(&exec, "w4", "j4", r#"{"hello":"v2"}"#).await,
        serde_json::json!({"hello":"v2"})
    );

    // Disk tier: a new executor process finds the snapshot.
    exec.kill();
    exec.died().await;
    let again = ExecutorProcess::spawn(
        &exe,
        cpu_slice(),
        Some(cache.path().into()),
        1 << 30,
        sandbox(&reads),
        None,
    )
    .await
    .unwrap();
    let after_restart = again
        .start_worker("w5", "ep", &mlp, &mlp_digest, spec.clone())
        .await
        .unwrap();
    assert_eq!(
        after_restart.boot,
        BootLayer::Preinitialised,
        "{after_restart:?}"
    );
    assert_eq!(run(&again, "w5", "j5", INPUT).await, expected);
}
