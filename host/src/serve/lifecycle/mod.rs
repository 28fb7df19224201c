//! The one owner of a job's lifecycle on this host ([`Jobs`]): accept,
//! hand-off to a worker, finish, cancel, retry, purge, expiry and loss all
//! go through it, and every transition to a final state is announced once as
//! a "finished" event to the [`FinishedListener`]s (`/runsync` waiters,
//! webhooks, metrics).
//!
//! The hot path is one task, the committer (run beside the store's writes:
//! [`Store::spawn_committer`]), that takes every accept and every finish in
//! arrival order and commits what arrived meanwhile
//! together (group commit: one statement for all accepts, one for all
//! finishes, each caller answered after its commit). It also owns the
//! hand-off: workers tell it how many jobs they can take, and a new job for
//! an endpoint whose queue is known to be empty goes straight to an idle
//! worker, stored IN_PROGRESS under that worker in the same write (no
//! queue poll, no second write to claim it). Otherwise jobs queue and idle
//! workers claim in batches as they free up, oldest first.
//!
//! A batch's requests enter the queue when it is finalized and leave it
//! when it is cancelled through here too ([`Jobs::finalize_batch`],
//! [`Jobs::cancel_batch`]): they are low-priority jobs, which every claim
//! takes only when no normal job waits (the store's claim order), so batch
//! work runs on capacity real-time jobs leave idle, on every host of a
//! cluster alike.
//!
//! Batch work also never holds every slot: a worker's claim takes
//! low-priority jobs only while this host runs fewer of the endpoint's
//! than its cap ([`WorkerLink::low_cap`]: every slot of the endpoint's
//! `max_workers` but one), so a real-time job arriving while a batch runs
//! finds a free slot instead of waiting for a batch request to end. A
//! low-priority job is never handed straight to a worker (the claim counts
//! it against the cap), and when one ends its endpoint's idle workers look
//! at the queue again.
//!
//! Claims name the worker and this host ([`ClaimBy`]), so a store shared by
//! several hosts can re-queue a dead host's jobs; the direct hand-off is a
//! local shortcut over the same claim rule.
//!
//! A `/runsync` job is written once, when it ends (its accept and its end
//! in one commit), instead of at accept, at its claim and at its end, when
//! it gets a worker within [`WRITE_HANDED_AFTER`] of its accept: handed
//! straight to an idle one, or waiting in this host's memory for a slot to
//! free or a worker to start (a scale from zero). Its client holds the
//! request open, nobody else knows its id yet, and its only 2xx answer is
//! the final one, sent after that commit, so what a 2xx promises still
//! survives a killed host. A job waits here only while nothing is queued
//! for its endpoint in the store, and whatever queues there later goes
//! behind it (what waits is written to the queue first), so the queue's
//! order holds; the supervisor counts waiting jobs as queued.
//!
//! Past [`WRITE_HANDED_AFTER`] an unwritten job is written as any other
//! job: IN_PROGRESS if it runs, else IN_QUEUE (with every job waiting for
//! its endpoint). It is written earlier before it streams or reports
//! progress, before its wait ends without a result, before anything acts on
//! it by id (cancel, loss of its executor, a worker giving it back: see
//! [`Jobs::persist`]), and before a purge of its endpoint's queue. Jobs with
//! a webhook, low-priority ones and every job of a shared (cluster) store
//! are written at accept.

mod dispatch;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::events::{FinishedListener, Waiters, Watch, Watchers};
use super::pool::{PoolShared, Retention};
use crate::executor::ExecutorProcess;
use crate::store::{
    Batch, BatchCancelled, BatchOutcome, BatchRecord, BatchRefusal, CancelOutcome, ClaimBy,
    ClaimRequest, ClaimedJob, FinalJob, Finish, JobRecord, JobStatus, LostJobOutcome, NewJob,
    RetryOutcome, Store, StoreError, now_ms,
};
use dispatch::{Dispatch, Idle, Unwritten};

/// Most operations one group commit takes.
const BATCH: usize = 1024;

/// How long after its accept a `/runsync` job is written, if it has not
/// ended by then (most end well before, and are written once).
const WRITE_HANDED_AFTER: Duration = Duration::from_millis(100);

/// An unwritten job whose write failed is tried again this much later
/// (longer than [`WRITE_HANDED_AFTER`], so the write order stays by time).
const REWRITE_AFTER: Duration = Duration::from_millis(250);

/// A worker as the committer hands it jobs.
pub struct WorkerLink {
    pub endpoint: String,
    pub claim: ClaimBy,
    /// Low-priority jobs of the endpoint this host may run at once.
    pub low_cap: usize,
    pub jobs: mpsc::UnboundedSender<ClaimedJob>,
}

/// What `/runsync` got within its wait.
pub enum SyncAnswer {
    Finished(Arc<FinalJob>),
    /// Not final yet: the client polls `/status` with the id.
    Pending(JobStatus),
}

enum Op {
    Accept {
        job: NewJob,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Finish {
        endpoint: String,
        done: Finish,
    },
    /// Results whose write failed because a shared database was
    /// unreachable, tried again (their slots were freed the first time).
    Refinish {
        done: Vec<Finish>,
    },
    /// A worker can take `free` more jobs.
    Ready {
        link: Arc<WorkerLink>,
        free: usize,
    },
    /// Write this job now if it is not written yet (handed to a worker,
    /// or waiting here for one: then with every job waiting for its
    /// endpoint); answer once it is durable.
    Persist {
        id: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Write the jobs of `endpoint` waiting here for a worker to its
    /// stored queue; answer once they are durable.
    PersistWaiting {
        endpoint: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// A worker takes no more jobs (retiring, paused, dead).
    Gone {
        endpoint: String,
        worker_id: String,
    },
    /// Jobs may have been queued for the endpoint outside the committer.
    Wake {
        endpoint: String,
    },
    /// The endpoint now runs `handler`: workers of another version take no
    /// more handed-over jobs (a claim checks the version itself).
    Swapped {
        endpoint: String,
        handler: String,
    },
}

/// The executors running this host's jobs, by job id (for cancels).
#[derive(Default)]
pub struct RunningJobs(Mutex<HashMap<String, Arc<ExecutorProcess>>>);

impl RunningJobs {
    pub fn insert(&self, id: &str, exec: &Arc<ExecutorProcess>) {
        self.0
            .lock()
            .expect("running jobs lock")
            .insert(id.to_string(), Arc::clone(exec));
    }

    pub fn remove(&self, id: &str) {
        self.0.lock().expect("running jobs lock").remove(id);
    }

    /// Tell the executor running `id` (if on this host) to stop it; it then
    /// reports the job CANCELLED.
    pub fn cancel(&self, id: &str) -> bool {
        let exec = self.0.lock().expect("running jobs lock").get(id).cloned();
        match exec {
            Some(exec) => {
                let id = id.to_string();
                tokio::spawn(async move { exec.cancel(&id).await });
                true
            }
            None => false,
        }
    }
}

/// The lifecycle owner. Cheap to share (`Arc`).
pub struct Jobs {
    store: Store,
    host_id: String,
    retention: Retention,
    ops: mpsc::UnboundedSender<Op>,
    waiters: Arc<Waiters>,
    /// Streaming requests watching their job's chunks.
    pub watchers: Arc<Watchers>,
    listeners: Vec<Arc<dyn FinishedListener>>,
    /// Cancel signals of the jobs running on this host.
    pub running: RunningJobs,
    /// Each endpoint's pool, whose supervisor is woken when jobs queue.
    supervisors: Mutex<HashMap<String, Arc<PoolShared>>>,
}

impl Jobs {
    /// Start the committer. `listeners` get every finished event, after the
    /// `/runsync` waiters.
    pub fn start(
        store: Store,
        host_id: String,
        retention: Retention,
        listeners: Vec<Arc<dyn FinishedListener>>,
    ) -> Arc<Jobs> {
        let (tx, rx) = mpsc::unbounded_channel();
        let waiters = Arc::new(Waiters::default());
        let watchers = Arc::new(Watchers::default());
        let mut all: Vec<Arc<dyn FinishedListener>> =
            vec![Arc::clone(&waiters) as _, Arc::clone(&watchers) as _];
        all.extend(listeners);
        let jobs = Arc::new(Jobs {
            store,
            host_id,
            retention,
            ops: tx,
            waiters,
            watchers,
            listeners: all,
            running: RunningJobs::default(),
            supervisors: Mutex::default(),
        });
        jobs.store
            .spawn_committer(commit_loop(Arc::downgrade(&jobs), rx));
        jobs
    }

    pub fn host_id(&self) -> &str {
        &self.host_id
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    fn send(&self, op: Op) {
        // The committer lives as long as `Jobs`.
        let _ = self.ops.send(op);
    }

    /// The endpoint's pool, whose supervisor to wake when jobs queue for it.
    pub fn watch_endpoint(&self, endpoint: &str, supervisor: Arc<PoolShared>) {
        self.supervisors
            .lock()
            .expect("supervisors lock")
            .insert(endpoint.to_string(), supervisor);
    }

    pub fn unwatch_endpoint(&self, endpoint: &str) {
        self.supervisors
            .lock()
            .expect("supervisors lock")
            .remove(endpoint);
    }

    /// Wake the endpoint's supervisor: `queued` jobs were just queued.
    fn wake_supervisor(&self, endpoint: &str, queued: usize) {
        if let Some(p) = self
            .supervisors
            .lock()
            .expect("supervisors lock")
            .get(endpoint)
        {
            p.queued_hint
                .fetch_add(queued, std::sync::atomic::Ordering::SeqCst);
            p.wake.notify_waiters();
        }
    }

    /// Jobs may have been queued for `endpoint` (retry, re-queue): idle
    /// workers look again and the supervisor re-plans.
    pub fn wake(&self, endpoint: &str) {
        self.send(Op::Wake {
            endpoint: endpoint.to_string(),
        });
        self.wake_supervisor(endpoint, 0);
    }

    /// `endpoint` was switched to `handler` (hot swap): from now on no job is
    /// handed to a worker of another version, even before its supervisor
    /// tells it to drain. Sent before the switch is answered, so every job
    /// accepted after the answer runs the new version.
    pub fn handler_changed(&self, endpoint: &str, handler: &str) {
        self.send(Op::Swapped {
            endpoint: endpoint.to_string(),
            handler: handler.to_string(),
        });
    }

    /// Let idle workers of `endpoint` look at its queue again.
    pub fn recheck(&self, endpoint: &str) {
        self.send(Op::Wake {
            endpoint: endpoint.to_string(),
        });
    }

    /// Accept a job: returns once it is durable (IN_QUEUE, or IN_PROGRESS on
    /// an idle worker).
    pub async fn submit(&self, job: NewJob) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Accept { job, reply });
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Database("the host is shutting down".into())))
    }

    /// Accept a job whose stream chunks the caller reads as they are stored
    /// (the watch is registered first, so no chunk is missed).
    pub async fn submit_watched(&self, job: NewJob) -> Result<Watch, StoreError> {
        let watch = self.watchers.watch(&job.id);
        self.submit(job).await?;
        Ok(watch)
    }

    /// Accept a job and wait up to `wait` for it to finish.
    pub async fn submit_and_wait(
        &self,
        job: NewJob,
        wait: Duration,
    ) -> Result<SyncAnswer, StoreError> {
        let mut waiter = self.waiters.wait_for(&job.id);
        let (endpoint, id) = (job.endpoint_id.clone(), job.id.clone());
        self.submit(job).await?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let recheck = self.waiters.recheck.notified();
            let finished = tokio::select! {
                f = waiter.finished() => f,
                _ = tokio::time::sleep_until(deadline) => None,
                _ = recheck => match self.store.get_job(&endpoint, &id).await {
                    Ok(Some(r)) if r.status.is_final() => Some(Arc::new(FinalJob::of(&r))),
                    _ => continue,
                },
            };
            if let Some(job) = finished {
                return Ok(SyncAnswer::Finished(job));
            }
            break;
        }
        // Not final in time (or the event was lost with a dying host
        // process): the store has the truth, once the job is written.
        self.persist(&id).await?;
        match self.store.get_job(&endpoint, &id).await? {
            Some(r) if r.status.is_final() => Ok(SyncAnswer::Finished(Arc::new(FinalJob::of(&r)))),
            Some(r) => Ok(SyncAnswer::Pending(r.status)),
            None => Ok(SyncAnswer::Pending(JobStatus::InQueue)),
        }
    }

    pub async fn get(&self, endpoint: &str, id: &str) -> Result<Option<JobRecord>, StoreError> {
        self.store.get_job(endpoint, id).await
    }

    /// Tell every listener that these jobs became final.
    fn announce(&self, jobs: Vec<FinalJob>) {
        if jobs.is_empty() {
            return;
        }
        let jobs: Vec<Arc<FinalJob>> = jobs.into_iter().map(Arc::new).collect();
        for l in &self.listeners {
            l.finished(&jobs);
        }
    }

    /// Make sure `id` is written, if it is a `/runsync` job not written yet
    /// (handed to a worker, or waiting here for one: see the module doc);
    /// other jobs are written already. Returns once it is durable.
    pub async fn persist(&self, id: &str) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.send(Op::Persist {
            id: id.to_string(),
            reply,
        });
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Database("the host is shutting down".into())))
    }

    /// Whether an accepted `job`, handed to a worker, may be written only
    /// when it ends (see the module doc).
    fn written_at_end(&self, job: &NewJob) -> bool {
        job.sync && job.webhook.is_none() && !job.low_priority && !self.store.shared()
    }

    pub async fn cancel(&self, endpoint: &str, id: &str) -> Result<CancelOutcome, StoreError> {
        self.persist(id).await?;
        let outcome = self
            .store
            .cancel(
                endpoint,
                id,
                now_ms(),
                self.retention.run.as_millis() as i64,
            )
            .await?;
        if let CancelOutcome::Cancelled { was_running, job } = &outcome {
            if *was_running {
                self.running.cancel(id);
            }
            self.announce(vec![job.clone()]);
        }
        Ok(outcome)
    }

    pub async fn retry(&self, endpoint: &str, id: &str) -> Result<RetryOutcome, StoreError> {
        let outcome = self.store.retry(endpoint, id, now_ms()).await?;
        if matches!(outcome, RetryOutcome::Requeued) {
            self.wake(endpoint);
        }
        Ok(outcome)
    }

    /// Cancel every queued job of an endpoint; returns how many.
    pub async fn purge_queue(&self, endpoint: &str) -> Result<usize, StoreError> {
        // Those waiting here for a worker are queued too.
        let (reply, rx) = oneshot::channel();
        self.send(Op::PersistWaiting {
            endpoint: endpoint.to_string(),
            reply,
        });
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Database("the host is shutting down".into())))?;
        let purged = self
            .store
            .purge_queue(
                endpoint,
                "removed from the queue by purge-queue before it started",
                now_ms(),
                self.retention.run.as_millis() as i64,
            )
            .await?;
        let n = purged.len();
        self.announce(purged);
        Ok(n)
    }

    /// Lock a draft batch and queue its requests behind every normal job
    /// (they wait at most `ttl_ms` in the queue); idle workers claim them
    /// and the supervisor scales for them.
    pub async fn finalize_batch(
        &self,
        endpoint: &str,
        batch: &str,
        ttl_ms: i64,
    ) -> Result<Result<BatchRecord, BatchRefusal>, StoreError> {
        let outcome = self
            .store
            .finalize_batch(endpoint, batch, ttl_ms, now_ms())
            .await?;
        if let Ok(b) = &outcome {
            self.send(Op::Wake {
                endpoint: endpoint.to_string(),
            });
            self.wake_supervisor(endpoint, b.counts.in_queue.max(0) as usize);
        }
        Ok(outcome)
    }

    /// Cancel a batch: its queued requests end CANCELLED (announced like
    /// any other final job); running ones finish.
    pub async fn cancel_batch(
        &self,
        endpoint: &str,
        batch: &str,
    ) -> Result<Result<BatchRecord, BatchRefusal>, StoreError> {
        let outcome = self
            .store
            .cancel_batch(
                endpoint,
                batch,
                self.retention.run.as_millis() as i64,
                now_ms(),
            )
            .await?;
        Ok(outcome.map(|BatchCancelled { batch, cancelled }| {
            self.announce(cancelled);
            batch
        }))
    }

    /// Queued jobs past their ttl become TIMED_OUT.
    pub async fn expire_ttl(&self) -> Result<usize, StoreError> {
        let expired = self
            .store
            .expire_ttl(now_ms(), self.retention.run.as_millis() as i64)
            .await?;
        let n = expired.len();
        self.announce(expired);
        Ok(n)
    }

    /// At start: jobs a previous host process left running are re-queued
    /// (or failed, their retries spent). Returns (re-queued, failed).
    pub async fn recover_orphans(&self) -> Result<(usize, usize), StoreError> {
        let (requeued, failed) = self
            .store
            .recover_orphans(
                &self.host_id,
                now_ms(),
                self.retention.run.as_millis() as i64,
            )
            .await?;
        let counts = (requeued.len(), failed.len());
        self.announce(failed);
        Ok(counts)
    }

    /// The worker running `job` was lost (its executor died): back in the
    /// queue with a retry counted, or failed when its retries are spent.
    /// Retried until the store answers, since a job left IN_PROGRESS would
    /// only come back at the next host start. Some(true) when re-queued,
    /// Some(false) when it failed, None when it was no longer this
    /// worker's (or the store never answered).
    pub async fn lost(
        &self,
        endpoint: &str,
        worker_id: &str,
        job: &ClaimedJob,
        reason: &str,
    ) -> Option<bool> {
        let retention = self.retention.for_job_ms(job.sync);
        if let Err(e) = self.persist(&job.id).await {
            tracing::warn!(job = %job.id, "writing a lost job before re-queueing it: {e}");
        }
        let mut backoff = Duration::from_millis(50);
        for attempt in 0.. {
            match self
                .store
                .requeue_lost(&job.id, worker_id, reason, now_ms(), retention)
                .await
            {
                Ok(LostJobOutcome::Requeued) => {
                    tracing::warn!(job = %job.id, "{reason}; re-queued");
                    self.wake(endpoint);
                    return Some(true);
                }
                Ok(LostJobOutcome::Failed(final_job)) => {
                    tracing::warn!(job = %job.id, "{reason}; its retries are spent: failed");
                    self.announce(vec![final_job]);
                    return Some(false);
                }
                Ok(LostJobOutcome::NotHeld) => return None,
                Err(e) if attempt < 20 => {
                    tracing::warn!(job = %job.id, "re-queueing a lost job: {e}; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(job = %job.id, "giving up re-queueing a lost job: {e}");
                    return None;
                }
            }
        }
        None
    }

    /// A job became final on another host of the cluster: the `/runsync`
    /// waiting for it here answers, and if it was cancelled while running
    /// here, it stops.
    pub async fn finished_elsewhere(&self, endpoint: &str, id: &str, status: JobStatus) {
        if status == JobStatus::Cancelled {
            self.running.cancel(id);
        }
        if !self.waiters.is_waiting(id) {
            return;
        }
        match self.store.get_job(endpoint, id).await {
            Ok(Some(r)) if r.status.is_final() => {
                self.waiters.finished(&[Arc::new(FinalJob::of(&r))]);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(job = %id, "reading a job finished elsewhere: {e}"),
        }
    }

    /// Wake-ups may have been missed (the database was away): the
    /// `/runsync` requests waiting here look at their jobs again.
    pub fn recheck_waiters(&self) {
        self.waiters.recheck.notify_waiters();
    }

    /// A worker can take `free` more jobs.
    pub fn ready(&self, link: &Arc<WorkerLink>, free: usize) {
        self.send(Op::Ready {
            link: Arc::clone(link),
            free,
        });
    }

    /// A worker takes no more jobs.
    pub fn gone(&self, link: &WorkerLink) {
        self.send(Op::Gone {
            endpoint: link.endpoint.clone(),
            worker_id: link.claim.worker_id.clone(),
        });
    }

    /// A claimed job of `link`'s worker ended; its slot is free again.
    pub fn finish(&self, link: &WorkerLink, done: Finish) {
        self.send(Op::Finish {
            endpoint: link.endpoint.clone(),
            done,
        });
    }

    /// A job handed to a worker that no longer takes jobs goes back to the
    /// queue untouched.
    pub async fn give_back(&self, endpoint: &str, worker_id: &str, job: &ClaimedJob) {
        if let Err(e) = self.persist(&job.id).await {
            tracing::warn!(job = %job.id, "writing a job given back to the queue: {e}");
        }
        self.requeue(endpoint, worker_id, job).await;
    }

    /// `give_back` for a written job (the committer's own, which must not
    /// wait for itself).
    async fn requeue(&self, endpoint: &str, worker_id: &str, job: &ClaimedJob) {
        match self.store.unclaim(&job.id, worker_id).await {
            Ok(_) => self.wake(endpoint),
            Err(e) => tracing::warn!(job = %job.id, "giving a job back to the queue: {e}"),
        }
    }
}

async fn commit_loop(jobs: std::sync::Weak<Jobs>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut dispatch = Dispatch::default();
    let mut ops = Vec::with_capacity(BATCH);
    loop {
        // Wake for the next op, or when a handed job is due to be written.
        let next = match dispatch.next_write() {
            Some(at) => match tokio::time::timeout_at(at.into(), rx.recv()).await {
                Ok(op) => op.map(Some),
                Err(_) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        let Some(first) = next else { return };
        ops.extend(first);
        while ops.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let Some(jobs) = jobs.upgrade() else { return };
        jobs.commit(&mut dispatch, std::mem::take(&mut ops)).await;
    }
}

impl Jobs {
    /// One group commit: every finish and accept that arrived meanwhile, and
    /// claims for the idle workers of endpoints that may have queued jobs,
    /// in one write.
    async fn commit(&self, d: &mut Dispatch, ops: Vec<Op>) {
        let mut accepts: Vec<(NewJob, Option<ClaimBy>)> = Vec::new();
        let mut replies: Vec<oneshot::Sender<Result<(), StoreError>>> = Vec::new();
        let mut handed: Vec<Option<Arc<WorkerLink>>> = Vec::new();
        let mut finishes: Vec<Finish> = Vec::new();
        let mut queued_for: HashMap<String, usize> = HashMap::new();
        // Jobs now waiting here for a worker, by endpoint.
        let mut waiting_for: HashMap<String, usize> = HashMap::new();
        let mut persist: HashSet<String> = HashSet::new();
        // Waiting jobs written to the stored queue in this write, ahead of
        // what queues behind them.
        let mut flushed: Vec<Unwritten> = Vec::new();
        for op in ops {
            match op {
                Op::Accept { mut job, reply } => {
                    // Straight to an idle worker when nothing is queued for
                    // the endpoint; else behind what is queued. A
                    // low-priority job always queues: the claim below (in
                    // this same write) counts it against the cap.
                    let endpoint = job.endpoint_id.clone();
                    let to = if job.low_priority {
                        None
                    } else {
                        d.take_slot(&endpoint)
                    };
                    if self.written_at_end(&job) && (to.is_some() || d.may_wait(&endpoint)) {
                        // Written when it ends, or once it has waited or run
                        // a while (see the module doc); its client waits.
                        job.accepted_at = Some(now_ms());
                        let write_by = Instant::now() + WRITE_HANDED_AFTER.min(ttl(&job));
                        let by = match &to {
                            Some(link) => {
                                if link.jobs.send(ClaimedJob::handed(job.clone())).is_err() {
                                    // The worker went away meanwhile.
                                    d.forget_worker(&endpoint, &link.claim.worker_id);
                                    if !d.may_wait(&endpoint) {
                                        queue(d, &mut flushed, &mut queued_for, &endpoint, 1);
                                        accepts.push((job, None));
                                        handed.push(None);
                                        replies.push(reply);
                                        continue;
                                    }
                                    *waiting_for.entry(endpoint).or_default() += 1;
                                    None
                                } else {
                                    Some(link.claim.clone())
                                }
                            }
                            None => {
                                *waiting_for.entry(endpoint).or_default() += 1;
                                None
                            }
                        };
                        let _ = reply.send(Ok(()));
                        d.hold(Unwritten::new(job, by, write_by));
                        continue;
                    }
                    if to.is_none() {
                        queue(d, &mut flushed, &mut queued_for, &endpoint, 1);
                    }
                    accepts.push((job, to.as_ref().map(|l| l.claim.clone())));
                    handed.push(to);
                    replies.push(reply);
                }
                Op::Finish { endpoint, done } => {
                    // The slot is free from now on (in op order: a later
                    // Gone/Ready of the same worker accounts for it).
                    d.free(&endpoint, &done.worker_id, 1);
                    if d.low_running.remove(&done.id).is_some() {
                        d.drained.remove(&endpoint);
                    }
                    match d.unwritten_mut(&done.id) {
                        // Its accept and its end go in this write.
                        Some(u) => {
                            u.end = Some(done);
                            persist.insert(u.job.id.clone());
                        }
                        None => finishes.push(done),
                    }
                }
                Op::Persist { id, reply } => match d.unwritten_mut(&id) {
                    Some(u) => {
                        u.persisted.push(reply);
                        persist.insert(id);
                    }
                    None => {
                        let _ = reply.send(Ok(()));
                    }
                },
                Op::PersistWaiting { endpoint, reply } => {
                    let before = flushed.len();
                    queue(d, &mut flushed, &mut queued_for, &endpoint, 0);
                    // Answered with the write of the last of them.
                    match flushed[before..].last_mut() {
                        Some(u) => u.persisted.push(reply),
                        None => {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
                Op::Ready { link, free } => {
                    let endpoint = link.endpoint.clone();
                    let idle = d.idle.entry(endpoint.clone()).or_default();
                    match idle
                        .iter_mut()
                        .find(|w| w.link.claim.worker_id == link.claim.worker_id)
                    {
                        Some(w) => w.free += free,
                        None => idle.push(Idle { link, free }),
                    }
                    // A new worker (maybe of a new handler version) looks
                    // at the queue before taking jobs past it.
                    d.drained.remove(&endpoint);
                }
                Op::Gone {
                    endpoint,
                    worker_id,
                } => {
                    // Its low-priority jobs end elsewhere (re-queued, lost).
                    d.low_running.retain(|_, (_, w)| *w != worker_id);
                    d.forget_worker(&endpoint, &worker_id);
                }
                Op::Wake { endpoint } => {
                    // Jobs may have entered the stored queue behind our
                    // back: what waits here goes there too, and the store's
                    // order decides.
                    queue(d, &mut flushed, &mut queued_for, &endpoint, 0);
                }
                Op::Refinish { done } => finishes.extend(done),
                Op::Swapped { endpoint, handler } => {
                    d.keep_idle(&endpoint, |w| w.link.claim.handler == handler);
                }
            }
        }
        // Waiting jobs go to free slots first, oldest first; the new
        // workers' claims come after (in this same write).
        d.hand_waiting();
        self.count_waiting(d);
        // Their workers start without waiting for this write.
        for (endpoint, n) in &waiting_for {
            self.wake_supervisor(endpoint, *n);
        }
        // Idle workers of endpoints not known to be drained claim, after
        // the accepts of this same write.
        let mut claim_links: Vec<Arc<WorkerLink>> = Vec::new();
        let mut claims: Vec<ClaimRequest> = Vec::new();
        for (endpoint, idle) in d.idle.iter_mut() {
            if d.drained.contains(endpoint) {
                continue;
            }
            for w in idle.iter_mut().filter(|w| w.free > 0) {
                claims.push(ClaimRequest {
                    endpoint_id: endpoint.clone(),
                    by: w.link.claim.clone(),
                    limit: w.free,
                    low_cap: w.link.low_cap,
                });
                // Taken now; what the claim does not fill is given back.
                w.free = 0;
                claim_links.push(Arc::clone(&w.link));
            }
        }
        // Unwritten jobs written now: waiting ones something queues behind
        // (first: they are the oldest of their endpoints' queues), then
        // those ended, asked for, or past `write_by`. Their accepts go
        // ahead of this write's own (split off below).
        let mut late = flushed;
        late.extend(d.due(&persist));
        for u in late.iter().filter(|u| u.by.is_none()) {
            queue(d, &mut Vec::new(), &mut queued_for, &u.job.endpoint_id, 0);
        }
        let n_late = late.len();
        let mut all_accepts: Vec<(NewJob, Option<ClaimBy>)> =
            late.iter().map(|u| (u.job.clone(), u.by.clone())).collect();
        all_accepts.append(&mut accepts);
        for u in &late {
            finishes.extend(u.end.clone());
        }
        if all_accepts.is_empty() && finishes.is_empty() && claims.is_empty() {
            return;
        }
        let n_finishes = finishes.len();
        // In a cluster a result left unwritten would keep its job
        // IN_PROGRESS under a live host's lease for good: kept to write
        // again once the database is back.
        let kept = (self.store.shared() && !finishes.is_empty()).then(|| finishes.clone());
        let batch = Batch {
            finishes,
            accepts: all_accepts,
            claims,
        };
        let requests: Vec<(String, usize)> = batch
            .claims
            .iter()
            .map(|c| (c.endpoint_id.clone(), c.limit))
            .collect();
        let outcome = self.commit_batch(batch).await;
        let (finished, mut accepts, accepted, claimed) = match outcome {
            Ok(o) => (o.finished, o.accepts, o.accepted, o.claimed),
            Err(e) => {
                // Nothing was written: the accepts fail (the clients are
                // told), claims give their slots back, finishes stay
                // IN_PROGRESS (the next start re-queues them).
                tracing::error!("a group commit failed: {e}");
                self.refinish_later(kept, &e);
                d.write_later(late, &e);
                self.count_waiting(d);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
                for to in handed.into_iter().flatten() {
                    d.free(&to.endpoint, &to.claim.worker_id, 1);
                }
                for (link, (_, limit)) in claim_links.iter().zip(&requests) {
                    d.free(&link.endpoint, &link.claim.worker_id, *limit);
                }
                return;
            }
        };
        accepts.drain(..n_late);
        match &accepted {
            Ok(()) => {
                for u in late {
                    for reply in u.persisted {
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            Err(e) => d.write_later(late, e),
        }
        // Those written to the stored queue are counted there now.
        self.count_waiting(d);
        match accepted {
            Ok(()) => {
                for (((job, _), reply), to) in accepts.into_iter().zip(replies).zip(handed) {
                    let _ = reply.send(Ok(()));
                    if let Some(link) = to
                        && let Err(mpsc::error::SendError(job)) =
                            link.jobs.send(ClaimedJob::handed(job))
                    {
                        // The worker went away meanwhile.
                        self.requeue(&link.endpoint, &link.claim.worker_id, &job)
                            .await;
                    }
                }
                for (endpoint, n) in &queued_for {
                    self.wake_supervisor(endpoint, *n);
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
                for to in handed.into_iter().flatten() {
                    d.free(&to.endpoint, &to.claim.worker_id, 1);
                }
            }
        }
        for ((link, (endpoint, limit)), jobs) in claim_links.iter().zip(requests).zip(claimed) {
            let n = jobs.len();
            if n < limit {
                d.drained.insert(endpoint);
                d.free(&link.endpoint, &link.claim.worker_id, limit - n);
            }
            for job in jobs {
                if job.low_priority {
                    d.low_running.insert(
                        job.id.clone(),
                        (link.endpoint.clone(), link.claim.worker_id.clone()),
                    );
                }
                if let Err(mpsc::error::SendError(job)) = link.jobs.send(job) {
                    self.requeue(&link.endpoint, &link.claim.worker_id, &job)
                        .await;
                }
            }
        }
        // The finished jobs' listeners last: the clients whose accepts
        // wait on this write, and the workers it gave jobs, come first.
        match finished {
            Ok(done) => self.announce(done),
            Err(e) => {
                tracing::error!("recording {n_finishes} job results failed: {e}");
                self.refinish_later(kept, &e);
            }
        }
    }

    /// Tell the supervisors how many of their endpoint's jobs wait here.
    fn count_waiting(&self, d: &mut Dispatch) {
        let changes = d.take_waiting_changes();
        if changes.is_empty() {
            return;
        }
        let supervisors = self.supervisors.lock().expect("supervisors lock");
        for (endpoint, n) in changes {
            if let Some(p) = supervisors.get(&endpoint) {
                p.waiting.store(n, std::sync::atomic::Ordering::SeqCst);
            }
        }
    }

    /// Write `kept` results again shortly, when their write failed only
    /// because the database was unreachable.
    fn refinish_later(&self, kept: Option<Vec<Finish>>, e: &StoreError) {
        let Some(done) = kept else { return };
        if !matches!(e, StoreError::Unavailable(_)) {
            return;
        }
        let ops = self.ops.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let _ = ops.send(Op::Refinish { done });
        });
    }

    /// The store's group commit.
    async fn commit_batch(&self, batch: Batch) -> Result<BatchOutcome, StoreError> {
        self.store.commit(batch, now_ms()).await
    }
}

/// `hint` jobs of `endpoint` go to its stored queue (and its supervisor
/// is woken after the write): what waits here for a worker goes there
/// first, being older, and new jobs stop skipping the queue.
fn queue(
    d: &mut Dispatch,
    flushed: &mut Vec<Unwritten>,
    queued_for: &mut HashMap<String, usize>,
    endpoint: &str,
    hint: usize,
) {
    flushed.extend(d.flush_waiting(endpoint));
    d.drained.remove(endpoint);
    *queued_for.entry(endpoint.to_string()).or_default() += hint;
}

/// How long `job` may wait in the queue.
fn ttl(job: &NewJob) -> Duration {
    Duration::from_millis(job.ttl_ms.max(0) as u64)
}
