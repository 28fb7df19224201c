//! The data a wasmtime `Store` holds for one instance: the WASI context,
//! the resource table every interface shares (it mirrors the guest's handle
//! table), limits, guest output, and one context per wasmpod interface.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::host::device::DeviceCtx;
use super::host::job::JobCtx;
use super::host::model::{ModelCtx, ModelView};
use super::host::tensor::{TensorCtx, TensorView};
use super::limits::InstanceLimits;
use super::output::GuestOutput;

/// Per-instance store data.
pub struct WorkerState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: InstanceLimits,
    pub(crate) stderr: GuestOutput,
    pub(crate) tensor: TensorCtx,
    pub(crate) model: ModelCtx,
    pub(crate) job: JobCtx,
    pub(crate) device: DeviceCtx,
}

impl WorkerState {
    /// The tensor interface's view of this instance.
    pub(crate) fn tensors(&mut self) -> TensorView<'_> {
        TensorView {
            ctx: &mut self.tensor,
            table: &mut self.table,
        }
    }

    /// The model interface's view of this instance.
    pub(crate) fn models(&mut self) -> ModelView<'_> {
        ModelView {
            ctx: &self.model,
            table: &mut self.table,
        }
    }
}

impl WasiView for WorkerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
