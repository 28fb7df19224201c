//! The data a wasmtime `Store` holds for one instance: WASI context,
//! resource table, limits, and the worker's devices, models and current job
//! (or, for an HTTP handler, its wasi:http context).

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::job::CurrentJob;
use super::limits::InstanceLimits;
use super::output::GuestOutput;
use crate::gpu::{ModelStore, WorkerDevices};

/// Per-instance store data.
pub struct WorkerState {
    pub(crate) wasi: WasiCtx,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_hooks: NoOutgoingHttp,
    pub(crate) table: ResourceTable,
    pub(crate) limits: InstanceLimits,
    pub(crate) devices: Arc<WorkerDevices>,
    pub(crate) models: Option<Arc<ModelStore>>,
    pub(crate) job: Option<CurrentJob>,
    /// The HTTP request being served (for log lines), if any.
    pub(crate) request: Option<String>,
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
