//! Scaling benchmark: time from a burst of 100 jobs (`sleep` with
//! `{"ms": 50}`) on an endpoint at zero workers to all of them done, with
//! max_workers 1, 4 and 8, on a simulated inventory of 8 H100 slices (their
//! work runs on the CPU backend); and executor restart time (kill -9 of a
//! slice's executor -> replacement process ready -> replacement worker
//! ready).
//!
//! Each max_workers value gets a fresh host, so its first burst also pays
//! for spawning the slices' executor processes ("cold"); after the pool has
//! scaled back to zero, a second burst finds the executors warm ("warm").
//! The ideal is 100 × 50 ms / max_workers: what perfect packing with
//! instant workers would take.
//!
//! Run: `cargo bench -p wasmpod --bench scaling` (needs target/release/wasmpod:
//! `cargo build --release -p wasmpod`). `SCALING_BENCH_JOBS` (default 100),
//! `SCALING_BENCH_MS` (default 50) and `SCALING_BENCH_RESTARTS` (default 5)
//! size the run.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{Killed, env_usize, example_wasm, root, start_serve, upload_handler};

const ADMIN_KEY: &str = "wpk_bench_admin_key_0123456789abcdef";

const INVENTORY: &str = r#"
[[gpu]]
name = "NVIDIA H100 80GB HBM3"
memory_gib = 80
count = 8
"#;

struct Host {
    _child: Killed,
    _dir: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
    handler: String,
}

impl Host {
    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

async fn start_host(wasm: &[u8]) -> Host {
    let bin = root().join("target/release/wasmpod");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p wasmpod"
    );
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(&inventory, INVENTORY).unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let (child, base) = start_serve(
        &bin,
        &dir.path().join("home"),
        // Throughput is measured, not RunPod's rate limits.
        &[
            "--inventory",
            inventory.to_str().expect("a UTF-8 path"),
            "--no-rate-limits",
        ],
        (ADMIN_KEY, "error"),
        &client,
        Duration::from_secs(60),
    )
    .await;
    let handler = upload_handler(&client, &base, ADMIN_KEY, wasm.to_vec()).await;
    Host {
        _child: child,
        _dir: dir,
        base,
        client,
        handler,
    }
}

/// Submit `jobs` jobs at once and wait until all are COMPLETED. Returns the
/// time from the first submission to the last completion and the most
/// workers seen holding slices meanwhile.
async fn burst(h: &Host, ep: &str, jobs: usize, ms: u64) -> (Duration, usize) {
    // /health counts retained jobs, earlier bursts' included.
    let before = h.get(&format!("/v2/{ep}/health")).await["jobs"]["completed"]
        .as_u64()
        .unwrap() as usize;
    let started = Instant::now();
    let path = format!("/v2/{ep}/run");
    let body = json!({"input": {"ms": ms}});
    let submits: Vec<_> = (0..jobs).map(|_| h.post(&path, &body)).collect();
    for (status, body) in futures_util::future::join_all(submits).await {
        assert_eq!(status, 200, "{body}");
    }
    let mut peak = 0;
    loop {
        let health = h.get(&format!("/v2/{ep}/health")).await;
        let w = &health["workers"];
        let placed = ["initializing", "idle", "running"]
            .iter()
            .map(|k| w[*k].as_u64().unwrap() as usize)
            .sum::<usize>();
        peak = peak.max(placed);
        let done = health["jobs"]["completed"].as_u64().unwrap() as usize;
        assert_eq!(health["jobs"]["failed"], 0, "{health}");
        if done >= before + jobs {
            return (started.elapsed(), peak);
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{health}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn wait_zero(h: &Host, ep: &str) {
    let started = Instant::now();
    loop {
        let health = h.get(&format!("/v2/{ep}/health")).await;
        if health["workerDetails"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{health}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The pid of the executor serving `slice`.
async fn executor_pid(h: &Host, slice: &str) -> Option<u64> {
    let inv = h.get("/v1/inventory").await;
    inv["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["slice"] == slice && x["alive"] == true)
        .and_then(|x| x["pid"].as_u64())
}

struct Restart {
    process: Duration,
    worker: Duration,
    host_ms: f64,
}

/// Kill the executor of the endpoint's only worker; time until a new
/// process serves the slice and until a worker is ready on it again.
async fn restart_once(h: &Host, ep: &str) -> Restart {
    let health = h.get(&format!("/v2/{ep}/health")).await;
    let slice = health["workerDetails"][0]["slice"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let old_worker = health["workerDetails"][0]["id"].clone();
    let old = executor_pid(h, &slice).await.expect("an executor");
    let killed = Instant::now();
    let status = Command::new("kill")
        .args(["-9", &old.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut process = None;
    loop {
        if process.is_none()
            && let Some(pid) = executor_pid(h, &slice).await
            && pid != old
        {
            process = Some(killed.elapsed());
        }
        let health = h.get(&format!("/v2/{ep}/health")).await;
        let ready = health["workerDetails"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["state"] == "idle" && w["id"] != old_worker);
        if let (Some(process), true) = (process, ready) {
            let worker = killed.elapsed();
            let inv = h.get("/v1/inventory").await;
            let host_ms = inv["executors"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["slice"] == slice.as_str())
                .and_then(|x| x["last_restart_ms"].as_f64())
                .unwrap_or(f64::NAN);
            return Restart {
                process,
                worker,
                host_ms,
            };
        }
        assert!(killed.elapsed() < Duration::from_secs(60), "{health}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let jobs = env_usize("SCALING_BENCH_JOBS", 100);
    let job_ms = env_usize("SCALING_BENCH_MS", 50) as u64;
    let restarts = env_usize("SCALING_BENCH_RESTARTS", 5);
    // reqwest is built without a default TLS provider (the host picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let wasm = std::fs::read(example_wasm("sleep")).unwrap();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "burst of {jobs} jobs (sleep {job_ms} ms) on an endpoint at zero workers, simulated inventory of 8 H100 slices, {cpus} CPU(s)"
    );
    println!();
    println!(
        "| max_workers | ideal (s) | cold: all done (s) | peak workers | warm: all done (s) | peak workers |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    let mut last = None;
    for max_workers in [1usize, 4, 8] {
        let h = start_host(&wasm).await;
        let ep = format!("burst{max_workers}");
        let (status, body) = h
            .post(
                "/v1/endpoints",
                &json!({"id": ep, "handler": h.handler, "gpus": ["H100"],
                        "max_workers": max_workers, "idle_timeout_s": 1}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (cold, cold_peak) = burst(&h, &ep, jobs, job_ms).await;
        wait_zero(&h, &ep).await;
        let (warm, warm_peak) = burst(&h, &ep, jobs, job_ms).await;
        let ideal = jobs as f64 * job_ms as f64 / 1e3 / max_workers as f64;
        println!(
            "| {max_workers} | {ideal:.2} | {:.2} | {cold_peak} | {:.2} | {warm_peak} |",
            cold.as_secs_f64(),
            warm.as_secs_f64()
        );
        last = Some(h);
    }

    // Executor restart: one warm worker (min_workers 1) on one slice.
    let h = last.expect("a host");
    let (status, body) = h
        .post(
            "/v1/endpoints",
            &json!({"id": "restart", "handler": h.handler, "gpus": ["H100"],
                    "min_workers": 1, "max_workers": 1}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let started = Instant::now();
    loop {
        let health = h.get("/v2/restart/health").await;
        if health["workers"]["idle"] == 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{health}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut samples = Vec::new();
    for _ in 0..restarts {
        samples.push(restart_once(&h, "restart").await);
        // Let the unhealthy worker's listing lapse so the next kill starts
        // from a clean pool.
        tokio::time::sleep(Duration::from_millis(3500)).await;
    }
    println!();
    println!(
        "executor restart (kill -9 -> new process ready; -> replacement worker idle), {restarts} runs"
    );
    println!();
    println!(
        "| run | new executor ready (ms, host's own timing) | new executor seen via /v1/inventory (ms) | replacement worker ready (ms) |"
    );
    println!("|---:|---:|---:|---:|");
    for (i, r) in samples.iter().enumerate() {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} |",
            i + 1,
            r.host_ms,
            ms(r.process),
            ms(r.worker)
        );
    }
    let mut host: Vec<f64> = samples.iter().map(|r| r.host_ms).collect();
    let mut worker: Vec<f64> = samples.iter().map(|r| ms(r.worker)).collect();
    host.sort_by(f64::total_cmp);
    worker.sort_by(f64::total_cmp);
    println!(
        "| median | {:.1} | | {:.1} |",
        host[host.len() / 2],
        worker[worker.len() / 2]
    );
}
