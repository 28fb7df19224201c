//! FlashBoot through `wasmpod serve`, end to end over HTTP on the CPU: an
//! endpoint that scales to zero parks its worker (instances, their tensors
//! and the slice's weights paged out) and its next cold start restores it
//! with the same outputs; /health counts warm, snapshotted and cold workers
//! and says how the last worker started; after a host restart the snapshot
//! on disk serves the start; with a zero host-memory budget the parked state
//! lives in spill files and still restores; a new handler version never
//! uses the old version's state, and deleting it deletes its snapshots;
//! `flashboot: false` runs `init` every time.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common;
use crate::common::server;
use crate::common::server::{Server, workers};

const LONG: Duration = Duration::from_secs(120);

fn mlp_input() -> Value {
    json!({"input": {"inputs": [[1.0, 1.0], [-2.0, 0.5], [-0.5, -3.0], [4.0, -1.0]]}})
}

/// POST /runsync on `ep` and return the completed job's output.
async fn runsync(s: &Server, ep: &str, body: &Value) -> Value {
    let r = s.post(&format!("/v2/{ep}/runsync"), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    r.body["output"].clone()
}

/// How the endpoint's latest worker started ("cold", "code-cached",
/// "pre-initialised", "vram-restored").
async fn last_boot(s: &Server, ep: &str) -> String {
    let h = s.get(&format!("/v2/{ep}/health")).await.body;
    h["lastBoot"]["boot"]
        .as_str()
        .unwrap_or_else(|| panic!("no lastBoot in {h}"))
        .to_string()
}

/// Wait until the endpoint is at zero workers with `parked` of them
/// snapshotted.
async fn wait_scaled_to_zero(s: &Server, ep: &str, parked: u64) -> Value {
    s.wait_health(ep, "at zero workers", LONG, |h| {
        workers(h, "warm") == 0
            && workers(h, "initializing") == 0
            && workers(h, "snapshotted") == parked
    })
    .await
}

/// Snapshots on disk taken of handler `digest`.
fn snapshots_of(home: &Path, digest: &str) -> usize {
    let Ok(dirs) = std::fs::read_dir(home.join("cache/snapshots")) else {
        return 0;
    };
    dirs.flatten()
        .filter_map(|d| std::fs::read_to_string(d.path().join("manifest.json")).ok())
        .filter(|manifest| manifest.contains(digest))
        .count()
}

fn spill_files(home: &Path) -> usize {
    std::fs::read_dir(home.join("cache/paging/cpu0"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flashboot_parks_at_zero_restores_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let models = dir.path().join("models");
    common::make_mlp_models(&models);
    let models = models.to_str().unwrap();

    let mut s = server::start(&home, &[]);
    let mlp = s.upload_example("mlp").await;
    let settings = json!({"models_dir": models, "idle_timeout_s": 0, "max_workers": 2});
    let created = s.create_endpoint("fb", &mlp, settings.clone()).await;
    assert_eq!(created["flashboot"], true, "on by default: {created}");
    let mut plain = settings.clone();
    plain["flashboot"] = json!(false);
    s.create_endpoint("plain", &mlp, plain).await;

    let h = s.get("/v2/fb/health").await.body;
    assert_eq!(
        (
            workers(&h, "warm"),
            workers(&h, "snapshotted"),
            workers(&h, "cold")
        ),
        (0, 0, 2),
        "{h}"
    );

    // First start: init runs and the snapshot is taken after it (the code
    // may already be compiled: the upload precompiles it in the background).
    let expected = runsync(&s, "fb", &mlp_input()).await;
    assert_eq!(expected["classes"], json!([0, 1, 2, 3]), "{expected}");
    let boot = last_boot(&s, "fb").await;
    assert!(boot == "cold" || boot == "code-cached", "{boot}");
    // idle_timeout_s 0: the worker scales to zero and is parked.
    let h = wait_scaled_to_zero(&s, "fb", 1).await;
    assert_eq!(workers(&h, "cold"), 1, "{h}");
    let metrics = s.text("/metrics").await;
    assert!(
        metrics.contains("wasmpod_workers{endpoint=\"fb\",state=\"snapshotted\"} 1"),
        "{metrics}"
    );

    // The next cold start pages the parked worker back in.
    assert_eq!(runsync(&s, "fb", &mlp_input()).await, expected);
    assert_eq!(last_boot(&s, "fb").await, "vram-restored");
    wait_scaled_to_zero(&s, "fb", 1).await;

    // FlashBoot off: init runs on every start, nothing is parked.
    assert_eq!(runsync(&s, "plain", &mlp_input()).await, expected);
    let boot = last_boot(&s, "plain").await;
    assert!(boot == "cold" || boot == "code-cached", "{boot}");
    wait_scaled_to_zero(&s, "plain", 0).await;
    assert_eq!(runsync(&s, "plain", &mlp_input()).await, expected);
    assert_eq!(last_boot(&s, "plain").await, "code-cached");

    // Host restart, with no host memory for parked state: the first start
    // comes from the snapshot on disk; parking then spills every tensor to
    // files, and the restore reads them back.
    s.kill9();
    drop(s);
    let mut s = server::start(&home, &["--flashboot-ram", "0"]);
    assert_eq!(runsync(&s, "fb", &mlp_input()).await, expected);
    assert_eq!(last_boot(&s, "fb").await, "pre-initialised");
    wait_scaled_to_zero(&s, "fb", 1).await;
    assert!(
        spill_files(&home) > 0,
        "a zero budget puts parked tensors in spill files"
    );
    assert_eq!(runsync(&s, "fb", &mlp_input()).await, expected);
    assert_eq!(last_boot(&s, "fb").await, "vram-restored");
    wait_scaled_to_zero(&s, "fb", 1).await;

    // A new handler version: the old version's parked worker is released
    // and its snapshot is not used.
    let echo = s.upload_example("echo").await;
    let r = s.patch("/v1/endpoints/fb", &json!({"handler": echo})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let h = s.get("/v2/fb/health").await.body;
    assert_eq!(workers(&h, "snapshotted"), 0, "released on swap: {h}");
    let out = runsync(&s, "fb", &json!({"input": {"version": 2}})).await;
    assert_eq!(out, json!({"version": 2}));
    let boot = last_boot(&s, "fb").await;
    assert!(boot == "cold" || boot == "code-cached", "{boot}");
    wait_scaled_to_zero(&s, "fb", 1).await;

    // Deleting the old version deletes its snapshots too.
    assert!(snapshots_of(&home, &mlp) > 0);
    let r = s.delete("/v1/endpoints/plain?force=true").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.delete(&format!("/v1/handlers/{mlp}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(snapshots_of(&home, &mlp), 0);
    s.kill9();
}

/// An executor holding a parked worker outlives `--executor-idle` but not
/// `--flashboot-keep`; after that the snapshot on disk serves the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_state_is_kept_for_flashboot_keep_then_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let s = server::start(
        &dir.path().join("home"),
        &["--executor-idle", "1s", "--flashboot-keep", "4s"],
    );
    let echo = s.upload_example("echo").await;
    s.create_endpoint("e", &echo, json!({"idle_timeout_s": 0, "max_workers": 1}))
        .await;
    let input = json!({"input": {"k": 1}});
    assert_eq!(runsync(&s, "e", &input).await, json!({"k": 1}));
    wait_scaled_to_zero(&s, "e", 1).await;
    // Past --executor-idle, the executor and its parked worker are still there.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let h = s.get("/v2/e/health").await.body;
    assert_eq!(
        workers(&h, "snapshotted"),
        1,
        "kept past --executor-idle: {h}"
    );
    // Past --flashboot-keep they are gone; the start is pre-initialised.
    wait_scaled_to_zero(&s, "e", 0).await;
    assert_eq!(runsync(&s, "e", &input).await, json!({"k": 1}));
    assert_eq!(last_boot(&s, "e").await, "pre-initialised");
}
