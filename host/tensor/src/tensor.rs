//! The backend-agnostic tensor handle.

use std::any::Any;
use std::sync::Arc;

use crate::DType;

/// A backend's buffer. Each backend downcasts to its own type through
/// [`Storage::as_any`]; buffers are immutable once built.
pub trait Storage: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    /// Size of the buffer in bytes.
    fn len_bytes(&self) -> usize;
    /// The storage as `Any`, for backends that can take ownership of their
    /// own buffers back (the CPU backend pages tensors out without a copy).
    fn into_any_arc(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
}

/// A contiguous, row-major tensor. Cloning is cheap (the storage is
/// shared); reshapes share storage too. Ops make new tensors; only the
/// in-place ops (`Device::write`, the caches of `attention_cached`, graph
/// replays) change a tensor's storage, and never a read-only one.
#[derive(Clone)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    storage: Arc<dyn Storage>,
    read_only: bool,
}

impl Tensor {
    /// Wrap a backend buffer. `storage.len_bytes()` must equal
    /// `numel(shape) * dtype.size()`.
    pub fn new(dtype: DType, shape: Vec<usize>, storage: Arc<dyn Storage>) -> Self {
        debug_assert_eq!(
            storage.len_bytes(),
            shape.iter().product::<usize>() * dtype.size()
        );
        Self {
            dtype,
            shape,
            storage,
            read_only: false,
        }
    }

    /// True for tensors no op may write in place: model weights, shared by
    /// every instance of a worker, and reshapes of them.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The same tensor, marked read-only (see [`Tensor::is_read_only`]).
    pub fn into_read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The storage, giving up this handle.
    pub fn into_storage(self) -> Arc<dyn Storage> {
        self.storage
    }

    /// Same storage, another shape with the same element count (checked by
    /// the caller, [`crate::Device::reshape`]).
    pub fn with_shape(&self, shape: Vec<usize>) -> Self {
        Self {
            dtype: self.dtype,
            shape,
            storage: Arc::clone(&self.storage),
            read_only: self.read_only,
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({}, {:?})", self.dtype, self.shape)
    }
}
