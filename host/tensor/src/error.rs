//! The error every tensor op returns; maps 1:1 onto the WIT `tensor-error`.

/// Why a tensor op failed. Messages name the offending shapes or values so a
/// guest author can fix the call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),
    #[error("dtype mismatch: {0}")]
    DTypeMismatch(String),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    #[error("device fault: {0}")]
    DeviceFault(String),
}
