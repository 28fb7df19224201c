//! Durability: every job accepted with a 2xx survives `kill -9` of the
//! host. After a restart on the same home, queued jobs are still queued,
//! jobs that were running are re-queued (retries counted) or failed when
//! the endpoint's max_retries is spent, and finished results stay readable.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;

use crate::common::server::start;

const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_then_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), &[]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("dur", &sleep, json!({"max_workers": 2, "max_retries": 3}))
        .await;
    s.create_endpoint("once", &sleep, json!({"max_workers": 1, "max_retries": 0}))
        .await;

    // Some jobs finish before the crash.
    let mut finished = Vec::new();
    for _ in 0..3 {
        let id = s.run("dur", &json!({"input": {"ms": 1}})).await;
        s.wait_final("dur", &id, LONG).await;
        finished.push(id);
    }
    // Load: 2 running at a time, the rest queued.
    let mut accepted = Vec::new();
    // Each long enough that one seen running is still running at the kill.
    for _ in 0..16 {
        accepted.push(s.run("dur", &json!({"input": {"ms": 800}})).await);
    }
    let doomed = s.run("once", &json!({"input": {"ms": 30000}})).await;
    s.wait_status("once", &doomed, "IN_PROGRESS", LONG).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // All statuses read at once, then the kill at once: read one by one,
    // a job seen IN_PROGRESS could finish (and the next start) before the
    // kill, and would then rightly show no retry.
    let statuses =
        futures_util::future::join_all(accepted.iter().map(|id| s.status("dur", id))).await;
    let before: HashMap<String, String> = accepted
        .iter()
        .zip(statuses)
        .map(|(id, r)| (id.clone(), r.body["status"].as_str().unwrap().to_string()))
        .collect();
    assert!(
        before.values().any(|s| s == "IN_PROGRESS"),
        "some jobs were running at the crash: {before:?}"
    );
    assert!(before.values().any(|s| s == "IN_QUEUE"));

    s.kill9();
    drop(s);
    let s = start(dir.path(), &[]);

    for id in &finished {
        let r = s.status("dur", id).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["status"], "COMPLETED", "finished result kept: {r:?}");
    }
    let mut requeued = 0;
    for id in &accepted {
        let done = s.wait_final("dur", id, LONG).await;
        assert_eq!(
            done["status"], "COMPLETED",
            "job {id} lost or failed: {done}"
        );
        if before[id] == "IN_PROGRESS" {
            assert_eq!(done["retries"], 1, "a re-queued job counts a retry: {done}");
            requeued += 1;
        }
    }
    assert!(requeued >= 1);
    let done = s.wait_final("once", &doomed, LONG).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("max_retries"),
        "{done}"
    );
    // And it can be retried by hand.
    let r = s
        .post(&format!("/v2/once/retry/{doomed}"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
}
