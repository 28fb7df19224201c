//! Load-balancing benchmark: requests/s and latency (p50, p99) of an echo
//! through a load-balancing endpoint (`POST /lb/{id}/echo`, the Rust
//! `http-hello` handler), side by side in one run with the same echo
//! through a queue endpoint (`POST /v2/{id}/runsync`, the `echo` handler)
//! and through RunPod's own local server (`python handler.py
//! --rp_serve_api` from the `runpod` package, `POST /runsync`). Each server
//! answers the same JSON body; the load tool is this program (tokio +
//! reqwest, keep-alive connections): first one client in sequence
//! (latency), then `LB_BENCH_CONCURRENCY` clients for `LB_BENCH_REQUESTS`
//! requests (throughput).
//!
//! Run: `cargo build --release -p wasmpod && cargo bench -p wasmpod --bench
//! lb` (runpod in .venv: scripts/setup.sh). Both wasmpod endpoints have
//! one warm worker of concurrency 8 (max 2 workers); RunPod's rate limits
//! are off (`--no-rate-limits`), since throughput is what is measured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{
    Killed, env_usize, example_wasm, percentile, root, start_runpod_echo, start_serve,
    upload_handler, wait_up,
};

const ADMIN_KEY: &str = "wpk_bench_admin_key_0123456789abcdef";

/// One server under test: a URL that echoes the JSON body back, and how
/// to read the echo out of its answer.
struct Target {
    name: &'static str,
    url: String,
    auth: Option<String>,
    /// Wrap the body as `{"input": ...}` and read `output` back (job APIs).
    job_api: bool,
}

impl Target {
    async fn call(&self, client: &reqwest::Client, body: &Value) -> Value {
        let body = if self.job_api {
            json!({ "input": body })
        } else {
            body.clone()
        };
        let mut req = client.post(&self.url).json(&body);
        if let Some(k) = &self.auth {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("request");
        assert!(
            resp.status().is_success(),
            "{}: {}",
            self.name,
            resp.status()
        );
        let v: Value = resp.json().await.expect("a JSON answer");
        if self.job_api {
            assert_eq!(v["status"], "COMPLETED", "{}: {v}", self.name);
            v["output"].clone()
        } else {
            v
        }
    }
}

async fn endpoint(client: &reqwest::Client, base: &str, body: Value) {
    let r = client
        .post(format!("{base}/v1/endpoints"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

async fn start_wasmpod(client: &reqwest::Client, home: &Path) -> (Killed, Target, Target) {
    // LB_BENCH_BIN measures another build (a smoke run of the bench
    // itself with a debug binary); numbers are from the release one.
    let bin = std::env::var_os("LB_BENCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/wasmpod"));
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p wasmpod"
    );
    let (child, base) = start_serve(
        &bin,
        home,
        &["--no-rate-limits"],
        (ADMIN_KEY, "warn"),
        client,
        Duration::from_secs(60),
    )
    .await;
    let pool = json!({"min_workers": 1, "max_workers": 2, "concurrency": 8});
    let echo = upload_handler(
        client,
        &base,
        ADMIN_KEY,
        std::fs::read(example_wasm("echo")).unwrap(),
    )
    .await;
    let mut queue = json!({"id": "echo", "handler": echo});
    let http = upload_handler(
        client,
        &base,
        ADMIN_KEY,
        std::fs::read(example_wasm("http-hello")).unwrap(),
    )
    .await;
    let mut lb = json!({"id": "echo-lb", "handler": http, "type": "load_balancer"});
    for (k, v) in pool.as_object().unwrap() {
        queue[k] = v.clone();
        lb[k] = v.clone();
    }
    endpoint(client, &base, queue).await;
    endpoint(client, &base, lb).await;
    (
        child,
        Target {
            name: "wasmpod /lb (load balancer)",
            url: format!("{base}/lb/echo-lb/echo"),
            auth: Some(ADMIN_KEY.into()),
            job_api: false,
        },
        Target {
            name: "wasmpod /runsync (queue)",
            url: format!("{base}/v2/echo/runsync"),
            auth: Some(ADMIN_KEY.into()),
            job_api: true,
        },
    )
}

fn start_runpod(dir: &Path) -> (Killed, Target, String) {
    let (child, base) = start_runpod_echo(dir);
    (
        child,
        Target {
            name: "runpod --rp_serve_api /runsync",
            url: format!("{base}/runsync"),
            auth: None,
            job_api: true,
        },
        base,
    )
}

/// Sequential calls from one client; sorted latencies.
async fn latency(client: &reqwest::Client, t: &Target, n: usize) -> Vec<Duration> {
    let body = json!({"hello": "world", "n": 1});
    for _ in 0..50 {
        t.call(client, &body).await;
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let out = t.call(client, &body).await;
        times.push(started.elapsed());
        assert_eq!(out, body, "{}", t.name);
    }
    times.sort();
    times
}

/// `n` calls from `concurrency` clients; requests per second.
async fn throughput(
    client: &reqwest::Client,
    t: &Arc<Target>,
    n: usize,
    concurrency: usize,
) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let (client, t, next) = (client.clone(), Arc::clone(t), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let body = json!({"client": c});
            while next.fetch_add(1, Ordering::SeqCst) < n {
                let out = t.call(&client, &body).await;
                assert_eq!(out, body, "{}", t.name);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_usize("LB_BENCH_REQUESTS", 2000);
    let concurrency = env_usize("LB_BENCH_CONCURRENCY", 16);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (_wasmpod, lb, queue) = start_wasmpod(&client, tmp.path()).await;
    let (mut runpod_child, runpod, runpod_base) = start_runpod(tmp.path());
    wait_up(
        &client,
        &format!("{runpod_base}/docs"),
        Some(&mut runpod_child),
        Duration::from_secs(60),
    )
    .await;

    println!(
        "lb bench: JSON echo on loopback, latency over {} sequential requests, throughput over {n} requests from {concurrency} clients, {} cores",
        n / 2,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("| server | p50 | p99 | requests/s |");
    println!("|---|---:|---:|---:|");
    let mut rows = Vec::new();
    for target in [lb, queue, runpod] {
        let lat = latency(&client, &target, n / 2).await;
        let target = Arc::new(target);
        let rps = throughput(&client, &target, n, concurrency).await;
        let p50 = percentile(&lat, 0.50);
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.0} |",
            target.name,
            p50.as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            rps
        );
        rows.push((target.name, p50, rps));
    }
    let (lb_p50, lb_rps) = (rows[0].1, rows[0].2);
    for (name, p50, rps) in &rows[1..] {
        println!(
            "load balancer vs {name}: p50 {:.2}x lower, requests/s {:.2}x",
            p50.as_secs_f64() / lb_p50.as_secs_f64(),
            lb_rps / rps
        );
    }
}
