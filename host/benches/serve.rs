//! Serving benchmark: `/runsync` latency (p50/p99) and `/run` throughput for
//! the `echo` handler on loopback, side by side in one run with RunPod's own
//! local test API server (`python handler.py --rp_serve_api` from the
//! `runpod` package, with a trivial echo handler). The load tool is this
//! program: a tokio + reqwest client with keep-alive connections.
//!
//! Run: `cargo bench -p wasmpod --bench serve` (needs target/release/wasmpod:
//! `cargo build --release -p wasmpod`; and runpod in .venv: scripts/setup.sh).
//! `SERVE_BENCH_REQUESTS` (default 2000) and `SERVE_BENCH_CONCURRENCY`
//! (default 32) size the run.
//!
//! RunPod's local server differs in one way that matters for /run: it only
//! stores the job, and runs it when /status is asked for it. So "/run then
//! every job done" is measured as submit-all then poll-until-COMPLETED for
//! both servers, which is what a client of either does.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{
    Killed, env_usize, example_wasm, percentile, root, start_runpod_echo, start_serve,
    upload_handler, wait_up,
};

const ADMIN_KEY: &str = "wpk_bench_admin_key_0123456789abcdef";

/// One server under test: where its routes are and how to authenticate.
struct Target {
    name: &'static str,
    /// Prefix of run/runsync/status, e.g. http://127.0.0.1:8000/v2/echo
    base: String,
    auth: Option<String>,
    /// RunPod's local server takes POST for /status only.
    status_post: bool,
}

impl Target {
    fn post(&self, client: &reqwest::Client, path: &str, body: &Value) -> reqwest::RequestBuilder {
        let r = client.post(format!("{}{path}", self.base)).json(body);
        match &self.auth {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    fn status(&self, client: &reqwest::Client, id: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/status/{id}", self.base);
        let r = if self.status_post {
            client.post(url)
        } else {
            client.get(url)
        };
        match &self.auth {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }
}

async fn start_wasmpod(client: &reqwest::Client, home: &Path) -> (Killed, Target) {
    let bin = root().join("target/release/wasmpod");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p wasmpod"
    );
    let (child, base) = start_serve(
        &bin,
        home,
        // Throughput is measured, not RunPod's rate limits.
        &["--no-rate-limits"],
        (ADMIN_KEY, "warn"),
        client,
        Duration::from_secs(60),
    )
    .await;
    let wasm = std::fs::read(example_wasm("echo")).unwrap();
    let digest = upload_handler(client, &base, ADMIN_KEY, wasm).await;
    let r = client
        .post(format!("{base}/v1/endpoints"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"id": "echo", "handler": digest, "min_workers": 1, "max_workers": 2, "concurrency": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let target = Target {
        name: "wasmpod serve",
        base: format!("{base}/v2/echo"),
        auth: Some(ADMIN_KEY.into()),
        status_post: false,
    };
    (child, target)
}

fn start_runpod(dir: &Path) -> (Killed, Target) {
    let (child, base) = start_runpod_echo(dir);
    (
        child,
        Target {
            name: "runpod --rp_serve_api",
            base,
            auth: None,
            status_post: true,
        },
    )
}

/// Sequential /runsync calls: latency as one client sees it.
async fn runsync_latency(client: &reqwest::Client, t: &Target, n: usize) -> Vec<Duration> {
    let body = json!({"input": {"hello": "world", "n": 1}});
    for _ in 0..50 {
        let r = t.post(client, "/runsync", &body).send().await.unwrap();
        assert!(r.status().is_success());
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let v: Value = t
            .post(client, "/runsync", &body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        times.push(started.elapsed());
        assert_eq!(v["status"], "COMPLETED", "{}: {v}", t.name);
        assert_eq!(v["output"]["hello"], "world", "{}: {v}", t.name);
    }
    times.sort();
    times
}

/// `n` /run submissions from `concurrency` clients; returns (submit
/// seconds, seconds until every job read back COMPLETED).
async fn run_throughput(
    client: &reqwest::Client,
    t: &Arc<Target>,
    n: usize,
    concurrency: usize,
) -> (f64, f64) {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, t, next) = (client.clone(), Arc::clone(t), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                let v: Value = t
                    .post(&client, "/run", &json!({"input": {"k": 1}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                ids.push(v["id"].as_str().expect("job id").to_string());
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    let submitted = started.elapsed().as_secs_f64();
    let ids = Arc::new(std::sync::Mutex::new(ids));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, t, ids) = (client.clone(), Arc::clone(t), Arc::clone(&ids));
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(id) = ids.lock().unwrap().pop() else {
                    return;
                };
                loop {
                    let v: Value = t
                        .status(&client, &id)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    match v["status"].as_str() {
                        Some("COMPLETED") => break,
                        Some("IN_QUEUE" | "IN_PROGRESS") => {
                            tokio::time::sleep(Duration::from_millis(5)).await
                        }
                        _ => panic!("{}: job {id}: {v}", t.name),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (submitted, started.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_usize("SERVE_BENCH_REQUESTS", 2000);
    let concurrency = env_usize("SERVE_BENCH_CONCURRENCY", 32);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_wasmpod, wasmpod) = start_wasmpod(&client, tmp.path()).await;
    let (mut runpod_child, runpod) = start_runpod(tmp.path());
    wait_up(
        &client,
        &format!("{}/docs", runpod.base),
        Some(&mut runpod_child),
        Duration::from_secs(60),
    )
    .await;

    println!(
        "serve bench: echo on loopback, {n} requests, {concurrency} concurrent clients for /run, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "| server | /runsync p50 | /runsync p99 | /run submit (req/s) | /run until all COMPLETED (jobs/s) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for target in [wasmpod, runpod] {
        let lat = runsync_latency(&client, &target, n / 2).await;
        let target = Arc::new(target);
        let (submit, done) = run_throughput(&client, &target, n, concurrency).await;
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.0} | {:.0} |",
            target.name,
            percentile(&lat, 0.50).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            n as f64 / submit,
            n as f64 / done
        );
    }
}
