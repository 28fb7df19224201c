//! The data a wasmtime `Store` holds for one instance: WASI context,
//! resource table, limits, and the worker's devices, models and current job.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::job::{CurrentJob, JobSink};
use super::limits::InstanceLimits;
use super::output::GuestOutput;
use crate::gpu::{ModelStore, WorkerDevices};

/// Per-instance store data.
pub struct WorkerState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: InstanceLimits,
    pub(crate) devices: Arc<WorkerDevices>,
    pub(crate) models: Option<Arc<ModelStore>>,
    pub(crate) job: Option<CurrentJob>,
    /// The guest's stdout and stderr.
    pub(crate) output: GuestOutput,
    /// Where log calls and output go outside a job (the worker's log).
    pub(crate) idle_sink: Option<Arc<dyn JobSink>>,
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
