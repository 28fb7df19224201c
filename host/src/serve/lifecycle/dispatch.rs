//! The committer's view of who runs what ([`Dispatch`]): each endpoint's
//! workers with free slots, which endpoints' queues are known to be empty,
//! the low-priority jobs running against the cap, and the `/runsync` jobs
//! not written yet — handed to a worker at accept, or waiting in this
//! host's memory for one (see the parent module's doc) — with the order
//! they are due to be written in.
//!
//! It only decides and hands over; the writes are the committer's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{REWRITE_AFTER, WorkerLink};
use crate::store::{ClaimBy, ClaimedJob, Finish, NewJob, StoreError, now_ms};

/// A worker with room for `free` more jobs.
pub(super) struct Idle {
    pub link: Arc<WorkerLink>,
    pub free: usize,
}

/// A `/runsync` job not written yet.
pub(super) struct Unwritten {
    /// With `accepted_at` set (and `handed_at` once handed after its
    /// accept): the row is written as of then.
    pub job: NewJob,
    /// The worker it was handed to; None while it waits for one.
    pub by: Option<ClaimBy>,
    pub write_by: Instant,
    /// Its end, when it ended before its write (kept while a failed write
    /// waits to be tried again).
    pub end: Option<Finish>,
    /// Callers of `Jobs::persist` waiting for its write.
    pub persisted: Vec<oneshot::Sender<Result<(), StoreError>>>,
}

impl Unwritten {
    pub fn new(job: NewJob, by: Option<ClaimBy>, write_by: Instant) -> Self {
        Unwritten {
            job,
            by,
            write_by,
            end: None,
            persisted: Vec::new(),
        }
    }
}

#[derive(Default)]
pub(super) struct Dispatch {
    /// Workers with room, by endpoint, in the order they asked.
    pub idle: HashMap<String, Vec<Idle>>,
    /// Endpoints whose queue held nothing runnable at our last claim (and
    /// nothing was queued since): new jobs may skip the queue.
    pub drained: HashSet<String>,
    /// Low-priority jobs handed out by claims, by id (with their endpoint
    /// and worker): when one ends, the endpoint's cap has room again.
    pub low_running: HashMap<String, (String, String)>,
    /// `/runsync` jobs not written yet, by id.
    unwritten: HashMap<String, Unwritten>,
    /// Their ids by `write_by`, oldest first (an id may be here twice after
    /// a failed write; the map says which is current).
    write_order: VecDeque<(Instant, String)>,
    /// The ids of the unwritten jobs waiting for a worker, by endpoint,
    /// oldest first. They are older than every job in the endpoint's
    /// stored queue: whatever queues there goes behind them, written first
    /// ([`Dispatch::flush_waiting`]).
    waiting: HashMap<String, VecDeque<String>>,
    /// Endpoints whose count of waiting jobs changed since the last
    /// [`Dispatch::take_waiting_changes`].
    waiting_changed: HashSet<String>,
}

impl Dispatch {
    /// A free slot for a new job of `endpoint`, when it may skip the queue:
    /// nothing is queued for it, in the store or here.
    pub fn take_slot(&mut self, endpoint: &str) -> Option<Arc<WorkerLink>> {
        if !self.drained.contains(endpoint) || self.waiting.contains_key(endpoint) {
            return None;
        }
        self.free_slot(endpoint)
    }

    /// The worker with the most room: an endpoint's jobs spread over its
    /// workers (and their executor processes) instead of filling one.
    fn free_slot(&mut self, endpoint: &str) -> Option<Arc<WorkerLink>> {
        let idle = self.idle.get_mut(endpoint)?;
        let w = idle
            .iter_mut()
            .filter(|w| w.free > 0)
            .max_by_key(|w| w.free)?;
        w.free -= 1;
        Some(Arc::clone(&w.link))
    }

    pub fn free(&mut self, endpoint: &str, worker_id: &str, n: usize) {
        if let Some(w) = self
            .idle
            .get_mut(endpoint)
            .and_then(|v| v.iter_mut().find(|w| w.link.claim.worker_id == worker_id))
        {
            w.free += n;
        }
    }

    /// Whether a new job of `endpoint` that found no free slot may wait
    /// here for one: nothing is queued for it in the store.
    pub fn may_wait(&self, endpoint: &str) -> bool {
        self.drained.contains(endpoint) || self.waiting.contains_key(endpoint)
    }

    /// Keep `u` until it is written (or, waiting, handed to a worker).
    pub fn hold(&mut self, u: Unwritten) {
        if u.by.is_none() {
            self.waiting
                .entry(u.job.endpoint_id.clone())
                .or_default()
                .push_back(u.job.id.clone());
            self.waiting_changed.insert(u.job.endpoint_id.clone());
        }
        self.write_order.push_back((u.write_by, u.job.id.clone()));
        self.unwritten.insert(u.job.id.clone(), u);
    }

    /// Hand waiting jobs to workers with free slots, oldest first. They
    /// need no claim: nothing in the store is queued ahead of them.
    pub fn hand_waiting(&mut self) {
        let endpoints: Vec<String> = self.waiting.keys().cloned().collect();
        for endpoint in endpoints {
            while let Some(id) = self.waiting.get(&endpoint).and_then(|q| q.front()).cloned() {
                let Some(link) = self.free_slot(&endpoint) else {
                    break;
                };
                let u = self.unwritten.get_mut(&id).expect("a waiting job is held");
                u.job.handed_at = Some(now_ms());
                if link.jobs.send(ClaimedJob::handed(u.job.clone())).is_err() {
                    // The worker went away meanwhile (its Gone follows).
                    self.forget_worker(&endpoint, &link.claim.worker_id);
                    continue;
                }
                u.by = Some(link.claim.clone());
                self.pop_waiting(&endpoint);
            }
        }
    }

    fn pop_waiting(&mut self, endpoint: &str) -> Option<String> {
        let q = self.waiting.get_mut(endpoint)?;
        let id = q.pop_front();
        if q.is_empty() {
            self.waiting.remove(endpoint);
        }
        self.waiting_changed.insert(endpoint.to_string());
        id
    }

    /// A worker takes no more jobs.
    pub fn forget_worker(&mut self, endpoint: &str, worker_id: &str) {
        self.keep_idle(endpoint, |w| w.link.claim.worker_id != worker_id);
    }

    /// Keep only the idle workers of `endpoint` that `keep` accepts.
    pub fn keep_idle(&mut self, endpoint: &str, keep: impl FnMut(&Idle) -> bool) {
        if let Some(idle) = self.idle.get_mut(endpoint) {
            idle.retain(keep);
            if idle.is_empty() {
                self.idle.remove(endpoint);
            }
        }
    }

    /// Every job of `endpoint` waiting for a worker, oldest first, to be
    /// written to the stored queue now (something else queues behind
    /// them, or one of them is due).
    pub fn flush_waiting(&mut self, endpoint: &str) -> Vec<Unwritten> {
        let Some(ids) = self.waiting.remove(endpoint) else {
            return Vec::new();
        };
        self.waiting_changed.insert(endpoint.to_string());
        ids.into_iter()
            .filter_map(|id| self.unwritten.remove(&id))
            .collect()
    }

    /// The unwritten job `id`, if it is one.
    pub fn unwritten_mut(&mut self, id: &str) -> Option<&mut Unwritten> {
        self.unwritten.get_mut(id)
    }

    /// Unwritten jobs whose write failed: kept (with their ends) and tried
    /// again later; whoever waits for the write hears why. Waiting ones go
    /// back to the front of their endpoint's line, in order.
    pub fn write_later(&mut self, late: Vec<Unwritten>, e: &StoreError) {
        let mut back: HashMap<String, Vec<String>> = HashMap::new();
        for mut u in late {
            for reply in u.persisted.drain(..) {
                let _ = reply.send(Err(e.clone()));
            }
            u.write_by = Instant::now() + REWRITE_AFTER;
            if u.by.is_none() {
                back.entry(u.job.endpoint_id.clone())
                    .or_default()
                    .push(u.job.id.clone());
            }
            self.write_order.push_back((u.write_by, u.job.id.clone()));
            self.unwritten.insert(u.job.id.clone(), u);
        }
        for (endpoint, ids) in back {
            let q = self.waiting.entry(endpoint.clone()).or_default();
            for id in ids.into_iter().rev() {
                q.push_front(id);
            }
            self.waiting_changed.insert(endpoint);
        }
    }

    /// When the oldest unwritten job is due to be written.
    pub fn next_write(&self) -> Option<Instant> {
        self.write_order.front().map(|(at, _)| *at)
    }

    /// The unwritten jobs to write now: past `write_by`, or asked for. A
    /// waiting one takes every job waiting for its endpoint along, oldest
    /// first, so the stored queue keeps their order.
    pub fn due(&mut self, asked: &HashSet<String>) -> Vec<Unwritten> {
        let now = Instant::now();
        let mut ids: Vec<String> = asked.iter().cloned().collect();
        while let Some((at, _)) = self.write_order.front() {
            if *at > now {
                break;
            }
            let (at, id) = self.write_order.pop_front().expect("a front");
            if self.unwritten.get(&id).is_some_and(|u| u.write_by == at) {
                ids.push(id);
            }
        }
        let mut due = Vec::new();
        let mut endpoints: Vec<String> = Vec::new();
        for id in ids {
            let Some(u) = self.unwritten.get(&id) else {
                continue;
            };
            if u.by.is_some() {
                due.extend(self.unwritten.remove(&id));
            } else if !endpoints.contains(&u.job.endpoint_id) {
                endpoints.push(u.job.endpoint_id.clone());
            }
        }
        for endpoint in endpoints {
            due.extend(self.flush_waiting(&endpoint));
        }
        due
    }

    /// How many jobs wait here, for each endpoint whose count changed.
    pub fn take_waiting_changes(&mut self) -> Vec<(String, usize)> {
        self.waiting_changed
            .drain()
            .map(|e| {
                let n = self.waiting.get(&e).map_or(0, VecDeque::len);
                (e, n)
            })
            .collect()
    }
}
