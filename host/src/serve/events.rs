//! Completion notices inside one host process: a `/runsync` request waits
//! here for its job to become final instead of polling the database.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// Waiters for jobs to finish, by job id.
#[derive(Default)]
pub struct JobEvents {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>,
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

    /// The job became final: wake everyone waiting for it.
    pub fn finished(&self, job_id: &str) {
        let waiters = self.waiters.lock().expect("job events lock").remove(job_id);
        for tx in waiters.into_iter().flatten() {
            let _ = tx.send(());
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
