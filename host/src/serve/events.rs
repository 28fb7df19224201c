//! The "finished" event: every job that becomes final (completed, failed,
//! timed out, cancelled, purged, expired, lost past its retries) is
//! announced once, by the lifecycle owner ([`super::lifecycle::Jobs`]), to
//! the [`FinishedListener`]s registered at start: `/runsync` waiters
//! ([`Waiters`]), the webhook sender ([`WebhookWake`]) and the metrics
//! ([`super::meter::Meter`]). A cluster backend can forward the same
//! events to other hosts (their waiters subscribe the same way).
//!
//! Also a job's stream chunks as they are stored ([`Watchers`]): a
//! streaming request (the OpenAI routes' server-sent events) gets them as
//! soon as the worker's persister wrote them, and its watch ends with the
//! finished event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc, oneshot};

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

/// A batch of stored stream chunks, shared by a job's watchers.
pub type Chunks = Arc<[String]>;

/// Watchers of jobs' stream chunks, by job id.
#[derive(Default)]
pub struct Watchers {
    watching: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Chunks>>>>,
}

impl Watchers {
    /// Watch a job's stream chunks. Register before the job is accepted, so
    /// no chunk is missed.
    pub fn watch(self: &Arc<Self>, job_id: &str) -> Watch {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watching
            .lock()
            .expect("watchers lock")
            .entry(job_id.to_string())
            .or_default()
            .push(tx);
        Watch {
            watchers: Arc::clone(self),
            job_id: job_id.to_string(),
            rx,
        }
    }

    /// Stream chunks of a job were stored: hand them to its watchers.
    pub fn chunks_stored(&self, job_id: &str, chunks: &[(i64, String)]) {
        let mut map = self.watching.lock().expect("watchers lock");
        if map.is_empty() {
            return;
        }
        if let Some(list) = map.get_mut(job_id) {
            let batch: Chunks = chunks.iter().map(|(_, c)| c.clone()).collect();
            list.retain(|tx| tx.send(Arc::clone(&batch)).is_ok());
            if list.is_empty() {
                map.remove(job_id);
            }
        }
    }
}

impl FinishedListener for Watchers {
    /// Every chunk of a final job was stored, and handed out, before its
    /// final status: end its watches.
    fn finished(&self, jobs: &[Arc<FinalJob>]) {
        let mut map = self.watching.lock().expect("watchers lock");
        if map.is_empty() {
            return;
        }
        for job in jobs {
            map.remove(&job.id);
        }
    }
}

/// A job's stream chunks as they are stored; ends when the job is final.
pub struct Watch {
    watchers: Arc<Watchers>,
    job_id: String,
    rx: mpsc::UnboundedReceiver<Chunks>,
}

impl Watch {
    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The next batch of chunks, in order; `None` once the job is final
    /// (or was re-queued away from this host's notice: callers also look
    /// at the job now and then).
    pub async fn next(&mut self) -> Option<Chunks> {
        self.rx.recv().await
    }

    /// A batch already handed over, without waiting.
    pub fn try_next(&mut self) -> Option<Chunks> {
        self.rx.try_recv().ok()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.rx.close();
        let mut map = self.watchers.watching.lock().expect("watchers lock");
        if let Some(list) = map.get_mut(&self.job_id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                map.remove(&self.job_id);
            }
        }
    }
}
