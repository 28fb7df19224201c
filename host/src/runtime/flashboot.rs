//! FlashBoot: start an instance of a handler by the fastest layer that
//! applies, and say which one served it.
//!
//! 1. code cached: the compiled component is memory-mapped from disk;
//! 2. pre-initialised: a snapshot of the instance after `init` exists, so the
//!    new instance starts with that heap and its host handles re-created,
//!    and `init` does not run;
//! 3. VRAM restore (the caller's part: [`crate::gpu::ModelStore::page_in`],
//!    [`Instance::page_in`]): weights come back from pinned RAM.
//!
//! Without a snapshot the start is cold: the instrumented component (the
//! handler plus wizer's read-only access exports) runs `init`, serves jobs
//! like any instance, and is snapshotted once `init` returns, so the next
//! start is pre-initialised. Anything that stops a snapshot (a component
//! layout wizer does not support, a WASI stream kept across `init`) only
//! costs the next start its `init`: the report says why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmpod_tensor::DType;
use wasmtime::component::Resource;
use wasmtime_wizer::Wizer;

use super::cache::LoadSource;
use super::host::model::ModelEntry;
use super::host::tensor::TensorEntry;
use super::instance::{Handler, Instance, InstanceConfig};
use super::snapshot::shim::{self, RESTORE_MODEL, RESTORE_TENSOR};
use super::snapshot::wizer::WizerAccess;
use super::snapshot::{Slot, Snapshot, SnapshotError, SnapshotStore};
use super::state::WorkerState;
use super::{Runtime, RuntimeError};

/// Which layer served a start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BootLayer {
    /// Compiled now, `init` ran.
    Cold,
    /// Compiled code memory-mapped from the cache, `init` ran.
    CodeCached,
    /// Started from a snapshot taken after `init`; `init` did not run.
    #[serde(rename = "pre-initialised")]
    Preinitialised,
    /// A parked instance (its tensors and the slice's weights paged out
    /// when its worker scaled to zero) paged back in. [`FlashBoot::start`]
    /// never returns it: an executor that parks instances does.
    VramRestored,
}

impl std::fmt::Display for BootLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BootLayer::Cold => "cold",
            BootLayer::CodeCached => "code cached",
            BootLayer::Preinitialised => "pre-initialised",
            BootLayer::VramRestored => "VRAM restored",
        })
    }
}

/// How a start went.
#[derive(Debug, Clone)]
pub struct BootReport {
    pub layer: BootLayer,
    /// Compiling or mapping the component (zero when this process already
    /// holds the snapshot's compiled code).
    pub load: Duration,
    /// Creating the instance (and running `init`, unless pre-initialised).
    pub instantiate: Duration,
    /// Re-creating the host handles of a snapshot.
    pub restore_handles: Duration,
    /// Handles re-created (tensors, weights, models, holes).
    pub handles: usize,
    /// Time spent taking a snapshot after `init` (cold starts only).
    pub snapshot_taken: Option<Duration>,
    /// Why the start was not pre-initialised, or why no snapshot was taken.
    pub note: Option<String>,
}

/// Starts instances through the snapshot store.
#[derive(Clone)]
pub struct FlashBoot {
    runtime: Runtime,
    snapshots: SnapshotStore,
    /// Snapshots already read, checked and compiled in this process, by key:
    /// a warm host skips the disk, the digest checks and the code load.
    ready: Arc<Mutex<HashMap<String, ReadySnapshot>>>,
}

/// A checked snapshot and its compiled component.
type ReadySnapshot = (Arc<Snapshot>, Handler);

/// The handler with wizer's state-access exports and our two restore
/// exports: what a cold start instantiates and snapshots. Deterministic, so
/// its compiled code is found in the cache by digest.
fn instrument(
    wasm: &[u8],
) -> Result<(wasmtime_wizer::ComponentContext<'_>, Vec<u8>), SnapshotError> {
    let (cx, bytes) = Wizer::new()
        .instrument_component(wasm)
        .map_err(wizer_error)?;
    Ok((cx, shim::add_restore_exports(&bytes)?))
}

fn wizer_error(e: impl std::fmt::Display) -> SnapshotError {
    SnapshotError::Wizer(format!("{e:#}"))
}

impl FlashBoot {
    pub fn new(runtime: Runtime, snapshots: SnapshotStore) -> Self {
        Self {
            runtime,
            snapshots,
            ready: Arc::default(),
        }
    }

    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    /// Compiles, into `runtime`'s code cache, the component a cold start of
    /// `wasm` runs `init` on, so the first start of a new handler version
    /// maps it rather than compiling it. A component that cannot be
    /// snapshotted is skipped: its starts are plain ones.
    pub fn precompile(runtime: &Runtime, wasm: &[u8]) -> Result<(), RuntimeError> {
        match instrument(wasm) {
            Ok((_, bytes)) => runtime.load(&bytes).map(drop),
            Err(_) => Ok(()),
        }
    }

    /// True when a snapshot for this handler and configuration is on disk.
    pub fn has_snapshot(&self, wasm: &[u8], config: &InstanceConfig) -> bool {
        let key = SnapshotStore::key(&super::digest(wasm), config);
        self.snapshots
            .root()
            .join(key)
            .join("manifest.json")
            .exists()
    }

    /// An initialised instance of the handler `wasm`: from its snapshot when
    /// there is a valid one, else cold (taking the snapshot for next time).
    pub async fn start(
        &self,
        wasm: &[u8],
        config: &InstanceConfig,
    ) -> Result<(Instance, BootReport), RuntimeError> {
        let digest = super::digest(wasm);
        let key = SnapshotStore::key(&digest, config);
        let mut note = None;
        let ready = self
            .ready
            .lock()
            .expect("flashboot lock")
            .get(&key)
            .cloned();
        let in_memory = ready.is_some();
        let found = match ready {
            Some(ready) => Ok(Some(ready)),
            None => self.snapshots.load(&key, &digest).and_then(|s| {
                let Some(s) = s else { return Ok(None) };
                let handler = self
                    .runtime
                    .load(&s.component)
                    .map_err(|e| SnapshotError::Restore(e.to_string()))?;
                Ok(Some((Arc::new(s), handler)))
            }),
        };
        match found {
            Ok(Some((snapshot, handler))) => {
                match self.restore(&snapshot, &handler, config).await {
                    Ok(mut started) => {
                        if in_memory {
                            started.1.load = Duration::ZERO;
                        }
                        self.ready
                            .lock()
                            .expect("flashboot lock")
                            .insert(key, (snapshot, handler));
                        return Ok(started);
                    }
                    Err(e) => {
                        tracing::warn!(key, "snapshot not usable, starting cold: {e}");
                        self.ready.lock().expect("flashboot lock").remove(&key);
                        let _ = std::fs::remove_dir_all(&snapshot.dir);
                        note = Some(e.to_string());
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(key, "snapshot discarded: {e}");
                note = Some(e.to_string());
            }
        }
        let (instance, mut report) = self.cold(wasm, &digest, &key, config).await?;
        report.note = note.or(report.note);
        Ok((instance, report))
    }

    /// Start from `snapshot`: instantiate the pre-initialised component and
    /// put the guest's handles back into their slots.
    async fn restore(
        &self,
        snapshot: &Snapshot,
        handler: &Handler,
        config: &InstanceConfig,
    ) -> Result<(Instance, BootReport), SnapshotError> {
        let load = handler.load_time();
        let started = Instant::now();
        let (mut instance, raw) = handler
            .instantiate_raw(config)
            .await
            .map_err(|e| SnapshotError::Restore(e.to_string()))?;
        let instantiate = started.elapsed();
        let started = Instant::now();
        restore_handles(&mut instance, raw, snapshot).await?;
        Ok((
            instance,
            BootReport {
                layer: BootLayer::Preinitialised,
                load,
                instantiate,
                restore_handles: started.elapsed(),
                handles: snapshot.manifest.slots.len(),
                snapshot_taken: None,
                note: None,
            },
        ))
    }

    /// Start by running `init`, on the wizer-instrumented component when it
    /// can be instrumented, and snapshot the result.
    async fn cold(
        &self,
        wasm: &[u8],
        digest: &str,
        key: &str,
        config: &InstanceConfig,
    ) -> Result<(Instance, BootReport), RuntimeError> {
        let (cx, bytes) = match instrument(wasm) {
            Ok(ok) => ok,
            Err(e) => {
                // Not snapshottable: an ordinary start.
                let (instance, mut report) = self.plain(wasm, config).await?;
                report.note = Some(e.to_string());
                return Ok((instance, report));
            }
        };
        let started = Instant::now();
        let handler = self.runtime.load(&bytes)?;
        let load = started.elapsed();
        let started = Instant::now();
        let (mut instance, raw) = handler.instantiate_raw(config).await?;
        instance.run_init(config.init_timeout).await?;
        let instantiate = started.elapsed();
        let layer = match handler.source() {
            LoadSource::Compiled => BootLayer::Cold,
            LoadSource::Cached => BootLayer::CodeCached,
        };
        let started = Instant::now();
        let note = match self.take(&cx, &mut instance, raw, digest, key).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(key, "no snapshot taken: {e}");
                Some(e.to_string())
            }
        };
        let snapshot_taken = note.is_none().then(|| started.elapsed());
        Ok((
            instance,
            BootReport {
                layer,
                load,
                instantiate,
                restore_handles: Duration::ZERO,
                handles: 0,
                snapshot_taken,
                note,
            },
        ))
    }

    async fn plain(
        &self,
        wasm: &[u8],
        config: &InstanceConfig,
    ) -> Result<(Instance, BootReport), RuntimeError> {
        let handler = self.runtime.load(wasm)?;
        let started = Instant::now();
        let instance = handler.instantiate(config).await?;
        let layer = match handler.source() {
            LoadSource::Compiled => BootLayer::Cold,
            LoadSource::Cached => BootLayer::CodeCached,
        };
        Ok((
            instance,
            BootReport {
                layer,
                load: handler.load_time(),
                instantiate: started.elapsed(),
                restore_handles: Duration::ZERO,
                handles: 0,
                snapshot_taken: None,
                note: None,
            },
        ))
    }

    /// Snapshot an instance whose `init` just returned.
    async fn take(
        &self,
        cx: &wasmtime_wizer::ComponentContext<'_>,
        instance: &mut Instance,
        raw: wasmtime::component::Instance,
        digest: &str,
        key: &str,
    ) -> Result<(), SnapshotError> {
        let (slots, tensors) = collect_slots(instance.store.data_mut())?;
        if !slots.is_empty() {
            check_lockstep(instance, raw).await?;
        }
        let error = Arc::new(Mutex::new(None));
        let mut access = WizerAccess {
            store: &mut instance.store,
            instance: raw,
            error: Arc::clone(&error),
        };
        let rewritten = Wizer::new()
            .snapshot_component(cx, &mut access)
            .await
            .map_err(wizer_error)?;
        if let Some(e) = error.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(SnapshotError::Wizer(e));
        }
        let component = shim::add_restore_exports(&rewritten)?;
        self.snapshots
            .save(key, digest, &component, slots, &tensors)?;
        Ok(())
    }
}

/// The guest's handle table after `init`, read from the host's resource
/// table: the two evolve in lockstep (every entry the host pushes is handed
/// to the guest as an `own`, every guest drop deletes it, and both reuse the
/// most recently freed slot first), so host slot `i` is guest handle `i + 1`.
/// [`check_lockstep`] verifies it before the snapshot is written.
fn collect_slots(state: &mut WorkerState) -> Result<(Vec<Slot>, Vec<u8>), SnapshotError> {
    let live = state.table.iter_mut().count();
    let devices = Arc::clone(&state.tensor.devices);
    let mut slots = Vec::new();
    let mut tensors = Vec::new();
    let mut found = 0;
    let mut key = 0u32;
    while found < live {
        let Ok(entry) = state.table.get_any_mut(key) else {
            slots.push(Slot::Hole);
            key += 1;
            continue;
        };
        found += 1;
        key += 1;
        if let Some(t) = entry.downcast_ref::<TensorEntry>() {
            if let Some(origin) = &t.origin {
                slots.push(Slot::Weight {
                    model: origin.model.clone(),
                    weight: origin.weight.clone(),
                    device: t.device,
                });
                continue;
            }
            let device = devices
                .device(t.device)
                .expect("tensor entries hold valid device indices");
            let bytes = device
                .download(&t.tensor)
                .map_err(|e| SnapshotError::Restore(format!("reading a tensor: {e}")))?;
            slots.push(Slot::Tensor {
                dtype: t.tensor.dtype().name().to_string(),
                shape: t.tensor.shape().to_vec(),
                device: t.device,
                offset: tensors.len() as u64,
                len: bytes.len() as u64,
            });
            tensors.extend_from_slice(&bytes);
        } else if let Some(m) = entry.downcast_ref::<ModelEntry>() {
            slots.push(Slot::Model {
                name: m.0.name().to_string(),
            });
        } else if entry
            .downcast_ref::<super::host::graph::GraphEntry>()
            .is_some()
        {
            return Err(SnapshotError::UnsupportedResource(
                "recorded tensor graph (record graphs in handle, not init, to keep FlashBoot snapshots)".into(),
            ));
        } else {
            return Err(SnapshotError::UnsupportedResource(
                "WASI resource (a stream, file, socket or pollable)".into(),
            ));
        }
    }
    Ok((slots, tensors))
}

/// Hands the guest one placeholder tensor and checks that its handle index
/// is the host slot + 1: the two tables agree on their next free slot, so
/// the slots read by [`collect_slots`] are the guest's. The placeholder
/// stays (no device memory, never referenced by the guest). Only needed
/// when the guest holds handles; a component that holds some imports the
/// tensor interface (a weight is a tensor), so the export exists.
async fn check_lockstep(
    instance: &mut Instance,
    raw: wasmtime::component::Instance,
) -> Result<(), SnapshotError> {
    let placeholder = placeholder_entry(instance.store.data())?;
    let handle = instance
        .store
        .data_mut()
        .table
        .push(placeholder)
        .map_err(|e| SnapshotError::Restore(e.to_string()))?;
    let expected = handle.rep() + 1;
    let got = insert(instance, raw, RESTORE_TENSOR, handle).await?;
    if got != expected {
        return Err(SnapshotError::Restore(format!(
            "the guest's handle table is not in step with the host's (slot {got}, expected {expected}); the handler creates host resources the snapshot cannot map"
        )));
    }
    Ok(())
}

fn placeholder_entry(state: &WorkerState) -> Result<TensorEntry, SnapshotError> {
    let t = state
        .tensor
        .devices
        .primary()
        .zeros(DType::U8, &[0])
        .map_err(|e| SnapshotError::Restore(e.to_string()))?;
    Ok(TensorEntry::new(t, 0))
}

/// Calls a restore export with one `own` handle; returns the guest index
/// it was given.
async fn insert<T: 'static + Send>(
    instance: &mut Instance,
    raw: wasmtime::component::Instance,
    export: &str,
    handle: Resource<T>,
) -> Result<u32, SnapshotError> {
    let fail = |e: wasmtime::Error| SnapshotError::Restore(format!("{export}: {e:#}"));
    let f = raw
        .get_typed_func::<(Resource<T>,), (u32,)>(&mut instance.store, export)
        .map_err(fail)?;
    let (index,) = f
        .call_async(&mut instance.store, (handle,))
        .await
        .map_err(fail)?;
    Ok(index)
}

/// Re-creates every slot of the snapshot's handle table in order.
async fn restore_handles(
    instance: &mut Instance,
    raw: wasmtime::component::Instance,
    snapshot: &Snapshot,
) -> Result<(), SnapshotError> {
    for (slot_index, slot) in snapshot.manifest.slots.iter().enumerate() {
        let expected = slot_index as u32 + 1;
        let state = instance.store.data_mut();
        let got = match slot {
            Slot::Model { name } => {
                let store = model_store(state, || format!("model {name:?}"))?;
                let model = store
                    .open(name)
                    .map_err(|e| SnapshotError::Restore(e.to_string()))?;
                let handle = push(state, ModelEntry(model), slot_index)?;
                insert(instance, raw, RESTORE_MODEL, handle).await?
            }
            Slot::Weight {
                model,
                weight,
                device,
            } => {
                let store = model_store(state, || format!("weight {weight:?} of model {model:?}"))?;
                let opened = store
                    .open(model)
                    .map_err(|e| SnapshotError::Restore(e.to_string()))?;
                let tensor = store
                    .weight(&opened, weight)
                    .map_err(|e| SnapshotError::Restore(e.to_string()))?;
                let mut entry = TensorEntry::new(tensor, *device);
                entry.origin = Some(super::host::tensor::WeightOrigin {
                    model: model.clone(),
                    weight: weight.clone(),
                });
                let handle = push(state, entry, slot_index)?;
                insert(instance, raw, RESTORE_TENSOR, handle).await?
            }
            Slot::Tensor {
                dtype,
                shape,
                device,
                offset,
                len,
            } => {
                let dtype = parse_dtype(dtype)?;
                let bytes = snapshot.tensor_bytes(*offset, *len).ok_or_else(|| {
                    SnapshotError::Restore("tensors.bin is shorter than the manifest says".into())
                })?;
                let target = state.tensor.devices.device(*device).ok_or_else(|| {
                    SnapshotError::Restore(format!(
                        "the snapshot has a tensor on device {device} but this worker has {} device(s)",
                        state.tensor.devices.len()
                    ))
                })?;
                let tensor = target
                    .upload(dtype, shape, bytes)
                    .map_err(|e| SnapshotError::Restore(e.to_string()))?;
                let handle = push(state, TensorEntry::new(tensor, *device), slot_index)?;
                insert(instance, raw, RESTORE_TENSOR, handle).await?
            }
            Slot::Hole => {
                let entry = placeholder_entry(state)?;
                let handle = push(state, entry, slot_index)?;
                insert(instance, raw, RESTORE_TENSOR, handle).await?
            }
        };
        if got != expected {
            return Err(SnapshotError::Restore(format!(
                "handle slot {slot_index} came back as guest index {got}, expected {expected}"
            )));
        }
    }
    Ok(())
}

/// The instance's model store, which a slot holding `what()` needs.
fn model_store(
    state: &WorkerState,
    what: impl FnOnce() -> String,
) -> Result<Arc<crate::gpu::ModelStore>, SnapshotError> {
    state.model.store.clone().ok_or_else(|| {
        SnapshotError::Restore(format!(
            "the snapshot holds {} but this instance has no model store",
            what()
        ))
    })
}

fn push<T: Send + 'static>(
    state: &mut WorkerState,
    entry: T,
    slot_index: usize,
) -> Result<Resource<T>, SnapshotError> {
    let handle = state
        .table
        .push(entry)
        .map_err(|e| SnapshotError::Restore(e.to_string()))?;
    if handle.rep() as usize != slot_index {
        return Err(SnapshotError::Restore(format!(
            "host slot {} for guest slot {slot_index}: the fresh instance's table is not empty",
            handle.rep()
        )));
    }
    Ok(handle)
}

fn parse_dtype(name: &str) -> Result<DType, SnapshotError> {
    DType::from_name(name)
        .ok_or_else(|| SnapshotError::Restore(format!("unknown dtype {name:?} in the manifest")))
}
