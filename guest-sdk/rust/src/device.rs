//! What the worker is pinned to: its devices and its device-memory quota.

use crate::bindings::wasmpod::serverless::device as wit;

/// One device of the worker's slice: index, kind, name, UUID, MIG profile
/// and memory size.
pub use wit::DeviceInfo;
/// Kind of compute device: `Cpu` or `Cuda`.
pub use wit::DeviceKind;

/// The devices of this worker's slice: one, or several for a GPU group.
/// Their `index` is what [`crate::Tensor::to_device`] takes.
pub fn devices() -> Vec<DeviceInfo> {
    wit::devices()
}

/// This worker's device-memory quota for tensors, in bytes.
pub fn quota_bytes() -> u64 {
    wit::quota_bytes()
}

/// Bytes of the quota currently held by this worker's tensors.
pub fn used_bytes() -> u64 {
    wit::used_bytes()
}
