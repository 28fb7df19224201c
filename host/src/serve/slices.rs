//! The host's slices and their executors. Placement hands a worker a
//! [`Lease`] on one slice (a whole GPU, a MIG device, a group of GPUs, or a
//! CPU slice); while the lease lives no other worker gets a slice sharing
//! one of its devices. Each GPU slice is served by its own supervised
//! executor process ([`ExecutorSlot`]): spawned when a worker first needs
//! it, kept warm between workers, and restarted at once if it dies. CPU
//! slices are shared: CPU workers of every endpoint are spread over a few
//! executor processes (`cpu0`..`cpuN-1`, `--cpu-executors`), since the
//! wasm sandbox is the isolation boundary there; a crash of one fails only
//! the jobs it ran (re-queued) and it is restarted.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use super::meter::Meter;
use crate::executor::{ExecutorError, ExecutorProcess, SandboxPolicy, SliceSpec};
use crate::gpu::Inventory;
use crate::scheduler::{PlacementError, Slice, place_preferring};
use crate::store::now_ms;

/// One slice's executor process, supervised: if it dies while it is the
/// slot's current process, a replacement is spawned at once.
pub struct ExecutorSlot {
    spec: SliceSpec,
    /// Device keys of the slice (for overlap with other slices).
    keys: Vec<String>,
    type_name: String,
    launch: Arc<ExecutorLaunch>,
    current: Mutex<Option<Arc<ExecutorProcess>>>,
    /// Serialises spawns, so concurrent callers share one new process.
    spawning: tokio::sync::Mutex<()>,
    info: Mutex<SlotInfo>,
    /// Since when no worker holds the slice (None while one does).
    idle_since: Mutex<Option<Instant>>,
    /// Model directories its workers have needed beyond the launch's
    /// sandbox (endpoints' `models_dir`): every later process may read them.
    extra_reads: Mutex<Vec<PathBuf>>,
}

/// How executor processes are started.
#[derive(Debug, Clone)]
pub struct ExecutorLaunch {
    /// The `wasmpod` binary.
    pub exe: PathBuf,
    /// Compiled-code cache and snapshots, shared with the host.
    pub cache_dir: PathBuf,
    /// Host memory each executor's parked (FlashBoot) state may hold before
    /// it spills to disk.
    pub page_budget: u64,
    /// What every executor may touch (the cache is added as writable).
    pub sandbox: SandboxPolicy,
    /// Shared CPU executor processes (at least 1).
    pub cpu_executors: usize,
}

/// Instances a shared CPU executor can hold at once (live and parked
/// workers of many endpoints); GPU executors keep the engine's default.
pub const CPU_EXECUTOR_INSTANCES: u32 = 2048;

#[derive(Default, Clone)]
struct SlotInfo {
    spawned: u32,
    restarts: u32,
    /// Deaths less than [`CRASH_WINDOW`] apart, ending with the last one.
    crash_streak: u32,
    last_death: Option<Instant>,
    last_death_ms: Option<i64>,
    last_restart_ms: Option<f64>,
    last_error: Option<String>,
}

/// An executor as `/v1/inventory` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExecutorView {
    pub slice: String,
    pub pid: Option<u32>,
    pub alive: bool,
    /// Processes started for this slice in all.
    pub spawned: u32,
    /// Restarts after the process died on its own.
    pub restarts: u32,
    /// When the last one died (ms since the epoch).
    pub last_death_at: Option<i64>,
    /// Milliseconds from the last death to the replacement being ready.
    pub last_restart_ms: Option<f64>,
    pub last_error: Option<String>,
}

impl ExecutorSlot {
    /// The live executor of this slice, spawning one if there is none,
    /// able to read `models_dir` (one started before a worker needed that
    /// directory is replaced: its sandbox cannot be widened).
    pub async fn get(
        self: &Arc<Self>,
        models_dir: &Path,
    ) -> Result<Arc<ExecutorProcess>, ExecutorError> {
        let needs = crate::executor::sandbox::reads_for_models(models_dir);
        {
            let mut extra = self.extra_reads.lock().expect("slot lock");
            for path in &needs {
                if !self.launch.sandbox.can_read(path) && !extra.iter().any(|d| path.starts_with(d))
                {
                    extra.push(path.clone());
                }
            }
        }
        let covers = |e: &ExecutorProcess| needs.iter().all(|p| e.sandbox().can_read(p));
        if let Some(e) = self.live().filter(|e| covers(e)) {
            return Ok(e);
        }
        let _spawning = self.spawning.lock().await;
        match self.live() {
            Some(e) if covers(&e) => return Ok(e),
            Some(_) if self.keys.is_empty() => {
                // A shared CPU executor runs other endpoints' jobs: it is
                // retired, not killed. It leaves the slot (no restart) and
                // ends when its last worker lets go of it.
                tracing::info!(slice = %self.spec.id, dir = %models_dir.display(), "starting a new shared executor that may read this models directory; the old one ends with its last worker");
                self.current.lock().expect("slot lock").take();
            }
            Some(_) => {
                tracing::info!(slice = %self.spec.id, dir = %models_dir.display(), "replacing the slice's executor so that it may read this models directory");
                self.stop();
            }
            None => {}
        }
        let exec = self.spawn_process().await?;
        tokio::spawn(watch(Arc::downgrade(self), Arc::clone(&exec)));
        Ok(exec)
    }

    /// Start a process and make it the slot's current one (the caller
    /// holds `spawning`).
    async fn spawn_process(&self) -> Result<Arc<ExecutorProcess>, ExecutorError> {
        let launch = &self.launch;
        let mut sandbox = launch.sandbox.clone();
        sandbox.read_write.push(launch.cache_dir.clone());
        // Only what exists now: the sandbox cannot cover a directory made
        // later, so one that is missing stays uncovered and its first
        // worker after it appears gets a new executor.
        sandbox.read_only.extend(
            self.extra_reads
                .lock()
                .expect("slot lock")
                .iter()
                .filter(|p| p.exists())
                .cloned(),
        );
        let max_instances = self.keys.is_empty().then_some(CPU_EXECUTOR_INSTANCES);
        let spawned = ExecutorProcess::spawn(
            &launch.exe,
            self.spec.clone(),
            Some(launch.cache_dir.clone()),
            launch.page_budget,
            sandbox,
            max_instances,
        )
        .await;
        let exec = match spawned {
            Ok(e) => e,
            Err(e) => {
                self.info.lock().expect("slot lock").last_error = Some(e.to_string());
                return Err(e);
            }
        };
        *self.current.lock().expect("slot lock") = Some(Arc::clone(&exec));
        let mut info = self.info.lock().expect("slot lock");
        info.spawned += 1;
        info.last_error = None;
        Ok(exec)
    }

    fn live(&self) -> Option<Arc<ExecutorProcess>> {
        self.current
            .lock()
            .expect("slot lock")
            .as_ref()
            .filter(|e| e.is_alive())
            .cloned()
    }

    /// Stop the executor on purpose (no restart): its slice is wanted in
    /// another shape, or the host is shutting down.
    pub fn stop(&self) {
        if let Some(e) = self.current.lock().expect("slot lock").take() {
            e.kill();
        }
    }

    fn view(&self) -> ExecutorView {
        let current = self.current.lock().expect("slot lock").clone();
        let info = self.info.lock().expect("slot lock").clone();
        ExecutorView {
            slice: self.spec.id.clone(),
            pid: current.as_ref().map(|e| e.pid()),
            alive: current.as_ref().is_some_and(|e| e.is_alive()),
            spawned: info.spawned,
            restarts: info.restarts,
            last_death_at: info.last_death_ms,
            last_restart_ms: info.last_restart_ms,
            last_error: info.last_error,
        }
    }
}

/// Deaths closer together than this count as one crash loop.
const CRASH_WINDOW: Duration = Duration::from_secs(60);

/// Wait for `exec` to die; if it was still the slot's process (nobody
/// stopped or retired it on purpose), restart it, and watch the
/// replacement. Holds the process only weakly: a retired one ends when its
/// last worker drops it.
async fn watch(slot: Weak<ExecutorSlot>, exec: Arc<ExecutorProcess>) {
    let (mut death, mut pid, mut exec) = (exec.death(), exec.pid(), Arc::downgrade(&exec));
    loop {
        death.wait().await;
        let Some(slot) = slot.upgrade() else { return };
        let was_current = {
            let mut current = slot.current.lock().expect("slot lock");
            let same = current
                .as_ref()
                .is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), exec.as_ptr()));
            if same {
                *current = None;
            }
            same
        };
        if !was_current {
            return;
        }
        let died_at = Instant::now();
        tracing::warn!(slice = %slot.spec.id, pid, "executor died; restarting it");
        let streak = {
            let mut info = slot.info.lock().expect("slot lock");
            info.restarts += 1;
            info.last_death_ms = Some(now_ms());
            let in_a_row = info
                .last_death
                .is_some_and(|t| died_at.duration_since(t) < CRASH_WINDOW);
            info.crash_streak = if in_a_row { info.crash_streak + 1 } else { 1 };
            info.last_death = Some(died_at);
            info.crash_streak
        };
        // A crash loop must not spin: back off after repeated deaths in
        // quick succession (an occasional death restarts at once).
        if streak > 3 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(streak.min(20)))).await;
        }
        let respawned = {
            let _spawning = slot.spawning.lock().await;
            if slot.live().is_some() {
                // Someone needed it first and started (and watches) one.
                None
            } else {
                Some(slot.spawn_process().await)
            }
        };
        let next = match respawned {
            None => None,
            Some(Ok(e)) => {
                slot.info.lock().expect("slot lock").last_restart_ms =
                    Some(died_at.elapsed().as_secs_f64() * 1e3);
                Some(e)
            }
            Some(Err(e)) => {
                tracing::error!(slice = %slot.spec.id, "restarting the executor: {e}");
                None
            }
        };
        match next {
            Some(e) => (death, pid, exec) = (e.death(), e.pid(), Arc::downgrade(&e)),
            None => return,
        }
    }
}

/// Who holds a slice.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SliceUse {
    pub slice: String,
    /// The billing type: "H100", "2xH100", "MIG-3g.40gb", "cpu".
    pub slice_type: String,
    pub endpoint: String,
    pub worker: String,
    /// Device keys it occupies ("gpu0", "gpu1/mig0"); empty for CPU.
    pub devices: Vec<String>,
    /// Since when (ms since the epoch).
    pub since: i64,
}

struct Held {
    usage: SliceUse,
    /// Worker time up to here is already metered.
    metered_until: Instant,
    cpu_index: Option<usize>,
}

#[derive(Default)]
struct State {
    /// Device key -> slice id holding it.
    busy: HashMap<String, String>,
    /// Lease id -> its holder (a GPU slice has one; a CPU slice many).
    held: HashMap<u64, Held>,
    next_lease: u64,
    executors: HashMap<String, Arc<ExecutorSlot>>,
    /// Workers on each shared CPU executor, by index.
    cpu_load: HashMap<usize, usize>,
}

impl State {
    fn holds(&self, slice_id: &str) -> bool {
        self.held.values().any(|h| h.usage.slice == slice_id)
    }
}

/// Every slice of this host: placement, leases, executors, metering of
/// held slices.
pub struct Slices {
    inventory: Inventory,
    launch: Arc<ExecutorLaunch>,
    meter: Arc<Meter>,
    state: Mutex<State>,
    /// Woken when a slice is released, so throttled workers retry at once.
    pub freed: Notify,
}

/// A worker's hold on a slice; dropping it releases the slice.
pub struct Lease {
    slices: Arc<Slices>,
    id: u64,
    slice: Slice,
    slot: Arc<ExecutorSlot>,
}

impl Lease {
    pub fn slice(&self) -> &Slice {
        &self.slice
    }

    pub fn slot(&self) -> &Arc<ExecutorSlot> {
        &self.slot
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slices.release(self.id);
    }
}

/// What `/v1/inventory` shows.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InventoryView {
    #[schema(value_type = Object)]
    pub inventory: Inventory,
    /// Slices held by workers now.
    pub in_use: Vec<SliceUse>,
    /// Executor processes, one per slice that has been used.
    pub executors: Vec<ExecutorView>,
    /// Memory in use on each GPU and MIG device now (NVML; empty on
    /// simulated and CPU-only hosts).
    pub memory: Vec<crate::gpu::inventory::DeviceMemory>,
}

impl Slices {
    pub fn new(inventory: Inventory, launch: ExecutorLaunch, meter: Arc<Meter>) -> Self {
        Self {
            inventory,
            launch: Arc::new(launch),
            meter,
            state: Mutex::default(),
            freed: Notify::new(),
        }
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Place `worker` of `endpoint` on the first free slice of `priority`.
    pub fn acquire(
        self: &Arc<Self>,
        endpoint: &str,
        worker: &str,
        priority: &[String],
        gpus_per_worker: u32,
    ) -> Result<Lease, PlacementError> {
        let mut state = self.state.lock().expect("slices lock");
        let busy: HashSet<String> = state.busy.keys().cloned().collect();
        // CPU slices never conflict: a CPU worker goes to the shared
        // executor with the fewest of this endpoint's workers, then the
        // fewest workers. An endpoint's workers so spread over processes:
        // they run in parallel, and one executor's crash takes only some.
        let shared = self.launch.cpu_executors.max(1);
        let mut mine: HashMap<usize, usize> = HashMap::new();
        for h in state.held.values().filter(|h| h.usage.endpoint == endpoint) {
            if let Some(i) = h.cpu_index {
                *mine.entry(i).or_default() += 1;
            }
        }
        let cpu_index = (0..shared)
            .min_by_key(|i| {
                (
                    mine.get(i).copied().unwrap_or(0),
                    state.cpu_load.get(i).copied().unwrap_or(0),
                )
            })
            .unwrap_or(0);
        // Slices whose executor holds this endpoint's parked worker: a
        // start there restores it instead of starting cold.
        let parked: Vec<Slice> = state
            .executors
            .values()
            .filter(|slot| {
                slot.live().is_some_and(|e| e.parked(endpoint).is_some())
                    && (slot.keys.is_empty() || !state.holds(&slot.spec.id))
            })
            .map(|slot| Slice {
                spec: slot.spec.clone(),
                type_name: slot.type_name.clone(),
                keys: slot.keys.clone(),
            })
            .collect();
        let slice = place_preferring(
            &self.inventory,
            priority,
            gpus_per_worker,
            &busy,
            cpu_index,
            &parked,
        )?;
        let id = slice.spec.id.clone();
        let is_cpu = slice.keys.is_empty();
        let cpu_index = is_cpu.then(|| {
            slice
                .spec
                .id
                .strip_prefix("cpu")
                .and_then(|i| i.parse().ok())
                .unwrap_or(cpu_index)
        });
        if let Some(i) = cpu_index {
            *state.cpu_load.entry(i).or_default() += 1;
        }
        for key in &slice.keys {
            state.busy.insert(key.clone(), id.clone());
        }
        // An idle executor of an overlapping slice (gpu0 when gpus0-1 is
        // wanted) would hold memory on devices now given to someone else.
        for (other_id, other) in &state.executors {
            if other_id != &id && other.keys.iter().any(|k| slice.keys.contains(k)) {
                other.stop();
            }
        }
        let slot = Arc::clone(state.executors.entry(id.clone()).or_insert_with(|| {
            Arc::new(ExecutorSlot {
                spec: slice.spec.clone(),
                keys: slice.keys.clone(),
                type_name: slice.type_name.clone(),
                launch: Arc::clone(&self.launch),
                current: Mutex::default(),
                spawning: tokio::sync::Mutex::new(()),
                info: Mutex::default(),
                idle_since: Mutex::default(),
                extra_reads: Mutex::default(),
            })
        }));
        *slot.idle_since.lock().expect("slot lock") = None;
        state.next_lease += 1;
        let lease_id = state.next_lease;
        state.held.insert(
            lease_id,
            Held {
                usage: SliceUse {
                    slice: id,
                    slice_type: slice.type_name.clone(),
                    endpoint: endpoint.to_string(),
                    worker: worker.to_string(),
                    devices: slice.keys.clone(),
                    since: now_ms(),
                },
                metered_until: Instant::now(),
                cpu_index,
            },
        );
        Ok(Lease {
            slices: Arc::clone(self),
            id: lease_id,
            slice,
            slot,
        })
    }

    fn release(&self, lease: u64) {
        {
            let mut state = self.state.lock().expect("slices lock");
            if let Some(held) = state.held.remove(&lease) {
                let slice_id = &held.usage.slice;
                if !state.holds(slice_id)
                    && let Some(slot) = state.executors.get(slice_id)
                {
                    *slot.idle_since.lock().expect("slot lock") = Some(Instant::now());
                }
                for key in &held.usage.devices {
                    state.busy.remove(key);
                }
                if let Some(i) = held.cpu_index
                    && let Some(n) = state.cpu_load.get_mut(&i)
                {
                    *n = n.saturating_sub(1);
                }
                self.meter.add_worker_time(
                    &held.usage.endpoint,
                    &held.usage.slice_type,
                    held.metered_until.elapsed(),
                );
            }
        }
        self.freed.notify_waiters();
    }

    /// Move the worker time of held slices into the meter (called every
    /// second, so long-lived workers are billed as they go).
    pub fn accrue(&self) {
        let mut state = self.state.lock().expect("slices lock");
        let now = Instant::now();
        for held in state.held.values_mut() {
            self.meter.add_worker_time(
                &held.usage.endpoint,
                &held.usage.slice_type,
                now - held.metered_until,
            );
            held.metered_until = now;
        }
    }

    pub fn view(&self) -> InventoryView {
        let state = self.state.lock().expect("slices lock");
        let mut in_use: Vec<SliceUse> = state.held.values().map(|h| h.usage.clone()).collect();
        in_use.sort_by(|a, b| a.slice.cmp(&b.slice));
        let mut executors: Vec<ExecutorView> = state.executors.values().map(|s| s.view()).collect();
        executors.sort_by(|a, b| a.slice.cmp(&b.slice));
        drop(state);
        InventoryView {
            inventory: self.inventory.clone(),
            in_use,
            executors,
            memory: self.inventory.memory_used(),
        }
    }

    /// Slices held now, by slice type (for /metrics).
    pub fn held_by_type(&self) -> Vec<(String, String, usize)> {
        let state = self.state.lock().expect("slices lock");
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for h in state.held.values() {
            *counts
                .entry((h.usage.endpoint.clone(), h.usage.slice_type.clone()))
                .or_default() += 1;
        }
        let mut out: Vec<_> = counts.into_iter().map(|((e, t), n)| (e, t, n)).collect();
        out.sort();
        out
    }

    /// Stop executors whose slice no worker has held for `max_idle`: at
    /// zero workers a GPU executor would otherwise keep its CUDA context
    /// (hundreds of MiB of the GPU) forever. The next worker spawns a new
    /// one (milliseconds, plus the device's init).
    /// One holding a parked FlashBoot worker is kept for `max_parked_idle`
    /// instead: stopping it throws away the state the endpoint's next cold
    /// start would restore.
    pub fn reap_idle(&self, max_idle: Duration, max_parked_idle: Duration) {
        let state = self.state.lock().expect("slices lock");
        for (id, slot) in &state.executors {
            let idle = *slot.idle_since.lock().expect("slot lock");
            let Some(exec) = slot.live() else { continue };
            let limit = if exec.holds_parked() {
                max_parked_idle
            } else {
                max_idle
            };
            if !state.holds(id) && idle.is_some_and(|t| t.elapsed() >= limit) {
                tracing::debug!(slice = %id, "stopping the idle executor");
                slot.stop();
            }
        }
    }

    /// Workers of `endpoint` parked with `handler` on live executors: each
    /// restores in the time of a bulk copy when the endpoint scales up.
    pub fn parked_count(&self, endpoint: &str, handler: &str) -> usize {
        let state = self.state.lock().expect("slices lock");
        state
            .executors
            .values()
            .filter_map(|slot| slot.live()?.parked(endpoint))
            .filter(|p| p.handler == handler)
            .count()
    }

    /// Drop `endpoint`'s parked workers on every executor.
    pub fn release_parked(&self, endpoint: &str) {
        let state = self.state.lock().expect("slices lock");
        for slot in state.executors.values() {
            if let Some(exec) = slot.live() {
                exec.release_parked(endpoint);
            }
        }
    }

    /// Stop every executor (host shutdown, after the workers stopped).
    pub fn stop_all(&self) {
        let state = self.state.lock().expect("slices lock");
        for slot in state.executors.values() {
            slot.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slices() -> Arc<Slices> {
        let inventory = Inventory::simulated(
            "[[gpu]]\nname = \"NVIDIA H100 80GB HBM3\"\nmemory_gib = 80\ncount = 2\n",
        )
        .unwrap();
        Arc::new(Slices::new(
            inventory,
            ExecutorLaunch {
                exe: PathBuf::from("/nonexistent/wasmpod"),
                cache_dir: PathBuf::from("/nonexistent/cache"),
                page_budget: 0,
                sandbox: SandboxPolicy::default(),
                cpu_executors: 2,
            },
            Arc::new(Meter::default()),
        ))
    }

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Workers of two endpoints placed in turn: each endpoint's two go to
    /// different shared CPU executors, not both to the least loaded one
    /// of the moment.
    #[test]
    fn an_endpoints_cpu_workers_spread_over_the_shared_executors() {
        let s = slices();
        let cpu = list(&["cpu"]);
        let a1 = s.acquire("a", "a1", &cpu, 1).unwrap();
        let b1 = s.acquire("b", "b1", &cpu, 1).unwrap();
        let a2 = s.acquire("a", "a2", &cpu, 1).unwrap();
        let b2 = s.acquire("b", "b2", &cpu, 1).unwrap();
        let id = |l: &Lease| l.slice().spec.id.clone();
        assert_ne!(id(&a1), id(&a2));
        assert_ne!(id(&b1), id(&b2));
    }

    #[test]
    fn leases_hold_slices_until_dropped_and_are_metered() {
        let s = slices();
        let a = s.acquire("e", "w1", &list(&["H100"]), 1).unwrap();
        let b = s.acquire("e", "w2", &list(&["H100"]), 1).unwrap();
        assert_eq!(
            (a.slice().spec.id.as_str(), b.slice().spec.id.as_str()),
            ("gpu0", "gpu1")
        );
        // Both GPUs held: a group of two cannot be placed, a third is busy.
        assert!(matches!(
            s.acquire("f", "w3", &list(&["H100"]), 1),
            Err(PlacementError::Busy(_))
        ));
        assert!(matches!(
            s.acquire("f", "w3", &list(&["H100"]), 2),
            Err(PlacementError::Busy(_))
        ));
        let view = s.view();
        assert_eq!(view.in_use.len(), 2);
        assert_eq!(view.in_use[0].worker, "w1");
        std::thread::sleep(Duration::from_millis(20));
        drop(a);
        drop(b);
        assert!(s.view().in_use.is_empty());
        let pending = s.meter.pending_seconds();
        let secs = pending[&("e".to_string(), "H100".to_string())];
        assert!(secs >= 0.04, "two workers for 20 ms each: {secs}");
        // Freed: now the pair fits.
        let g = s.acquire("f", "w4", &list(&["H100"]), 2).unwrap();
        assert_eq!(g.slice().spec.id, "gpus0-1");
        assert_eq!(g.slice().type_name, "2xH100");
    }

    #[test]
    fn cpu_workers_share_a_few_executors() {
        let s = slices();
        let a = s.acquire("e", "w1", &list(&["cpu"]), 1).unwrap();
        let b = s.acquire("f", "w2", &list(&["cpu"]), 1).unwrap();
        let c = s.acquire("g", "w3", &list(&["cpu"]), 1).unwrap();
        // Spread over the two shared executors, least loaded first.
        assert_eq!(a.slice().spec.id, "cpu0");
        assert_eq!(b.slice().spec.id, "cpu1");
        assert_eq!(c.slice().spec.id, "cpu0");
        assert_eq!(s.view().in_use.len(), 3);
        drop(a);
        drop(c);
        let d = s.acquire("h", "w4", &list(&["cpu"]), 1).unwrap();
        assert_eq!(d.slice().spec.id, "cpu0", "the emptier one");
        assert_eq!(s.view().in_use.len(), 2);
    }
}
