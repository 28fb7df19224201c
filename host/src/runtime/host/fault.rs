//! How host functions fail: each interface's fault is either an error value
//! the guest receives (its WIT error type) or a trap that ends the
//! instance (a host bug such as a stale resource handle).
//!
//! `bindings.rs` maps each WIT error type to one of these with bindgen's
//! `trappable_error_type` (as wasmtime-wasi does for its error codes), so a
//! host function returns `Result<T, Fault>`, `?` works on the host's own
//! error types, and the generated glue calls the interface's
//! `convert_*_error` to decide between the value and the trap.

use wasmtime::component::ResourceTableError;

/// A failed `tensor` call.
#[derive(Debug, thiserror::Error)]
pub enum TensorFault {
    /// Returned to the guest as its `tensor-error`.
    #[error(transparent)]
    Tensor(#[from] wasmpod_tensor::TensorError),
    /// Traps the instance.
    #[error("{0:#}")]
    Trap(wasmtime::Error),
}

/// A failed `model` call.
#[derive(Debug, thiserror::Error)]
pub enum ModelFault {
    /// Returned to the guest as its `model-error`.
    #[error(transparent)]
    Model(#[from] crate::gpu::ModelError),
    /// Traps the instance.
    #[error("{0:#}")]
    Trap(wasmtime::Error),
}

/// A refused `job` call.
#[derive(Debug, thiserror::Error)]
pub enum JobFault {
    /// Returned to the guest as its `job-error` (the message says why).
    #[error("{0}")]
    Refused(String),
    /// Traps the instance.
    #[error("{0:#}")]
    Trap(wasmtime::Error),
}

macro_rules! traps_on_table_errors {
    ($($fault:ident),*) => {$(
        impl From<ResourceTableError> for $fault {
            fn from(e: ResourceTableError) -> Self {
                Self::Trap(e.into())
            }
        }
    )*};
}
traps_on_table_errors!(TensorFault, ModelFault, JobFault);

impl From<wasmpod_tensor::TensorError> for ModelFault {
    fn from(e: wasmpod_tensor::TensorError) -> Self {
        Self::Model(crate::gpu::ModelError::Tensor(e))
    }
}
