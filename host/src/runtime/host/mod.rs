//! Host capabilities, one module per WIT interface (as wasmtime-wasi does):
//! each interface has its own context type in the store
//! ([`WorkerState`]) and implements the generated `Host` traits on it, or
//! on a view pairing it with the shared resource table; [`fault`] holds
//! their error types. The tensor interface spans `tensor.rs` (the ops),
//! `decoder.rs` (the decoder ops' glue), `vision.rs` (the image ops' and
//! the elementwise long tail's glue) and `graph.rs` (capture / replay).
//! One linker serves both worlds: a component imports what its world needs.

mod decoder;
pub mod device;
pub mod fault;
pub mod graph;
pub mod job;
pub mod log;
pub mod model;
pub mod tensor;
mod vision;

use wasmtime::component::{HasData, Linker};
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

use super::bindings;
use super::state::WorkerState;

struct Tensors;
impl HasData for Tensors {
    type Data<'a> = tensor::TensorView<'a>;
}

struct Models;
impl HasData for Models {
    type Data<'a> = model::ModelView<'a>;
}

struct Jobs;
impl HasData for Jobs {
    type Data<'a> = &'a mut job::JobCtx;
}

struct Devices;
impl HasData for Devices {
    type Data<'a> = &'a mut device::DeviceCtx;
}

struct Logs;
impl HasData for Logs {
    type Data<'a> = &'a mut log::LogCtx;
}

/// Add every wasmpod interface to `linker`, each reaching its own context,
/// and `wasi:http/types` for HTTP handlers (not
/// `wasi:http/outgoing-handler`: handlers make no requests).
pub fn add_to_linker(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    bindings::types::add_to_linker::<_, Jobs>(linker, |s| &mut s.job)?;
    bindings::tensor::add_to_linker::<_, Tensors>(linker, WorkerState::tensors)?;
    bindings::model::add_to_linker::<_, Models>(linker, WorkerState::models)?;
    bindings::job::add_to_linker::<_, Jobs>(linker, |s| &mut s.job)?;
    bindings::device::add_to_linker::<_, Devices>(linker, |s| &mut s.device)?;
    bindings::http::log::add_to_linker::<_, Logs>(linker, |s| &mut s.log)?;
    let options = wasmtime_wasi_http::p2::bindings::LinkOptions::default();
    wasmtime_wasi_http::p2::bindings::http::types::add_to_linker::<_, WasiHttp>(
        linker,
        &options.into(),
        WorkerState::http,
    )
}
