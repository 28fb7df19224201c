//! The sweeper: queued jobs past their ttl become TIMED_OUT, final jobs
//! past their retention are deleted (once their webhook is settled), and
//! batches past theirs are deleted with their requests' jobs.

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
        let now = now_ms();
        match app
            .store
            .expire_ttl(now, app.config.retention.run.as_millis() as i64)
            .await
        {
            Ok(ids) => {
                for id in &ids {
                    app.ctx().events.finished(id);
                }
                if !ids.is_empty() {
                    app.ctx().webhooks.notify_one();
                }
            }
            Err(e) => tracing::warn!("expiring jobs past their ttl: {e}"),
        }
        if let Err(e) = app.store.purge_expired(now).await {
            tracing::warn!("purging expired jobs: {e}");
        }
        let batch_retention = app.config.batch.retention.as_millis() as i64;
        if let Err(e) = app.store.purge_batches(now, batch_retention).await {
            tracing::warn!("purging expired batches: {e}");
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
