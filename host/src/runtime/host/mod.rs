//! Host capabilities, one module per WIT interface (as wasmtime-wasi does):
//! each implements the generated `Host` traits for [`WorkerState`].

pub mod device;
pub mod job;
pub mod model;
pub mod tensor;

use wasmtime::component::{HasSelf, Linker};

use super::bindings::Handler;
use super::state::WorkerState;

/// Add every wasmpod interface to `linker`.
pub fn add_to_linker(linker: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    Handler::add_to_linker::<WorkerState, HasSelf<WorkerState>>(linker, |s| s)
}
