//! Host capabilities, one module per WIT interface (as wasmtime-wasi does):
//! each interface has its own context type in the store
//! ([`WorkerState`]) and implements the generated `Host` traits on it, or
//! on a view pairing it with the shared resource table; [`fault`] holds
//! their error types. The tensor interface spans `tensor.rs` (the ops),
//! `decoder.rs` (the decoder ops' glue) and `graph.rs` (capture / replay).

mod decoder;
pub mod device;
pub mod fault;
pub mod graph;
pub mod job;
pub mod model;
pub mod tensor;

use wasmtime::component::{HasData, Linker};

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

/// Add every wasmpod interface to `linker`, each reaching its own context.
pub fn add_to_linker(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    bindings::types::add_to_linker::<_, Jobs>(linker, |s| &mut s.job)?;
    bindings::tensor::add_to_linker::<_, Tensors>(linker, WorkerState::tensors)?;
    bindings::model::add_to_linker::<_, Models>(linker, WorkerState::models)?;
    bindings::job::add_to_linker::<_, Jobs>(linker, |s| &mut s.job)?;
    bindings::device::add_to_linker::<_, Devices>(linker, |s| &mut s.device)?;
    Ok(())
}
