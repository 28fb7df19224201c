//! What the API sees of a pool while its supervisor runs it: each worker's
//! shared state (stage, slice, jobs running, why it is unhealthy or
//! throttled), the counts `/health` reports in RunPod's shape, and the
//! pool's paused flag and last error.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::executor::WorkerStarted;
use crate::runtime::BootLayer;
use crate::scheduler::WorkerState as ScaleState;
use crate::store::now_ms;

/// A worker's life stage (outdated and retiring are flags on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WorkerStage {
    /// Wanted, waiting for a free slice.
    Throttled = 0,
    /// On its slice: executor starting, handler loading, `init` running.
    Initializing = 1,
    Ready = 2,
    /// Failed to start, or its executor died; being replaced.
    Unhealthy = 3,
}

/// The slice a worker runs on.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerSlice {
    pub id: String,
    /// The billing type: "H100", "2xH100", "MIG-3g.40gb", "cpu".
    pub slice_type: String,
}

/// A worker's state shared between its task, its supervisor and the API.
pub struct WorkerShared {
    pub id: String,
    created_at: i64,
    retiring: AtomicBool,
    outdated: AtomicBool,
    stage: AtomicU8,
    busy: AtomicUsize,
    last_active: Mutex<Instant>,
    slice: Mutex<Option<WorkerSlice>>,
    error: Mutex<Option<String>>,
    /// How its instances started, once they have.
    boot: Mutex<Option<WorkerStarted>>,
    /// Wakes the worker's idle lanes when it is retired.
    pub(super) stop: Notify,
}

impl WorkerShared {
    pub(super) fn new(id: String) -> Self {
        Self {
            id,
            created_at: now_ms(),
            retiring: AtomicBool::new(false),
            outdated: AtomicBool::new(false),
            stage: AtomicU8::new(WorkerStage::Throttled as u8),
            busy: AtomicUsize::new(0),
            last_active: Mutex::new(Instant::now()),
            slice: Mutex::default(),
            error: Mutex::default(),
            boot: Mutex::default(),
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

    pub(super) fn is_outdated(&self) -> bool {
        self.outdated.load(Ordering::SeqCst)
    }

    pub fn stage(&self) -> WorkerStage {
        match self.stage.load(Ordering::SeqCst) {
            0 => WorkerStage::Throttled,
            1 => WorkerStage::Initializing,
            2 => WorkerStage::Ready,
            _ => WorkerStage::Unhealthy,
        }
    }

    pub(super) fn set_stage(&self, s: WorkerStage) {
        if s == WorkerStage::Ready {
            // Idle time counts from readiness, not from when it was wanted.
            *self.last_active.lock().expect("worker lock") = Instant::now();
        }
        self.stage.store(s as u8, Ordering::SeqCst);
    }

    /// Its settings changed (hot swap): stop claiming, finish, exit.
    pub(super) fn mark_outdated(&self) {
        self.outdated.store(true, Ordering::SeqCst);
        self.retire();
    }

    pub(super) fn set_slice(&self, slice: Option<WorkerSlice>) {
        *self.slice.lock().expect("worker lock") = slice;
    }

    pub(super) fn set_boot(&self, started: WorkerStarted) {
        *self.boot.lock().expect("worker lock") = Some(started);
    }

    pub(super) fn set_error(&self, e: Option<String>) {
        *self.error.lock().expect("worker lock") = e;
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

    pub(super) fn idle_for(&self) -> Duration {
        if self.busy() > 0 {
            Duration::ZERO
        } else {
            self.last_active.lock().expect("worker lock").elapsed()
        }
    }

    /// The state `/health` reports; None for a worker retired by scale-down
    /// with no job left (it is on its way out).
    pub fn state(&self) -> Option<ScaleState> {
        let stage = self.stage();
        if stage == WorkerStage::Unhealthy {
            return Some(ScaleState::Unhealthy);
        }
        if self.is_outdated() {
            return Some(ScaleState::Outdated);
        }
        let busy = self.busy() > 0;
        if self.is_retiring() {
            return busy.then_some(ScaleState::Running);
        }
        Some(match stage {
            WorkerStage::Throttled => ScaleState::Throttled,
            WorkerStage::Initializing => ScaleState::Initializing,
            _ if busy => ScaleState::Running,
            _ => ScaleState::Idle,
        })
    }

    fn detail(&self) -> Option<WorkerDetail> {
        Some(WorkerDetail {
            id: self.id.clone(),
            state: self.state()?,
            slice: self.slice.lock().expect("worker lock").clone(),
            busy: self.busy(),
            created_at: self.created_at,
            error: self.error.lock().expect("worker lock").clone(),
            boot: self
                .boot
                .lock()
                .expect("worker lock")
                .clone()
                .map(Boot::from),
        })
    }
}

/// Worker counts in RunPod's `/health` shape (plus `outdated`).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct WorkerCounts {
    /// Ready with no job.
    pub idle: usize,
    /// Running at least one job.
    pub running: usize,
    /// Ready (idle + running).
    pub ready: usize,
    /// Starting: executor spawning, handler loading, its `init` running.
    pub initializing: usize,
    /// Wanted, but no slice matching the endpoint's `gpus` is free.
    pub throttled: usize,
    /// Failed to start or its executor died; being replaced (see `last_error`).
    pub unhealthy: usize,
    /// Of older settings or handler version, finishing their jobs before stopping.
    pub outdated: usize,
    /// FlashBoot's view: workers with live instances (idle + running).
    pub warm: usize,
    /// Scaled to zero with their instances and VRAM state parked in an
    /// executor: the next start pages them back in.
    pub snapshotted: usize,
    /// The rest up to `max_workers`: a start runs from the snapshot taken
    /// after `init` when there is one, else loads and runs `init`.
    pub cold: usize,
}

/// How a worker's instances started.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Boot {
    /// "cold" (compiled now, `init` ran), "code-cached" (compiled code
    /// from the cache, `init` ran), "pre-initialised" (from the snapshot
    /// taken after `init`), "vram-restored" (parked instances paged back).
    #[schema(value_type = String)]
    pub boot: BootLayer,
    /// Milliseconds from the start request to the instances being ready.
    pub init_ms: f64,
    /// Why a faster layer was not used, when FlashBoot says.
    pub note: Option<String>,
}

impl From<WorkerStarted> for Boot {
    fn from(s: WorkerStarted) -> Self {
        Self {
            boot: s.boot,
            init_ms: s.init_ms,
            note: s.note,
        }
    }
}

/// The latest worker start of an endpoint.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastBoot {
    pub worker: String,
    #[serde(flatten)]
    pub boot: Boot,
}

/// One worker as the admin API and `/health` list it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerDetail {
    pub id: String,
    #[schema(value_type = String)]
    pub state: ScaleState,
    /// Its slice; none while throttled.
    pub slice: Option<WorkerSlice>,
    /// Jobs it runs now.
    pub busy: usize,
    /// When it was wanted (ms since the epoch).
    pub created_at: i64,
    /// Why it is unhealthy or throttled, if it is.
    pub error: Option<String>,
    /// How it started, once it has.
    #[serde(flatten)]
    pub boot: Option<Boot>,
}

/// What a pool exposes to the API.
#[derive(Default)]
pub struct PoolShared {
    workers: Mutex<Vec<Arc<WorkerShared>>>,
    last_error: Mutex<Option<String>>,
    last_boot: Mutex<Option<LastBoot>>,
    /// Woken when a job is queued.
    pub wake: Arc<Notify>,
    /// Jobs queued since the supervisor last looked (the lifecycle adds
    /// them as it commits): lets a pool at zero start its first worker
    /// without reading the queue's depth first.
    pub queued_hint: AtomicUsize,
    /// `/runsync` jobs waiting in the lifecycle's memory for a worker, not
    /// in the stored queue (yet): counted as queued.
    pub waiting: AtomicUsize,
    /// max_workers is 0: workers claim nothing and jobs wait in the queue.
    /// Set synchronously by [`Pools::apply`], so a job queued after the
    /// update returns is never picked up by a worker that has yet to retire.
    paused: AtomicBool,
    /// A load-balancing endpoint's ready workers and waiting requests.
    pub(super) lb: Arc<super::lb::LbRoutes>,
}

impl PoolShared {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> WorkerCounts {
        let mut c = WorkerCounts::default();
        for w in self.workers.lock().expect("pool lock").iter() {
            match w.state() {
                None => {}
                Some(ScaleState::Initializing) => c.initializing += 1,
                Some(ScaleState::Idle) => c.idle += 1,
                Some(ScaleState::Running) => c.running += 1,
                Some(ScaleState::Throttled) => c.throttled += 1,
                Some(ScaleState::Outdated) => c.outdated += 1,
                Some(ScaleState::Unhealthy) => c.unhealthy += 1,
            }
        }
        c.ready = c.idle + c.running;
        c.warm = c.ready;
        c
    }

    pub fn last_boot(&self) -> Option<LastBoot> {
        self.last_boot.lock().expect("pool lock").clone()
    }

    pub(super) fn set_last_boot(&self, worker: &str, started: &WorkerStarted) {
        *self.last_boot.lock().expect("pool lock") = Some(LastBoot {
            worker: worker.to_string(),
            boot: Boot::from(started.clone()),
        });
    }

    pub fn details(&self) -> Vec<WorkerDetail> {
        self.workers
            .lock()
            .expect("pool lock")
            .iter()
            .filter_map(|w| w.detail())
            .collect()
    }

    pub(super) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    pub(super) fn set_workers(&self, workers: Vec<Arc<WorkerShared>>) {
        *self.workers.lock().expect("pool lock") = workers;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().expect("pool lock").clone()
    }

    pub(super) fn set_last_error(&self, e: String) {
        *self.last_error.lock().expect("pool lock") = Some(e);
    }
}
