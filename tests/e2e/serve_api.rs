//! End to end through `wasmpod serve` over HTTP, SQLite in a temp dir, real
//! example components: every /v2 route and status, streaming order, cancel,
//! retries, timeouts, ttl, webhooks, retention, auth, bad inputs, the admin
//! API and hot swap under load.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use crate::common::server;
use crate::common::server::{Server, safetensors_bytes, start, start_with};

const LONG: Duration = Duration::from_secs(60);

async fn echo_server(args: &[&str]) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), args);
    let digest = s.upload_example("echo").await;
    s.create_endpoint("echo", &digest, json!({"max_workers": 2}))
        .await;
    (dir, s, digest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_run_status_and_fields() {
    let (_dir, s, _) = echo_server(&[]).await;

    // /runsync answers the full status object.
    let r = s
        .post("/v2/echo/runsync", &json!({"input": {"hello": "world"}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let b = &r.body;
    assert_eq!(b["status"], "COMPLETED");
    assert_eq!(b["output"], json!({"hello": "world"}));
    assert!(b["id"].as_str().unwrap().starts_with("sync-"));
    assert!(b["delayTime"].is_i64(), "{b}");
    assert!(b["executionTime"].is_i64(), "{b}");
    assert!(b["workerId"].as_str().unwrap().starts_with("echo-"), "{b}");
    assert_eq!(b["retries"], 0);

    // /run queues; /status (GET and POST) reports it finished.
    let id = s.run("echo", &json!({"input": [1, 2, 3]})).await;
    let done = s.wait_final("echo", &id, LONG).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["output"], json!([1, 2, 3]));
    let post = s.post(&format!("/v2/echo/status/{id}"), &json!({})).await;
    assert_eq!(post.status, 200);
    assert_eq!(post.body["output"], json!([1, 2, 3]));
    // A scalar input is fine too.
    let r = s.post("/v2/echo/runsync", &json!({"input": "text"})).await;
    assert_eq!(r.body["output"], "text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_returns_the_id_when_not_done_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("slow", &sleep, json!({})).await;
    let r = s
        .post("/v2/slow/runsync?wait=200", &json!({"input": {"ms": 1500}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let status = r.body["status"].as_str().unwrap();
    assert!(status == "IN_QUEUE" || status == "IN_PROGRESS", "{r:?}");
    assert!(r.body.get("output").is_none());
    let id = r.body["id"].as_str().unwrap();
    let done = s.wait_final("slow", id, LONG).await;
    assert_eq!(done["status"], "COMPLETED");
    assert_eq!(done["output"], json!({"slept_ms": 1500}));
    let r = s
        .post("/v2/slow/runsync?wait=soon", &json!({"input": {"ms": 1}}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("wait"), "{r:?}");
}

/// A `/runsync` job handed straight to an idle worker is written once, at
/// its end; whatever needs its row sooner gets it: a wait that ends first,
/// its first stream chunk. Its times still count from its accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_on_a_warm_worker_is_written_when_it_ends_or_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("warm", &sleep, json!({"min_workers": 1, "max_workers": 1}))
        .await;
    // The first job may wait for the worker to start; the next ones find
    // it idle and are handed over at accept.
    let r = s
        .post("/v2/warm/runsync", &json!({"input": {"ms": 1}}))
        .await;
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    let r = s
        .post("/v2/warm/runsync", &json!({"input": {"ms": 300}}))
        .await;
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    assert_eq!(r.body["delayTime"], 0, "handed over: {r:?}");
    let ms = r.body["executionTime"].as_i64().unwrap();
    assert!((300..5000).contains(&ms), "timed from its accept: {r:?}");
    let id = r.body["id"].as_str().unwrap();
    // Durable before the answer: /status has it final.
    let st = s.status("warm", id).await;
    assert_eq!(st.body["status"], "COMPLETED", "{st:?}");
    assert_eq!(st.body["output"], json!({"slept_ms": 300}));

    // Not done within its wait (shorter than the time a handed job runs
    // unwritten): the id it answers with is already written.
    let r = s
        .post("/v2/warm/runsync?wait=20", &json!({"input": {"ms": 1500}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "IN_PROGRESS", "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let st = s.status("warm", &id).await;
    assert_eq!(st.status, 200, "{st:?}");
    assert_eq!(st.body["status"], "IN_PROGRESS", "{st:?}");
    let done = s.wait_final("warm", &id, LONG).await;
    assert_eq!(done["status"], "COMPLETED");
    assert!(done["executionTime"].as_i64().unwrap() >= 1500, "{done}");

    // A streaming job is written before its first chunk is stored.
    let stream = s.upload_example("stream").await;
    s.create_endpoint("st", &stream, json!({"min_workers": 1, "max_workers": 1}))
        .await;
    for round in 0..2 {
        let r = s.post("/v2/st/runsync", &json!({"input": {"n": 5}})).await;
        assert_eq!(r.body["status"], "COMPLETED", "round {round}: {r:?}");
        let id = r.body["id"].as_str().unwrap();
        let chunks = s.get(&format!("/v2/st/stream/{id}")).await;
        let seen: Vec<Value> = chunks.body["stream"]
            .as_array()
            .expect("stream key")
            .iter()
            .map(|c| c["output"].clone())
            .collect();
        let expected: Vec<Value> = (0..5).map(|i| json!({"i": i})).collect();
        assert_eq!(seen, expected, "round {round}: every chunk stored");
    }
}

/// `/runsync` jobs that find every slot taken wait for one (in the host's
/// memory, briefly, then in the stored queue), in order; they count as
/// queued, their delay is real, and a purge of the queue reaches them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_jobs_for_a_busy_worker_wait_in_order_and_purge_reaches_them() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(start(dir.path(), &[]));
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("busy", &sleep, json!({"min_workers": 1, "max_workers": 1}))
        .await;
    let r = s
        .post("/v2/busy/runsync", &json!({"input": {"ms": 1}}))
        .await;
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");

    // One job holds the only slot; the next ones wait behind it, some past
    // the time a waiting job is kept unwritten. They run one after another
    // in the order they came, each delayed until the one before ended.
    let runsync = |ms: u64, wait: Option<u64>| {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            let path = match wait {
                Some(w) => format!("/v2/busy/runsync?wait={w}"),
                None => "/v2/busy/runsync".to_string(),
            };
            let r = s.post(&path, &json!({"input": {"ms": ms}})).await;
            (r, Instant::now())
        })
    };
    let first = runsync(300, None);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(runsync(40, None));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (r, first_done) = first.await.unwrap();
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    let mut last = first_done;
    for (i, task) in waiting.into_iter().enumerate() {
        let (r, done) = task.await.unwrap();
        assert_eq!(r.body["status"], "COMPLETED", "job {i}: {r:?}");
        assert!(
            done >= last,
            "job {i} ended before the one sent ahead of it"
        );
        last = done;
        let delay = r.body["delayTime"].as_i64().unwrap();
        assert!(delay >= 100, "job {i} waited for the slot: {r:?}");
        let id = r.body["id"].as_str().unwrap();
        let st = s.status("busy", id).await;
        assert_eq!(st.body["status"], "COMPLETED", "{st:?}");
        assert_eq!(st.body["delayTime"], r.body["delayTime"], "{st:?}");
    }

    // One that gets the slot soon (it waits in memory, not written until
    // it ends): its delay is its wait, not zero.
    let short = runsync(80, None);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let next = runsync(1, None);
    let (r, _) = short.await.unwrap();
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    let (r, _) = next.await.unwrap();
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    let delay = r.body["delayTime"].as_i64().unwrap();
    assert!(delay >= 30, "it waited for the slot: {r:?}");
    let st = s.status("busy", r.body["id"].as_str().unwrap()).await;
    assert_eq!(st.body["delayTime"], r.body["delayTime"], "{st:?}");

    // A waiting job is queued: counted so, and purged with the queue.
    let holder = runsync(1500, None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let purged = runsync(1, Some(30_000));
    tokio::time::sleep(Duration::from_millis(20)).await;
    let h = s.get("/v2/busy/health").await;
    assert_eq!(h.body["jobs"]["inQueue"], 1, "{h:?}");
    let r = s.post("/v2/busy/purge-queue", &json!({})).await;
    assert_eq!(
        r.body,
        json!({"removed": 1, "status": "completed"}),
        "{r:?}"
    );
    let (r, _) = purged.await.unwrap();
    assert_eq!(r.body["status"], "CANCELLED", "{r:?}");
    let (r, _) = holder.await.unwrap();
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_chunks_arrive_in_order_once_and_progress_shows() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let stream = s.upload_example("stream").await;
    s.create_endpoint("st", &stream, json!({})).await;
    let id = s
        .run("st", &json!({"input": {"n": 40, "delay_ms": 25}}))
        .await;
    let mut seen: Vec<Value> = Vec::new();
    let mut progress_seen = false;
    let started = Instant::now();
    loop {
        let r = s.get(&format!("/v2/st/stream/{id}")).await;
        assert_eq!(r.status, 200, "{r:?}");
        let chunks = r.body["stream"].as_array().expect("stream key").clone();
        let status = r.body["status"].as_str().unwrap().to_string();
        for c in &chunks {
            seen.push(c["output"].clone());
        }
        if status == "IN_PROGRESS" && !progress_seen {
            let st = s.status("st", &id).await;
            if st.body["status"] == "IN_PROGRESS" && st.body["output"]["total"] == 40 {
                progress_seen = true;
            }
        }
        if status == "COMPLETED" && chunks.is_empty() {
            break;
        }
        assert!(started.elapsed() < LONG, "stream never ended");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let expected: Vec<Value> = (0..40).map(|i| json!({"i": i})).collect();
    assert_eq!(seen, expected, "every chunk once, in order");
    assert!(
        progress_seen,
        "progress was visible in /status while running"
    );
    let done = s.status("st", &id).await;
    assert_eq!(done.body["output"], json!({"count": 40}));
    // POST works like GET (RunPod's local server uses POST).
    let r = s.post(&format!("/v2/st/stream/{id}"), &json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["stream"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_and_running_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("one", &sleep, json!({"max_workers": 1}))
        .await;
    let running = s.run("one", &json!({"input": {"ms": 30000}})).await;
    s.wait_status("one", &running, "IN_PROGRESS", LONG).await;
    let queued = s.run("one", &json!({"input": {"ms": 10}})).await;
    assert_eq!(s.status("one", &queued).await.body["status"], "IN_QUEUE");

    let r = s
        .post(&format!("/v2/one/cancel/{queued}"), &json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"id": queued, "status": "CANCELLED"}));
    let started = Instant::now();
    let r = s
        .post(&format!("/v2/one/cancel/{running}"), &json!({}))
        .await;
    assert_eq!(r.body["status"], "CANCELLED");
    assert_eq!(s.status("one", &running).await.body["status"], "CANCELLED");
    assert_eq!(s.status("one", &queued).await.body["status"], "CANCELLED");
    // The worker is free again quickly (the 30 s sleep was interrupted).
    let next = s.run("one", &json!({"input": {"ms": 10}})).await;
    let done = s.wait_final("one", &next, LONG).await;
    assert_eq!(done["status"], "COMPLETED");
    assert!(started.elapsed() < Duration::from_secs(15));
    // Cancelling a finished job leaves it as it was.
    let r = s.post(&format!("/v2/one/cancel/{next}"), &json!({})).await;
    assert_eq!(r.body["status"], "COMPLETED");
    let r = s.post("/v2/one/cancel/nope", &json!({})).await;
    assert_eq!(r.status, 400, "a malformed job id: {r:?}");
    let r = s
        .post(
            "/v2/one/cancel/0f8fad5b-d9cb-469f-a165-70867728950e",
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_timeouts_ttl_and_retry() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let fail = s.upload_example("fail").await;
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("fail", &fail, json!({})).await;
    s.create_endpoint("sleep", &sleep, json!({})).await;
    s.create_endpoint("paused", &sleep, json!({"max_workers": 0}))
        .await;

    let id = s.run("fail", &json!({"input": {}})).await;
    let done = s.wait_final("fail", &id, LONG).await;
    assert_eq!(done["status"], "FAILED");
    assert!(done["error"].as_str().unwrap().contains("boom"), "{done}");
    assert_eq!(done["retries"], 0);

    let r = s.post(&format!("/v2/fail/retry/{id}"), &json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, json!({"id": id, "status": "IN_QUEUE"}));
    let again = s.wait_final("fail", &id, LONG).await;
    assert_eq!(again["status"], "FAILED");
    assert_eq!(again["retries"], 1);

    // executionTimeout from the policy.
    let id = s
        .run(
            "sleep",
            &json!({"input": {"ms": 20000}, "policy": {"executionTimeout": 1000}}),
        )
        .await;
    let done = s.wait_final("sleep", &id, LONG).await;
    assert_eq!(done["status"], "TIMED_OUT", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("timeout"),
        "{done}"
    );
    let r = s.post(&format!("/v2/sleep/retry/{id}"), &json!({})).await;
    assert_eq!(r.status, 200);

    // A COMPLETED job cannot be retried.
    let ok = s.run("sleep", &json!({"input": {"ms": 1}})).await;
    s.wait_final("sleep", &ok, LONG).await;
    let r = s.post(&format!("/v2/sleep/retry/{ok}"), &json!({})).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.error().contains("COMPLETED"), "{r:?}");

    // ttl: a job nobody picks up in time is TIMED_OUT.
    let id = s
        .run(
            "paused",
            &json!({"input": {"ms": 1}, "policy": {"ttl": 1000}}),
        )
        .await;
    let done = s.wait_final("paused", &id, LONG).await;
    assert_eq!(done["status"], "TIMED_OUT");
    assert!(done["error"].as_str().unwrap().contains("ttl"), "{done}");

    let health = s.get("/v2/fail/health").await;
    assert_eq!(health.body["jobs"]["failed"], 1, "{health:?}");
    assert_eq!(health.body["jobs"]["retried"], 1, "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_queue_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("p", &sleep, json!({"max_workers": 0}))
        .await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(s.run("p", &json!({"input": {"ms": 1}})).await);
    }
    let h = s.get("/v2/p/health").await;
    assert_eq!(h.status, 200);
    assert_eq!(h.body["jobs"]["inQueue"], 5, "{h:?}");
    for k in [
        "idle",
        "running",
        "initializing",
        "ready",
        "throttled",
        "unhealthy",
    ] {
        assert!(h.body["workers"][k].is_u64(), "workers.{k} in {h:?}");
    }
    let r = s.post("/v2/p/purge-queue", &json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"removed": 5, "status": "completed"}));
    for id in &ids {
        assert_eq!(s.status("p", id).await.body["status"], "CANCELLED");
    }
    let h = s.get("/v2/p/health").await;
    assert_eq!(h.body["jobs"]["inQueue"], 0);

    // Unpause: workers start with the queue.
    let r = s.patch("/v1/endpoints/p", &json!({"max_workers": 1})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = s.run("p", &json!({"input": {"ms": 1}})).await;
    assert_eq!(s.wait_final("p", &id, LONG).await["status"], "COMPLETED");
    let h = s.get("/v2/p/health").await;
    assert_eq!(h.body["jobs"]["completed"], 1);
    assert_eq!(h.body["workers"]["ready"], 1, "{h:?}");
}

/// A local webhook receiver: answers 500 to the first `failures` calls.
async fn receiver(failures: usize) -> (String, Arc<Mutex<Vec<Value>>>) {
    use axum::routing::post;
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let got2 = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(body): axum::Json<Value>| {
            let got = Arc::clone(&got2);
            let calls = Arc::clone(&calls);
            async move {
                got.lock().unwrap().push(body);
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n < failures {
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_delivered_with_retries() {
    let (url, got) = receiver(2).await;
    let dir = tempfile::tempdir().unwrap();
    // The receiver is on loopback, which webhooks may reach only when the
    // operator allows it.
    let s = start(
        dir.path(),
        &[
            "--webhook-backoff",
            "200ms",
            "--webhook-attempts",
            "3",
            "--webhook-allow",
            "127.0.0.0/8",
        ],
    );
    let echo = s.upload_example("echo").await;
    s.create_endpoint("wh", &echo, json!({})).await;
    let id = s
        .run("wh", &json!({"input": {"x": 1}, "webhook": url}))
        .await;
    let started = Instant::now();
    while got.lock().unwrap().len() < 3 {
        assert!(started.elapsed() < LONG, "webhook not retried: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let calls = got.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "two failures then one success: {calls:?}");
    for body in &calls {
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["status"], "COMPLETED");
        assert_eq!(body["output"], json!({"x": 1}));
    }
    // A bad webhook URL is refused up front.
    let r = s
        .post("/v2/wh/run", &json!({"input": {}, "webhook": "ftp://x"}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("http"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_purged_after_retention() {
    let (_dir, s, _) = echo_server(&["--retention-run", "3s", "--retention-runsync", "1s"]).await;
    let sync = s.post("/v2/echo/runsync", &json!({"input": 1})).await;
    let sync_id = sync.body["id"].as_str().unwrap().to_string();
    let id = s.run("echo", &json!({"input": 2})).await;
    s.wait_final("echo", &id, LONG).await;
    assert_eq!(s.status("echo", &sync_id).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(s.status("echo", &sync_id).await.status, 404, "sync purged");
    assert_eq!(s.status("echo", &id).await.status, 200, "async kept");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = s.status("echo", &id).await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("kept"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_scopes_and_keys() {
    let (_dir, s, digest) = echo_server(&[]).await;
    s.create_endpoint("other", &digest, json!({})).await;
    let body = json!({"input": 1});

    let r = s
        .send(s.client.post(s.url("/v2/echo/runsync")).json(&body))
        .await;
    assert_eq!(r.status, 401);
    assert!(r.error().contains("Authorization"), "{r:?}");
    let r = s
        .send(
            s.client
                .post(s.url("/v2/echo/runsync"))
                .bearer_auth("wpk_wrong")
                .json(&body),
        )
        .await;
    assert_eq!(r.status, 401);
    // RunPod's bare-key header form works.
    let r = s
        .send(
            s.client
                .post(s.url("/v2/echo/runsync"))
                .header("authorization", server::ADMIN_KEY)
                .json(&body),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");

    let r = s
        .post(
            "/v1/keys",
            &json!({"name": "caller", "scope": "invoke", "endpoint_id": "echo"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let key = r.body["key"].as_str().unwrap().to_string();
    let key_id = r.body["id"].as_str().unwrap().to_string();
    let with = |path: &str| {
        s.client
            .post(s.url(path))
            .bearer_auth(&key)
            .json(&json!({"input": 1}))
    };
    assert_eq!(s.send(with("/v2/echo/runsync")).await.status, 200);
    let r = s.send(with("/v2/other/runsync")).await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s
        .send(s.client.get(s.url("/v1/endpoints")).bearer_auth(&key))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.error().contains("admin"), "{r:?}");

    let listed = s.get("/v1/keys").await;
    let keys = listed.body["keys"].as_array().unwrap();
    assert!(
        keys.iter().all(|k| k.get("key").is_none()),
        "no key is listed"
    );
    assert!(keys.iter().any(|k| k["id"] == key_id.as_str()));

    let r = s.delete(&format!("/v1/keys/{key_id}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.send(with("/v2/echo/runsync")).await.status, 401);

    let r = s
        .post("/v1/keys", &json!({"name": "x", "scope": "invoke"}))
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .post("/v1/keys", &json!({"name": "x", "scope": "root"}))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_clear_json_errors() {
    let (_dir, s, _) = echo_server(&[]).await;
    let raw = |path: &str, body: &'static str| {
        s.req(reqwest::Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
    };
    let r = s.send(raw("/v2/echo/run", "{not json")).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("not valid JSON"), "{r:?}");
    let r = s.send(raw("/v2/echo/run", "")).await;
    assert_eq!(r.status, 400);
    let r = s.post("/v2/echo/run", &json!({"inputs": 1})).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("\"input\""), "{r:?}");
    let r = s.post("/v2/echo/run", &json!([1])).await;
    assert_eq!(r.status, 400);
    let r = s
        .post(
            "/v2/echo/run",
            &json!({"input": 1, "policy": {"executionTimeout": "soon"}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("executionTimeout"), "{r:?}");
    let r = s.post("/v2/nope/run", &json!({"input": 1})).await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("nope"), "{r:?}");
    let r = s.get("/v2/echo/status/not-a-job").await;
    assert_eq!(r.status, 400, "a malformed job id: {r:?}");
    let r = s
        .get("/v2/echo/status/0f8fad5b-d9cb-469f-a165-70867728950e")
        .await;
    assert_eq!(r.status, 404);
    let r = s.get("/v3/whatever").await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("openapi"), "{r:?}");
    let r = s.get("/v2/echo/run").await;
    assert_eq!(r.status, 405);
    assert!(!r.error().is_empty());

    // Payload limits: 10 MB for /run, 20 MB for /runsync.
    let big = format!("{{\"input\": \"{}\"}}", "a".repeat(10 << 20));
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v2/echo/run")
                .header("content-type", "application/json")
                .body(big.clone()),
        )
        .await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.error().contains("10 MB"), "{r:?}");
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v2/echo/runsync")
                .header("content-type", "application/json")
                .body(big),
        )
        .await;
    assert_eq!(r.status, 200, "11 MB is fine for /runsync: {:?}", r.status);
    let bigger = format!("{{\"input\": \"{}\"}}", "a".repeat(20 << 20));
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v2/echo/runsync")
                .header("content-type", "application/json")
                .body(bigger),
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(r.error().contains("20 MB"), "{r:?}");

    // Invalid handlers.
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v1/handlers")
                .body(b"\0asm\x01\0\0\0".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().starts_with("invalid handler"), "{r:?}");
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v1/handlers")
                .body(b"hello".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v1/handlers")
                .body(Vec::new()),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("empty"), "{r:?}");

    // Endpoint settings.
    let r = s.post("/v1/endpoints", &json!({"handler": "abc"})).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("sha256"), "{r:?}");
    let r = s.post("/v1/endpoints", &json!({"max_workers": 1})).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("handler"), "{r:?}");
    let digest = s.get("/v1/endpoints/echo").await.body["handler"].clone();
    let r = s
        .post(
            "/v1/endpoints",
            &json!({"handler": digest, "min_workers": 3, "max_workers": 1}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("min_workers"), "{r:?}");
    let r = s
        .post(
            "/v1/endpoints",
            &json!({"handler": digest, "max_wrokers": 1}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("max_wrokers"), "{r:?}");
    let r = s
        .post("/v1/endpoints", &json!({"id": "echo", "handler": digest}))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    let r = s
        .post("/v1/endpoints", &json!({"id": "Bad Id", "handler": digest}))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_handlers_endpoints_models_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let echo = s.upload_example("echo").await;
    // Same bytes again: 200, same digest, not created.
    let wasm = std::fs::read(common::example_wasm("echo")).unwrap();
    let r = s
        .send(s.req(reqwest::Method::POST, "/v1/handlers").body(wasm))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["digest"], echo.as_str());
    assert_eq!(r.body["created"], false);
    let sleep = s.upload_example("sleep").await;
    let list = s.get("/v1/handlers").await;
    assert_eq!(list.body["handlers"].as_array().unwrap().len(), 2);

    let settings = json!({
        "name": "my echo", "min_workers": 1, "max_workers": 4, "idle_timeout_s": 30,
        "execution_timeout_ms": 60000, "concurrency": 2, "gpus": ["H100", "A100", "cpu"],
        "gpus_per_worker": 1, "env": {"MODE": "test"}, "flashboot": true, "max_retries": 1
    });
    let e = s.create_endpoint("ep", &echo, settings.clone()).await;
    for (k, v) in settings.as_object().unwrap() {
        assert_eq!(&e[k], v, "field {k} in {e}");
    }
    assert_eq!(e["url"], "/v2/ep");
    let r = s.get("/v1/endpoints/ep").await;
    assert_eq!(r.body["gpus"], json!(["H100", "A100", "cpu"]));
    // min_workers 1 with concurrency 2: one worker becomes ready on its own.
    let started = Instant::now();
    loop {
        let h = s.get("/v2/ep/health").await;
        if h.body["workers"]["ready"] == 1 {
            break;
        }
        assert!(started.elapsed() < LONG, "min worker never ready: {h:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let list = s.get("/v1/endpoints").await;
    assert_eq!(list.body["endpoints"].as_array().unwrap().len(), 1);
    let r = s
        .patch(
            "/v1/endpoints/ep",
            &json!({"max_workers": 2, "name": "renamed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["max_workers"], 2);
    assert_eq!(r.body["name"], "renamed");
    assert_eq!(
        r.body["env"],
        json!({"MODE": "test"}),
        "untouched fields kept"
    );
    assert_eq!(r.body["generation"], 2);
    let r = s
        .patch("/v1/endpoints/ep", &json!({"concurrency": 0}))
        .await;
    assert_eq!(r.status, 400);
    let r = s.patch("/v1/endpoints/nope", &json!({})).await;
    assert_eq!(r.status, 404);

    let r = s.delete(&format!("/v1/handlers/{echo}")).await;
    assert_eq!(r.status, 409, "in use: {r:?}");
    let r = s.delete(&format!("/v1/handlers/{sleep}")).await;
    assert_eq!(r.status, 200);
    assert_eq!(s.get(&format!("/v1/handlers/{sleep}")).await.status, 404);

    // Models: safetensors checked, files content-addressed.
    let weights = safetensors_bytes("w", &[1.0, 2.0, 3.0]);
    let put = |path: &str, body: Vec<u8>| s.req(reqwest::Method::PUT, path).body(body);
    let r = s
        .send(put(
            "/v1/models/tiny/files/model.safetensors",
            weights.clone(),
        ))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["size"], weights.len());
    let r = s
        .send(put(
            "/v1/models/tiny/files/tok/vocab.txt",
            b"a\nb\n".to_vec(),
        ))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = s
        .send(put(
            "/v1/models/copy/files/model.safetensors",
            weights.clone(),
        ))
        .await;
    assert_eq!(r.status, 201);
    let r = s
        .send(put(
            "/v1/models/tiny/files/bad.safetensors",
            b"garbage!".to_vec(),
        ))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("safetensors"), "{r:?}");
    let r = s
        .send(put("/v1/models/tiny/files/..%2Fescape", b"x".to_vec()))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = s
        .send(put("/v1/models/.hidden/files/a", b"x".to_vec()))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let m = s.get("/v1/models/tiny").await;
    assert_eq!(m.status, 200);
    let files: Vec<&str> = m.body["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec!["model.safetensors", "tok/vocab.txt"]);
    let blobs = std::fs::read_dir(dir.path().join("models/blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 2, "identical weights stored once");
    assert!(dir.path().join("models/tree/tiny/tok/vocab.txt").exists());
    assert_eq!(
        s.get("/v1/models").await.body["models"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(s.delete("/v1/models/tiny").await.status, 200);
    assert_eq!(s.get("/v1/models/tiny").await.status, 404);
    assert!(!dir.path().join("models/tree/tiny").exists());
    assert_eq!(
        std::fs::read_dir(dir.path().join("models/blobs"))
            .unwrap()
            .count(),
        1,
        "the shared blob stays for `copy`"
    );

    // Delete: refused while jobs wait, unless forced.
    s.patch(
        "/v1/endpoints/ep",
        &json!({"min_workers": 0, "max_workers": 0}),
    )
    .await;
    let queued = s.run("ep", &json!({"input": 1})).await;
    let r = s.delete("/v1/endpoints/ep").await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.error().contains("force"), "{r:?}");
    let r = s.delete("/v1/endpoints/ep?force=true").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.status("ep", &queued).await.status, 404);
    assert_eq!(s.get("/v1/endpoints/ep").await.status, 404);

    // The OpenAPI document is public and lists the routes.
    let doc: Value = reqwest::get(s.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v2/{endpoint_id}/run",
        "/v2/{endpoint_id}/runsync",
        "/v2/{endpoint_id}/stream/{job_id}",
        "/v1/handlers",
        "/v1/endpoints/{endpoint_id}",
        "/v1/models/{model}/files/{path}",
        "/v1/keys",
    ] {
        assert!(paths.contains_key(p), "{p} missing from /openapi.json");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_admin_key_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = {
        let s = start_with(dir.path(), &[], None);
        let line = s
            .banner
            .iter()
            .find(|l| l.starts_with("admin key"))
            .unwrap_or_else(|| panic!("no admin key printed: {:?}", s.banner));
        let key = line.rsplit(' ').next().unwrap().to_string();
        assert!(key.starts_with("wpk_"), "{line}");
        let r = s
            .send(s.client.get(s.url("/v1/endpoints")).bearer_auth(&key))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        key
    };
    let s = start_with(dir.path(), &[], None);
    assert!(
        !s.banner.iter().any(|l| l.contains("admin key")),
        "printed again: {:?}",
        s.banner
    );
    let r = s
        .send(s.client.get(s.url("/v1/endpoints")).bearer_auth(&key))
        .await;
    assert_eq!(r.status, 200, "the key survives a restart");
}

/// Hot swap under a steady stream of jobs: nothing fails or is lost, and
/// every job submitted after the swap answered runs the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(start(dir.path(), &[]));
    let echo = s.upload_example("echo").await;
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint("hs", &echo, json!({"max_workers": 2, "min_workers": 1}))
        .await;
    // Input both versions accept: echo returns it, sleep sleeps.
    let input = json!({"input": {"ms": 20}});
    let swapped_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut submitters = Vec::new();
    for _ in 0..3 {
        let s = Arc::clone(&s);
        let input = input.clone();
        let swapped_at = Arc::clone(&swapped_at);
        submitters.push(tokio::spawn(async move {
            let mut jobs = Vec::new();
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                let after_swap = swapped_at.lock().unwrap().is_some();
                let id = s.run("hs", &input).await;
                jobs.push((id, after_swap));
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            jobs
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let r = s
        .patch("/v1/endpoints/hs", &json!({"handler": sleep}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    *swapped_at.lock().unwrap() = Some(Instant::now());
    let mut jobs = Vec::new();
    for t in submitters {
        jobs.extend(t.await.unwrap());
    }
    assert!(jobs.len() > 50, "a steady stream: {} jobs", jobs.len());
    let (mut old, mut new) = (0, 0);
    for (id, after_swap) in &jobs {
        let done = s.wait_final("hs", id, LONG).await;
        assert_eq!(done["status"], "COMPLETED", "job {id}: {done}");
        if done["output"] == json!({"slept_ms": 20}) {
            new += 1;
        } else {
            assert_eq!(done["output"], json!({"ms": 20}), "{done}");
            assert!(
                !after_swap,
                "job {id} submitted after the swap ran the old version"
            );
            old += 1;
        }
    }
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    let h = s.get("/v2/hs/health").await;
    assert_eq!(h.body["jobs"]["failed"], 0);
}
