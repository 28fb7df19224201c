//! The "finished" event: every job that becomes final (completed, failed,
//! timed out, cancelled, purged, expired, lost past its retries) is
//! announced once, by the lifecycle owner ([`super::lifecycle::Jobs`]), to
//! the [`FinishedListener`]s registered at start: `/runsync` waiters
//! ([`Waiters`]), the webhook sender ([`WebhookWake`]) and the metrics
//! ([`super::meter::Meter`]). A cluster backend can forward the same
//! events to other hosts (their waiters subscribe the same way).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, oneshot};

use crate::store::FinalJob;

/// Subscribes to jobs becoming final. Called on the lifecycle's task: queue
/// work, don't block.
pub trait FinishedListener: Send + Sync {
    fn finished(&self, jobs: &[Arc<FinalJob>]);
}

/// `/runsync` requests waiting for their job, by job id.
#[derive(Default)]
pub struct Waiters {
    waiting: Mutex<HashMap<String, oneshot::Sender<Arc<FinalJob>>>>,
    /// Wake-ups from other hosts may have been missed: look at the store.
    pub recheck: Notify,
}

impl Waiters {
    /// Register before the job can possibly finish (before accepting it),
    /// so the event cannot be missed.
    pub fn wait_for(self: &Arc<Self>, job_id: &str) -> Waiter {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiters lock")
            .insert(job_id.to_string(), tx);
        Waiter {
            waiters: Arc::clone(self),
            job_id: job_id.to_string(),
            rx,
        }
    }
}

impl Waiters {
    pub fn is_waiting(&self, job_id: &str) -> bool {
        self.waiting
            .lock()
            .expect("waiters lock")
            .contains_key(job_id)
    }
}

impl FinishedListener for Waiters {
    fn finished(&self, jobs: &[Arc<FinalJob>]) {
        let mut waiting = self.waiting.lock().expect("waiters lock");
        if waiting.is_empty() {
            return;
        }
        for job in jobs {
            if let Some(tx) = waiting.remove(&job.id) {
                let _ = tx.send(Arc::clone(job));
            }
        }
    }
}

/// One registration; dropping it unregisters.
pub struct Waiter {
    waiters: Arc<Waiters>,
    job_id: String,
    rx: oneshot::Receiver<Arc<FinalJob>>,
}

impl Waiter {
    /// The job as it became final.
    pub async fn finished(&mut self) -> Option<Arc<FinalJob>> {
        (&mut self.rx).await.ok()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.waiters
            .waiting
            .lock()
            .expect("waiters lock")
            .remove(&self.job_id);
    }
}

/// Wakes the webhook sender when a finished job has a delivery due.
#[derive(Default)]
pub struct WebhookWake(pub Notify);

impl FinishedListener for WebhookWake {
    fn finished(&self, jobs: &[Arc<FinalJob>]) {
        if jobs.iter().any(|j| j.webhook_pending) {
            self.0.notify_one();
        }
    }
}
