//! One worker pool per endpoint. A supervisor task per endpoint sizes the
//! pool with a [`ScalePolicy`] (the seam the scheduler plugs into), starts
//! workers, retires idle ones, and on a hot swap retires every worker of the
//! old handler version: those stop claiming jobs, finish the ones they hold,
//! and exit, while workers of the new version take the queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use utoipa::ToSchema;

use super::events::JobEvents;
use super::handlers::HandlerRepo;
use super::worker;
use crate::runtime::CancelSignal;
use crate::store::{EndpointConfig, EndpointRecord, Store, now_ms};

/// How long final jobs are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// After a `/run` job finishes.
    pub run: Duration,
    /// After a `/runsync` job finishes.
    pub runsync: Duration,
}

impl Retention {
    pub fn for_job_ms(&self, sync: bool) -> i64 {
        let d = if sync { self.runsync } else { self.run };
        d.as_millis() as i64
    }
}

/// Cancel signals of the jobs running on this host.
#[derive(Default)]
pub struct RunningJobs(Mutex<HashMap<String, CancelSignal>>);

impl RunningJobs {
    pub fn insert(&self, id: &str, signal: CancelSignal) {
        self.0
            .lock()
            .expect("running jobs lock")
            .insert(id.to_string(), signal);
    }

    pub fn remove(&self, id: &str) {
        self.0.lock().expect("running jobs lock").remove(id);
    }

    /// Tell the instance running `id` (if on this host) to stop.
    pub fn cancel(&self, id: &str) -> bool {
        match self.0.lock().expect("running jobs lock").get(id) {
            Some(s) => {
                s.cancel();
                true
            }
            None => false,
        }
    }
}

/// What every worker of this host shares.
pub struct WorkerContext {
    pub store: Store,
    pub handlers: Arc<HandlerRepo>,
    pub events: Arc<JobEvents>,
    pub running: RunningJobs,
    /// Woken when a job's webhook becomes due.
    pub webhooks: Notify,
    /// This host process's identity on claimed jobs.
    pub host_id: String,
    pub retention: Retention,
    /// The managed model store's tree (for endpoints without `models_dir`).
    pub model_tree: PathBuf,
    /// How often idle workers look at the queue without being woken.
    pub poll: Duration,
}

/// What the scale policy sees of one pool.
pub struct PoolSnapshot<'a> {
    pub config: &'a EndpointConfig,
    /// Runnable jobs waiting in the queue.
    pub queued: i64,
    /// The pool's current-version workers (retiring ones excluded).
    pub workers: Vec<WorkerView>,
}

/// One worker as the policy sees it.
#[derive(Debug, Clone)]
pub struct WorkerView {
    /// Jobs it is running now.
    pub busy: usize,
    /// Done initialising.
    pub ready: bool,
    /// How long it has had no job (zero while busy).
    pub idle_for: Duration,
}

/// What the policy wants done.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScaleDecision {
    /// Workers to start.
    pub start: usize,
    /// Indices (into [`PoolSnapshot::workers`]) of workers to retire.
    pub stop: Vec<usize>,
}

/// Sizes a pool. The scheduler replaces the default with one that also
/// places workers on GPU slices.
pub trait ScalePolicy: Send + Sync {
    fn decide(&self, snapshot: &PoolSnapshot<'_>) -> ScaleDecision;
}

/// Enough workers for the queue and the running jobs, within
/// `[min_workers, max_workers]`; idle workers above the minimum stop after
/// `idle_timeout_s`.
pub struct QueueDepthPolicy;

impl ScalePolicy for QueueDepthPolicy {
    fn decide(&self, s: &PoolSnapshot<'_>) -> ScaleDecision {
        let c = s.config;
        let per_worker = c.concurrency.max(1) as i64;
        let busy: i64 = s.workers.iter().map(|w| w.busy as i64).sum();
        let wanted = (s.queued + busy + per_worker - 1) / per_worker;
        let desired = (wanted.max(c.min_workers as i64)).min(c.max_workers as i64) as usize;
        let current = s.workers.len();
        let mut decision = ScaleDecision::default();
        if current < desired {
            decision.start = desired - current;
        } else if current > desired {
            let idle_timeout = Duration::from_secs(c.idle_timeout_s);
            let mut idle: Vec<(usize, Duration)> = s
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.ready && w.busy == 0 && w.idle_for >= idle_timeout)
                .map(|(i, w)| (i, w.idle_for))
                .collect();
            idle.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
            decision.stop = idle
                .into_iter()
                .take(current - desired)
                .map(|(i, _)| i)
                .collect();
        }
        decision
    }
}

/// A worker's life stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerState {
    Initializing = 0,
    Ready = 1,
    Unhealthy = 2,
}

/// A worker's state shared between its task, its supervisor and `/health`.
pub struct WorkerShared {
    pub id: String,
    retiring: AtomicBool,
    state: AtomicU8,
    busy: AtomicUsize,
    last_active: Mutex<Instant>,
    /// Wakes the worker's idle lanes when it is retired.
    pub(super) stop: Notify,
}

impl WorkerShared {
    fn new(id: String) -> Self {
        Self {
            id,
            retiring: AtomicBool::new(false),
            state: AtomicU8::new(WorkerState::Initializing as u8),
            busy: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            stop: Notify::new(),
        }
    }

    pub fn retire(&self) {
        self.retiring.store(true, Ordering::SeqCst);
        self.stop.notify_waiters();
    }

    pub fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::SeqCst)
    }

    pub fn state(&self) -> WorkerState {
        match self.state.load(Ordering::SeqCst) {
            0 => WorkerState::Initializing,
            1 => WorkerState::Ready,
            _ => WorkerState::Unhealthy,
        }
    }

    pub(super) fn set_state(&self, s: WorkerState) {
        self.state.store(s as u8, Ordering::SeqCst);
    }

    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    pub(super) fn job_started(&self) {
        self.busy.fetch_add(1, Ordering::SeqCst);
    }

    pub(super) fn job_ended(&self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
        *self.last_active.lock().expect("worker lock") = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        if self.busy() > 0 {
            Duration::ZERO
        } else {
            self.last_active.lock().expect("worker lock").elapsed()
        }
    }
}

/// Worker counts in RunPod's `/health` shape.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct WorkerCounts {
    /// Ready with no job.
    pub idle: usize,
    /// Running at least one job.
    pub running: usize,
    /// Ready (idle + running).
    pub ready: usize,
    /// Starting: loading the handler and running its `init`.
    pub initializing: usize,
    /// Waiting for a device slice (always 0 on CPU).
    pub throttled: usize,
    /// Failed to start; retried with backoff (see the endpoint's `last_error`).
    pub unhealthy: usize,
    /// Of an older handler version, finishing their jobs before stopping.
    pub outdated: usize,
}

/// What a pool exposes to the API.
#[derive(Default)]
pub struct PoolShared {
    workers: Mutex<Vec<Arc<WorkerShared>>>,
    unhealthy: AtomicUsize,
    last_error: Mutex<Option<String>>,
    /// Woken when a job is queued.
    pub wake: Notify,
    /// max_workers is 0: workers claim nothing and jobs wait in the queue.
    /// Set synchronously by [`Pools::apply`], so a job queued after the
    /// update returns is never picked up by a worker that has yet to retire.
    paused: AtomicBool,
}

impl PoolShared {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> WorkerCounts {
        let mut c = WorkerCounts {
            unhealthy: self.unhealthy.load(Ordering::SeqCst),
            ..Default::default()
        };
        for w in self.workers.lock().expect("pool lock").iter() {
            if w.is_retiring() {
                if w.busy() > 0 {
                    c.outdated += 1;
                }
                continue;
            }
            match w.state() {
                WorkerState::Initializing => c.initializing += 1,
                WorkerState::Unhealthy => c.unhealthy += 1,
                WorkerState::Ready if w.busy() > 0 => c.running += 1,
                WorkerState::Ready => c.idle += 1,
            }
        }
        c.ready = c.idle + c.running;
        c
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("pool lock").clone()
    }
}

/// What a worker instance depends on: a change of any of these makes
/// running workers outdated.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSpec {
    pub endpoint_id: String,
    pub handler: String,
    pub concurrency: u32,
    pub env: Vec<(String, String)>,
    pub models_dir: Option<String>,
    pub memory_limit_mib: u64,
    pub tensor_quota_mib: u64,
    pub execution_timeout_ms: u64,
}

impl WorkerSpec {
    fn of(e: &EndpointRecord) -> Self {
        Self {
            endpoint_id: e.id.clone(),
            handler: e.handler.clone(),
            concurrency: e.config.concurrency,
            env: e
                .config
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            models_dir: e.config.models_dir.clone(),
            memory_limit_mib: e.config.memory_limit_mib,
            tensor_quota_mib: e.config.tensor_quota_mib,
            execution_timeout_ms: e.config.execution_timeout_ms,
        }
    }
}

struct PoolHandle {
    config: watch::Sender<Option<EndpointRecord>>,
    shared: Arc<PoolShared>,
    task: JoinHandle<()>,
}

/// Every endpoint's pool on this host.
pub struct Pools {
    ctx: Arc<WorkerContext>,
    policy: Arc<dyn ScalePolicy>,
    pools: Mutex<HashMap<String, PoolHandle>>,
}

/// How often a supervisor re-evaluates without being woken.
const SUPERVISOR_TICK: Duration = Duration::from_millis(250);

impl Pools {
    pub fn new(ctx: Arc<WorkerContext>, policy: Arc<dyn ScalePolicy>) -> Self {
        Self {
            ctx,
            policy,
            pools: Mutex::default(),
        }
    }

    pub fn context(&self) -> &Arc<WorkerContext> {
        &self.ctx
    }

    /// Start the pool of a new endpoint, or apply an updated endpoint to its
    /// running pool (a new handler version is a hot swap).
    pub fn apply(&self, endpoint: EndpointRecord) {
        let mut pools = self.pools.lock().expect("pools lock");
        let paused = endpoint.config.max_workers == 0;
        if let Some(p) = pools.get(&endpoint.id) {
            p.shared.paused.store(paused, Ordering::SeqCst);
            let _ = p.config.send(Some(endpoint));
            return;
        }
        let id = endpoint.id.clone();
        let (tx, rx) = watch::channel(Some(endpoint));
        let shared = Arc::new(PoolShared::default());
        shared.paused.store(paused, Ordering::SeqCst);
        let task = tokio::spawn(supervise(
            Arc::clone(&self.ctx),
            Arc::clone(&self.policy),
            Arc::clone(&shared),
            rx,
        ));
        pools.insert(
            id,
            PoolHandle {
                config: tx,
                shared,
                task,
            },
        );
    }

    /// Stop an endpoint's pool: workers finish their jobs, then exit.
    pub async fn stop(&self, endpoint_id: &str) {
        let handle = self.pools.lock().expect("pools lock").remove(endpoint_id);
        if let Some(h) = handle {
            let _ = h.config.send(None);
            let _ = h.task.await;
        }
    }

    /// Stop every pool (graceful shutdown).
    pub async fn stop_all(&self) {
        let ids: Vec<String> = self
            .pools
            .lock()
            .expect("pools lock")
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.stop(&id).await;
        }
    }

    /// A job was queued for `endpoint_id`: wake its idle workers and its
    /// supervisor.
    pub fn wake(&self, endpoint_id: &str) {
        if let Some(p) = self.pools.lock().expect("pools lock").get(endpoint_id) {
            p.shared.wake.notify_waiters();
        }
    }

    pub fn shared(&self, endpoint_id: &str) -> Option<Arc<PoolShared>> {
        self.pools
            .lock()
            .expect("pools lock")
            .get(endpoint_id)
            .map(|p| Arc::clone(&p.shared))
    }
}

struct RunningWorker {
    shared: Arc<WorkerShared>,
    spec: WorkerSpec,
    task: JoinHandle<Result<(), String>>,
}

/// Backoff before starting workers again after one failed to start.
fn restart_backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)).min(30_000))
}

async fn supervise(
    ctx: Arc<WorkerContext>,
    policy: Arc<dyn ScalePolicy>,
    shared: Arc<PoolShared>,
    mut config: watch::Receiver<Option<EndpointRecord>>,
) {
    let mut workers: Vec<RunningWorker> = Vec::new();
    let mut started = 0u64;
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    let short_host = ctx.host_id.chars().take(6).collect::<String>();
    loop {
        let Some(endpoint) = config.borrow_and_update().clone() else {
            break;
        };
        let notified = shared.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let spec = WorkerSpec::of(&endpoint);
        // Reap workers that exited.
        let mut i = 0;
        while i < workers.len() {
            if !workers[i].task.is_finished() {
                i += 1;
                continue;
            }
            let w = workers.swap_remove(i);
            match w.task.await {
                Ok(Ok(())) => {}
                Ok(Err(msg)) => {
                    failures += 1;
                    retry_at = Some(Instant::now() + restart_backoff(failures));
                    tracing::warn!(endpoint = %endpoint.id, worker = %w.shared.id, "worker failed: {msg}");
                    *shared.last_error.lock().expect("pool lock") = Some(msg);
                }
                Err(e) => {
                    failures += 1;
                    retry_at = Some(Instant::now() + restart_backoff(failures));
                    *shared.last_error.lock().expect("pool lock") =
                        Some(format!("worker task ended abnormally: {e}"));
                }
            }
        }
        if workers
            .iter()
            .any(|w| w.shared.state() == WorkerState::Ready && w.spec == spec)
        {
            failures = 0;
            retry_at = None;
        }
        let waiting_retry = retry_at.is_some_and(|t| Instant::now() < t);
        shared.unhealthy.store(
            if waiting_retry { failures as usize } else { 0 },
            Ordering::SeqCst,
        );
        // Hot swap: workers of another spec stop claiming and drain.
        for w in &workers {
            if w.spec != spec && !w.shared.is_retiring() {
                tracing::info!(endpoint = %endpoint.id, worker = %w.shared.id, "worker outdated; it finishes its jobs and stops");
                w.shared.retire();
            }
        }
        let current: Vec<&RunningWorker> =
            workers.iter().filter(|w| !w.shared.is_retiring()).collect();
        let queued = match ctx.store.queue_depth(&endpoint.id, now_ms()).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(endpoint = %endpoint.id, "reading the queue depth: {e}");
                0
            }
        };
        let snapshot = PoolSnapshot {
            config: &endpoint.config,
            queued,
            workers: current
                .iter()
                .map(|w| WorkerView {
                    busy: w.shared.busy(),
                    ready: w.shared.state() == WorkerState::Ready,
                    idle_for: w.shared.idle_for(),
                })
                .collect(),
        };
        let decision = policy.decide(&snapshot);
        for &i in &decision.stop {
            if let Some(w) = current.get(i) {
                w.shared.retire();
            }
        }
        if decision.start > 0 && !waiting_retry {
            for _ in 0..decision.start {
                started += 1;
                let shared_w = Arc::new(WorkerShared::new(format!(
                    "{}-{short_host}-{started}",
                    endpoint.id
                )));
                let task = tokio::spawn(worker::run_worker(
                    Arc::clone(&ctx),
                    spec.clone(),
                    Arc::clone(&shared_w),
                    Arc::clone(&shared),
                ));
                workers.push(RunningWorker {
                    shared: shared_w,
                    spec: spec.clone(),
                    task,
                });
            }
        }
        *shared.workers.lock().expect("pool lock") =
            workers.iter().map(|w| Arc::clone(&w.shared)).collect();

        tokio::select! {
            _ = &mut notified => {}
            r = config.changed() => { if r.is_err() { break; } }
            _ = tokio::time::sleep(SUPERVISOR_TICK) => {}
        }
    }
    // Shutdown: every worker finishes what it holds, then exits.
    for w in &workers {
        w.shared.retire();
    }
    for w in workers {
        let _ = w.task.await;
    }
    shared.workers.lock().expect("pool lock").clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(busy: usize, idle_s: u64) -> WorkerView {
        WorkerView {
            busy,
            ready: true,
            idle_for: Duration::from_secs(idle_s),
        }
    }

    #[test]
    fn scales_to_the_queue_within_bounds() {
        let config = EndpointConfig {
            max_workers: 3,
            ..Default::default()
        };
        let d = QueueDepthPolicy.decide(&PoolSnapshot {
            config: &config,
            queued: 10,
            workers: vec![],
        });
        assert_eq!(d.start, 3);
        let d = QueueDepthPolicy.decide(&PoolSnapshot {
            config: &config,
            queued: 1,
            workers: vec![],
        });
        assert_eq!(d.start, 1);
    }

    #[test]
    fn keeps_min_workers_and_retires_long_idle_ones() {
        let config = EndpointConfig {
            min_workers: 1,
            max_workers: 3,
            idle_timeout_s: 5,
            ..Default::default()
        };
        let d = QueueDepthPolicy.decide(&PoolSnapshot {
            config: &config,
            queued: 0,
            workers: vec![],
        });
        assert_eq!(d.start, 1);
        let d = QueueDepthPolicy.decide(&PoolSnapshot {
            config: &config,
            queued: 0,
            workers: vec![view(0, 1), view(0, 9), view(0, 6)],
        });
        assert_eq!(d.stop, vec![1, 2]);
    }

    #[test]
    fn concurrency_packs_jobs_per_worker() {
        let config = EndpointConfig {
            max_workers: 10,
            concurrency: 4,
            ..Default::default()
        };
        let d = QueueDepthPolicy.decide(&PoolSnapshot {
            config: &config,
            queued: 9,
            workers: vec![],
        });
        assert_eq!(d.start, 3);
    }
}
