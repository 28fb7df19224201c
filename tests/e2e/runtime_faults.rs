//! Guest faults stay inside their instance: after a trap, a timeout, a
//! memory bomb or a cancel, the same runtime and handler run the next job.

use std::sync::Arc;
use std::time::Duration;

use wasmpod::runtime::{
    CancelSignal, Instance, InstanceConfig, JobError, LoadSource, NullSink, Runtime, RuntimeConfig,
};

use crate::common;

fn config() -> InstanceConfig {
    InstanceConfig::cpu(64 << 20, 1 << 30, None)
}

async fn run(
    instance: &mut Instance,
    input: &str,
    timeout: Duration,
) -> Result<serde_json::Value, JobError> {
    instance
        .handle(
            "job-1",
            input,
            Arc::new(NullSink),
            CancelSignal::new(),
            timeout,
        )
        .await
        .map(|s| serde_json::from_str(&s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_stay_in_their_instance() {
    let wasm = std::fs::read(common::example_wasm("sleep")).unwrap();
    let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
    let handler = runtime.load(&wasm).unwrap();
    let t = Duration::from_secs(30);

    let mut inst = handler.instantiate(&config()).await.unwrap();
    assert_eq!(
        run(&mut inst, r#"{"ms":1}"#, t).await.unwrap()["slept_ms"],
        1
    );
    // The same instance serves job after job.
    assert_eq!(
        run(&mut inst, r#"{"ms":2}"#, t).await.unwrap()["slept_ms"],
        2
    );

    let err = run(&mut inst, r#"{"panic":"oh no"}"#, t).await.unwrap_err();
    assert!(
        matches!(&err, JobError::Trap(m) if m.contains("oh no")),
        "{err:?}"
    );
    assert!(inst.is_lost());
    assert_eq!(
        run(&mut inst, r#"{"ms":1}"#, t).await.unwrap_err(),
        JobError::InstanceLost
    );

    let mut inst = handler.instantiate(&config()).await.unwrap();
    let err = run(&mut inst, r#"{"forever":true}"#, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, JobError::Timeout(_)), "{err:?}");

    let mut inst = handler.instantiate(&config()).await.unwrap();
    let err = run(&mut inst, r#"{"alloc_mb":1000}"#, t).await.unwrap_err();
    assert!(
        matches!(err, JobError::MemoryLimit { limit_mib: 64, .. }),
        "{err:?}"
    );

    let mut inst = handler.instantiate(&config()).await.unwrap();
    let cancel = CancelSignal::new();
    let canceller = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        canceller.cancel();
    });
    let err = inst
        .handle(
            "job-2",
            r#"{"forever":true}"#,
            Arc::new(NullSink),
            cancel,
            t,
        )
        .await
        .unwrap_err();
    assert_eq!(err, JobError::Cancelled);

    // After all of that, a fresh instance of the same handler still works.
    let mut inst = handler.instantiate(&config()).await.unwrap();
    assert_eq!(
        run(&mut inst, r#"{"ms":3}"#, t).await.unwrap()["slept_ms"],
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_by_content_hash() {
    let wasm = std::fs::read(common::example_wasm("echo")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let first = Runtime::new(&config).unwrap().load(&wasm).unwrap();
    assert_eq!(first.source(), LoadSource::Compiled);
    let second = Runtime::new(&config).unwrap().load(&wasm).unwrap();
    assert_eq!(second.source(), LoadSource::Cached);
    assert_eq!(first.digest(), second.digest());
    assert_eq!(first.digest(), wasmpod::runtime::digest(&wasm));
    let mut inst = second
        .instantiate(&InstanceConfig::cpu(64 << 20, 1 << 20, None))
        .await
        .unwrap();
    let out = run(&mut inst, r#"{"a":1}"#, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(out, serde_json::json!({"a": 1}));
}
