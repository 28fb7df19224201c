//! Cluster mode end to end: several `wasmpod serve` hosts (distinct homes
//! and ports on this machine) on one real Postgres that the test starts
//! itself (tests/common/postgres.rs). Heartbeats and the dead-host time
//! are short (`--dead-host-after 1s`) to keep the tests lean.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::postgres;
use crate::common::server::{Server, start};

const LONG: Duration = Duration::from_secs(120);

fn host(home: &std::path::Path, url: &str) -> Server {
    // The hosts of one cluster share the secret keys are hashed with.
    let secret = std::env::temp_dir().join(format!(
        "wasmpod-cluster-{}.key.secret",
        url.rsplit('/').next().unwrap_or("db")
    ));
    start(
        home,
        &[
            "--key-secret",
            secret.to_str().unwrap(),
            "--database-url",
            url,
            "--dead-host-after",
            "1s",
            "--executor-idle",
            "1m",
        ],
    )
}

/// Wait until `s` runs the endpoint (it follows the others' endpoints).
async fn wait_endpoint(s: &Server, ep: &str) {
    let started = Instant::now();
    while s.get(&format!("/v2/{ep}/health")).await.status != 200 {
        assert!(started.elapsed() < LONG, "{ep} never reached {}", s.base);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Poll /status until the job is final, taking 503s (the database coming
/// back) as "not yet".
async fn final_through_503s(s: &Server, ep: &str, id: &str) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let r = s.status(ep, id).await;
        assert!(r.status == 200 || r.status == 503, "{r:?}");
        let st = r.body["status"].as_str().unwrap_or_default();
        if matches!(st, "COMPLETED" | "FAILED" | "CANCELLED" | "TIMED_OUT") {
            return r.body;
        }
        assert!(started.elapsed() < LONG, "{id} never final: {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ready(h: &serde_json::Value) -> bool {
    h["workers"]["ready"].as_i64().unwrap_or(0) >= 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_kill9_of_one_under_load_loses_nothing() {
    let pg = tokio::task::spawn_blocking(postgres::PgServer::start)
        .await
        .unwrap();
    let url = pg.create_database();
    let homes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut hosts: Vec<Server> = homes.iter().map(|h| host(h.path(), &url)).collect();
    let sleep = hosts[0].upload_example("sleep").await;
    hosts[0]
        .create_endpoint(
            "work",
            &sleep,
            json!({"min_workers": 1, "max_workers": 2, "max_retries": 3}),
        )
        .await;
    for h in &hosts {
        wait_endpoint(h, "work").await;
        h.wait_health("work", "a ready worker", LONG, ready).await;
    }
    // Load on every host; each hands jobs to its own workers first.
    let mut accepted = Vec::new();
    for round in 0..20 {
        for (i, h) in hosts.iter().enumerate() {
            let id = h.run("work", &json!({"input": {"ms": 300}})).await;
            accepted.push((i, round, id));
        }
    }
    // Host 1 is running some of its jobs when it dies (each runs 300 ms).
    let started = Instant::now();
    loop {
        let running = hosts[1].get("/v2/work/health").await.body["workers"]["running"]
            .as_i64()
            .unwrap_or(0);
        if running > 0 {
            break;
        }
        assert!(started.elapsed() < LONG, "nothing ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut doomed = hosts.remove(1);
    doomed.kill9();
    drop(doomed);

    // Every accepted job completes on the survivors, seen from both.
    let mut rerun = 0;
    for (_, _, id) in &accepted {
        let done = hosts[0].wait_final("work", id, LONG).await;
        assert_eq!(done["status"], "COMPLETED", "job {id}: {done}");
        if done["retries"].as_i64().unwrap_or(0) > 0 {
            rerun += 1;
        }
        let other = hosts[1].status("work", id).await;
        assert_eq!(other.body["status"], "COMPLETED", "seen from host 2 too");
    }
    // The jobs the dead host was running ran again elsewhere, a retry
    // counted (the ones still queued there were claimed by the others).
    assert!(rerun >= 1, "no job of the dead host was re-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runsync_on_one_host_answers_for_a_job_run_on_another_and_cancel_reaches_it() {
    let pg = tokio::task::spawn_blocking(postgres::PgServer::start)
        .await
        .unwrap();
    let url = pg.create_database();
    let (ha, hb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = host(ha.path(), &url);
    let b = host(hb.path(), &url);
    let sleep = a.upload_example("sleep").await;
    a.create_endpoint(
        "x",
        &sleep,
        json!({"min_workers": 1, "max_workers": 1, "concurrency": 1}),
    )
    .await;
    wait_endpoint(&b, "x").await;
    b.wait_health("x", "a ready worker", LONG, ready).await;
    a.wait_health("x", "a ready worker", LONG, ready).await;
    // A's only worker is busy for 4 s ...
    let busy = a.run("x", &json!({"input": {"ms": 4000}})).await;
    a.wait_status("x", &busy, "IN_PROGRESS", LONG).await;
    let busy_worker = a.status("x", &busy).await.body["workerId"].clone();
    // ... so a /runsync sent to A runs on B, and A answers as soon as it
    // is done there (a NOTIFY, not a poll, nor the 4 s job).
    let t = Instant::now();
    let r = a.post("/v2/x/runsync", &json!({"input": {"ms": 50}})).await;
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
    assert_ne!(r.body["workerId"], busy_worker, "it ran on the other host");
    assert!(took < Duration::from_millis(2500), "runsync took {took:?}");
    let id = r.body["id"].as_str().unwrap();
    assert_eq!(b.status("x", id).await.body["status"], "COMPLETED");

    // A long job running on B, cancelled through A: B stops it, and B's
    // worker is free for the next job long before the long one would end.
    let long = b.run("x", &json!({"input": {"ms": 60000}})).await;
    b.wait_status("x", &long, "IN_PROGRESS", LONG).await;
    let c = a.post(&format!("/v2/x/cancel/{long}"), &json!({})).await;
    assert_eq!(c.status, 200, "{c:?}");
    assert_eq!(b.status("x", &long).await.body["status"], "CANCELLED");
    a.wait_final("x", &busy, LONG).await;
    let t = Instant::now();
    let next = b.run("x", &json!({"input": {"ms": 10}})).await;
    let done = b.wait_final("x", &next, LONG).await;
    assert_eq!(done["status"], "COMPLETED");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "B's worker was freed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restart_mid_load_loses_nothing_and_answers_503_meanwhile() {
    let mut pg = tokio::task::spawn_blocking(postgres::PgServer::start)
        .await
        .unwrap();
    let url = pg.create_database();
    let (h0, h1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hosts = [host(h0.path(), &url), host(h1.path(), &url)];
    let sleep = hosts[0].upload_example("sleep").await;
    hosts[0]
        .create_endpoint(
            "pr",
            &sleep,
            json!({"min_workers": 1, "max_workers": 2, "max_retries": 3}),
        )
        .await;
    for h in &hosts {
        wait_endpoint(h, "pr").await;
    }
    let mut accepted = Vec::new();
    for _ in 0..15 {
        for h in &hosts {
            accepted.push(h.run("pr", &json!({"input": {"ms": 100}})).await);
        }
    }
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    // While it is down: 503 with a message saying what to do, never 500.
    for h in &hosts {
        let r = h.post("/v2/pr/run", &json!({"input": {"ms": 1}})).await;
        assert_eq!(r.status, 503, "{r:?}");
        assert!(r.error().contains("again"), "{r:?}");
        let s = h.status("pr", &accepted[0]).await;
        assert_eq!(s.status, 503, "{s:?}");
    }
    let mut pg = pg;
    let pg = tokio::task::spawn_blocking(move || {
        pg.restart();
        pg
    })
    .await
    .unwrap();
    // The hosts reconnect by themselves; every job accepted before the
    // restart completes, and new jobs run.
    for id in &accepted {
        let done = final_through_503s(&hosts[1], "pr", id).await;
        assert_eq!(done["status"], "COMPLETED", "job {id}: {done}");
    }
    let started = Instant::now();
    let fresh = loop {
        let r = hosts[0]
            .post("/v2/pr/run", &json!({"input": {"ms": 1}}))
            .await;
        if r.status == 200 {
            break r.body["id"].as_str().unwrap().to_string();
        }
        assert_eq!(r.status, 503, "{r:?}");
        assert!(started.elapsed() < LONG, "never reconnected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let done = hosts[0].wait_final("pr", &fresh, LONG).await;
    assert_eq!(done["status"], "COMPLETED");
    drop(pg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_swap_under_load_across_two_hosts_fails_no_job() {
    let pg = tokio::task::spawn_blocking(postgres::PgServer::start)
        .await
        .unwrap();
    let url = pg.create_database();
    let (h0, h1) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let hosts = std::sync::Arc::new([host(h0.path(), &url), host(h1.path(), &url)]);
    let echo = hosts[0].upload_example("echo").await;
    let sleep = hosts[0].upload_example("sleep").await;
    hosts[0]
        .create_endpoint("hs", &echo, json!({"min_workers": 1, "max_workers": 2}))
        .await;
    for h in hosts.iter() {
        wait_endpoint(h, "hs").await;
        h.wait_health("hs", "a ready worker", LONG, ready).await;
    }
    // Input both versions accept: echo returns it, sleep sleeps.
    let input = json!({"input": {"ms": 20}});
    let mut submitters = Vec::new();
    for i in 0..4 {
        let hosts = std::sync::Arc::clone(&hosts);
        let input = input.clone();
        submitters.push(tokio::spawn(async move {
            let mut jobs = Vec::new();
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                jobs.push(hosts[i % 2].run("hs", &input).await);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            jobs
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The swap is made on one host; the other follows it.
    let r = hosts[0]
        .patch("/v1/endpoints/hs", &json!({"handler": sleep}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut jobs = Vec::new();
    for t in submitters {
        jobs.extend(t.await.unwrap());
    }
    let (mut old, mut new) = (0, 0);
    for id in &jobs {
        let done = hosts[1].wait_final("hs", id, LONG).await;
        assert_eq!(done["status"], "COMPLETED", "job {id}: {done}");
        if done["output"] == json!({"slept_ms": 20}) {
            new += 1;
        } else {
            assert_eq!(done["output"], json!({"ms": 20}), "{done}");
            old += 1;
        }
    }
    assert!(old > 0 && new > 0, "old {old}, new {new}");
    for h in hosts.iter() {
        let health = h.get("/v2/hs/health").await;
        assert_eq!(health.body["jobs"]["failed"], 0, "{health:?}");
        // Both hosts run the new version now.
        h.wait_health("hs", "only new workers", LONG, |h| {
            h["workers"]["outdated"].as_i64().unwrap_or(0) == 0
        })
        .await;
    }
    // Every host has the new version's bytes (fetched from the store).
    let digest_file = format!("handlers/{sleep}.wasm");
    assert!(hosts[1].home.join(&digest_file).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_built_on_two_hosts_runs_on_both_behind_real_time_jobs() {
    let pg = tokio::task::spawn_blocking(postgres::PgServer::start)
        .await
        .unwrap();
    let url = pg.create_database();
    let homes: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let hosts: Vec<Server> = homes.iter().map(|h| host(h.path(), &url)).collect();
    let sleep = hosts[0].upload_example("sleep").await;
    hosts[0]
        .create_endpoint(
            "work",
            &sleep,
            json!({"min_workers": 1, "max_workers": 1, "concurrency": 2}),
        )
        .await;
    for h in &hosts {
        wait_endpoint(h, "work").await;
        h.wait_health("work", "a ready worker", LONG, ready).await;
    }
    let requests = |from: u64, to: u64| -> Vec<serde_json::Value> {
        (from..to)
            .map(|i| json!({"input": {"ms": i % 10 + 5}}))
            .collect()
    };
    // Drafted on one host, added to and finalized on the other.
    let r = hosts[0]
        .post("/v2/work/batch", &json!({"requests": requests(0, 300)}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = hosts[1]
        .post(
            &format!("/v2/work/batch/{id}/requests"),
            &json!({"requests": requests(300, 400)}),
        )
        .await;
    assert_eq!(r.body["requestTotal"], 400, "{r:?}");
    let r = hosts[1]
        .post(&format!("/v2/work/batch/{id}/finalize"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    // A real-time job on either host overtakes what is still queued.
    for h in &hosts {
        let r = h
            .post("/v2/work/runsync", &json!({"input": {"ms": 1}}))
            .await;
        assert_eq!(r.body["status"], "COMPLETED", "{r:?}");
        let b = hosts[0].get(&format!("/v2/work/batch/{id}")).await.body;
        assert!(b["requestInQueue"].as_i64().unwrap() > 0, "{b}");
    }
    let started = Instant::now();
    let b = loop {
        let b = hosts[1].get(&format!("/v2/work/batch/{id}")).await.body;
        if b["requestCompleted"] == 400 {
            break b;
        }
        assert!(started.elapsed() < LONG, "the batch did not finish: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(b["requestInQueue"], 0, "{b}");
    assert_eq!(b["requestFailed"], 0, "{b}");
    let mut items = Vec::new();
    while items.len() < 400 {
        let r = hosts[0]
            .get(&format!(
                "/v2/work/batch/{id}/requests?offset={}&limit=150",
                items.len()
            ))
            .await;
        items.extend(r.body["requests"].as_array().unwrap().clone());
    }
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["output"]["slept_ms"], i as u64 % 10 + 5, "{item}");
    }
    let workers: std::collections::HashSet<&str> = items
        .iter()
        .map(|i| i["workerId"].as_str().unwrap_or_else(|| panic!("{i}")))
        .collect();
    assert!(
        workers.len() >= 2,
        "both hosts' workers ran requests: {workers:?}"
    );
}
