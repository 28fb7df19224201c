//! Batch jobs end to end through the real `wasmpod serve`: a batch of
//! 1,000 requests built as a draft (created with some, more added, one
//! removed and one added back), finalized, run to the end while real-time
//! /runsync jobs overtake it, with its counts and its pages of results
//! right; the limits' and bad inputs' clear 4xx answers; cancel;
//! `policy.lowPriority` jobs waiting behind real-time ones the same way;
//! and a `kill -9` of the host, in the draft and mid-run, losing no
//! request.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::server;
use crate::common::server::{Reply, Server};

fn requests(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| json!({"input": {"ms": i % 20 + 1}}))
        .collect()
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
        assert_eq!(r.body["offset"], out.len(), "{r:?}");
        let items = r.body["requests"].as_array().unwrap().clone();
        let more = r.body["hasMore"].as_bool().unwrap();
        assert!(items.len() <= per_page);
        out.extend(items);
        if !more {
            return out;
        }
    }
}

fn count(b: &Value, key: &str) -> i64 {
    b[key].as_i64().unwrap_or_else(|| panic!("{key} in {b}"))
}

/// Poll until every request of the batch is final.
async fn wait_done(s: &Server, ep: &str, id: &str, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let b = batch(s, ep, id).await;
        let done = count(&b, "requestCompleted")
            + count(&b, "requestFailed")
            + count(&b, "requestCancelled");
        if done == count(&b, "requestTotal") {
            return b;
        }
        assert!(started.elapsed() < limit, "the batch did not finish: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_1000_runs_behind_real_time_jobs_with_its_counts_and_pages_right() {
    let home = tempfile::tempdir().unwrap();
    let s = server::start(home.path(), &[]);
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
    assert_eq!(draft[600]["input"], json!({"ms": 1}));
    // Change one request's input in the draft.
    let changed = draft[20]["id"].as_str().unwrap().to_string();
    let r = s
        .send(
            s.req(
                reqwest::Method::PUT,
                &format!("/v2/work/batch/{id}/requests/{changed}"),
            )
            .json(&json!({"input": {"ms": 19}})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["requestTotal"], 1000);
    let r = s
        .send(
            s.req(
                reqwest::Method::PUT,
                &format!("/v2/work/batch/{id}/requests/{changed}"),
            )
            .json(&json!({"input": null})),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("is null"), "{r:?}");
    let removed = draft[10]["id"].as_str().unwrap().to_string();
    let r = s
        .delete(&format!("/v2/work/batch/{id}/requests/{removed}"))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["requestTotal"], 999);
    let r = s
        .delete(&format!("/v2/work/batch/{id}/requests/{removed}"))
        .await;
    assert_eq!(r.status, 404, "removed twice: {r:?}");
    assert!(r.error().contains("no request"), "{r:?}");
    let r = s
        .post(
            &format!("/v2/work/batch/{id}/requests"),
            &json!({"requests": [{"input": {"ms": 11}}]}),
        )
        .await;
    assert_eq!(r.body["requestTotal"], 1000, "{r:?}");
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
    assert_eq!(inputs[999], 11, "added last, paged last");
    assert_eq!(inputs[19], 19, "changed (one earlier: the removed one)");

    // Nothing runs before finalize.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = batch(&s, "work", &id).await;
    assert_eq!(
        (count(&b, "requestInQueue"), count(&b, "requestCompleted")),
        (0, 0)
    );
    let h = s.get("/v2/work/health").await;
    assert_eq!(h.body["jobs"]["inQueue"], 0, "{h:?}");

    let r = s
        .post(&format!("/v2/work/batch/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "FINALIZED");
    assert_eq!(r.body["requestTotal"], 1000);
    let finalized = Instant::now();
    // Locked now.
    let r = s
        .post(
            &format!("/v2/work/batch/{id}/requests"),
            &json!({"requests": [{"input": {"ms": 1}}]}),
        )
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.error().contains("not DRAFT"), "{r:?}");
    let r = s
        .post(&format!("/v2/work/batch/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(r.status, 409, "finalized twice: {r:?}");

    // Real-time jobs while the batch runs: each is taken ahead of every
    // batch request still queued, so it finishes while requests that were
    // queued before it still wait.
    let mut delays = Vec::new();
    let mut overtook = 0;
    loop {
        let before = batch(&s, "work", &id).await;
        let queued_before = count(&before, "requestInQueue");
        if queued_before < 150 {
            break;
        }
        // Batch work holds every slot but one (2 workers x 4).
        assert!(count(&before, "requestInProgress") <= 7, "{before}");
        let r = s
            .post("/v2/work/runsync", &json!({"input": {"ms": 1}}))
            .await;
        assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
        delays.push(r.body["delayTime"].as_i64().unwrap());
        let after = batch(&s, "work", &id).await;
        if count(&after, "requestInQueue") > 0 {
            overtook += 1;
        }
        assert!(
            finalized.elapsed() < Duration::from_secs(300),
            "the batch did not finish: {after}"
        );
    }
    let b = wait_done(&s, "work", &id, Duration::from_secs(300)).await;
    let took = finalized.elapsed();
    eprintln!(
        "batch of 1000 took {took:?}; {} real-time jobs meanwhile, delayTime {delays:?} ms",
        delays.len()
    );
    assert!(delays.len() >= 3, "too few real-time samples: {delays:?}");
    assert_eq!(
        overtook,
        delays.len(),
        "every real-time job overtook the batch"
    );
    // A real-time job finds the slot batch work leaves free: it waits for
    // a claim, not for the batch (with room for a loaded box).
    let mut sorted = delays.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median < 200 && (median as u128) < took.as_millis() / 4,
        "real-time jobs waited {median} ms (median) while the batch took {took:?}: {delays:?}"
    );

    assert_eq!(b["status"], "FINALIZED", "{b}");
    assert_eq!(count(&b, "requestTotal"), 1000, "{b}");
    assert_eq!(count(&b, "requestCompleted"), 1000, "{b}");
    assert_eq!(count(&b, "requestFailed"), 0, "{b}");
    assert_eq!(count(&b, "requestCancelled"), 0, "{b}");
    assert_eq!(count(&b, "requestInQueue"), 0, "{b}");
    assert_eq!(count(&b, "requestInProgress"), 0, "{b}");

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
    assert_eq!(r.body["requests"].as_array().unwrap().len(), 10, "{r:?}");
    assert_eq!(r.body["hasMore"], false);
    assert_eq!(r.body["total"], 1000);
    let r = page(&s, "work", &id, 5000, 10).await;
    assert_eq!(r.body["requests"], json!([]), "past the end: {r:?}");
    // A request is a job: /status reads it.
    let st = s.status("work", &ids[5]).await;
    assert_eq!(st.body["status"], "COMPLETED", "{st:?}");
    assert_eq!(st.body["output"]["slept_ms"], inputs[5], "{st:?}");

    let list = s.get("/v2/work/batch").await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.body["batches"][0]["id"], id.as_str(), "{list:?}");
    assert_eq!(list.body["batches"][0]["requestCompleted"], 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn limits_bad_inputs_cancel_and_low_priority_jobs() {
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

    // Clear 4xx answers for what does not fit or is malformed.
    let r = s
        .post("/v2/one/batch", &json!({"requests": requests(0..301)}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("at most 300 requests"), "{r:?}");
    let bad = [
        (
            json!({"requests": [{"input": {"ms": 1}, "webhook": "http://x"}]}),
            "only \"input\"",
        ),
        (json!({"requests": [{"nope": 1}]}), "only \"input\""),
        (json!({"requests": [{}]}), "no \"input\""),
        (json!({"requests": [{"input": null}]}), "is null"),
        (json!({"requests": "all of them"}), "must be an array"),
        (json!({"requests": [3]}), "must be an object"),
        (json!(["not", "an object"]), "JSON object"),
        (json!({"name": 7}), "\"name\" must be a string"),
        (json!({"name": "x".repeat(201)}), "at most 200"),
        (json!({"priority": 1}), "takes \"name\" and \"requests\""),
    ];
    for (body, says) in bad {
        let r = s.post("/v2/one/batch", &body).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
        assert!(r.error().contains(says), "{body}: {r:?}");
    }
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v2/one/batch")
                .header("content-type", "application/json")
                .body("{\"requests\": ["),
        )
        .await;
    assert_eq!(r.status, 400, "not JSON: {r:?}");
    assert_eq!(s.post("/v2/nowhere/batch", &json!({})).await.status, 404);
    let r = s.get("/v2/one/batch/not-a-batch").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("batch-<UUID>"), "{r:?}");
    let unknown = "batch-0190b5c4-5b1a-7000-8000-000000000000";
    let r = s.get(&format!("/v2/one/batch/{unknown}")).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert!(r.error().contains("GET /v2/one/batch"), "{r:?}");

    // An empty draft cannot be finalized.
    let empty = s.post("/v2/one/batch", &json!({})).await;
    assert_eq!(empty.status, 200, "{empty:?}");
    assert_eq!(empty.body["requestTotal"], 0);
    let empty_id = empty.body["id"].as_str().unwrap().to_string();
    let r = s
        .post(&format!("/v2/one/batch/{empty_id}/finalize"), &json!({}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("no requests"), "{r:?}");
    let r = page(&s, "one", &empty_id, 0, 0).await;
    assert_eq!(r.status, 400, "limit=0: {r:?}");
    let r = s
        .get(&format!("/v2/one/batch/{empty_id}/requests?offset=-1"))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = s
        .get(&format!("/v2/one/batch/{empty_id}/requests?page=2"))
        .await;
    assert_eq!(r.status, 400, "{r:?}");

    // Two active batches at most.
    let second = s
        .post("/v2/one/batch", &json!({"requests": requests(0..200)}))
        .await;
    assert_eq!(second.status, 200, "{second:?}");
    let r = s.post("/v2/one/batch", &json!({})).await;
    assert_eq!(r.status, 429, "a third active batch: {r:?}");
    assert!(r.error().contains("2 active batches"), "{r:?}");
    let id = second.body["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            &format!("/v2/one/batch/{id}/requests"),
            &json!({"requests": requests(0..101)}),
        )
        .await;
    assert_eq!(r.status, 400, "past 300 requests: {r:?}");
    assert!(r.error().contains("has 200 and the call adds 101"), "{r:?}");
    // Cancelling a draft frees its place.
    let r = s
        .post(&format!("/v2/one/batch/{empty_id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "CANCELLED");
    let third = s.post("/v2/one/batch", &json!({})).await;
    assert_eq!(third.status, 200, "{third:?}");

    // Cancel a running batch: queued requests are cancelled, the running
    // one finishes, the counts add up.
    let r = s
        .post(&format!("/v2/one/batch/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    s.wait_health(
        "one",
        "a batch request running",
        Duration::from_secs(60),
        |h| h["jobs"]["inProgress"].as_i64() == Some(1),
    )
    .await;
    let r = s
        .post(&format!("/v2/one/batch/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "CANCELLED");
    let b = wait_done(&s, "one", &id, Duration::from_secs(30)).await;
    let (completed, cancelled) = (count(&b, "requestCompleted"), count(&b, "requestCancelled"));
    assert!(completed >= 1 && cancelled >= 150, "{b}");
    assert_eq!(
        completed + cancelled + count(&b, "requestFailed"),
        200,
        "{b}"
    );
    let items = all_items(&s, "one", &id, 1000).await;
    assert_eq!(
        items.iter().filter(|i| i["status"] == "CANCELLED").count() as i64,
        cancelled
    );
    let r = s
        .post(&format!("/v2/one/batch/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(r.status, 409, "{r:?}");

    // policy.lowPriority: with the single slot busy, a low-priority job
    // queued first still runs after a real-time one queued later.
    let busy = s.run("one", &json!({"input": {"ms": 1500}})).await;
    s.wait_status("one", &busy, "IN_PROGRESS", Duration::from_secs(30))
        .await;
    let low = s
        .run(
            "one",
            &json!({"input": {"ms": 1}, "policy": {"lowPriority": true}}),
        )
        .await;
    let high = s.run("one", &json!({"input": {"ms": 1}})).await;
    s.wait_final("one", &low, Duration::from_secs(60)).await;
    s.wait_final("one", &high, Duration::from_secs(60)).await;
    let started = |job: &str| {
        let job = job.to_string();
        let s = &s;
        async move {
            let r = s.get(&format!("/v1/endpoints/one/jobs/{job}")).await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body["started_at"].as_i64().unwrap()
        }
    };
    let (low_at, high_at) = (started(&low).await, started(&high).await);
    assert!(
        high_at <= low_at,
        "the real-time job should start first: low at {low_at}, real-time at {high_at}"
    );
    let r = s
        .post(
            "/v2/one/run",
            &json!({"input": {"ms": 1}, "policy": {"lowPriority": "yes"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");

    // Changing batches has its rate limit ("batch"), one budget.
    s.create_endpoint(
        "tiny",
        &sleep,
        json!({"rate_limits": {"batch": {"requests": 2, "window_s": 60}}}),
    )
    .await;
    let made = s.post("/v2/tiny/batch", &json!({})).await;
    assert_eq!(made.status, 200, "{made:?}");
    let tiny = made.body["id"].as_str().unwrap().to_string();
    for _ in 0..5 {
        // Reading counts as /status, not against the batch budget.
        assert_eq!(s.get(&format!("/v2/tiny/batch/{tiny}")).await.status, 200);
    }
    let r = s
        .post(
            &format!("/v2/tiny/batch/{tiny}/requests"),
            &json!({"requests": [{"input": {"ms": 1}}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .post(&format!("/v2/tiny/batch/{tiny}/finalize"), &json!({}))
        .await;
    assert_eq!(r.status, 429, "the third change in a minute: {r:?}");
    let h = s.get("/v2/tiny/health").await;
    assert!(h.body.to_string().contains("batch"), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_in_the_draft_and_mid_run_loses_no_request() {
    let home = tempfile::tempdir().unwrap();
    let mut s = server::start(home.path(), &[]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint(
        "work",
        &sleep,
        json!({"max_workers": 1, "concurrency": 4, "idle_timeout_s": 30, "max_retries": 3}),
    )
    .await;
    let r = s
        .post("/v2/work/batch", &json!({"requests": requests(0..400)}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let ids: Vec<Value> = all_items(&s, "work", &id, 1000)
        .await
        .iter()
        .map(|i| i["id"].clone())
        .collect();

    s.kill9();
    let mut s = server::start(home.path(), &[]);
    let b = batch(&s, "work", &id).await;
    assert_eq!(
        (b["status"].as_str(), count(&b, "requestTotal")),
        (Some("DRAFT"), 400)
    );
    let r = s
        .post(&format!("/v2/work/batch/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // Mid-run: some done, most still queued.
    let started = Instant::now();
    loop {
        let b = batch(&s, "work", &id).await;
        if count(&b, "requestCompleted") >= 20 {
            assert!(count(&b, "requestInQueue") > 100, "{b}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{b}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    let s = server::start(home.path(), &[]);
    let b = wait_done(&s, "work", &id, Duration::from_secs(120)).await;
    assert_eq!(b["status"], "FINALIZED", "{b}");
    assert_eq!(count(&b, "requestTotal"), 400, "{b}");
    assert_eq!(count(&b, "requestCompleted"), 400, "no request lost: {b}");
    let items = all_items(&s, "work", &id, 1000).await;
    let after: Vec<Value> = items.iter().map(|i| i["id"].clone()).collect();
    assert_eq!(after, ids, "every request once, in order");
    assert!(items.iter().all(|i| i["status"] == "COMPLETED"));
    assert!(
        items.iter().all(|i| i["workerId"].is_string()),
        "{}",
        items[0]
    );
}
