//! The data a wasmtime `Store` holds for one instance: WASI context,
//! resource table, limits, and the worker's devices, models and current job.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::job::CurrentJob;
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
    pub(crate) stderr: GuestOutput,
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
