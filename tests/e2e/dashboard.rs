//! The dashboard at `/` in a real browser: headless Chromium (Debian's
//! `chromium`, which scripts/test.sh installs) driven by playwright-core
//! (npm, installed here into tests/dashboard/node_modules when missing)
//! against a live `wasmpod serve`: sign in, run a job, see it, its output,
//! stream chunks and log lines, and the live log tail. With
//! `WASMPOD_SCREENSHOTS=DIR` it also writes the screenshots in docs/.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common;
use crate::common::server;

const CHROMIUM: &str = "/usr/bin/chromium";

/// tests/dashboard/node_modules with the pinned playwright-core.
fn playwright(dir: &Path) {
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return;
    }
    let ok = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .status()
        .expect("running npm (install Debian's npm)")
        .success();
    assert!(ok, "npm ci in {} failed", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_signs_in_runs_a_job_and_shows_it_and_its_logs() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium (scripts/test.sh does: apt-get install chromium)"
    );
    let driver = common::root().join("tests/dashboard");
    let d = driver.clone();
    tokio::task::spawn_blocking(move || playwright(&d))
        .await
        .unwrap();

    // A simulated inventory (its slices compute on the CPU), so the page's
    // slices and GPU memory have GPUs to show.
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("inventory.toml");
    std::fs::write(
        &inventory,
        "[[gpu]]\nname = \"H100\"\nmemory_gib = 80\n\n[[gpu]]\nname = \"H100\"\nmemory_gib = 80\nmig = [\"3g.40gb\", \"3g.40gb\"]\n",
    )
    .unwrap();
    let s = server::start(
        &dir.path().join("home"),
        &["--inventory", inventory.to_str().unwrap()],
    );
    let stream = s.upload_example("stream").await;
    s.create_endpoint(
        "stream",
        &stream,
        json!({"max_workers": 2, "gpus": ["H100", "cpu"], "tensor_quota_mib": 20480}),
    )
    .await;

    // The page and its assets are served with a strict policy.
    let page = s.client.get(s.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("/dashboard/app.js"));

    let screenshots = std::env::var("WASMPOD_SCREENSHOTS").ok();
    let (base, key) = (s.base.clone(), s.key.clone());
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("node");
        cmd.arg(driver.join("dashboard.mjs"))
            .current_dir(&driver)
            .env("WASMPOD_URL", base)
            .env("WASMPOD_API_KEY", key)
            .env("ENDPOINT", "stream")
            .env("CHROMIUM", CHROMIUM);
        if let Some(dir) = screenshots {
            cmd.env("SCREENSHOTS", dir);
        }
        cmd.output().expect("running node")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
