//! Image ops: convolutions, pooling, padding, group normalisation and
//! resampling. [`spec`] holds their checked geometry (what the front hands
//! a backend), [`front`] the [`crate::Device`] methods that validate the
//! arguments, and [`ImageBackend`] the part of [`crate::Backend`] that
//! computes them.
//!
//! Image tensors are `[N, C, H, W]` ([`Layout::Nchw`], PyTorch's default) or
//! `[N, H, W, C]` ([`Layout::Nhwc`], "channels last", what tensor-core
//! convolutions want). Convolution weights follow the input's layout:
//! `[O, C/groups, kh, kw]` for NCHW, `[O, kh, kw, C/groups]` for NHWC.
//! Batch-norm has no op of its own: fold it into the preceding
//! convolution's weight and bias at load (see the resnet example).

mod front;
pub mod spec;

pub use front::{ConvParams, PoolParams};

pub use spec::{
    Activation, Conv2d, ConvTranspose2d, Epilogue, GroupNorm, Layout, PadMode, PadSpec, Pool2d,
    PoolKind, Resize, ResizeMode,
};

use crate::{Result, Tensor};

/// The image ops of a backend. Arguments arrive checked by the front
/// (shapes agree with the spec, dtypes are floats and match, operands are
/// this backend's); results are fresh, charged, contiguous tensors.
pub trait ImageBackend {
    /// `act(conv2d(x, w) + bias + residual)`, in `spec.layout`. `bias` is
    /// `[O]`, `residual` has the output's shape.
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        epilogue: &Epilogue<'_>,
        spec: &Conv2d,
    ) -> Result<Tensor>;
    /// Transposed convolution (NCHW; `w` is `[C, O/groups, kh, kw]`).
    fn conv_transpose2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        spec: &ConvTranspose2d,
    ) -> Result<Tensor>;
    /// Max or average pooling over windows (adaptive pooling arrives as
    /// [`PoolKind::AdaptiveAvg`]).
    fn pool2d(&self, x: &Tensor, spec: &Pool2d) -> Result<Tensor>;
    /// Padding of any axes (every dtype).
    fn pad(&self, x: &Tensor, spec: &PadSpec) -> Result<Tensor>;
    /// `act(group_norm(x) * weight + bias)`; weight and bias are `[C]`.
    fn group_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        spec: &GroupNorm,
    ) -> Result<Tensor>;
    /// Nearest or bilinear resampling of the spatial axes.
    fn resize(&self, x: &Tensor, spec: &Resize) -> Result<Tensor>;
}
