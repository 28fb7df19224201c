//! Queue benchmark (issue 13): the job API's hot path under wrk, side by
//! side in one run with RunPod's own local API server (`python handler.py
//! --rp_serve_api`, runpod 1.12.0, a trivial echo handler), with the
//! server's own `GET /ping` as the ceiling.
//!
//! Run: `cargo build --release -p wasmpod && cargo bench -p wasmpod --bench
//! queue`. Needs `wrk` (Debian: `apt-get install wrk`) and runpod in .venv
//! (scripts/setup.sh). `QUEUE_BENCH_SECS` (default 5) sets each load's
//! duration. `QUEUE_BENCH_BEFORE=/path/to/an/older/wasmpod` measures that
//! binary too, the same way in the same run (a "before" column).
//!
//! Loads (all on loopback, wrk on the same machine, keep-alive):
//! - `/runsync` echo with 1 client (latency) and 16 and 64 clients
//!   (throughput), against both servers;
//! - `/run` of the same no-op echo from 16 clients for the load's duration,
//!   then until every accepted job is COMPLETED (read from `/health`):
//!   jobs/s end to end (the peer runs a /run job only when its /status is
//!   read, so it has no comparable figure);
//! - `GET /ping` at 16 clients: what the HTTP stack alone does.
//!
//! Every answer wrk gets is checked: `/runsync` must say COMPLETED with
//! the input echoed, `/run` IN_QUEUE; any other answer is counted and fails
//! the bench.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{
    Killed, env_usize, example_wasm, free_port, root, start_runpod_echo, start_serve,
    upload_handler, wait_up,
};

const ADMIN_KEY: &str = "wpk_bench_admin_key_0123456789abcdef";
const INPUT: &str = r#"{"input": {"hello": "world", "n": 1}}"#;

/// What one wrk run measured.
#[derive(Debug, Clone, Default)]
struct Load {
    rps: f64,
    requests: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers that were not what the route must answer.
    bad: u64,
}

fn wrk_bin() -> PathBuf {
    match Command::new("wrk").arg("--version").output() {
        Ok(_) => PathBuf::from("wrk"),
        Err(_) => panic!(
            "the queue bench drives the servers with wrk: install it (Debian: apt-get install wrk)"
        ),
    }
}

/// A wrk script: method, body, headers, and a check of every answer
/// (`expect` must occur in each body; the count of those that fail is
/// printed as `BAD <n>`).
fn script(
    dir: &Path,
    name: &str,
    method: &str,
    body: Option<&str>,
    auth: Option<&str>,
    expect: &str,
) -> PathBuf {
    let mut lua = format!("wrk.method = \"{method}\"\n");
    if let Some(b) = body {
        lua +=
            &format!("wrk.body = [[{b}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n");
    }
    if let Some(k) = auth {
        lua += &format!("wrk.headers[\"Authorization\"] = \"Bearer {k}\"\n");
    }
    lua += &format!(
        r#"
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  bad = 0
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, [[{expect}]], 1, true) then
    bad = bad + 1
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
  end
  io.write(string.format("BAD %d\n", total))
  io.write(string.format("P50US %d\nP99US %d\n", latency:percentile(50), latency:percentile(99)))
  io.write(string.format("REQUESTS %d\n", summary.requests))
end
"#
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, lua).unwrap();
    path
}

fn wrk(url: &str, script: &Path, connections: usize, secs: usize) -> Load {
    let threads = connections.clamp(1, 2);
    let out = Command::new(wrk_bin())
        .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
        .args(["-d", &format!("{secs}s"), "--timeout", "10s"])
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .expect("running wrk");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(errors.trim().is_empty(), "wrk: {errors}");
    assert!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in wrk's output: {text}"))
    };
    let requests = field("REQUESTS") as u64;
    let mut bad = field("BAD") as u64;
    if text.contains("Socket errors") {
        eprintln!("wrk reported socket errors on {url}:\n{text}");
        bad += 1;
    }
    Load {
        rps: field("Requests/sec:"),
        requests,
        p50_ms: field("P50US") / 1e3,
        p99_ms: field("P99US") / 1e3,
        bad,
    }
}

async fn start_wasmpod(client: &reqwest::Client, bin: &Path, home: &Path) -> (Killed, String) {
    assert!(
        bin.exists(),
        "build it first: cargo build --release -p wasmpod"
    );
    // Throughput is measured, not RunPod's rate limits (an older binary
    // measured beside this one may predate the flag, and the limits).
    let help = std::process::Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .expect("running the binary's --help");
    let no_limits = String::from_utf8_lossy(&help.stdout).contains("--no-rate-limits");
    let args: &[&str] = if no_limits {
        &["--no-rate-limits"]
    } else {
        &[]
    };
    let (child, base) = start_serve(
        bin,
        home,
        args,
        (ADMIN_KEY, "warn"),
        client,
        Duration::from_secs(60),
    )
    .await;
    let wasm = std::fs::read(example_wasm("echo")).unwrap();
    let digest = upload_handler(client, &base, ADMIN_KEY, wasm).await;
    // Two warm workers (one per shared CPU executor), 16 jobs each at once.
    for id in ["echo", "noop"] {
        let r = client
            .post(format!("{base}/v1/endpoints"))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"id": id, "handler": digest, "min_workers": 2, "max_workers": 2, "concurrency": 16}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
    }
    // Both ready (min_workers) before the clock starts.
    for id in ["echo", "noop"] {
        let started = Instant::now();
        loop {
            let h: Value = client
                .get(format!("{base}/v2/{id}/health"))
                .bearer_auth(ADMIN_KEY)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if h["workers"]["idle"].as_u64() == Some(2) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "workers not ready: {h}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    (child, base)
}

/// One /runsync answer, checked.
async fn runsync_once(client: &reqwest::Client, url: &str, auth: Option<&str>) {
    let mut r = client
        .post(url)
        .header("content-type", "application/json")
        .body(INPUT);
    if let Some(k) = auth {
        r = r.bearer_auth(k);
    }
    let v: Value = r.send().await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "COMPLETED", "{url}: {v}");
    assert_eq!(v["output"]["hello"], "world", "{url}: {v}");
}

async fn health(client: &reqwest::Client, base: &str, id: &str) -> Value {
    client
        .get(format!("{base}/v2/{id}/health"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "—".into()
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// The peer's /runsync URL, its wrk script, and where its loads go.
type Peer<'a> = (&'a str, &'a Path, &'a mut Vec<(usize, Load)>);

/// Everything measured on one wasmpod binary.
struct Measured {
    runsync: Vec<(usize, Load)>,
    run: Load,
    run_end_to_end: f64,
    run_done_s: f64,
    ceiling: Load,
}

impl Measured {
    fn at(&self, c: usize) -> &Load {
        &self
            .runsync
            .iter()
            .find(|(n, _)| *n == c)
            .expect("measured")
            .1
    }
}

/// The loads on one wasmpod (its own server, started here and stopped
/// after), interleaved with the peer's /runsync loads when `peer` is given.
async fn measure(
    client: &reqwest::Client,
    bin: &Path,
    dir: &Path,
    secs: usize,
    peer: Option<Peer<'_>>,
) -> Measured {
    let (_server, base) =
        start_wasmpod(client, bin, &dir.join(format!("home-{}", free_port()))).await;
    let ours = format!("{base}/v2/echo/runsync");
    runsync_once(client, &ours, Some(ADMIN_KEY)).await;
    let our_sync = script(
        dir,
        "ours",
        "POST",
        Some(INPUT),
        Some(ADMIN_KEY),
        "\"COMPLETED\"",
    );
    let our_run = script(
        dir,
        "run",
        "POST",
        Some(INPUT),
        Some(ADMIN_KEY),
        "\"IN_QUEUE\"",
    );
    let ping = script(dir, "ping", "GET", None, None, "pong");
    // Warm up (connections, caches) before measuring.
    wrk(&ours, &our_sync, 4, 1);
    let mut peer = peer;
    if let Some((url, script, _)) = &peer {
        wrk(url, script, 4, 1);
    }
    let mut runsync = Vec::new();
    for c in [1usize, 16, 64] {
        let a = wrk(&ours, &our_sync, c, secs);
        assert_eq!(
            a.bad, 0,
            "wasmpod answered {} /runsync requests wrongly",
            a.bad
        );
        runsync.push((c, a));
        if let Some((url, script, out)) = peer.as_mut() {
            let b = wrk(url, script, c, secs);
            assert_eq!(
                b.bad, 0,
                "runpod answered {} /runsync requests wrongly",
                b.bad
            );
            out.push((c, b));
        }
    }

    // /run: accept for `secs`, then until every accepted job is COMPLETED.
    let before = health(client, &base, "noop").await["jobs"]["completed"]
        .as_u64()
        .unwrap_or(0);
    let started = Instant::now();
    let run = wrk(&format!("{base}/v2/noop/run"), &our_run, 16, secs);
    assert_eq!(
        run.bad, 0,
        "wasmpod answered {} /run requests wrongly",
        run.bad
    );
    let run_done_s = loop {
        let h = health(client, &base, "noop").await;
        let done = h["jobs"]["completed"].as_u64().unwrap_or(0) - before;
        assert_eq!(h["jobs"]["failed"].as_u64(), Some(0), "{h}");
        if done >= run.requests {
            break started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "jobs not done: {h}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let run_end_to_end = run.requests as f64 / run_done_s;
    let ceiling = wrk(&format!("{base}/ping"), &ping, 16, secs);
    Measured {
        runsync,
        run,
        run_end_to_end,
        run_done_s,
        ceiling,
    }
}

fn cell(l: &Load) -> String {
    format!(
        "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        l.rps, l.p50_ms, l.p99_ms
    )
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs = env_usize("QUEUE_BENCH_SECS", 5);
    let client = reqwest::Client::new();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (mut runpod_child, peer) = start_runpod_echo(dir);
    wait_up(
        &client,
        &format!("{peer}/docs"),
        Some(&mut runpod_child),
        Duration::from_secs(60),
    )
    .await;
    let theirs = format!("{peer}/runsync");
    runsync_once(&client, &theirs, None).await;
    let their_sync = script(dir, "theirs", "POST", Some(INPUT), None, "\"COMPLETED\"");

    println!(
        "queue bench: echo on loopback, wrk on the same machine, {secs} s per load, {} cores",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let mut peer_loads = Vec::new();
    let bin = root().join("target/release/wasmpod");
    let now = measure(
        &client,
        &bin,
        dir,
        secs,
        Some((&theirs, &their_sync, &mut peer_loads)),
    )
    .await;
    let before = match std::env::var("QUEUE_BENCH_BEFORE") {
        Ok(old) if !old.is_empty() => {
            Some(measure(&client, Path::new(&old), dir, secs, None).await)
        }
        _ => None,
    };
    let peer_at = |c: usize| {
        &peer_loads
            .iter()
            .find(|(n, _)| *n == c)
            .expect("measured")
            .1
    };
    let old = |f: &dyn Fn(&Measured) -> String| {
        before
            .as_ref()
            .map(f)
            .unwrap_or_else(|| "not measured".into())
    };

    println!();
    println!(
        "| load | wasmpod (this build) | wasmpod before | RunPod local server | this / RunPod |"
    );
    println!("|---|---|---|---|---|");
    for c in [1usize, 16, 64] {
        println!(
            "| /runsync c={c} | {} | {} | {} | {} |",
            cell(now.at(c)),
            old(&|m| cell(m.at(c))),
            cell(peer_at(c)),
            ratio(now.at(c).rps, peer_at(c).rps)
        );
    }
    let run_cell = |m: &Measured| {
        format!(
            "{:.0} req/s accepted (p50 {:.2} ms, p99 {:.2} ms); {} jobs COMPLETED in {:.2} s = {:.0} jobs/s end to end",
            m.run.rps, m.run.p50_ms, m.run.p99_ms, m.run.requests, m.run_done_s, m.run_end_to_end
        )
    };
    println!(
        "| /run, 16 clients, then until all COMPLETED | {} | {} | — | — |",
        run_cell(&now),
        old(&run_cell)
    );
    println!(
        "| ceiling: the server's own `GET /ping`, c=16 | {} | {} | — | — |",
        cell(&now.ceiling),
        old(&|m| cell(&m.ceiling))
    );

    let (c1, c16, c64) = (now.at(1), now.at(16), now.at(64));
    let (p1, p16) = (peer_at(1), peer_at(16));
    println!();
    println!("targets (this build):");
    println!(
        "- /runsync c=1 p50 {:.3} ms vs the peer's {:.3} ms ({}; target ≤ 1×): {}",
        c1.p50_ms,
        p1.p50_ms,
        ratio(c1.p50_ms, p1.p50_ms),
        verdict(c1.p50_ms <= p1.p50_ms)
    );
    println!(
        "- /runsync c=16 {:.0} req/s vs the peer's {:.0} ({}; target ≥ 3×): {}",
        c16.rps,
        p16.rps,
        ratio(c16.rps, p16.rps),
        verdict(c16.rps >= 3.0 * p16.rps)
    );
    println!(
        "- /run end to end {:.0} jobs/s (target ≥ 10,000): {}",
        now.run_end_to_end,
        verdict(now.run_end_to_end >= 10_000.0)
    );
    for (name, l) in [
        ("/runsync c=16", c16),
        ("/runsync c=64", c64),
        ("/run c=16", &now.run),
    ] {
        println!(
            "- p99 under load, {name}: {:.2} ms = {} of p50 {:.2} ms (target ≤ 3×): {}",
            l.p99_ms,
            ratio(l.p99_ms, l.p50_ms),
            l.p50_ms,
            verdict(l.p99_ms <= 3.0 * l.p50_ms)
        );
    }
    println!(
        "- headroom: /runsync c=16 is {} of /ping's {:.0} req/s",
        ratio(c16.rps, now.ceiling.rps),
        now.ceiling.rps
    );
}
