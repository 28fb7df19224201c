//! Logs and latency through `wasmpod serve`: a job's log calls and stdout
//! in its own lines and in the job's detail (with its stream chunks), the
//! workers' lifecycle events (start, boot, crash, replacement, retire) in
//! the same stream, filters, `follow` as server-sent events, the size
//! bounds, and P70/P90/P98 of delay, execution and cold-start time as JSON
//! and as Prometheus histograms.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::server;
use crate::common::server::Server;

const LONG: Duration = Duration::from_secs(90);

fn lines(r: &server::Reply) -> Vec<Value> {
    r.body["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {r:?}"))
        .clone()
}

fn messages(lines: &[Value]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn runsync(s: &Server, ep: &str, input: Value) -> Value {
    let r = s
        .post(&format!("/v2/{ep}/runsync"), &json!({ "input": input }))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    r.body
}

/// Poll the endpoint's logs until one line's message contains `what`.
async fn wait_line(s: &Server, ep: &str, query: &str, what: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let r = s
            .get(&format!("/v1/endpoints/{ep}/logs?limit=5000{query}"))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
        let l = lines(&r);
        if messages(&l).iter().any(|m| m.contains(what)) {
            return l;
        }
        assert!(
            started.elapsed() < LONG,
            "no line with {what:?} in {:#?}",
            messages(&l)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_log_calls_and_stdout_are_its_lines_and_in_its_detail() {
    let dir = tempfile::tempdir().unwrap();
    let s = server::start(dir.path(), &[]);
    let stream = s.upload_example("stream").await;
    s.create_endpoint("stream", &stream, json!({})).await;
    let done = runsync(&s, "stream", json!({"n": 3})).await;
    let job = done["id"].as_str().unwrap();
    // Read as soon as the job is final: its lines are stored before that.
    let detail = s.get(&format!("/v1/endpoints/stream/jobs/{job}")).await;
    assert_eq!(detail.status, 200, "{detail:?}");
    let d = &detail.body;
    assert_eq!(d["status"], "COMPLETED");
    assert_eq!(d["input"], json!({"n": 3}));
    assert_eq!(d["output"], json!({"count": 3}));
    assert_eq!(d["stream"], json!([{"i": 0}, {"i": 1}, {"i": 2}]));
    let logs = d["logs"].as_array().unwrap();
    let sources: Vec<(&str, &str)> = logs
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap(),
                l["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        vec![
            ("log", "streaming 3 chunk(s)"),
            ("stdout", "chunk 0"),
            ("stdout", "chunk 1"),
            ("stdout", "chunk 2")
        ]
    );
    assert!(
        logs.iter()
            .all(|l| l["job"] == job && l["endpoint"] == "stream")
    );
    let worker = logs[0]["worker"].as_str().unwrap().to_string();
    // The stream chunks were not consumed by the look: /stream still has them.
    let r = s.get(&format!("/v2/stream/stream/{job}")).await;
    assert_eq!(r.body["stream"].as_array().unwrap().len(), 3, "{r:?}");

    // Filters: by job, level, worker, time, seq.
    let other = runsync(&s, "stream", json!({"n": 1})).await;
    let by_job = lines(&s.get(&format!("/v1/endpoints/stream/logs?job={job}")).await);
    assert_eq!(by_job.len(), 4);
    let warn = lines(&s.get("/v1/endpoints/stream/logs?level=warn").await);
    assert!(warn.is_empty(), "{warn:?}");
    let info = lines(
        &s.get(&format!(
            "/v1/endpoints/stream/logs?level=INFO&worker={worker}"
        ))
        .await,
    );
    assert!(info.iter().any(|l| l["job"] == other["id"]), "{info:?}");
    assert!(
        info.iter().any(|l| l["source"] == "system"),
        "lifecycle lines: {info:?}"
    );
    let last = by_job.last().unwrap();
    let after = lines(
        &s.get(&format!(
            "/v1/endpoints/stream/logs?after={}&job={}",
            last["seq"],
            other["id"].as_str().unwrap()
        ))
        .await,
    );
    assert_eq!(messages(&after), vec!["streaming 1 chunk(s)", "chunk 0"]);
    let future = lines(
        &s.get(&format!(
            "/v1/endpoints/stream/logs?since={}",
            server_now() + 60_000
        ))
        .await,
    );
    assert!(future.is_empty());
    let two = lines(&s.get("/v1/endpoints/stream/logs?limit=2").await);
    assert_eq!(
        messages(&two),
        vec!["streaming 1 chunk(s)", "chunk 0"],
        "the last two, oldest first"
    );

    // The jobs list, newest first, with a status filter.
    let list = s.get("/v1/endpoints/stream/jobs").await;
    let ids: Vec<&str> = list.body["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![other["id"].as_str().unwrap(), job]);
    let failed = s.get("/v1/endpoints/stream/jobs?status=FAILED").await;
    assert_eq!(failed.body["jobs"], json!([]));

    // Mistakes answer 400/404 with what to do.
    for (path, status, says) in [
        (
            "/v1/endpoints/stream/logs?level=loud",
            400,
            "debug, info, warn or error",
        ),
        ("/v1/endpoints/stream/logs?limit=0", 400, "from 1 to 5000"),
        (
            "/v1/endpoints/stream/logs?since=yesterday",
            400,
            "milliseconds since the Unix epoch",
        ),
        (
            "/v1/endpoints/stream/logs?grep=x",
            400,
            "unknown query parameter",
        ),
        ("/v1/endpoints/nope/logs", 404, "no endpoint"),
        ("/v1/endpoints/stream/jobs?status=DONE", 400, "IN_QUEUE"),
        ("/v1/endpoints/stream/jobs/nope", 400, "malformed"),
        (
            "/v1/endpoints/stream/jobs/01a23246-303c-719d-ba98-3ff569c03ba7",
            404,
            "its log lines outlive it",
        ),
        (
            "/v1/endpoints/stream/metrics?window=48h",
            400,
            "at most 1day",
        ),
        ("/v1/metrics?window=soon", 400, "a duration such as"),
    ] {
        let r = s.get(path).await;
        assert_eq!(r.status, status, "{path}: {r:?}");
        assert!(r.error().contains(says), "{path}: {r:?}");
    }
    // The routes are in the OpenAPI document.
    let doc = s.get("/openapi.json").await.body;
    for p in [
        "/v1/endpoints/{endpoint_id}/logs",
        "/v1/endpoints/{endpoint_id}/jobs",
        "/v1/endpoints/{endpoint_id}/jobs/{job_id}",
        "/v1/endpoints/{endpoint_id}/metrics",
        "/v1/metrics",
    ] {
        assert!(
            doc["paths"].get(p).is_some(),
            "{p} missing from /openapi.json"
        );
    }
    // Admin only.
    let key = s
        .post(
            "/v1/keys",
            &json!({"name": "inv", "scope": "invoke", "endpoint_id": "stream"}),
        )
        .await;
    let invoke_key = key.body["key"].as_str().unwrap();
    let r = s
        .send(
            s.client
                .get(s.url("/v1/endpoints/stream/logs"))
                .bearer_auth(invoke_key),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
}

fn server_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_sends_the_backlog_then_new_lines_as_server_sent_events() {
    let dir = tempfile::tempdir().unwrap();
    let s = server::start(dir.path(), &[]);
    let stream = s.upload_example("stream").await;
    s.create_endpoint("stream", &stream, json!({})).await;
    let first = runsync(&s, "stream", json!({"n": 1})).await;
    let resp = s
        .req(
            reqwest::Method::GET,
            "/v1/endpoints/stream/logs?follow=true&level=info",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        resp.headers()
    );
    let mut body = resp.bytes_stream();
    let mut events: Vec<(i64, Value)> = Vec::new();
    let mut buf = String::new();
    let mut second = None;
    let deadline = Instant::now() + LONG;
    let second_done = |events: &[(i64, Value)], second: &Option<Value>| {
        second.as_ref().is_some_and(|j| {
            events
                .iter()
                .any(|(_, l)| l["job"] == j["id"] && l["message"] == "chunk 1")
        })
    };
    while !second_done(&events, &second) {
        if events
            .iter()
            .any(|(_, l)| l["job"] == first["id"] && l["message"] == "chunk 0")
            && second.is_none()
        {
            // The backlog is in: now a new job's lines must follow live.
            let s2 = &s;
            second = Some(runsync(s2, "stream", json!({"n": 2})).await);
        }
        let chunk = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            body.next(),
        )
        .await
        .expect("events in time")
        .expect("the stream stays open")
        .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut id = None;
            let mut data = None;
            let mut event = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<i64>().unwrap());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = Some(serde_json::from_str::<Value>(v.trim()).unwrap());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_string());
                }
            }
            if let (Some(id), Some(data)) = (id, data) {
                assert_eq!(event.as_deref(), Some("log"));
                assert_eq!(data["seq"], id);
                events.push((id, data));
            }
        }
    }
    let seqs: Vec<i64> = events.iter().map(|(i, _)| *i).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in order, no repeats: {seqs:?}"
    );
    let second = second.unwrap();
    let live: Vec<String> = events
        .iter()
        .filter(|(_, l)| l["job"] == second["id"])
        .map(|(_, l)| l["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(live, vec!["streaming 2 chunk(s)", "chunk 0", "chunk 1"]);

    // Last-Event-ID resumes after it.
    let resumed = s
        .req(
            reqwest::Method::GET,
            "/v1/endpoints/stream/logs?follow=true",
        )
        .header("last-event-id", seqs[seqs.len() - 2].to_string())
        .send()
        .await
        .unwrap();
    let mut body = resumed.bytes_stream();
    let chunk = tokio::time::timeout(LONG, body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk);
    assert!(
        text.contains(&format!("id: {}", seqs[seqs.len() - 1]))
            || text.contains(&format!("id:{}", seqs[seqs.len() - 1])),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_and_jobs_are_bounded_and_the_cut_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let s = server::start(
        dir.path(),
        &["--log-max-job-bytes", "300", "--log-max-line-bytes", "64"],
    );
    let stream = s.upload_example("stream").await;
    let fail = s.upload_example("fail").await;
    s.create_endpoint("stream", &stream, json!({})).await;
    s.create_endpoint("fail", &fail, json!({})).await;
    let done = runsync(&s, "stream", json!({"n": 200})).await;
    let job = done["id"].as_str().unwrap();
    let l = lines(
        &s.get(&format!("/v1/endpoints/stream/logs?job={job}&limit=5000"))
            .await,
    );
    let m = messages(&l);
    let bytes: usize = m[..m.len() - 1].iter().map(|x| x.len()).sum();
    assert!(bytes <= 300, "{bytes} bytes kept: {m:?}");
    let cut = l.last().unwrap();
    assert_eq!(cut["source"], "system");
    assert_eq!(cut["level"], "warn");
    assert!(
        cut["message"]
            .as_str()
            .unwrap()
            .contains("bytes of log output dropped"),
        "{cut}"
    );
    // The next job starts with a fresh allowance.
    let again = runsync(&s, "stream", json!({"n": 1})).await;
    let l = lines(
        &s.get(&format!(
            "/v1/endpoints/stream/logs?job={}",
            again["id"].as_str().unwrap()
        ))
        .await,
    );
    assert_eq!(messages(&l), vec!["streaming 1 chunk(s)", "chunk 0"]);
    // A failing job's error is in its status and detail.
    let r = s.post("/v2/fail/runsync", &json!({"input": {}})).await;
    assert_eq!(r.body["status"], "FAILED", "{r:?}");
    let d = s
        .get(&format!(
            "/v1/endpoints/fail/jobs/{}",
            r.body["id"].as_str().unwrap()
        ))
        .await;
    assert!(d.body["error"].as_str().unwrap().contains("boom"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_crash_and_latency_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let s = server::start(dir.path(), &[]);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint(
        "sleepy",
        &sleep,
        json!({"max_workers": 1, "idle_timeout_s": 1, "max_retries": 2}),
    )
    .await;
    for ms in [10, 20, 30, 40, 50] {
        runsync(&s, "sleepy", json!({"ms": ms})).await;
    }
    let l = wait_line(&s, "sleepy", "", "worker retired").await;
    let m = messages(&l);
    let find = |what: &str| {
        m.iter()
            .position(|x| x.contains(what))
            .unwrap_or_else(|| panic!("no {what:?} in {m:#?}"))
    };
    assert!(
        find("worker starting on slice cpu") < find("worker ready in"),
        "{m:#?}"
    );
    assert!(find("worker ready in") < find("worker retired"), "{m:#?}");
    assert!(
        l.iter()
            .filter(|x| x["source"] == "system")
            .all(|x| x["job"].is_null())
    );

    // A crash: the executor dies under a running job; the job is re-queued
    // and a replacement worker serves it.
    let long = s.run("sleepy", &json!({"input": {"ms": 2000}})).await;
    s.wait_status("sleepy", &long, "IN_PROGRESS", LONG).await;
    let inv = s.get("/v1/inventory").await.body;
    let pid = inv["executors"][0]["pid"].as_u64().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = s.wait_final("sleepy", &long, LONG).await;
    assert_eq!(status["status"], "COMPLETED", "{status}");
    assert_eq!(status["retries"], 1, "{status}");
    let l = wait_line(&s, "sleepy", "&level=warn", "back in the queue").await;
    let m = messages(&l);
    assert!(m.iter().any(|x| x.contains("died")), "{m:#?}");
    assert!(m.iter().any(|x| x.contains("replacement")), "{m:#?}");
    let requeued = l
        .iter()
        .find(|x| x["message"].as_str().unwrap().contains("back in the queue"))
        .unwrap();
    assert_eq!(requeued["job"], long.as_str());

    // P70/P90/P98 over a window, as JSON.
    let st = s.get("/v1/endpoints/sleepy/metrics?window=5m").await;
    assert_eq!(st.status, 200, "{st:?}");
    let b = &st.body;
    assert_eq!(b["completed"], 6, "{b}");
    assert_eq!(b["execution_ms"]["count"], 6);
    let (p70, p90, p98) = (
        b["execution_ms"]["p70"].as_f64().unwrap(),
        b["execution_ms"]["p90"].as_f64().unwrap(),
        b["execution_ms"]["p98"].as_f64().unwrap(),
    );
    assert!(
        p70 >= 40.0 && p70 <= p90 && p90 <= p98 && p98 >= 2000.0,
        "{b}"
    );
    assert!(
        b["cold_starts"].as_u64().unwrap() >= 2,
        "a start and a restart: {b}"
    );
    assert!(b["cold_start_ms"]["p90"].as_f64().unwrap() > 0.0, "{b}");
    assert!(b["delay_ms"]["p98"].as_f64().is_some(), "{b}");
    let series = b["series"].as_array().unwrap();
    let total: u64 = series
        .iter()
        .map(|p| p["completed"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 6);
    let all = s.get("/v1/metrics?window=1h").await.body;
    assert_eq!(all["endpoints"][0]["endpoint"], "sleepy");
    assert_eq!(all["window_s"], 3600);

    // And as Prometheus histograms.
    let text = s.text("/metrics").await;
    for want in [
        "wasmpod_cold_start_seconds_bucket{endpoint=\"sleepy\",le=\"+Inf\"}",
        "wasmpod_cold_starts_total{endpoint=\"sleepy\",boot=\"",
        "wasmpod_job_execution_seconds_count{endpoint=\"sleepy\"} 6",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}
