//! The sweeper: queued jobs past their ttl become TIMED_OUT, and final
//! jobs past their retention are deleted (once their webhook is settled).
//! Expiry is a lifecycle transition, so it goes through [`super::Jobs`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::App;
use crate::store::now_ms;

const SWEEP_EVERY: Duration = Duration::from_millis(500);

pub async fn run(app: App, shutdown: Arc<Notify>) {
    loop {
        let stop = shutdown.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if let Err(e) = app.jobs.expire_ttl().await {
            tracing::warn!("expiring jobs past their ttl: {e}");
        }
        if let Err(e) = app.store.purge_expired(now_ms()).await {
            tracing::warn!("purging expired jobs: {e}");
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
