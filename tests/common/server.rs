//! Helpers for the serving tests: start `wasmpod serve` on a free port with
//! its state in a temp dir, talk to it over HTTP, kill it with SIGKILL.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ADMIN_KEY: &str = "wpk_test_admin_key_0123456789abcdef";

/// A running `wasmpod serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub home: PathBuf,
    pub key: String,
    /// Lines printed on stdout before "listening on".
    pub banner: Vec<String>,
    pub client: reqwest::Client,
}

/// Start a server on `home` with extra `serve` flags; `admin_key` is put in
/// WASMPOD_ADMIN_KEY when given.
pub fn start_with(home: &Path, args: &[&str], admin_key: Option<&str>) -> Server {
    start_logging(home, args, admin_key, Stdio::inherit())
}

/// [`start_with`], its stderr (the log) written to `log`.
pub fn start_logged(home: &Path, args: &[&str], admin_key: Option<&str>, log: &Path) -> Server {
    let file = std::fs::File::create(log).expect("creating the log file");
    start_logging(home, args, admin_key, Stdio::from(file))
}

fn start_logging(home: &Path, args: &[&str], admin_key: Option<&str>, stderr: Stdio) -> Server {
    let mut cmd = Command::new(crate::common::wasmpod_bin());
    cmd.arg("--home")
        .arg(home)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("WASMPOD_LOG", "warn,wasmpod=info")
        .env_remove("WASMPOD_ADMIN_KEY")
        .stdout(Stdio::piped())
        .stderr(stderr);
    if let Some(k) = admin_key {
        cmd.env("WASMPOD_ADMIN_KEY", k);
    }
    let mut child = cmd.spawn().expect("starting wasmpod serve");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut reader = BufReader::new(stdout);
    let mut banner = Vec::new();
    let started = Instant::now();
    let base = loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("reading serve's stdout");
        assert!(n > 0, "wasmpod serve exited before listening: {banner:?}");
        let line = line.trim().to_string();
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.to_string();
        }
        banner.push(line);
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not start"
        );
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in reader.lines() {});
    // reqwest is built without a default TLS provider (the host picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Server {
        child,
        base,
        home: home.to_path_buf(),
        key: admin_key.unwrap_or_default().to_string(),
        banner,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("reqwest client"),
    }
}

pub fn start(home: &Path, args: &[&str]) -> Server {
    start_with(home, args, Some(ADMIN_KEY))
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer: status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The `error` message of an error answer.
    pub fn error(&self) -> String {
        self.body["error"].as_str().unwrap_or_default().to_string()
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL the server (no graceful shutdown) and wait for it to die.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaping");
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let resp = req.send().await.expect("HTTP request to wasmpod");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("reading the body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }

    /// A request with the admin key.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.key)
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(self.req(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Reply {
        self.send(self.req(reqwest::Method::PATCH, path).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }

    /// Upload an example handler; returns its digest.
    pub async fn upload_example(&self, name: &str) -> String {
        let wasm = std::fs::read(crate::common::example_wasm(name)).expect("reading example wasm");
        let r = self
            .send(
                self.req(reqwest::Method::POST, "/v1/handlers")
                    .header("content-type", "application/wasm")
                    .body(wasm),
            )
            .await;
        assert!(r.status == 201 || r.status == 200, "upload {name}: {r:?}");
        r.body["digest"].as_str().expect("digest").to_string()
    }

    /// Create an endpoint `id` running `handler` with extra settings.
    pub async fn create_endpoint(&self, id: &str, handler: &str, settings: Value) -> Value {
        let mut body = json!({ "id": id, "handler": handler });
        for (k, v) in settings.as_object().cloned().unwrap_or_default() {
            body[k] = v;
        }
        let r = self.post("/v1/endpoints", &body).await;
        assert_eq!(r.status, 201, "create endpoint {id}: {r:?}");
        r.body
    }

    /// POST /run; returns the job id.
    pub async fn run(&self, endpoint: &str, body: &Value) -> String {
        let r = self.post(&format!("/v2/{endpoint}/run"), body).await;
        assert_eq!(r.status, 200, "run: {r:?}");
        assert_eq!(r.body["status"], "IN_QUEUE", "{r:?}");
        r.body["id"].as_str().expect("job id").to_string()
    }

    pub async fn status(&self, endpoint: &str, job: &str) -> Reply {
        self.get(&format!("/v2/{endpoint}/status/{job}")).await
    }

    /// Poll /status until the job is final (or `limit` passes).
    pub async fn wait_final(&self, endpoint: &str, job: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            let r = self.status(endpoint, job).await;
            assert_eq!(r.status, 200, "status of {job}: {r:?}");
            let s = r.body["status"].as_str().unwrap_or_default().to_string();
            if matches!(
                s.as_str(),
                "COMPLETED" | "FAILED" | "CANCELLED" | "TIMED_OUT"
            ) {
                return r.body;
            }
            assert!(
                started.elapsed() < limit,
                "job {job} not final after {limit:?}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// GET `path` (with the key) and return the body as text (/metrics).
    pub async fn text(&self, path: &str) -> String {
        self.req(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("a text body")
    }

    /// Poll /v2/{ep}/health until `pred` holds; returns that answer.
    pub async fn wait_health(
        &self,
        ep: &str,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = Instant::now();
        loop {
            let h = self.get(&format!("/v2/{ep}/health")).await;
            assert_eq!(h.status, 200, "{h:?}");
            if pred(&h.body) {
                return h.body;
            }
            assert!(
                started.elapsed() < limit,
                "{ep}: never {what}; last health {}",
                h.body
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Poll /status until the job has `status`.
    pub async fn wait_status(&self, endpoint: &str, job: &str, status: &str, limit: Duration) {
        let started = Instant::now();
        loop {
            let r = self.status(endpoint, job).await;
            if r.body["status"] == status {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "job {job} never reached {status}: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The count of workers in `state` in a /health answer.
pub fn workers(h: &Value, state: &str) -> u64 {
    h["workers"][state]
        .as_u64()
        .unwrap_or_else(|| panic!("no workers.{state} in {h}"))
}

/// A minimal valid safetensors file with one F32 tensor of `n` values.
pub fn safetensors_bytes(name: &str, values: &[f32]) -> Vec<u8> {
    let header = json!({
        name: {"dtype": "F32", "shape": [values.len()], "data_offsets": [0, values.len() * 4]}
    })
    .to_string();
    let mut header = header.into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&header);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}
