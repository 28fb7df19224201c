//! The security probe's findings (issue 12), each re-run as it was written
//! against the real `wasmpod serve`, with the safe answer asserted:
//!
//! - H1: revoking the WASMPOD_ADMIN_KEY key, then restarting with it set;
//! - H2, L1: path parameters (`../` digests, 300-character ids) and query
//!   strings are 400s that touch nothing, unknown ids 404s, never a 5xx;
//! - M1: webhooks to metadata, private and loopback addresses (literal, or
//!   a name resolving there) are refused and recorded on the job; redirects
//!   are not followed; `--webhook-allow` opens a network;
//! - M2: keys are stored as HMACs under the install's secret, no prefix of
//!   an operator's key is kept, a weak admin key is refused at start, and
//!   a key stored by an older version (plain sha256) still works;
//! - M3: everything under a new home is 0700/0600, and an open existing
//!   home is warned about;
//! - L2: Python's http.client and requests sending 300 MB read the 413;
//!   `Expect: 100-continue` gets it before sending anything;
//! - L3: unknown GPU names are 400s that list the known ones, known ones
//!   this host lacks are accepted with warnings (also in /health);
//! - L4: /openapi.json documents the real shapes and statuses (the fuzz
//!   stage of scripts/test.sh checks every route against it);
//! - L5: an executor cannot read the database, the key secret or the
//!   host's /proc/<pid>/environ, nor write outside its cache, nor connect.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;
use crate::common::server::{ADMIN_KEY, Server, start, start_logged};

const LONG: Duration = Duration::from_secs(60);

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The stored API key rows: (id, name, hash, hash_scheme, prefix).
async fn key_rows(home: &Path) -> Vec<(String, String, String, String, String)> {
    use sqlx::Row;
    let url = format!("sqlite://{}?mode=ro", home.join("wasmpod.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let rows =
        sqlx::query("SELECT id, name, hash, hash_scheme, prefix FROM api_keys ORDER BY created_at")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| {
            (
                r.get("id"),
                r.get("name"),
                r.get("hash"),
                r.get("hash_scheme"),
                r.get("prefix"),
            )
        })
        .collect()
}

// --- H1 ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h1_a_revoked_env_admin_key_stays_revoked_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let log = dir.path().join("serve.log");
    let mut s = start(&home, &[]);
    let keys = s.get("/v1/keys").await;
    let env_key = keys.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "bootstrap (WASMPOD_ADMIN_KEY)")
        .cloned()
        .unwrap_or_else(|| panic!("the env key is listed: {keys:?}"));
    let id = env_key["id"].as_str().unwrap().to_string();
    let r = s.delete(&format!("/v1/keys/{id}")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.get("/v1/keys").await.status, 401, "revoked at once");
    s.kill9();

    // The probe's restart: the variable still set. It starts, the key stays
    // revoked, and (no admin key being left) a new one is printed.
    let s = start_logged(&home, &[], Some(ADMIN_KEY), &log);
    assert_eq!(s.get("/v1/keys").await.status, 401, "still revoked");
    assert!(
        read_log(&log).contains("revoked"),
        "the start says why the key is refused: {}",
        read_log(&log)
    );
    let line = s
        .banner
        .iter()
        .find(|l| l.starts_with("admin key"))
        .unwrap_or_else(|| panic!("a new admin key is printed: {:?}", s.banner));
    let fresh = line.rsplit(' ').next().unwrap().to_string();
    let r = s
        .send(s.client.get(s.url("/v1/keys")).bearer_auth(&fresh))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    drop(s);

    // And again: nothing new is made, the printed key still works.
    let s = start_logged(&home, &[], Some(ADMIN_KEY), &log);
    assert!(
        !s.banner.iter().any(|l| l.contains("admin key")),
        "{:?}",
        s.banner
    );
    let r = s
        .send(s.client.get(s.url("/v1/keys")).bearer_auth(&fresh))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(s.get("/v1/keys").await.status, 401);
}

// --- H2, L1 -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_l1_path_parameters_are_checked_before_they_touch_anything() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let s = start(&home, &[]);
    let echo = s.upload_example("echo").await;
    s.create_endpoint("echo", &echo, json!({})).await;

    // The probe: a digest that climbs out of the handler directory.
    let victim = dir.path().join("victim.wasm");
    std::fs::write(&victim, b"precious").unwrap();
    let climb = format!(
        "/v1/handlers/..%2F..%2F{}",
        victim
            .with_extension("")
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    );
    let absolute = format!(
        "/v1/handlers/{}",
        victim
            .with_extension("")
            .to_str()
            .unwrap()
            .replace('/', "%2F")
    );
    for path in [climb.as_str(), absolute.as_str()] {
        let r = s.delete(path).await;
        assert_eq!(r.status, 400, "{path}: {r:?}");
        assert!(r.error().contains("64 hex"), "{r:?}");
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "untouched");

    // L1: the 300-character name that answered 500.
    let long = "a".repeat(300);
    let bad = [
        (reqwest::Method::DELETE, format!("/v1/handlers/{long}")),
        (reqwest::Method::GET, format!("/v1/handlers/{long}")),
        (reqwest::Method::GET, format!("/v1/endpoints/{long}")),
        (reqwest::Method::GET, "/v1/endpoints/Not_An_Id".to_string()),
        (
            reqwest::Method::GET,
            "/v2/echo/status/not-a-job".to_string(),
        ),
        (reqwest::Method::POST, format!("/v2/echo/cancel/{long}")),
        (reqwest::Method::GET, format!("/v2/{long}/health")),
        (
            reqwest::Method::DELETE,
            "/v1/keys/..%2F..%2Fetc".to_string(),
        ),
        (reqwest::Method::GET, "/v1/models/.hidden".to_string()),
        (
            reqwest::Method::DELETE,
            "/v1/endpoints/echo?force=perhaps".to_string(),
        ),
        (
            reqwest::Method::GET,
            "/v1/usage?endpoint=..%2Fx".to_string(),
        ),
    ];
    for (method, path) in bad {
        let r = s.send(s.req(method.clone(), &path)).await;
        assert_eq!(r.status, 400, "{method} {path}: {r:?}");
        assert!(!r.error().is_empty(), "a JSON error for {path}: {r:?}");
    }
    let r = s
        .send(
            s.req(reqwest::Method::POST, "/v2/echo/runsync?wait=soon")
                .json(&json!({"input": 1})),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");

    // Well-formed but unknown: 404.
    let unknown = "0".repeat(64);
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/handlers/{unknown}")),
        (
            reqwest::Method::DELETE,
            format!("/v1/handlers/sha256:{unknown}"),
        ),
        (reqwest::Method::GET, "/v1/endpoints/no-such".to_string()),
        (
            reqwest::Method::GET,
            "/v2/echo/status/0f8fad5b-d9cb-469f-a165-70867728950e".to_string(),
        ),
        (reqwest::Method::DELETE, "/v1/keys/0123456789ab".to_string()),
        (reqwest::Method::GET, "/v1/models/none".to_string()),
    ] {
        let r = s.send(s.req(method.clone(), &path)).await;
        assert_eq!(r.status, 404, "{method} {path}: {r:?}");
    }

    // Model file paths: a part too long for the filesystem, and a file
    // where a directory must go, are 400 and 409 (they were I/O errors).
    let put = |path: String| {
        s.req(reqwest::Method::PUT, &format!("/v1/models/m/files/{path}"))
            .body(b"data".to_vec())
    };
    let r = s.send(put(format!("{long}.bin"))).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(s.send(put("a".into())).await.status, 201);
    let r = s.send(put("a/b".into())).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(s.send(put("d/e".into())).await.status, 201);
    let r = s.send(put("d".into())).await;
    assert_eq!(r.status, 409, "{r:?}");
}

// --- M1 ---------------------------------------------------------------

/// A webhook receiver on 127.0.0.1: `/hook` counts calls and answers 200,
/// `/redirect` answers 307 to `/hook`.
async fn receiver() -> (u16, Arc<AtomicUsize>) {
    use axum::routing::post;
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let app = axum::Router::new()
        .route(
            "/hook",
            post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { axum::http::StatusCode::OK }
            }),
        )
        .route(
            "/redirect",
            post(|| async {
                (
                    axum::http::StatusCode::TEMPORARY_REDIRECT,
                    [(axum::http::header::LOCATION, "/hook")],
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, calls)
}

/// Poll /status until the job's webhook has left "waiting"/"pending".
async fn webhook_outcome(s: &Server, ep: &str, job: &str) -> Value {
    let started = Instant::now();
    loop {
        let r = s.status(ep, job).await;
        let state = r.body["webhook"]["state"].as_str().unwrap_or_default();
        if !matches!(state, "" | "waiting" | "pending") {
            return r.body["webhook"].clone();
        }
        assert!(started.elapsed() < LONG, "webhook never settled: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m1_webhooks_reach_only_allowed_addresses() {
    let (port, calls) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &dir.path().join("home"),
        &["--webhook-backoff", "100ms", "--webhook-attempts", "3"],
    );
    let echo = s.upload_example("echo").await;
    s.create_endpoint("wh", &echo, json!({})).await;

    // Literal addresses are refused at submission, whatever their spelling.
    for url in [
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://192.168.1.1/".to_string(),
        "http://100.100.100.200/".to_string(),
        format!("http://127.0.0.1:{port}/hook"),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        format!("http://2130706433:{port}/hook"),
        format!("http://0x7f.1:{port}/hook"),
        "http://0.0.0.0/".to_string(),
        "file:///etc/passwd".to_string(),
        "gopher://example.com/".to_string(),
    ] {
        let r = s
            .post("/v2/wh/run", &json!({"input": 1, "webhook": url}))
            .await;
        assert_eq!(r.status, 400, "{url}: {r:?}");
        assert!(r.error().contains("webhook"), "{r:?}");
    }
    let r = s
        .post(
            "/v2/wh/run",
            &json!({"input": 1, "webhook": "http://169.254.169.254/"}),
        )
        .await;
    assert!(r.error().contains("link-local"), "says why: {r:?}");
    assert!(r.error().contains("--webhook-allow"), "and how: {r:?}");

    // A name is checked on the address it resolves to when the webhook is
    // sent: localhost is loopback, so it is refused then, recorded on the
    // job and not retried.
    let url = format!("http://localhost:{port}/hook");
    let job = s.run("wh", &json!({"input": 1, "webhook": url})).await;
    assert_eq!(s.wait_final("wh", &job, LONG).await["status"], "COMPLETED");
    let outcome = webhook_outcome(&s, "wh", &job).await;
    assert_eq!(outcome["state"], "refused", "{outcome}");
    assert!(
        outcome["error"].as_str().unwrap().contains("loopback"),
        "{outcome}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = s.status("wh", &job).await.body["webhook"].clone();
    assert_eq!(again["attempts"], 1, "never retried: {again}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing reached it");
    drop(s);

    // The operator opens loopback: delivered; a redirect is not followed.
    let s = start(
        &dir.path().join("home2"),
        &[
            "--webhook-allow",
            "127.0.0.0/8,::1/128",
            "--webhook-attempts",
            "1",
        ],
    );
    let echo = s.upload_example("echo").await;
    s.create_endpoint("wh", &echo, json!({})).await;
    let job = s.run("wh", &json!({"input": 1, "webhook": url})).await;
    let outcome = webhook_outcome(&s, "wh", &job).await;
    assert_eq!(outcome["state"], "delivered", "{outcome}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let redirect = format!("http://127.0.0.1:{port}/redirect");
    let job = s.run("wh", &json!({"input": 1, "webhook": redirect})).await;
    let outcome = webhook_outcome(&s, "wh", &job).await;
    assert_eq!(outcome["state"], "failed", "{outcome}");
    assert!(
        outcome["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{outcome}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the 307 was not followed");
    drop(s);

    // --no-webhooks: refused at submission, whatever the address.
    let s = start(&dir.path().join("home3"), &["--no-webhooks"]);
    let echo = s.upload_example("echo").await;
    s.create_endpoint("wh", &echo, json!({})).await;
    let r = s
        .post(
            "/v2/wh/run",
            &json!({"input": 1, "webhook": "https://example.com/hook"}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.error().contains("does not send webhooks"), "{r:?}");
}

// --- M2 ---------------------------------------------------------------

fn hmac_hex(secret_hex: &str, key: &str) -> String {
    use hmac::{KeyInit, Mac};
    let secret = hex::decode(secret_hex.trim()).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
    mac.update(key.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn sha256_hex(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m2_keys_are_keyed_hashes_and_weak_admin_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");

    // The README's old example key: refused at start, with how to make one.
    let out = Command::new(common::wasmpod_bin())
        .arg("--home")
        .arg(&home)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("WASMPOD_ADMIN_KEY", "my-admin-key")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too weak"), "{err}");
    assert!(err.contains("openssl rand -hex 32"), "{err}");

    let mut s = start(&home, &[]);
    let r = s
        .post("/v1/keys", &json!({"name": "ci", "scope": "admin"}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let generated = r.body["key"].as_str().unwrap().to_string();
    s.kill9();

    let secret = std::fs::read_to_string(home.join("key.secret")).unwrap();
    let rows = key_rows(&home).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (_, _, hash, scheme, prefix) = &rows[0];
    assert_eq!(scheme, "hmac-sha256");
    assert_eq!(hash, &hmac_hex(&secret, ADMIN_KEY), "keyed with the secret");
    assert_ne!(hash, &sha256_hex(ADMIN_KEY));
    assert_eq!(prefix, "", "nothing of an operator's key is kept");
    let (_, _, hash, _, prefix) = &rows[1];
    assert_eq!(hash, &hmac_hex(&secret, &generated));
    assert_eq!(prefix, &generated[..10], "a generated key keeps its prefix");

    // A row as an older wasmpod stored it (plain sha256, with the prefix
    // in clear): the key still works, and its row is re-hashed on use.
    let legacy = format!("wpk_{}", "5a".repeat(32));
    {
        let url = format!("sqlite://{}", home.join("wasmpod.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, hash_scheme, prefix, scope, created_at) \
             VALUES ('0123456789ab', 'old', ?, 'sha256', 'wpk_5a5a5a', 'admin', 1)",
        )
        .bind(sha256_hex(&legacy))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let s = start(&home, &[]);
    let r = s
        .send(s.client.get(s.url("/v1/keys")).bearer_auth(&legacy))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = s
        .send(s.client.get(s.url("/v1/keys")).bearer_auth("wpk_wrong"))
        .await;
    assert_eq!(r.status, 401);
    drop(s);
    let rows = key_rows(&home).await;
    let old = rows.iter().find(|r| r.0 == "0123456789ab").unwrap();
    assert_eq!(old.3, "hmac-sha256", "{old:?}");
    assert_eq!(old.2, hmac_hex(&secret, &legacy));
}

// --- M3 ---------------------------------------------------------------

/// Every directory and file under `root` with a mode other than 0700 and
/// 0600.
fn open_entries(root: &Path) -> (usize, Vec<(PathBuf, u32)>) {
    let mut seen = 0;
    let mut open = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        seen += 1;
        if meta.is_dir() {
            if mode != 0o700 {
                open.push((p.clone(), mode));
            }
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else if meta.is_file() && mode != 0o600 {
            open.push((p, mode));
        }
    }
    (seen, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn m3_everything_wasmpod_creates_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("new").join("home");
    let models = dir.path().join("models");
    common::make_mlp_models(&models);
    // No RAM for parked tensors: they spill to files under the cache.
    let s = start(&home, &["--flashboot-ram", "0"]);
    let mlp = s.upload_example("mlp").await;
    s.create_endpoint(
        "mlp",
        &mlp,
        json!({"models_dir": models.to_str().unwrap(), "idle_timeout_s": 0, "max_workers": 1}),
    )
    .await;
    let input = json!({"input": {"inputs": [[1, 1], [-2, 0.5]]}});
    let r = s.post("/v2/mlp/runsync", &input).await;
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    s.wait_health("mlp", "parked", LONG, |h| {
        h["workers"]["snapshotted"].as_u64() == Some(1)
    })
    .await;
    let r = s
        .send(
            s.req(reqwest::Method::PUT, "/v1/models/tiny/files/w.bin")
                .body(vec![1u8; 64]),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");

    // Looked at while it runs (the parked executor holds its spill files).
    let paging = home.join("cache/paging");
    let spilled = std::fs::read_dir(&paging)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|slice| {
            std::fs::read_dir(slice.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .count();
    assert!(
        spilled > 0,
        "parked tensors spilled under {}",
        paging.display()
    );
    for f in [
        "wasmpod.db",
        "wasmpod.db-wal",
        "wasmpod.db-shm",
        "key.secret",
    ] {
        assert!(home.join(f).exists(), "{f}");
    }
    let (seen, open) = open_entries(&home);
    assert!(seen > 15, "a populated home: {seen} entries");
    assert!(open.is_empty(), "not private: {open:?}");
    let parent = std::fs::metadata(home.parent().unwrap()).unwrap();
    assert_eq!(
        parent.permissions().mode() & 0o777,
        0o700,
        "created parents too"
    );
    drop(s);

    // An existing home others can read: served as it is, with a warning.
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log = dir.path().join("shared.log");
    let s = start_logged(&shared, &[], Some(ADMIN_KEY), &log);
    drop(s);
    let text = read_log(&log);
    assert!(text.contains("open to other users"), "{text}");
    assert!(text.contains("chmod -R go-rwx"), "{text}");
}

// --- L2 ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l2_python_clients_sending_300_mb_read_the_413() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("home"), &[]);
    let echo = s.upload_example("echo").await;
    s.create_endpoint("echo", &echo, json!({})).await;
    let script = common::root().join("tests/serve_big_body.py");
    let base = s.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(base)
            .arg(ADMIN_KEY)
            .output()
            .expect("running python3 tests/serve_big_body.py")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // The server is fine afterwards.
    let r = s.post("/v2/echo/runsync", &json!({"input": 1})).await;
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
}

// --- L3 ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_unknown_gpu_names_are_refused_and_absent_ones_warned() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("home"), &[]);
    let echo = s.upload_example("echo").await;
    let r = s
        .post(
            "/v1/endpoints",
            &json!({"id": "typo", "handler": echo, "gpus": ["H9000"]}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    for name in ["H9000", "H100", "MIG-3g.40gb", "cpu"] {
        assert!(r.error().contains(name), "lists {name}: {r:?}");
    }

    // H100 is a GPU this CPU-only host does not have: accepted, with why
    // its jobs would wait, in the answer and in /health.
    let created = s
        .create_endpoint("h100", &echo, json!({"gpus": ["H100"]}))
        .await;
    let warnings = created["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{created}");
    assert!(warnings[0].as_str().unwrap().contains("H100"), "{created}");
    assert!(
        warnings[1]
            .as_str()
            .unwrap()
            .contains("IN_QUEUE until their ttl"),
        "{created}"
    );
    let h = s.get("/v2/h100/health").await;
    assert_eq!(h.body["warnings"], created["warnings"], "{h:?}");

    // With a fallback it can run: only the absent type is warned about.
    let created = s
        .create_endpoint("fallback", &echo, json!({"gpus": ["H100", "cpu"]}))
        .await;
    assert_eq!(
        created["warnings"].as_array().unwrap().len(),
        1,
        "{created}"
    );
    let r = s
        .patch("/v1/endpoints/fallback", &json!({"gpus": ["cpu", "A1000"]}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let ok = s.create_endpoint("cpu", &echo, json!({})).await;
    assert_eq!(ok["warnings"], json!([]), "{ok}");
}

// --- L4 ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_openapi_documents_the_real_shapes_and_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(&dir.path().join("home"), &[]);
    let doc: Value = reqwest::get(s.url("/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &doc["components"]["schemas"];
    // Lists come back as objects holding the array, and say so.
    for (schema, field) in [
        ("HandlerList", "handlers"),
        ("EndpointList", "endpoints"),
        ("ModelList", "models"),
        ("KeyList", "keys"),
    ] {
        assert_eq!(
            schemas[schema]["properties"][field]["type"], "array",
            "{schema}: {}",
            schemas[schema]
        );
    }
    // The endpoint body is one flat object a generator can fill.
    let create = &schemas["CreateEndpoint"];
    assert_eq!(create["type"], "object", "{create}");
    assert_eq!(create["additionalProperties"], false, "{create}");
    assert_eq!(create["required"], json!(["handler"]), "{create}");
    for field in ["id", "handler", "max_workers", "gpus", "models_dir"] {
        assert!(
            create["properties"].get(field).is_some(),
            "{field}: {create}"
        );
    }
    assert!(schemas["EndpointView"].get("allOf").is_none());
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for status in ["400", "401", "403"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" && p["name"] != "path" {
                    assert!(
                        p["schema"]["pattern"].is_string(),
                        "{method} {path}: {} has a pattern",
                        p["name"]
                    );
                }
            }
        }
    }
    let run = &paths["/v2/{endpoint_id}/run"]["post"]["responses"];
    assert!(
        run.get("413").is_some() && run.get("404").is_some(),
        "{run}"
    );
    let delete = &paths["/v1/handlers/{digest}"]["delete"]["responses"];
    assert!(delete.get("409").is_some(), "{delete}");
}

// --- L5 ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l5_executors_cannot_reach_the_database_or_the_host() {
    let Some(abi) = wasmpod::executor::sandbox::kernel_abi() else {
        eprintln!(
            "SKIPPED: this kernel does not offer Landlock, so executors run with no_new_privs only"
        );
        return;
    };
    eprintln!("Landlock ABI {abi}");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let s = start(&home, &[]);
    let echo = s.upload_example("echo").await;
    s.create_endpoint("echo", &echo, json!({})).await;
    let r = s.post("/v2/echo/runsync", &json!({"input": 1})).await;
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    let inv = s.get("/v1/inventory").await;
    let pid = inv.body["executors"][0]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("an executor runs: {inv:?}"));

    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.lines().any(|l| l == "NoNewPrivs:\t1"),
        "no_new_privs: {status}"
    );

    // The executor's own command line, as the host started it, with probes
    // added: the same sandbox, then tries instead of serving.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(args[1], "executor", "{args:?}");
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let handler = home.join(format!("handlers/{echo}.wasm"));
    let server_pid = s.child.id();
    let read = [
        home.join("wasmpod.db"),
        home.join("key.secret"),
        PathBuf::from(format!("/proc/{server_pid}/environ")),
        handler.clone(),
    ];
    let write = [home.join("handlers/planted.wasm"), home.join("cache/probe")];
    let mut probe = Command::new(&args[0]);
    probe.args(&args[1..]).env("CUDA_VISIBLE_DEVICES", "");
    for p in &read {
        probe.arg("--probe-read").arg(p);
    }
    for p in &write {
        probe.arg("--probe-write").arg(p);
    }
    probe
        .arg("--probe-connect")
        .arg(format!("127.0.0.1:{port}"));
    let out = probe.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let results: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ok = |target: &str| {
        results
            .iter()
            .find(|r| r["target"] == target)
            .unwrap_or_else(|| panic!("no probe of {target}: {results:?}"))["ok"]
            .as_bool()
            .unwrap()
    };
    let name = |p: &Path| p.display().to_string();
    assert!(!ok(&name(&read[0])), "the database: {results:?}");
    assert!(!ok(&name(&read[1])), "the key secret: {results:?}");
    assert!(!ok(&name(&read[2])), "the host's environment: {results:?}");
    assert!(ok(&name(&handler)), "its handlers: {results:?}");
    assert!(!ok(&name(&write[0])), "no planting handlers: {results:?}");
    assert!(ok(&name(&write[1])), "its cache: {results:?}");
    if abi >= 4 {
        assert!(
            !ok(&format!("127.0.0.1:{port}")),
            "no TCP (ABI 4+): {results:?}"
        );
    }
    // The host itself reads all of them, of course (the probe is fair).
    assert!(std::fs::read(&read[0]).is_ok());
    assert!(std::fs::read(&read[2]).is_ok());
}
