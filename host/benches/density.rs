//! Density benchmark (issue 13): many tenants, most of them idle. Creates
//! `DENSITY_ENDPOINTS` (default 1000) CPU echo endpoints on one `wasmpod
//! serve`, runs one job on each, waits until every one has scaled to zero
//! (its worker parked by FlashBoot in a shared CPU executor), then measures
//! the resident memory of the host and all its executors together, and
//! their next starts: `/runsync` on 64 endpoints at once, round after round
//! over all of them, reading each answer's `delayTime` (queue to start:
//! the worker placed, its parked instance restored, the job claimed).
//!
//! Run: `cargo build --release -p wasmpod && cargo bench -p wasmpod --bench
//! density`. Targets: ≤ 1 GiB RSS for 1,000 parked endpoints; next starts
//! p50 ≤ 5 ms and max ≤ 50 ms with 64 at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{env_usize, example_wasm, root, start_serve, upload_handler};

const ADMIN_KEY: &str = "wpk_bench_admin_key_0123456789abcdef";

/// Resident memory of a process, bytes (`VmRSS`).
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

async fn get(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn runsync(client: &reqwest::Client, base: &str, id: &str) -> Value {
    let v: Value = client
        .post(format!("{base}/v2/{id}/runsync"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"input": {"endpoint": id}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "COMPLETED", "{id}: {v}");
    assert_eq!(v["output"]["endpoint"], id, "{v}");
    v
}

/// The host's and every executor's RSS, and how many executors there are.
async fn memory(client: &reqwest::Client, base: &str, host_pid: u32) -> (u64, u64, usize) {
    let inv = get(client, &format!("{base}/v1/inventory")).await;
    let pids: Vec<u32> = inv["executors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["alive"] == true)
        .filter_map(|e| e["pid"].as_u64().map(|p| p as u32))
        .collect();
    let executors: u64 = pids.iter().map(|p| rss(*p)).sum();
    (rss(host_pid), executors, pids.len())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let n = env_usize("DENSITY_ENDPOINTS", 1000);
    let at_once = env_usize("DENSITY_AT_ONCE", 64);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(at_once)
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let bin = root().join("target/release/wasmpod");
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p wasmpod"
    );
    let home: &Path = tmp.path();
    let (child, base) = start_serve(
        &bin,
        home,
        // Density is measured, not RunPod's rate limits.
        &["--executor-idle", "1h", "--no-rate-limits"],
        (ADMIN_KEY, "warn"),
        &client,
        Duration::from_secs(60),
    )
    .await;
    let host_pid = child.0.id();
    let wasm = std::fs::read(example_wasm("echo")).unwrap();
    let digest = upload_handler(&client, &base, ADMIN_KEY, wasm).await;
    let ids: Vec<String> = (0..n).map(|i| format!("d{i:04}")).collect();
    let (baseline_host, _, _) = memory(&client, &base, host_pid).await;

    let started = Instant::now();
    for id in &ids {
        let r = client
            .post(format!("{base}/v1/endpoints"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"id": id, "handler": digest, "max_workers": 1, "idle_timeout_s": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }
    let created = started.elapsed();

    // One job each, `at_once` endpoints at a time.
    let started = Instant::now();
    let base = Arc::new(base);
    for chunk in ids.chunks(at_once) {
        let mut tasks = Vec::new();
        for id in chunk {
            let (client, base, id) = (client.clone(), Arc::clone(&base), id.clone());
            tasks.push(tokio::spawn(
                async move { runsync(&client, &base, &id).await },
            ));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let first_jobs = started.elapsed();

    // Every worker retires after its idle timeout and parks.
    let started = Instant::now();
    loop {
        let inv = get(&client, &format!("{base}/v1/inventory")).await;
        if inv["in_use"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "workers still running: {}",
            inv["in_use"].as_array().map_or(0, |a| a.len())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Parking finishes just after the lease is released.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let parked: usize = {
        let mut total = 0;
        for id in ids.iter().step_by((n / 20).max(1)) {
            let h = get(&client, &format!("{base}/v2/{id}/health")).await;
            total += h["workers"]["snapshotted"].as_u64().unwrap_or(0) as usize;
        }
        total
    };
    let sampled = ids.iter().step_by((n / 20).max(1)).count();
    let (host_rss, exec_rss, executors) = memory(&client, &base, host_pid).await;

    // Next starts, `at_once` at a time over every endpoint.
    let mut delays = Vec::new();
    let mut walls = Vec::new();
    for chunk in ids.chunks(at_once) {
        let mut tasks = Vec::new();
        for id in chunk {
            let (client, base, id) = (client.clone(), Arc::clone(&base), id.clone());
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let v = runsync(&client, &base, &id).await;
                (v, t.elapsed())
            }));
        }
        for t in tasks {
            let (v, wall) = t.await.unwrap();
            delays.push(v["delayTime"].as_f64().unwrap_or(f64::NAN));
            walls.push(wall.as_secs_f64() * 1e3);
        }
    }
    delays.sort_by(|a, b| a.total_cmp(b));
    walls.sort_by(|a, b| a.total_cmp(b));
    let (host_after, exec_after, _) = memory(&client, &base, host_pid).await;

    let total = host_rss + exec_rss;
    println!(
        "density bench: {n} CPU echo endpoints on one host, {} cores, {executors} executor processes",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "set-up: {n} endpoints created in {:.1} s; first job on each ({at_once} at once) in {:.1} s",
        created.as_secs_f64(),
        first_jobs.as_secs_f64()
    );
    println!("parked: {parked} of {sampled} sampled endpoints report a snapshotted worker");
    println!();
    println!("| measure | value | target | |");
    println!("|---|---:|---:|---|");
    println!(
        "| RSS, host + executors, {n} endpoints parked | {:.0} MiB (host {:.0} MiB, of which {:.0} MiB before any endpoint; executors {:.0} MiB) | ≤ 1024 MiB | {} |",
        mib(total),
        mib(host_rss),
        mib(baseline_host),
        mib(exec_rss),
        if total <= 1 << 30 { "met" } else { "MISSED" }
    );
    println!(
        "| next start delayTime p50, {at_once} at once | {:.1} ms | ≤ 5 ms | {} |",
        pct(&delays, 0.5),
        if pct(&delays, 0.5) <= 5.0 {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "| next start delayTime max, {at_once} at once | {:.1} ms | ≤ 50 ms | {} |",
        delays.last().copied().unwrap_or(f64::NAN),
        if delays.last().is_some_and(|d| *d <= 50.0) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "| next start /runsync wall (client), p50 / p99 / max | {:.1} / {:.1} / {:.1} ms | — | |",
        pct(&walls, 0.5),
        pct(&walls, 0.99),
        walls.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "| RSS after the second round | {:.0} MiB (host {:.0}, executors {:.0}) | — | |",
        mib(host_after + exec_after),
        mib(host_after),
        mib(exec_after)
    );
    drop(child);
}
