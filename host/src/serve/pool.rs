//! One worker pool per endpoint. A supervisor task per endpoint sizes the
//! pool with the scheduler's autoscaler ([`crate::scheduler::plan`]), places
//! wanted workers on slices (a worker without a free slice is `throttled`
//! until one frees up), starts them on their slice's executor, retires idle
//! ones after `idle_timeout`, keeps crashed ones visible as `unhealthy`
//! while they are replaced, and on a hot swap marks every worker of the old
//! settings `outdated`: those stop claiming jobs, finish the ones they hold,
//! and exit, while workers of the new version take the queue.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::handlers::HandlerRepo;
use super::lifecycle::Jobs;
use super::meter::Meter;
use super::slices::Slices;
use super::worker::{self, WorkerExit};
pub use super::worker_state::{
    PoolShared, WorkerCounts, WorkerDetail, WorkerShared, WorkerSlice, WorkerStage,
};
use crate::scheduler::{self, PlacementError};
use crate::store::{EndpointKind, EndpointRecord, ScalerType, Store, now_ms};

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

/// What every worker of this host shares.
pub struct WorkerContext {
    pub store: Store,
    pub handlers: Arc<HandlerRepo>,
    /// The lifecycle owner: hands workers their jobs and records their ends.
    pub jobs: Arc<Jobs>,
    /// This host process's identity on claimed jobs.
    pub host_id: String,
    /// The managed model store's tree (for endpoints without `models_dir`).
    pub model_tree: PathBuf,
    /// Every slice of this host and its executor.
    pub slices: Arc<Slices>,
    /// Worker time and job statistics.
    pub meter: Arc<Meter>,
    /// Handlers' log lines and workers' lifecycle events.
    pub logs: Arc<super::logs::Logs>,
}

/// What a worker depends on: a change of any of these makes running
/// workers outdated.
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
    pub gpus: Vec<String>,
    pub gpus_per_worker: u32,
    pub flashboot: bool,
    /// Low-priority jobs this host runs at once for the endpoint: every
    /// slot of its `max_workers` but one, so a real-time job always finds
    /// one (at least one, so batch work runs on an endpoint of one slot).
    pub low_cap: usize,
    /// A load-balancing endpoint's worker: it serves HTTP requests instead
    /// of claiming jobs.
    pub load_balancer: bool,
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
            gpus: e.config.gpus.clone(),
            gpus_per_worker: e.config.gpus_per_worker,
            flashboot: e.config.flashboot,
            low_cap: (e.config.max_workers as usize * e.config.concurrency.max(1) as usize)
                .saturating_sub(1)
                .max(1),
            load_balancer: e.config.kind == EndpointKind::LoadBalancer,
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
    pools: Mutex<HashMap<String, PoolHandle>>,
    /// Load-balancing endpoints' `hostnames`: name → endpoint id.
    hosts: Mutex<HashMap<String, String>>,
}

/// How often a supervisor with workers (or queued jobs) re-evaluates
/// without being woken.
const SUPERVISOR_TICK: Duration = Duration::from_millis(250);

/// How often an idle supervisor (no worker, nothing queued) looks anyway.
/// A host carries many idle endpoints: they must cost next to nothing.
const IDLE_TICK: Duration = Duration::from_secs(5);

/// Evaluations of one supervisor are at least this far apart, so a flood
/// of submissions does not turn into a flood of queue-depth queries.
const MIN_EVALUATION_GAP: Duration = Duration::from_millis(5);

/// How long a crashed worker stays listed as unhealthy (while its
/// replacement starts), so `/health` shows what happened.
const UNHEALTHY_LINGER: Duration = Duration::from_secs(3);

impl Pools {
    pub fn new(ctx: Arc<WorkerContext>) -> Self {
        Self {
            ctx,
            pools: Mutex::default(),
            hosts: Mutex::default(),
        }
    }

    pub fn context(&self) -> &Arc<WorkerContext> {
        &self.ctx
    }

    /// Start the pool of a new endpoint, or apply an updated endpoint to its
    /// running pool (a new handler version is a hot swap).
    pub fn apply(&self, endpoint: EndpointRecord) {
        self.route_hosts(&endpoint.id, Some(&endpoint));
        let mut pools = self.pools.lock().expect("pools lock");
        let paused = endpoint.config.max_workers == 0;
        if let Some(p) = pools.get(&endpoint.id) {
            p.shared.set_paused(paused);
            let parked_useless = p.config.borrow().as_ref().is_some_and(|old| {
                WorkerSpec::of(old) != WorkerSpec::of(&endpoint) || !endpoint.config.flashboot
            });
            if parked_useless {
                // Parked instances of the old version or settings (or of an
                // endpoint that turned FlashBoot off) would never be restored.
                self.ctx.slices.release_parked(&endpoint.id);
            }
            let _ = p.config.send(Some(endpoint));
            // Workers look at the paused flag again.
            p.shared.wake.notify_waiters();
            return;
        }
        let id = endpoint.id.clone();
        let (tx, rx) = watch::channel(Some(endpoint));
        let shared = Arc::new(PoolShared::default());
        shared.set_paused(paused);
        self.ctx.jobs.watch_endpoint(&id, Arc::clone(&shared));
        let task = tokio::spawn(supervise(Arc::clone(&self.ctx), Arc::clone(&shared), rx));
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
        self.route_hosts(endpoint_id, None);
        let handle = self.pools.lock().expect("pools lock").remove(endpoint_id);
        if let Some(h) = handle {
            let _ = h.config.send(None);
            let _ = h.task.await;
        }
        self.ctx.jobs.unwatch_endpoint(endpoint_id);
        self.ctx.slices.release_parked(endpoint_id);
    }

    /// Route the endpoint's `hostnames` to it (none once it is gone).
    fn route_hosts(&self, endpoint_id: &str, endpoint: Option<&EndpointRecord>) {
        let mut hosts = self.hosts.lock().expect("hosts lock");
        hosts.retain(|_, id| id != endpoint_id);
        if let Some(e) = endpoint.filter(|e| e.config.kind == EndpointKind::LoadBalancer) {
            for name in &e.config.hostnames {
                hosts.insert(name.clone(), e.id.clone());
            }
        }
    }

    /// The load-balancing endpoint whose `hostnames` list `host`.
    pub fn endpoint_for_host(&self, host: &str) -> Option<String> {
        self.hosts.lock().expect("hosts lock").get(host).cloned()
    }

    /// Read the endpoint as its pool runs it now, without copying it.
    pub fn inspect<R>(&self, endpoint_id: &str, f: impl FnOnce(&EndpointRecord) -> R) -> Option<R> {
        let pools = self.pools.lock().expect("pools lock");
        let handle = pools.get(endpoint_id)?;
        let config = handle.config.borrow();
        config.as_ref().map(f)
    }

    /// The endpoint as its pool runs it now.
    pub fn endpoint(&self, endpoint_id: &str) -> Option<EndpointRecord> {
        self.pools
            .lock()
            .expect("pools lock")
            .get(endpoint_id)
            .and_then(|p| p.config.borrow().clone())
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

    pub fn shared(&self, endpoint_id: &str) -> Option<Arc<PoolShared>> {
        self.pools
            .lock()
            .expect("pools lock")
            .get(endpoint_id)
            .map(|p| Arc::clone(&p.shared))
    }

    /// Every pool, by endpoint id (for /metrics).
    pub fn all(&self) -> Vec<(String, Arc<PoolShared>)> {
        let mut out: Vec<_> = self
            .pools
            .lock()
            .expect("pools lock")
            .iter()
            .map(|(id, p)| (id.clone(), Arc::clone(&p.shared)))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// One worker as its supervisor tracks it.
struct Entry {
    shared: Arc<WorkerShared>,
    spec: WorkerSpec,
    /// None while throttled (not placed yet) and after it ended.
    task: Option<JoinHandle<Result<(), WorkerExit>>>,
    /// An unhealthy worker is listed until then.
    linger_until: Option<Instant>,
}

/// Backoff before starting workers again after one failed to start.
fn restart_backoff(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(6)).min(30_000))
}

async fn supervise(
    ctx: Arc<WorkerContext>,
    shared: Arc<PoolShared>,
    mut config: watch::Receiver<Option<EndpointRecord>>,
) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut started = 0u64;
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    let short_host = ctx.host_id.chars().take(6).collect::<String>();
    let mut last_evaluation: Option<Instant> = None;
    loop {
        if let Some(gap) = last_evaluation.map(|t| MIN_EVALUATION_GAP.saturating_sub(t.elapsed()))
            && !gap.is_zero()
        {
            tokio::time::sleep(gap).await;
        }
        last_evaluation = Some(Instant::now());
        let Some(endpoint) = config.borrow_and_update().clone() else {
            break;
        };
        let woken = shared.wake.notified();
        let freed = ctx.slices.freed.notified();
        tokio::pin!(woken, freed);
        woken.as_mut().enable();
        freed.as_mut().enable();
        let now = Instant::now();
        let spec = WorkerSpec::of(&endpoint);

        // Reap workers that ended.
        for e in entries.iter_mut() {
            if !e.task.as_ref().is_some_and(|t| t.is_finished()) {
                continue;
            }
            let task = e.task.take().expect("checked above");
            let failure = match task.await {
                Ok(Ok(())) => None,
                Ok(Err(exit)) => Some(exit),
                Err(join) => Some(WorkerExit::StartFailed(format!(
                    "worker task ended abnormally: {join}"
                ))),
            };
            let Some(exit) = failure else {
                continue;
            };
            let msg = exit.to_string();
            tracing::warn!(endpoint = %endpoint.id, worker = %e.shared.id, "worker unhealthy: {msg}");
            if matches!(exit, WorkerExit::StartFailed(_)) {
                ctx.logs.system(
                    &endpoint.id,
                    Some(&e.shared.id),
                    None,
                    crate::store::Level::Warn,
                    format!(
                        "a replacement starts in {:.1} s (failed starts back off)",
                        restart_backoff(failures + 1).as_secs_f64()
                    ),
                );
            } else {
                ctx.logs.system(
                    &endpoint.id,
                    Some(&e.shared.id),
                    None,
                    crate::store::Level::Warn,
                    "a replacement worker starts",
                );
            }
            e.shared.set_stage(WorkerStage::Unhealthy);
            e.shared.set_error(Some(msg.clone()));
            shared.set_last_error(msg);
            e.linger_until = Some(now + UNHEALTHY_LINGER);
            if matches!(exit, WorkerExit::StartFailed(_)) {
                // A handler that cannot start is retried with backoff; a
                // dead executor is replaced at once.
                failures += 1;
                retry_at = Some(now + restart_backoff(failures));
                e.linger_until = retry_at.max(e.linger_until);
            }
        }
        entries.retain(|e| {
            e.task.is_some()
                || e.shared.stage() == WorkerStage::Throttled
                || e.linger_until.is_some_and(|t| now < t)
        });
        if entries.iter().any(|e| {
            e.shared.stage() == WorkerStage::Ready && e.spec == spec && !e.shared.is_retiring()
        }) {
            failures = 0;
            retry_at = None;
        }
        let waiting_retry = retry_at.is_some_and(|t| now < t);

        // Hot swap: workers of other settings stop claiming and drain.
        entries.retain(|e| e.spec == spec || e.task.is_some() || e.linger_until.is_some());
        for e in &entries {
            if e.spec != spec && e.task.is_some() && !e.shared.is_outdated() {
                tracing::info!(endpoint = %endpoint.id, worker = %e.shared.id, "worker outdated; it finishes its jobs and stops");
                ctx.logs.system(
                    &endpoint.id,
                    Some(&e.shared.id),
                    None,
                    crate::store::Level::Info,
                    "worker outdated by a new handler version or settings: it finishes its jobs and stops",
                );
                e.shared.mark_outdated();
            }
        }

        let hint = shared
            .queued_hint
            .swap(0, std::sync::atomic::Ordering::SeqCst);
        let waiting = shared.waiting.load(std::sync::atomic::Ordering::SeqCst);
        // Jobs in the stored queue, and all queued (with those waiting in
        // the lifecycle's memory).
        let (stored, queued) = if spec.load_balancer {
            // A load balancer's queue is its requests waiting for a worker.
            (0, shared.lb.waiting())
        } else if entries.is_empty() && hint > 0 {
            // Woken from zero by new jobs: start for them at once; the next
            // evaluation reads the queue.
            (0, hint)
        } else {
            let stored = match ctx.store.queue_depth(&endpoint.id, now_ms()).await {
                Ok(n) => n.max(0) as usize,
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.id, "reading the queue depth: {e}");
                    0
                }
            };
            ctx.meter
                .latency
                .queue_depth(&endpoint.id, (stored + waiting) as i64);
            (stored, stored + waiting)
        };
        let c = &endpoint.config;
        let scaler = match c.scaler_type {
            ScalerType::RequestCount => scheduler::Scaler::RequestCount {
                jobs_per_worker: if c.scaler_value == 0 {
                    c.concurrency
                } else {
                    c.scaler_value
                },
            },
            ScalerType::QueueDelay => scheduler::Scaler::QueueDelay {
                delay: Duration::from_secs(if c.scaler_value == 0 {
                    4
                } else {
                    u64::from(c.scaler_value)
                }),
            },
        };
        let oldest_wait = if queued > 0 && c.scaler_type == ScalerType::QueueDelay {
            match ctx.store.oldest_queued_ms(&endpoint.id, now_ms()).await {
                Ok(ms) => Duration::from_millis(ms.unwrap_or(0).max(0) as u64),
                Err(e) => {
                    tracing::warn!(endpoint = %endpoint.id, "reading the queue delay: {e}");
                    Duration::ZERO
                }
            }
        } else {
            Duration::ZERO
        };
        let views: Vec<scheduler::WorkerView> = entries
            .iter()
            .filter_map(|e| {
                Some(scheduler::WorkerView {
                    id: e.shared.id.clone(),
                    state: e.shared.state()?,
                    busy: e.shared.busy() as u32,
                    idle_for: e.shared.idle_for(),
                })
            })
            .collect();
        let policy = scheduler::ScalePolicy {
            min_workers: endpoint.config.min_workers,
            max_workers: endpoint.config.max_workers,
            idle_timeout: Duration::from_secs(endpoint.config.idle_timeout_s),
            concurrency: endpoint.config.concurrency,
            scaler,
        };
        let plan = scheduler::plan(&policy, &views, queued, oldest_wait);
        for id in &plan.stop {
            if let Some(e) = entries.iter().find(|e| &e.shared.id == id) {
                if e.shared.stage() == WorkerStage::Unhealthy {
                    continue; // already ended; listed until its linger passes
                }
                e.shared.retire();
            }
        }
        // A retired throttled worker was never placed: just forget it.
        entries.retain(|e| {
            !(e.task.is_none()
                && e.shared.stage() == WorkerStage::Throttled
                && e.shared.is_retiring())
        });
        if plan.start > 0 && !waiting_retry {
            for _ in 0..plan.start {
                started += 1;
                entries.push(Entry {
                    shared: Arc::new(WorkerShared::new(format!(
                        "{}-{short_host}-{started}",
                        endpoint.id
                    ))),
                    spec: spec.clone(),
                    task: None,
                    linger_until: None,
                });
            }
        }
        // A FlashBoot worker retiring at scale to zero is parking its
        // instances (milliseconds, or a bulk copy of its VRAM) and holds its
        // slice until done: a worker placed meanwhile would start elsewhere
        // without that state. Wait for it; its lease's release wakes us.
        let parking = spec.flashboot
            && entries.iter().any(|e| {
                e.shared.is_retiring()
                    && !e.shared.is_outdated()
                    && e.shared.busy() == 0
                    && e.shared.stage() == WorkerStage::Ready
                    && e.task.as_ref().is_some_and(|t| !t.is_finished())
            });
        // Place throttled workers, oldest first (not while backing off
        // after a failed start: it would fail again on any slice).
        for e in entries.iter_mut() {
            if waiting_retry || parking {
                break;
            }
            if e.task.is_some() || e.shared.stage() != WorkerStage::Throttled {
                continue;
            }
            match ctx
                .slices
                .acquire(&endpoint.id, &e.shared.id, &spec.gpus, spec.gpus_per_worker)
            {
                Ok(lease) => {
                    e.shared.set_error(None);
                    e.shared.set_slice(Some(WorkerSlice {
                        id: lease.slice().spec.id.clone(),
                        slice_type: lease.slice().type_name.clone(),
                    }));
                    e.shared.set_stage(WorkerStage::Initializing);
                    e.task = Some(tokio::spawn(worker::run_worker(
                        Arc::clone(&ctx),
                        spec.clone(),
                        Arc::clone(&e.shared),
                        Arc::clone(&shared),
                        lease,
                    )));
                }
                Err(err) => {
                    let msg = err.to_string();
                    if matches!(err, PlacementError::NoMatch { .. }) {
                        shared.set_last_error(msg.clone());
                    }
                    e.shared.set_error(Some(msg));
                    // Later ones would not find a slice either.
                    break;
                }
            }
        }
        shared.set_workers(entries.iter().map(|e| Arc::clone(&e.shared)).collect());
        if stored > 0
            && !spec.load_balancer
            && entries
                .iter()
                .any(|e| e.shared.stage() == WorkerStage::Ready && !e.shared.is_retiring())
        {
            // A safety net: queued jobs and a ready worker; let it look.
            ctx.jobs.recheck(&endpoint.id);
        }

        // Only a supervisor with something to watch wakes on its own (and on
        // slices being freed); an idle one waits to be woken.
        let active = !entries.is_empty() || queued > 0 || waiting_retry;
        let tick = if active { SUPERVISOR_TICK } else { IDLE_TICK };
        tokio::select! {
            _ = &mut woken => {}
            _ = &mut freed, if active => {}
            r = config.changed() => { if r.is_err() { break; } }
            _ = tokio::time::sleep(tick) => {}
        }
    }
    // Shutdown: every worker finishes what it holds, then exits.
    for e in &entries {
        e.shared.retire();
    }
    for e in entries {
        if let Some(task) = e.task {
            let _ = task.await;
        }
    }
    shared.set_workers(Vec::new());
}
