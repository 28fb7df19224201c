//! Job notices inside one host process: a `/runsync` request waits here
//! for its job to become final instead of polling the database, and a
//! streaming request ([`JobEvents::watch`]) gets the job's stream chunks as
//! soon as they are stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// A batch of stored stream chunks, shared by a job's watchers.
type Chunks = Arc<[String]>;

/// Waiters for jobs to finish, and watchers of their stream, by job id.
#[derive(Default)]
pub struct JobEvents {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
    watchers: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Chunks>>>>,
}

impl JobEvents {
    /// Register before the job can possibly finish (before enqueueing it),
    /// so the notice cannot be missed.
    pub fn subscribe(&self, job_id: &str) -> Waiter<'_> {
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .expect("job events lock")
            .entry(job_id.to_string())
            .or_default()
            .push(tx);
        Waiter {
            events: self,
            job_id: job_id.to_string(),
            rx,
        }
    }

    /// The job became final: wake everyone waiting for it, and end its
    /// watchers' chunk streams (every chunk was stored, and published, before
    /// the final status).
    pub fn finished(&self, job_id: &str) {
        let waiters = self.waiters.lock().expect("job events lock").remove(job_id);
        for tx in waiters.into_iter().flatten() {
            let _ = tx.send(());
        }
        self.watchers
            .lock()
            .expect("job watchers lock")
            .remove(job_id);
    }

    /// Watch a job's stream chunks. Register before the job is queued, so
    /// no chunk is missed.
    pub fn watch(self: &Arc<Self>, job_id: &str) -> Watch {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers
            .lock()
            .expect("job watchers lock")
            .entry(job_id.to_string())
            .or_default()
            .push(tx);
        Watch {
            events: Arc::clone(self),
            job_id: job_id.to_string(),
            rx,
        }
    }

    /// Stream chunks of a job were stored: hand them to its watchers.
    pub fn chunks_stored(&self, job_id: &str, chunks: &[String]) {
        let mut map = self.watchers.lock().expect("job watchers lock");
        if let Some(list) = map.get_mut(job_id) {
            let batch: Chunks = chunks.into();
            list.retain(|tx| tx.send(Arc::clone(&batch)).is_ok());
            if list.is_empty() {
                map.remove(job_id);
            }
        }
    }
}

/// A job's stream chunks as they are stored; ends when the job is final.
pub struct Watch {
    events: Arc<JobEvents>,
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
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.rx.close();
        let mut map = self.events.watchers.lock().expect("job watchers lock");
        if let Some(list) = map.get_mut(&self.job_id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                map.remove(&self.job_id);
            }
        }
    }
}

/// One registration; dropping it unregisters.
pub struct Waiter<'a> {
    events: &'a JobEvents,
    job_id: String,
    rx: oneshot::Receiver<()>,
}

impl Waiter<'_> {
    /// Resolves when the job finished (or immediately if it already did
    /// after this registration).
    pub async fn finished(&mut self) {
        let _ = (&mut self.rx).await;
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut map = self.events.waiters.lock().expect("job events lock");
        if let Some(list) = map.get_mut(&self.job_id) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                map.remove(&self.job_id);
            }
        }
    }
}
