//! Cluster benchmark (issue 14): jobs/s end to end for a no-op handler
//! (the echo example) with 1, 2 and 3 hosts on one Postgres, and SQLite on
//! one host, beside graphile-worker (npm, a real Postgres job queue) on the
//! same Postgres in the same run.
//!
//! Run: `cargo build --release -p wasmpod && cargo bench -p wasmpod --bench
//! cluster`. Needs Debian's postgresql package (scripts/setup.sh) and node
//! with npm (graphile-worker 0.16.6 is installed into a temporary
//! directory by the bench). `CLUSTER_BENCH_JOBS` (default 3000) sets the
//! jobs per run; `CLUSTER_BENCH_BIN` another wasmpod binary.
//!
//! Each run: `clients` (16) concurrent HTTP clients `POST /run` the jobs,
//! round robin over the hosts, then the bench waits until the cluster-wide
//! count of COMPLETED jobs (`/health`) reaches them all; jobs/s is jobs
//! over that whole time. Every host runs two workers of concurrency 16.
//! graphile-worker gets the same: 16 clients each adding one job per call
//! (no batching), one worker process of concurrency 32, a no-op task.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

mod common;
use common::{Killed, env_usize, example_wasm, root, start_serve, upload_handler};

#[path = "../../tests/common/postgres.rs"]
mod postgres;

const ADMIN_KEY: &str = "wpk_bench_admin_key_0123456789abcdef";
const CLIENTS: usize = 16;

async fn wasmpod_run(
    client: &reqwest::Client,
    bin: &Path,
    database: Option<&str>,
    hosts: usize,
    jobs: usize,
) -> f64 {
    let homes: Vec<_> = (0..hosts).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut servers: Vec<(Killed, String)> = Vec::new();
    for home in &homes {
        let mut flags = vec![];
        if let Some(url) = database {
            flags.extend(["--database-url", url]);
        }
        servers.push(
            start_serve(
                bin,
                home.path(),
                &flags,
                (ADMIN_KEY, "warn"),
                client,
                Duration::from_secs(60),
            )
            .await,
        );
    }
    let bases: Vec<String> = servers.iter().map(|(_, b)| b.clone()).collect();
    let digest = upload_handler(
        client,
        &bases[0],
        ADMIN_KEY,
        std::fs::read(example_wasm("echo")).unwrap(),
    )
    .await;
    let r = client
        .post(format!("{}/v1/endpoints", bases[0]))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"id": "noop", "handler": digest, "min_workers": 2, "max_workers": 2, "concurrency": 16}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "creating the endpoint");
    // Every host follows the endpoint and warms its two workers.
    for base in &bases {
        let started = Instant::now();
        loop {
            let h = client
                .get(format!("{base}/v2/noop/health"))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap();
            if h.status().is_success() {
                let h: serde_json::Value = h.json().await.unwrap();
                if h["workers"]["ready"].as_i64().unwrap_or(0) >= 2 {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{base} never warmed up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (client, bases, next) = (client.clone(), bases.clone(), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            let mut k = c;
            while next.fetch_add(1, Ordering::SeqCst) < jobs {
                let base = &bases[k % bases.len()];
                k += 1;
                let r = client
                    .post(format!("{base}/v2/noop/run"))
                    .bearer_auth(ADMIN_KEY)
                    .json(&json!({"input": {"n": k}}))
                    .send()
                    .await
                    .expect("POST /run");
                assert_eq!(r.status().as_u16(), 200, "/run answered {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    loop {
        let h: serde_json::Value = client
            .get(format!("{}/v2/noop/health", bases[0]))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if h["jobs"]["completed"].as_u64().unwrap_or(0) as usize >= jobs {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "jobs never completed: {h}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rate = jobs as f64 / t0.elapsed().as_secs_f64();
    drop(servers);
    rate
}

fn graphile(url: &str, jobs: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("npm")
        .current_dir(dir.path())
        .args([
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "graphile-worker@0.16.6",
        ])
        .status()
        .expect("running npm (install node and npm)");
    assert!(status.success(), "npm install graphile-worker failed");
    let script = root().join("host/benches/cluster/graphile.js");
    let out = Command::new("node")
        .current_dir(dir.path())
        .env("NODE_PATH", dir.path().join("node_modules"))
        .arg(&script)
        .args([url, &jobs.to_string(), &CLIENTS.to_string(), "32"])
        .output()
        .expect("running node");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "graphile-worker run failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("JOBS_PER_S "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no JOBS_PER_S in {text}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let jobs = env_usize("CLUSTER_BENCH_JOBS", 3000);
    // CLUSTER_BENCH_BIN: another build (a quick check with a debug one).
    let bin = std::env::var_os("CLUSTER_BENCH_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target/release/wasmpod"));
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p wasmpod"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let pg = tokio::task::spawn_blocking(postgres::PgServer::start)
        .await
        .unwrap();
    let mut rows: Vec<(String, f64)> = Vec::new();
    rows.push((
        "wasmpod, 1 host, SQLite".into(),
        wasmpod_run(&client, &bin, None, 1, jobs).await,
    ));
    for hosts in 1..=3 {
        let url = pg.create_database();
        rows.push((
            format!("wasmpod, {hosts} host(s), Postgres"),
            wasmpod_run(&client, &bin, Some(&url), hosts, jobs).await,
        ));
    }
    let url = pg.create_database();
    let peer = tokio::task::spawn_blocking(move || graphile(&url, jobs))
        .await
        .unwrap();
    println!("\n{jobs} no-op jobs each, {CLIENTS} clients\n");
    println!("| setup | jobs/s end to end | / graphile-worker |");
    println!("|---|---|---|");
    for (name, rate) in &rows {
        println!("| {name} | {rate:.0} | {:.2}× |", rate / peer);
    }
    println!("| graphile-worker 0.16.6 (unbatched add_job, concurrency 32) | {peer:.0} | 1.00× |");
    let three = rows.last().unwrap().1;
    println!(
        "\ntarget: 3 hosts ≥ graphile-worker's unbatched jobs/s: {:.0} vs {peer:.0} ({:.2}×): {}",
        three,
        three / peer,
        if three >= peer { "met" } else { "MISSED" }
    );
}
