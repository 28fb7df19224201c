//! Host capabilities, one module per WIT interface (as wasmtime-wasi does):
//! each implements the generated `Host` traits for [`WorkerState`]. One
//! linker serves both worlds: a component imports what its world needs.

pub mod device;
pub mod job;
pub mod log;
pub mod model;
pub mod tensor;

use wasmtime::component::{HasSelf, Linker};
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

use super::bindings::Handler;
use super::bindings::http::log as log_bindings;
use super::state::WorkerState;

/// Add every wasmpod interface to `linker`, and `wasi:http/types` for HTTP
/// handlers (not `wasi:http/outgoing-handler`: handlers make no requests).
pub fn add_to_linker(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    Handler::add_to_linker::<WorkerState, HasSelf<WorkerState>>(linker, |s| s)?;
    log_bindings::add_to_linker::<WorkerState, HasSelf<WorkerState>>(linker, |s| s)?;
    let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
    wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<_, WasiHttp>(
        linker,
        &options.into(),
        WorkerState::http,
    )
}
