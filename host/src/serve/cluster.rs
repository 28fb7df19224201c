//! Cluster mode: what a host does when other hosts share its store
//! (Postgres). Its heartbeat is the lease on the jobs it claimed; it
//! re-queues the jobs of hosts whose heartbeat stopped; it follows the
//! endpoints the other hosts create, change and delete (fetching their
//! handler versions from the store); and it acts on the other hosts'
//! wake-ups: jobs queued elsewhere are claimed by idle workers here, jobs
//! finished elsewhere answer the `/runsync` requests waiting here, and a
//! job cancelled elsewhere is stopped if it runs here.
//!
//! On a store one host has to itself (SQLite) none of this runs.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::App;
use crate::store::{Wakeup, now_ms};

/// How often the other hosts' endpoints are looked at again. Creating an
/// endpoint on one host makes it run everywhere within this time.
const ENDPOINT_SYNC_EVERY: Duration = Duration::from_millis(500);

/// Heartbeats: a few per dead-host time, so one slow beat is no death.
pub fn heartbeat_every(dead_after: Duration) -> Duration {
    (dead_after / 4).max(Duration::from_millis(100))
}

/// Start the cluster's loops (no-op for a store one host has alone).
pub fn start(app: &App) {
    if !app.store.shared() {
        return;
    }
    let stop = Arc::clone(&app.shutdown);
    tokio::spawn(heartbeats(app.clone(), Arc::clone(&stop)));
    tokio::spawn(follow_endpoints(app.clone(), Arc::clone(&stop)));
    if let Some(mut wakeups) = app.store.wakeups() {
        let app = app.clone();
        tokio::spawn(async move {
            let stopped = stop.notified();
            tokio::pin!(stopped);
            stopped.as_mut().enable();
            loop {
                let wake = tokio::select! {
                    _ = &mut stopped => return,
                    w = wakeups.recv() => w,
                };
                match wake {
                    None => return,
                    Some(Wakeup::Queued { endpoint_id }) => app.jobs.wake(&endpoint_id),
                    Some(Wakeup::Final {
                        endpoint_id,
                        job_id,
                        status,
                    }) => {
                        app.jobs
                            .finished_elsewhere(&endpoint_id, &job_id, status)
                            .await
                    }
                    Some(Wakeup::Reconnected) => {
                        for (endpoint, _) in app.pools.all() {
                            app.jobs.wake(&endpoint);
                        }
                        app.jobs.recheck_waiters();
                    }
                }
            }
        });
    }
}

/// Beat, and re-queue the jobs of hosts whose heartbeat stopped.
async fn heartbeats(app: App, shutdown: Arc<Notify>) {
    let dead_after = app.config.dead_host_after;
    let every = heartbeat_every(dead_after);
    let mut beats = 0u64;
    // Since when this host's beats have gone through. After the database
    // was away, every host's heartbeat is stale until it beats again: no
    // host is judged until all had a dead-host time to do so.
    let mut beating_since = tokio::time::Instant::now();
    loop {
        let stop = shutdown.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        let address = app.address();
        if let Err(e) = app
            .store
            .heartbeat(app.jobs.host_id(), &address, now_ms())
            .await
        {
            tracing::warn!("heartbeat: {e}");
            beating_since = tokio::time::Instant::now();
        }
        // Every other beat: a dead host's jobs come back within about
        // 1.5 dead-host times of its last beat.
        if beats % 2 == 1 && beating_since.elapsed() >= dead_after {
            match app.jobs.recover_orphans().await {
                Ok((0, 0)) => {}
                Ok((requeued, failed)) => tracing::warn!(
                    requeued,
                    failed,
                    "recovered the jobs of a host whose heartbeat stopped"
                ),
                Err(e) => tracing::warn!("recovering a dead host's jobs: {e}"),
            }
        }
        beats += 1;
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// Run every endpoint of the cluster here too, at its latest generation.
async fn follow_endpoints(app: App, shutdown: Arc<Notify>) {
    loop {
        let stop = shutdown.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if let Err(e) = sync_endpoints(&app).await {
            tracing::warn!("following the cluster's endpoints: {e}");
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(ENDPOINT_SYNC_EVERY) => {}
        }
    }
}

async fn sync_endpoints(app: &App) -> Result<(), crate::store::StoreError> {
    let endpoints = app.store.list_endpoints().await?;
    let mut live: HashSet<String> = HashSet::new();
    for e in endpoints {
        live.insert(e.id.clone());
        let current = app.pools.endpoint(&e.id).map(|p| p.generation);
        if current.is_some_and(|g| g >= e.generation) {
            continue;
        }
        if let Err(err) = app.handlers.ensure_local(&e.handler).await {
            tracing::warn!(endpoint = %e.id, "fetching handler {}: {err}", e.handler);
            continue;
        }
        if current.is_some() {
            // A hot swap made on another host: no job is handed to this
            // host's workers of the old version from now on.
            app.jobs.handler_changed(&e.id, &e.handler);
        }
        app.pools.apply(e);
    }
    for (id, _) in app.pools.all() {
        if !live.contains(&id) {
            app.pools.stop(&id).await;
        }
    }
    Ok(())
}
