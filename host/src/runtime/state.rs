//! The data a wasmtime `Store` holds for one instance: the WASI context,
//! the resource table every interface shares (it mirrors the guest's handle
//! table), limits, guest output, one context per wasmpod interface, and an
//! HTTP handler's wasi:http context.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::host::device::DeviceCtx;
use super::host::job::JobCtx;
use super::host::log::LogCtx;
use super::host::model::{ModelCtx, ModelView};
use super::host::tensor::{TensorCtx, TensorView};
use super::limits::InstanceLimits;
use super::output::GuestOutput;

/// Per-instance store data.
pub struct WorkerState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: NoOutgoingHttp,
    pub(crate) table: ResourceTable,
    pub(crate) limits: InstanceLimits,
    /// The guest's stdout and stderr.
    pub(crate) output: GuestOutput,
    pub(crate) tensor: TensorCtx,
    pub(crate) model: ModelCtx,
    pub(crate) job: JobCtx,
    pub(crate) device: DeviceCtx,
    pub(crate) log: LogCtx,
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

impl WasiHttpView for WorkerState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

/// wasi:http hooks of a handler: the default header rules, and no outgoing
/// requests (`wasi:http/outgoing-handler` is not linked, so a component
/// importing it does not even load; this refuses anything that gets here).
pub(crate) struct NoOutgoingHttp;

type SendResult = Result<
    (
        http::Response<wasmtime_wasi_http::WasiBody>,
        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ),
    wasmtime_wasi_http::Error,
>;

impl WasiHttpHooks for NoOutgoingHttp {
    fn send_request(
        &mut self,
        _request: http::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
