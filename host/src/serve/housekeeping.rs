//! The sweeper: queued jobs past their ttl become TIMED_OUT, final jobs
//! past their retention are deleted (once their webhook is settled),
//! batches past theirs are deleted with their requests' jobs, and the log
//! table is kept within its age and size bounds. Expiry is a
//! lifecycle transition, so it goes through [`super::Jobs`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::App;
use crate::store::now_ms;

const SWEEP_EVERY: Duration = Duration::from_millis(500);
/// Trimming the logs scans an index; it need not be as eager.
const TRIM_LOGS_EVERY: u32 = 120;

pub async fn run(app: App, shutdown: Arc<Notify>) {
    let mut sweeps = 0u32;
    loop {
        sweeps = sweeps.wrapping_add(1);
        if sweeps % TRIM_LOGS_EVERY == 1
            && let Err(e) = app.ctx().logs.trim().await
        {
            tracing::warn!("trimming the logs: {e}");
        }
        let stop = shutdown.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if let Err(e) = app.jobs.expire_ttl().await {
            tracing::warn!("expiring jobs past their ttl: {e}");
        }
        if let Err(e) = app.store.purge_expired(now_ms()).await {
            tracing::warn!("purging expired jobs: {e}");
        }
        let batch_retention = app.config.batch.retention.as_millis() as i64;
        if let Err(e) = app.store.purge_batches(now_ms(), batch_retention).await {
            tracing::warn!("purging expired batches: {e}");
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
