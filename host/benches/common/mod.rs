//! What the benchmark programs share: the workspace root, example components
//! built for wasm32-wasip2, child processes killed on drop, free ports,
//! sizes read from the environment, and a `wasmpod serve` to drive over
//! HTTP; the cold-start benches' own shared part is in [`coldstart`].
#![allow(dead_code)]

pub mod coldstart;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds the example crate `example-<name>` for wasm32-wasip2 (release)
/// and returns the component's path.
pub fn example_wasm(name: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .arg("-p")
        .arg(format!("example-{name}"))
        .status()
        .expect("running cargo to build an example");
    assert!(status.success(), "building example-{name} failed");
    root().join(format!(
        "target/wasm32-wasip2/release/example_{}.wasm",
        name.replace('-', "_")
    ))
}

/// `name` from the environment as a number, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process that is killed (and reaped) when dropped, so a panicking
/// bench leaves no server behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Poll `url` until it answers; panics after `limit`, or at once if `child`
/// (the server behind it, when we started it) has exited.
pub async fn wait_up(
    client: &reqwest::Client,
    url: &str,
    child: Option<&mut Killed>,
    limit: Duration,
) {
    let started = Instant::now();
    let mut child = child;
    while client.get(url).send().await.is_err() {
        if let Some(c) = child.as_deref_mut()
            && let Some(status) = c.0.try_wait().expect("polling the server process")
        {
            panic!("the server behind {url} exited ({status}) before answering");
        }
        assert!(started.elapsed() < limit, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `bin serve` with its state under `home`, on a free loopback port, with
/// `admin_key` and log level `log` in its environment and `extra` flags;
/// returns once it answers /ping (within `limit`), with its base URL.
pub async fn start_serve(
    bin: &Path,
    home: &Path,
    extra: &[&str],
    (admin_key, log): (&str, &str),
    client: &reqwest::Client,
    limit: Duration,
) -> (Killed, String) {
    let port = free_port();
    let child = Command::new(bin)
        .arg("--home")
        .arg(home)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("WASMPOD_ADMIN_KEY", admin_key)
        .env("WASMPOD_LOG", log)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting wasmpod serve");
    let mut child = Killed(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_up(client, &format!("{base}/ping"), Some(&mut child), limit).await;
    (child, base)
}

/// POST a handler component to /v1/handlers; returns its digest.
pub async fn upload_handler(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
    wasm: Vec<u8>,
) -> String {
    let resp = client
        .post(format!("{base}/v1/handlers"))
        .bearer_auth(admin_key)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await
        .expect("uploading a handler");
    let status = resp.status().as_u16();
    let reply: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
    assert!(
        status == 200 || status == 201,
        "upload answered {status}: {reply}"
    );
    reply["digest"].as_str().expect("a digest").to_string()
}

/// The peer every job-API bench compares with: RunPod's own local API
/// server (`python handler.py --rp_serve_api`, the `runpod` package from
/// `.venv`, else the `python3` on PATH) running an echo handler written
/// into `dir`. Returns the process and its base URL (not yet waited for).
pub fn start_runpod_echo(dir: &Path) -> (Killed, String) {
    let python = root().join(".venv/bin/python3");
    let python = if python.exists() {
        python
    } else {
        PathBuf::from("python3")
    };
    let handler = dir.join("handler.py");
    std::fs::write(
        &handler,
        "import runpod\n\ndef handler(job):\n    return job[\"input\"]\n\nrunpod.serverless.start({\"handler\": handler})\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(python)
        .arg(&handler)
        .args(["--rp_serve_api", "--rp_api_port", &port.to_string()])
        .args(["--rp_log_level", "ERROR"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with the runpod package (scripts/setup.sh installs it in .venv)");
    (Killed(child), format!("http://127.0.0.1:{port}"))
}

/// The `p` quantile (0..=1) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}
