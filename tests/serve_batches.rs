//! Batch jobs end to end through the real `wasmpod serve`: a batch of
//! 1,000 requests built in a draft (created with some, more added, one
//! removed), finalized, run to the end while real-time jobs keep their
//! latency, with its counts and its pages of results right; the limits'
//! clear 4xx answers; cancel; and `policy.lowPriority` jobs waiting behind
//! real-time ones the same way.

mod common;
#[path = "common/server.rs"]
mod server;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use server::{Reply, Server};

fn requests(range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(|i| json!({"input": {"ms": i % 20 + 1}})).collect()
}

async fn batch(s: &Server, ep: &str, id: &str) -> Value {
    let r = s.get(&format!("/v2/{ep}/batch/{id}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

async fn page(s: &Server, ep: &str, id: &str, offset: usize, limit: usize) -> Reply {
    s.get(&format!(
        "/v2/{ep}/batch/{id}/requests?offset={offset}&limit={limit}"
    ))
    .await
}

/// Every request of a batch, page by page.
async fn all_items(s: &Server, ep: &str, id: &str, per_page: usize) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        let r = page(s, ep, id, out.len(), per_page).await;
        assert_eq!(r.status, 200, "{r:?}");
        let items = r.body["requests"].as_array().unwrap().clone();
        let more = r.body["hasMore"].as_bool().unwrap();
        assert_eq!(r.body["offset"], out.len());
        out.extend(items);
        if !more {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_1000_runs_behind_real_time_jobs() {
    let home = tempfile::tempdir().unwrap();
    let s = server::start(home.path(), &["--batch-max-active", "2"]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint(
        "work",
        &sleep,
        json!({"max_workers": 2, "concurrency": 4, "idle_timeout_s": 30}),
    )
    .await;

    // A draft: 600 requests at creation, 400 added in two calls, one
    // removed and one added back.
    let r = s
        .post(
            "/v2/work/batch",
            &json!({"name": "nightly", "requests": requests(0..600)}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "DRAFT");
    assert_eq!(r.body["requestTotal"], 600);
    assert_eq!(r.body["name"], "nightly");
    let id = r.body["id"].as_str().unwrap().to_string();
    for range in [600..800, 800..1000] {
        let r = s
            .post(
                &format!("/v2/work/batch/{id}/requests"),
                &json!({"requests": requests(range)}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(batch(&s, "work", &id).await["requestTotal"], 1000);
    let draft = all_items(&s, "work", &id, 250).await;
    assert_eq!(draft.len(), 1000);
    assert!(draft.iter().all(|i| i["status"] == "DRAFT"));
    let removed = draft[10]["id"].as_str().unwrap().to_string();
    let r = s
        .delete(&format!("/v2/work/batch/{id}/requests/{removed}"))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["requestTotal"], 999);
    let r = s
        .post(
            &format!("/v2/work/batch/{id}/requests"),
            &json!([{"input": {"ms": 11}}]),
        )
        .await;
    assert_eq!(r.body["requestTotal"], 1000);
    let draft = all_items(&s, "work", &id, 300).await;
    let ids: Vec<String> = draft
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
    assert!(!ids.contains(&removed));
    let inputs: Vec<u64> = draft
        .iter()
        .map(|i| i["input"]["ms"].as_u64().unwrap())
        .collect();

    // Nothing runs before finalize.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(batch(&s, "work", &id).await["requestCompleted"], 0);

    // Real-time traffic first, to know its latency on an idle endpoint.
    let mut idle = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = s.post("/v2/work/runsync", &json!({"input": {"ms": 1}})).await;
        assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
        idle.push(t.elapsed());
    }

    let r = s.post(&format!("/v2/work/batch/{id}/finalize"), &json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "FINALIZED");
    let finalized = Instant::now();
    // Locked now.
    let r = s
        .post(&format!("/v2/work/batch/{id}/requests"), &json!([{"input": {"ms": 1}}]))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.error().contains("DRAFT"), "{r:?}");

    // Real-time jobs while the batch runs: they go ahead of every queued
    // batch request, on a lane batch work never takes.
    let mut busy = Vec::new();
    let mut delays = Vec::new();
    let mut seen_running = false;
    loop {
        let b = batch(&s, "work", &id).await;
        let done = b["requestCompleted"].as_i64().unwrap() + b["requestFailed"].as_i64().unwrap();
        if done == 1000 {
            break;
        }
        if b["requestInQueue"].as_i64().unwrap() > 100 {
            seen_running = true;
            let t = Instant::now();
            let r = s.post("/v2/work/runsync", &json!({"input": {"ms": 1}})).await;
            assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
            busy.push(t.elapsed());
            delays.push(r.body["delayTime"].as_i64().unwrap());
        }
        assert!(
            finalized.elapsed() < Duration::from_secs(300),
            "the batch did not finish: {b}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = finalized.elapsed();
    let b = batch(&s, "work", &id).await;
    assert_eq!(b["status"], "FINALIZED", "{b}");
    assert_eq!(b["requestTotal"], 1000, "{b}");
    assert_eq!(b["requestCompleted"], 1000, "{b}");
    assert_eq!(b["requestFailed"], 0, "{b}");
    assert_eq!(b["requestInQueue"], 0, "{b}");
    assert_eq!(b["requestInProgress"], 0, "{b}");

    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    assert!(seen_running && busy.len() >= 3, "too few real-time samples: {busy:?}");
    let (idle_p50, busy_p50) = (median(&mut idle), median(&mut busy));
    eprintln!(
        "batch of 1000 took {took:?}; real-time /runsync p50 {idle_p50:?} idle, {busy_p50:?} while the batch ran ({} samples, delayTime {delays:?} ms)",
        busy.len()
    );
    // Never behind the batch: a real-time job waits at most for a claim,
    // not for the hundreds of batch requests queued before it.
    let max_delay = *delays.iter().max().unwrap();
    assert!(
        (max_delay as u128) < took.as_millis() / 4,
        "real-time jobs waited {max_delay} ms while the batch took {took:?}: {delays:?}"
    );

    // The pages: every request once, in the order added, each with its
    // own output.
    let done = all_items(&s, "work", &id, 128).await;
    assert_eq!(done.len(), 1000);
    for (i, item) in done.iter().enumerate() {
        assert_eq!(item["id"], ids[i], "page order at {i}");
        assert_eq!(item["status"], "COMPLETED", "{item}");
        assert_eq!(item["output"]["slept_ms"], inputs[i], "{item}");
        assert!(item["executionTime"].as_i64().is_some(), "{item}");
    }
    let r = page(&s, "work", &id, 990, 50).await;
    assert_eq!(r.body["requests"].as_array().unwrap().len(), 10);
    assert_eq!(r.body["hasMore"], false);
    assert_eq!(r.body["total"], 1000);

    // The list, newest first.
    let list = s.get("/v2/work/batch").await;
    assert_eq!(list.body["batches"][0]["id"], id.as_str(), "{list:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batch_limits_cancel_and_low_priority_jobs() {
    let home = tempfile::tempdir().unwrap();
    let s = server::start(
        home.path(),
        &["--batch-max-requests", "300", "--batch-max-active", "2"],
    );
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint(
        "one",
        &sleep,
        json!({"max_workers": 1, "concurrency": 1, "idle_timeout_s": 30}),
    )
    .await;

    // Clear 4xx answers for what does not fit.
    let r = s.post("/v2/one/batch", &Value::Array(requests(0..301))).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("at most 300 requests"), "{r:?}");
    let r = s.post("/v2/one/batch", &json!([{"input": {"ms": 1}, "webhook": "http://x"}])).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("only \"input\""), "{r:?}");
    let r = s.post("/v2/one/batch", &json!([{"nope": 1}])).await;
    assert_eq!(r.status, 400);
    let r = s.post("/v2/one/batch", &json!("not an array")).await;
    assert_eq!(r.status, 400);
    let empty = s.post("/v2/one/batch", &json!([])).await;
    assert_eq!(empty.status, 200, "{empty:?}");
    let empty_id = empty.body["id"].as_str().unwrap().to_string();
    let r = s.post(&format!("/v2/one/batch/{empty_id}/finalize"), &json!({})).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("no requests"), "{r:?}");
    let second = s.post("/v2/one/batch", &Value::Array(requests(0..200))).await;
    assert_eq!(second.status, 200);
    let r = s.post("/v2/one/batch", &json!([])).await;
    assert_eq!(r.status, 429, "a third active batch: {r:?}");
    assert!(r.error().contains("2 active batches"), "{r:?}");
    let r = s
        .post(
            &format!("/v2/one/batch/{}/requests", second.body["id"].as_str().unwrap()),
            &json!({"requests": requests(0..101)}),
        )
        .await;
    assert_eq!(r.status, 400, "past 300 requests: {r:?}");
    assert_eq!(s.get("/v2/one/batch/batch-nope").await.status, 404);
    let r = s
        .send(s.req(reqwest::Method::PUT, &format!("/v2/one/batch/{empty_id}")).json(&json!({"name": "renamed"})))
        .await;
    assert_eq!(r.body["name"], "renamed", "{r:?}");
    assert_eq!(s.post(&format!("/v2/one/batch/{empty_id}/cancel"), &json!({})).await.status, 200);

    // Cancel a running batch: queued requests are cancelled, the running
    // one finishes, the counts add up.
    let id = second.body["id"].as_str().unwrap().to_string();
    s.post(&format!("/v2/one/batch/{id}/finalize"), &json!({})).await;
    s.wait_health("one", "a batch request running", Duration::from_secs(60), |h| {
        h["jobs"]["inProgress"].as_i64() == Some(1)
    })
    .await;
    let r = s.post(&format!("/v2/one/batch/{id}/cancel"), &json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "CANCELLED");
    let started = Instant::now();
    let b = loop {
        let b = batch(&s, "one", &id).await;
        if b["requestInProgress"] == 0 {
            break b;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (completed, cancelled) = (
        b["requestCompleted"].as_i64().unwrap(),
        b["requestCancelled"].as_i64().unwrap(),
    );
    assert!(completed >= 1 && cancelled >= 150, "{b}");
    assert_eq!(completed + cancelled + b["requestFailed"].as_i64().unwrap(), 200, "{b}");
    let items = all_items(&s, "one", &id, 1000).await;
    assert_eq!(
        items.iter().filter(|i| i["status"] == "CANCELLED").count() as i64,
        cancelled
    );
    assert_eq!(s.post(&format!("/v2/one/batch/{id}/cancel"), &json!({})).await.status, 409);

    // policy.lowPriority: with the single lane busy, a low-priority job
    // queued first still runs after a real-time one queued later.
    let busy = s.run("one", &json!({"input": {"ms": 1500}})).await;
    s.wait_status("one", &busy, "IN_PROGRESS", Duration::from_secs(30)).await;
    let low = s
        .run("one", &json!({"input": {"ms": 1}, "policy": {"lowPriority": true}}))
        .await;
    let high = s.run("one", &json!({"input": {"ms": 1}})).await;
    let low = s.wait_final("one", &low, Duration::from_secs(60)).await;
    let high = s.wait_final("one", &high, Duration::from_secs(60)).await;
    assert!(
        high["delayTime"].as_i64() < low["delayTime"].as_i64(),
        "the real-time job should start first: low {low}, high {high}"
    );

    // Batches are for queue endpoints.
    let hello = s.upload_example("http-hello").await;
    s.create_endpoint("web", &hello, json!({"type": "load_balancer"}))
        .await;
    let r = s.post("/v2/web/batch", &json!([])).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("load balancer"), "{r:?}");
}
