//! Tensors for wasmpod guests, independent of wasmtime.
//!
//! [`Device`] is the front every caller uses: it validates arguments (shapes,
//! dtypes, axes) once, for every backend, then hands the checked op to a
//! [`Backend`] that only computes. [`MemoryAccount`] meters each worker's
//! allocations against its quota. [`cpu::CpuBackend`] is always available.
//! [`PageStore`] holds tensors paged out of a device (host RAM up to a
//! budget, then disk) and copies them back in bulk. [`decoder`] adds the
//! ops a transformer decoder needs (linear, rotary embeddings, attention,
//! KV-cache writes, sampling by [`sampling`]'s exact algorithm), and
//! [`graph`] records a sequence of ops to replay with one call.

pub mod backend;
pub mod cpu;
pub mod cuda;
pub mod decoder;
pub mod device;
pub mod dtype;
pub mod error;
pub mod graph;
pub mod host_buffer;
pub mod image;
pub mod math;
pub mod memory;
pub mod paging;
pub mod sampling;
pub mod shape;
pub mod tensor;

pub use backend::{Backend, BinaryOp, ReduceOp, UnaryOp};
pub use decoder::{
    AttentionOptions, AttentionPlan, RopeConfig, RopeLayout, RopePlan, RopeScaling, Sampling,
};
pub use device::Device;
pub use dtype::DType;
pub use error::TensorError;
pub use graph::{Capture, Graph};
pub use host_buffer::HostBuffer;
pub use image::{ConvParams, ImageBackend, PoolParams};
pub use math::MathBackend;
pub use memory::{MemoryAccount, Reservation};
pub use paging::{PageError, PageLocation, PageStore, PagedTensor};
pub use tensor::{Storage, Tensor};

/// Result of a tensor op.
pub type Result<T> = std::result::Result<T, TensorError>;
