//! Workers that scale on GPU slices, end to end: `wasmpod serve` on a
//! simulated inventory (four whole H100s, one H100 split into two MIG
//! 3g.40gb slices, one A100; their work runs on the CPU backend), driven
//! over HTTP. Placement by priority with fallback, MIG slices, 2- and 4-GPU
//! groups (the guest sees N devices), throttling when slices run out,
//! scaling up under a burst (by queue depth or queue delay) and back to
//! zero, concurrency per worker, min_workers kept warm, the
//! VRAM quota reaching the executor, metering and /metrics, and an executor
//! killed mid-job: its worker turns unhealthy, the job is re-queued and
//! completes, and the executor is restarted.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use crate::common::server;
use crate::common::server::{Server, workers};

const LONG: Duration = Duration::from_secs(120);

const INVENTORY: &str = r#"
[[gpu]]
name = "NVIDIA H100 80GB HBM3"
memory_gib = 80
count = 4

[[gpu]]
name = "NVIDIA H100 80GB HBM3"
memory_gib = 80
mig = ["3g.40gb", "3g.40gb"]

[[gpu]]
name = "NVIDIA A100-SXM4-40GB"
memory_gib = 40
"#;

/// A server on the simulated inventory.
fn start(dir: &tempfile::TempDir) -> Server {
    start_with(dir, &[])
}

fn start_with(dir: &tempfile::TempDir, extra: &[&str]) -> Server {
    let inv = dir.path().join("inventory.toml");
    std::fs::write(&inv, INVENTORY).unwrap();
    let home = dir.path().join("home");
    let mut args = vec!["--inventory", inv.to_str().unwrap()];
    args.extend_from_slice(extra);
    server::start(&home, &args)
}

fn group_input(extra: Value) -> Value {
    let mut input = json!({"mode": "group", "n": 32, "dtype": "f32", "iters": 1, "copy_mib": 1});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        input[k] = v;
    }
    json!({ "input": input })
}

async fn wait_health(s: &Server, ep: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    s.wait_health(ep, what, LONG, pred).await
}

fn slice_types(h: &Value) -> Vec<String> {
    let mut v: Vec<String> = h["workerDetails"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["slice"]["slice_type"].as_str().map(String::from))
        .collect();
    v.sort();
    v
}

async fn completed_output(s: &Server, ep: &str, id: &str) -> Value {
    let done = s.wait_final(ep, id, LONG).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_fallback_mig_slices_and_min_workers_warm() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir);
    let bench = s.upload_example("gpu-bench").await;

    // Two warm workers wanting an A100 first: one gets the A100, the other
    // falls back to an H100. No job needed.
    s.create_endpoint(
        "pri",
        &bench,
        json!({"gpus": ["A100", "H100"], "min_workers": 2, "max_workers": 2, "idle_timeout_s": 1}),
    )
    .await;
    let h = wait_health(&s, "pri", "2 idle", |h| workers(h, "idle") == 2).await;
    assert_eq!(slice_types(&h), vec!["A100", "H100"], "{h}");
    let inv = s.get("/v1/inventory").await;
    assert_eq!(inv.status, 200);
    let held: BTreeSet<&str> = inv.body["in_use"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["endpoint"] == "pri")
        .map(|u| u["slice"].as_str().unwrap())
        .collect();
    assert_eq!(held, BTreeSet::from(["gpu0", "gpu5"]), "{}", inv.body);
    assert_eq!(inv.body["inventory"]["source"], "simulated");
    assert_eq!(inv.body["inventory"]["gpus"].as_array().unwrap().len(), 6);

    // min_workers stay warm well past idle_timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let h = s.get("/v2/pri/health").await.body;
    assert_eq!(workers(&h, "idle"), 2, "{h}");

    let id = s.run("pri", &group_input(json!({}))).await;
    let done = completed_output(&s, "pri", &id).await;
    let devices = done["output"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{done}");
    let name = devices[0].as_str().unwrap();
    assert!(name.contains("A100") || name.contains("H100"), "{done}");

    // MIG: the worker is pinned to a 3g.40gb instance and the guest sees it.
    s.create_endpoint(
        "mig",
        &bench,
        json!({"gpus": ["MIG-3g.40gb"], "max_workers": 2, "idle_timeout_s": 1}),
    )
    .await;
    let a = s.run("mig", &group_input(json!({}))).await;
    let b = s.run("mig", &group_input(json!({}))).await;
    for id in [a, b] {
        let done = completed_output(&s, "mig", &id).await;
        assert_eq!(
            done["output"]["devices"],
            json!(["NVIDIA H100 80GB HBM3 MIG 3g.40gb"]),
            "{done}"
        );
    }
    let inv = s.get("/v1/inventory").await.body;
    let mig_types: Vec<&str> = inv["in_use"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["endpoint"] == "mig")
        .map(|u| u["slice_type"].as_str().unwrap())
        .collect();
    assert!(
        mig_types.iter().all(|t| *t == "MIG-3g.40gb"),
        "{mig_types:?}"
    );

    // Nothing on this host can ever serve an H200: throttled, and the
    // endpoint says why.
    s.create_endpoint("h200", &bench, json!({"gpus": ["H200"], "max_workers": 1}))
        .await;
    let queued = s.run("h200", &group_input(json!({}))).await;
    let h = wait_health(&s, "h200", "throttled", |h| workers(h, "throttled") == 1).await;
    let why = h["workerDetails"][0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("no device on this host matches"), "{h}");
    let e = s.get("/v1/endpoints/h200").await.body;
    assert!(
        e["last_error"].as_str().unwrap().contains("H200"),
        "admin view says why: {e}"
    );
    assert_eq!(e["worker_details"][0]["state"], "throttled", "{e}");
    assert_eq!(s.status("h200", &queued).await.body["status"], "IN_QUEUE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_groups_see_n_devices_and_wait_for_free_gpus() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir);
    let bench = s.upload_example("gpu-bench").await;

    // Two 2-GPU workers use all four whole H100s (gpu4 is in MIG mode).
    s.create_endpoint(
        "g2",
        &bench,
        json!({"gpus": ["H100"], "gpus_per_worker": 2, "max_workers": 2, "min_workers": 2, "idle_timeout_s": 1}),
    )
    .await;
    wait_health(&s, "g2", "2 idle", |h| workers(h, "idle") == 2).await;
    let id = s.run("g2", &group_input(json!({}))).await;
    let done = completed_output(&s, "g2", &id).await;
    assert_eq!(
        done["output"]["devices"],
        json!(["NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"]),
        "{done}"
    );
    assert_eq!(done["output"]["copies"][0]["checksum_matches"], true);
    let inv = s.get("/v1/inventory").await.body;
    let mut g2: Vec<(String, String)> = inv["in_use"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["slice"].as_str().unwrap().to_string(),
                u["slice_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    g2.sort();
    assert_eq!(
        g2,
        vec![
            ("gpus0-1".to_string(), "2xH100".to_string()),
            ("gpus2-3".to_string(), "2xH100".to_string())
        ]
    );

    // A 4-GPU worker is throttled while the groups hold the GPUs...
    s.create_endpoint(
        "g4",
        &bench,
        json!({"gpus": ["H100"], "gpus_per_worker": 4, "max_workers": 1, "idle_timeout_s": 1}),
    )
    .await;
    let id = s.run("g4", &group_input(json!({}))).await;
    let h = wait_health(&s, "g4", "throttled", |h| workers(h, "throttled") == 1).await;
    assert!(
        h["workerDetails"][0]["error"]
            .as_str()
            .unwrap()
            .contains("in use"),
        "{h}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.status("g4", &id).await.body["status"], "IN_QUEUE");

    // ...and placed once they scale to zero: the guest sees four GPUs.
    let r = s
        .patch("/v1/endpoints/g2", &json!({"min_workers": 0}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let done = completed_output(&s, "g4", &id).await;
    assert_eq!(
        done["output"]["devices"].as_array().unwrap().len(),
        4,
        "{done}"
    );
    assert_eq!(done["output"]["gemm"].as_array().unwrap().len(), 4);
    let h = s.get("/v2/g4/health").await.body;
    assert_eq!(slice_types(&h), vec!["4xH100"], "{h}");

    // The tensor quota reaches the executor's devices: 1 MiB cannot hold
    // the 4 MiB tensor the job uploads.
    s.create_endpoint(
        "quota",
        &bench,
        json!({"gpus": ["A100"], "max_workers": 1, "tensor_quota_mib": 1}),
    )
    .await;
    let small = json!({"input": {"mode": "gemm", "n": 32, "dtype": "f32", "iters": 1}});
    let id = s.run("quota", &small).await;
    completed_output(&s, "quota", &id).await;
    let big = json!({"input": {"mode": "gemm", "n": 1024, "dtype": "f32", "iters": 1}});
    let id = s.run("quota", &big).await;
    let failed = s.wait_final("quota", &id, LONG).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let err = failed["error"].as_str().unwrap();
    assert!(
        err.contains("quota exceeded") && err.contains("1048576"),
        "the endpoint's 1 MiB quota applies: {failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_scales_up_throttles_then_back_to_zero_and_is_metered() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_with(&dir, &["--executor-idle", "1s"]);
    let sleep = s.upload_example("sleep").await;

    // A burst on an endpoint at zero workers: it scales to max_workers.
    // FlashBoot off: an executor holding a parked worker is kept rather
    // than reaped (tests/e2e/serve_flashboot.rs).
    s.create_endpoint(
        "burst",
        &sleep,
        json!({"gpus": ["H100"], "max_workers": 3, "idle_timeout_s": 1, "flashboot": false}),
    )
    .await;
    let h = s.get("/v2/burst/health").await.body;
    assert_eq!(h["workerDetails"], json!([]), "starts at zero: {h}");
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(s.run("burst", &json!({"input": {"ms": 300}})).await);
    }
    let h = wait_health(&s, "burst", "3 running", |h| workers(h, "running") == 3).await;
    assert_eq!(slice_types(&h), vec!["H100", "H100", "H100"], "{h}");
    assert!(h["queueDelayMs"].as_i64().unwrap() > 0, "{h}");
    for id in &ids {
        completed_output(&s, "burst", id).await;
    }
    // Idle past idle_timeout: back to zero, slices released.
    wait_health(&s, "burst", "at zero", |h| {
        h["workerDetails"].as_array().unwrap().is_empty()
    })
    .await;
    // A retired worker is gone from /health at once and frees its slice
    // once its executor has stopped it (a round trip).
    let retired = Instant::now();
    loop {
        let inv = s.get("/v1/inventory").await.body;
        if inv["in_use"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(retired.elapsed() < LONG, "slices released: {inv}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // With no worker for --executor-idle, the slices' executors stop too;
    // the next job spawns one again.
    let started = Instant::now();
    loop {
        let inv = s.get("/v1/inventory").await.body;
        let execs = inv["executors"].as_array().unwrap();
        assert_eq!(execs.len(), 3, "{inv}");
        if execs.iter().all(|x| x["alive"] == false) {
            break;
        }
        assert!(started.elapsed() < LONG, "idle executors kept: {inv}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = s.run("burst", &json!({"input": {"ms": 1}})).await;
    completed_output(&s, "burst", &id).await;
    let inv = s.get("/v1/inventory").await.body;
    assert!(
        inv["executors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["alive"] == true && x["spawned"] == 2),
        "{inv}"
    );

    // One A100 for three jobs: one worker runs, two are throttled, and
    // every job still completes.
    s.create_endpoint(
        "one",
        &sleep,
        json!({"gpus": ["A100"], "max_workers": 3, "idle_timeout_s": 1}),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(s.run("one", &json!({"input": {"ms": 600}})).await);
    }
    let h = wait_health(&s, "one", "1 running, 2 throttled", |h| {
        workers(h, "running") == 1 && workers(h, "throttled") == 2
    })
    .await;
    assert_eq!(slice_types(&h), vec!["A100"], "{h}");
    for id in &ids {
        completed_output(&s, "one", id).await;
    }

    // Metering: worker seconds per endpoint and slice type.
    let u = s.get("/v1/usage?endpoint=burst").await;
    assert_eq!(u.status, 200, "{u:?}");
    let rows = u.body["usage"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", u.body);
    assert_eq!(rows[0]["slice_type"], "H100");
    let secs = rows[0]["worker_seconds"].as_f64().unwrap();
    // 12 jobs of 0.3 s on 3 workers, plus start-up and 1 s idle each.
    assert!((1.2..60.0).contains(&secs), "{}", u.body);
    let all = s.get("/v1/usage").await.body;
    assert!(all["total_worker_seconds"].as_f64().unwrap() >= secs);
    let r = s.get("/v1/usage?since=yesterday").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("milliseconds"), "{r:?}");
    let r = s.get("/v1/usage?endpoints=burst").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("unknown query parameter"), "{r:?}");

    // /metrics: Prometheus text, admin key required (an endpoint's invoke
    // key may not read every endpoint's load and usage).
    let anon = reqwest::get(s.url("/metrics")).await.unwrap();
    assert_eq!(anon.status(), 401);
    let r = s
        .post(
            "/v1/keys",
            &json!({"name": "caller", "scope": "invoke", "endpoint_id": "burst"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let invoke_key = r.body["key"].as_str().unwrap().to_string();
    let r = s
        .send(s.client.get(s.url("/metrics")).bearer_auth(&invoke_key))
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let r = s
        .send(
            s.client
                .get(s.url("/v1/inventory"))
                .bearer_auth(&invoke_key),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    let doc = s.get("/openapi.json").await.body;
    for path in ["/v1/inventory", "/v1/usage", "/metrics"] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} not in /openapi.json"
        );
    }
    let text = s.text("/metrics").await;
    for needle in [
        "# TYPE wasmpod_worker_seconds_total counter",
        "wasmpod_worker_seconds_total{endpoint=\"burst\",slice_type=\"H100\"}",
        "wasmpod_queue_depth{endpoint=\"burst\"} 0",
        "wasmpod_workers{endpoint=\"burst\",state=\"running\"} 0",
        "# TYPE wasmpod_job_execution_seconds histogram",
        "wasmpod_job_execution_seconds_count{endpoint=\"burst\"} 13",
        "wasmpod_job_queue_delay_seconds_bucket{endpoint=\"one\",le=\"+Inf\"} 3",
        "wasmpod_jobs_finished_total{endpoint=\"burst\",status=\"COMPLETED\"} 13",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

fn is_executor(pid: u64) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
            args.iter().any(|a| *a == b"executor")
        })
        .unwrap_or(false)
}

/// The executor serving `ep`'s worker: its slice and pid, from
/// /v1/inventory (and checked to be a `wasmpod executor` in /proc).
async fn executor_of(s: &Server, ep: &str) -> (String, u64) {
    let inv = s.get("/v1/inventory").await.body;
    let slice = inv["in_use"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["endpoint"] == ep)
        .unwrap_or_else(|| panic!("{ep} holds no slice: {inv}"))["slice"]
        .as_str()
        .unwrap()
        .to_string();
    let exec = inv["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["slice"] == slice.as_str())
        .unwrap_or_else(|| panic!("no executor for {slice}: {inv}"))
        .clone();
    let pid = exec["pid"].as_u64().unwrap();
    assert!(is_executor(pid), "pid {pid} is not a wasmpod executor");
    (slice, pid)
}

fn kill9(pid: u64) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A `/runsync` job handed to an idle worker is written only when it ends;
/// if its executor dies first, it is written, re-queued with a retry
/// counted, and its client still gets the result of the second run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runsync_job_lost_with_its_executor_runs_again_for_its_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint(
        "sync",
        &sleep,
        json!({"gpus": ["A100"], "min_workers": 1, "max_workers": 1, "max_retries": 2}),
    )
    .await;
    let r = s
        .post("/v2/sync/runsync", &json!({"input": {"ms": 1}}))
        .await;
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    let (_, pid) = executor_of(&s, "sync").await;
    let request = s
        .client
        .post(format!("{}/v2/sync/runsync", s.base))
        .bearer_auth(&s.key)
        .json(&json!({"input": {"ms": 1500}}));
    let waiting = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    kill9(pid);
    let r = waiting.await.unwrap().expect("the /runsync answer");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "COMPLETED", "{body}");
    assert_eq!(body["retries"], 1, "{body}");
    assert_eq!(body["output"], json!({"slept_ms": 1500}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_executor_makes_worker_unhealthy_requeues_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir);
    let sleep = s.upload_example("sleep").await;
    s.create_endpoint(
        "crash",
        &sleep,
        json!({"gpus": ["A100"], "max_workers": 1, "max_retries": 2, "idle_timeout_s": 1}),
    )
    .await;
    let long = s.run("crash", &json!({"input": {"ms": 1500}})).await;
    let mut queued = Vec::new();
    for _ in 0..5 {
        queued.push(s.run("crash", &json!({"input": {"ms": 20}})).await);
    }
    s.wait_status("crash", &long, "IN_PROGRESS", LONG).await;
    let (slice, pid) = executor_of(&s, "crash").await;
    assert_eq!(slice, "gpu5");
    kill9(pid);

    let h = wait_health(&s, "crash", "unhealthy", |h| workers(h, "unhealthy") >= 1).await;
    let why = h["workerDetails"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["state"] == "unhealthy")
        .unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("died"), "{h}");

    // The lost job runs again (one retry counted); nothing queued is lost.
    let done = completed_output(&s, "crash", &long).await;
    assert_eq!(done["retries"], 1, "{done}");
    assert_eq!(done["output"], json!({"slept_ms": 1500}));
    for id in &queued {
        let d = completed_output(&s, "crash", id).await;
        assert_eq!(d["retries"], 0, "{d}");
    }
    // The executor was restarted: a new process serves the slice.
    let inv = s.get("/v1/inventory").await.body;
    let exec = inv["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["slice"] == "gpu5")
        .unwrap()
        .clone();
    assert_eq!(exec["restarts"], 1, "{exec}");
    assert_eq!(exec["alive"], true, "{exec}");
    let new_pid = exec["pid"].as_u64().unwrap();
    assert_ne!(new_pid, pid);
    assert!(is_executor(new_pid));
    assert!(exec["last_restart_ms"].as_f64().unwrap() > 0.0, "{exec}");
    let h = wait_health(&s, "crash", "healthy again", |h| {
        workers(h, "unhealthy") == 0
    })
    .await;
    assert_eq!(h["jobs"]["failed"], 0, "{h}");

    // With its retries spent, a lost job fails and says why.
    s.create_endpoint(
        "once",
        &sleep,
        json!({"gpus": ["H100"], "max_workers": 1, "max_retries": 0}),
    )
    .await;
    let doomed = s.run("once", &json!({"input": {"ms": 30000}})).await;
    s.wait_status("once", &doomed, "IN_PROGRESS", LONG).await;
    let (_, pid) = executor_of(&s, "once").await;
    kill9(pid);
    let done = s.wait_final("once", &doomed, LONG).await;
    assert_eq!(done["status"], "FAILED", "{done}");
    let err = done["error"].as_str().unwrap();
    assert!(
        err.contains("executor") && err.contains("max_retries"),
        "{done}"
    );
}

fn placed(h: &Value) -> u64 {
    workers(h, "initializing") + workers(h, "idle") + workers(h, "running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_delay_scaler_and_concurrency_per_worker() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir);
    let sleep = s.upload_example("sleep").await;

    // QUEUE_DELAY 2 s: the first worker starts at once, more only after
    // jobs have waited 2 s.
    s.create_endpoint(
        "delay",
        &sleep,
        json!({"gpus": ["H100"], "max_workers": 3, "idle_timeout_s": 1,
               "scaler_type": "QUEUE_DELAY", "scaler_value": 2}),
    )
    .await;
    let submitted = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(s.run("delay", &json!({"input": {"ms": 1000}})).await);
    }
    let mut most_early = 0;
    let mut most = 0;
    while submitted.elapsed() < Duration::from_millis(4500) {
        let h = s.get("/v2/delay/health").await.body;
        if submitted.elapsed() < Duration::from_millis(1500) {
            most_early = most_early.max(placed(&h));
        }
        most = most.max(placed(&h));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(most_early, 1, "one worker until jobs waited 2 s");
    assert!(most >= 2, "more once jobs waited: {most}");
    for id in &ids {
        completed_output(&s, "delay", id).await;
    }

    // concurrency 2: one worker runs two jobs at once.
    s.create_endpoint(
        "conc",
        &sleep,
        json!({"gpus": ["A100"], "max_workers": 1, "concurrency": 2}),
    )
    .await;
    let a = s.run("conc", &json!({"input": {"ms": 1500}})).await;
    let b = s.run("conc", &json!({"input": {"ms": 1500}})).await;
    let h = wait_health(&s, "conc", "one worker running 2", |h| {
        h["workerDetails"][0]["busy"] == 2
    })
    .await;
    assert_eq!(workers(&h, "running"), 1, "{h}");
    let (da, db) = (
        completed_output(&s, "conc", &a).await,
        completed_output(&s, "conc", &b).await,
    );
    assert_eq!(da["workerId"], db["workerId"]);

    // A scaler type that does not exist is refused, naming the choices.
    let r = s
        .patch("/v1/endpoints/conc", &json!({"scaler_type": "FAST"}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("QUEUE_DELAY"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_endpoint_on_a_mig_slice_uses_the_slices_model_cache() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir);
    let mlp = s.upload_example("mlp").await;
    let models = common::make_mlp_models(&dir.path().join("models"));
    // The weights live in the slice's model cache, not in a worker's
    // quota: 1 MiB of tensor quota is enough for the activations.
    s.create_endpoint(
        "mlp",
        &mlp,
        json!({"gpus": ["MIG-3g.40gb"], "max_workers": 1, "concurrency": 2,
               "idle_timeout_s": 1, "tensor_quota_mib": 1,
               "models_dir": models.to_str().unwrap()}),
    )
    .await;
    let input = json!({"input": {"inputs": [[1, 1], [-2, 0.5], [-0.5, -3], [4, -1]]}});
    let id = s.run("mlp", &input).await;
    let done = completed_output(&s, "mlp", &id).await;
    assert_eq!(done["output"]["classes"], json!([0, 1, 2, 3]), "{done}");
    // Back to zero workers; the next worker starts on the warm executor.
    wait_health(&s, "mlp", "at zero", |h| {
        h["workerDetails"].as_array().unwrap().is_empty()
    })
    .await;
    let id = s.run("mlp", &input).await;
    let done = completed_output(&s, "mlp", &id).await;
    assert_eq!(done["output"]["classes"], json!([0, 1, 2, 3]), "{done}");
    let inv = s.get("/v1/inventory").await.body;
    let exec = inv["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["slice"] == "gpu4-mig0")
        .unwrap_or_else(|| panic!("{inv}"))
        .clone();
    assert_eq!(
        exec["spawned"], 1,
        "one executor served both workers: {exec}"
    );

    // A handler whose init fails (no model there): the worker is
    // unhealthy with the reason, retried with backoff; the job waits.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    s.create_endpoint(
        "nomodel",
        &mlp,
        json!({"gpus": ["A100"], "max_workers": 1, "models_dir": empty.to_str().unwrap()}),
    )
    .await;
    let id = s.run("nomodel", &input).await;
    let h = wait_health(&s, "nomodel", "unhealthy", |h| workers(h, "unhealthy") == 1).await;
    let why = h["workerDetails"][0]["error"].as_str().unwrap_or_default();
    assert!(why.contains("mlp"), "{h}");
    let e = s.get("/v1/endpoints/nomodel").await.body;
    assert!(e["last_error"].as_str().unwrap().contains("mlp"), "{e}");
    assert_eq!(s.status("nomodel", &id).await.body["status"], "IN_QUEUE");
}
