//! The image ops and the elementwise long tail of [`Tensor`]: convolutions,
//! pooling, padding, group norm, resampling, math functions, comparisons,
//! `where`, cumulative sums, ranges and seeded random tensors.
//!
//! Image tensors are `[N, C, H, W]` ([`Layout::Nchw`]) or `[N, H, W, C]`
//! ([`Layout::Nhwc`], "channels last", which tensor-core convolutions on a
//! GPU want); a convolution's weight follows its input's layout
//! (`[O, C/groups, kh, kw]` or `[O, kh, kw, C/groups]`).

use crate::bindings::wasmpod::serverless::tensor as wit;
use crate::tensor::{DType, Tensor, TensorError};

/// An activation fused into an op's output: `None`, `Relu`, `Silu`, `Gelu`.
pub use wit::Activation;
/// Where the channel axis of an image tensor is: `Nchw` or `Nhwc`.
pub use wit::Layout;
/// How [`Tensor::pad`] fills new positions: `Constant`, `Reflect`,
/// `Replicate`.
pub use wit::PadMode;

type Result<T, E = TensorError> = std::result::Result<T, E>;

fn wrap(result: std::result::Result<wit::Tensor, wit::TensorError>) -> Result<Tensor> {
    result.map(Tensor).map_err(TensorError::from)
}

/// Geometry of a 2-D convolution: (rows, columns) per spatial axis. The
/// default is stride 1, no padding, dilation 1, one group, NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    /// Step of the window (rows, columns).
    pub stride: (u32, u32),
    /// Zeros added on each side (rows, columns).
    pub padding: (u32, u32),
    /// Spacing of the kernel's taps (rows, columns).
    pub dilation: (u32, u32),
    /// Channel groups (the input's channels for a depthwise convolution).
    pub groups: u32,
    /// Layout of the input, the weight and the output.
    pub layout: Layout,
}

impl Default for ConvParams {
    fn default() -> Self {
        Self {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            layout: Layout::Nchw,
        }
    }
}

impl ConvParams {
    /// The same stride along both axes.
    pub fn stride(self, s: u32) -> Self {
        Self {
            stride: (s, s),
            ..self
        }
    }
    /// The same padding along both axes.
    pub fn padding(self, p: u32) -> Self {
        Self {
            padding: (p, p),
            ..self
        }
    }
    /// The same dilation along both axes.
    pub fn dilation(self, d: u32) -> Self {
        Self {
            dilation: (d, d),
            ..self
        }
    }
    /// Channel groups.
    pub fn groups(self, groups: u32) -> Self {
        Self { groups, ..self }
    }
    /// The layout of the input, weight and output.
    pub fn layout(self, layout: Layout) -> Self {
        Self { layout, ..self }
    }

    fn to_wit(self) -> wit::Conv2dParams {
        wit::Conv2dParams {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
            groups: self.groups,
            layout: self.layout,
        }
    }
}

/// Geometry of a 1-D convolution over `[N, C, L]` (NCHW) or `[N, L, C]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv1dParams {
    /// Step of the window.
    pub stride: u32,
    /// Zeros added on each side.
    pub padding: u32,
    /// Spacing of the kernel's taps.
    pub dilation: u32,
    /// Channel groups.
    pub groups: u32,
    /// `Nchw` for `[N, C, L]`, `Nhwc` for `[N, L, C]`.
    pub layout: Layout,
}

impl Default for Conv1dParams {
    fn default() -> Self {
        Self {
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
            layout: Layout::Nchw,
        }
    }
}

/// Geometry of a 2-D pooling. [`PoolParams::new`] takes the window and
/// stride; padding 0, floor mode, padded positions counted (PyTorch's
/// defaults), NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    /// Window size (rows, columns).
    pub kernel: (u32, u32),
    /// Step of the window (rows, columns).
    pub stride: (u32, u32),
    /// Padding on each side, at most half the window.
    pub padding: (u32, u32),
    /// Round the output size up (PyTorch's `ceil_mode`).
    pub ceil_mode: bool,
    /// Average pooling: count padded positions in the divisor.
    pub count_include_pad: bool,
    /// Layout of the input and the output.
    pub layout: Layout,
}

impl PoolParams {
    /// A square `kernel` window moving by `stride`.
    pub fn new(kernel: u32, stride: u32) -> Self {
        Self {
            kernel: (kernel, kernel),
            stride: (stride, stride),
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
            layout: Layout::Nchw,
        }
    }
    /// The same padding along both axes.
    pub fn padding(self, p: u32) -> Self {
        Self {
            padding: (p, p),
            ..self
        }
    }
    /// The layout of the input and output.
    pub fn layout(self, layout: Layout) -> Self {
        Self { layout, ..self }
    }

    fn to_wit(self) -> wit::Pool2dParams {
        wit::Pool2dParams {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
            layout: self.layout,
        }
    }
}

impl Tensor {
    /// 2-D convolution (PyTorch's `Conv2d`); `bias` is `[O]`.
    pub fn conv2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvParams,
    ) -> Result<Tensor> {
        wrap(
            self.0
                .conv2d(&weight.0, bias.map(|b| &b.0), params.to_wit()),
        )
    }

    /// `activation(conv2d(self, weight) + bias + residual)` in one op:
    /// with batch-norm folded into the weight and bias, a whole
    /// conv-bn-(add)-relu block.
    pub fn conv2d_fused(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
        activation: Activation,
        params: &ConvParams,
    ) -> Result<Tensor> {
        wrap(self.0.conv2d_fused(
            &weight.0,
            bias.map(|b| &b.0),
            residual.map(|r| &r.0),
            activation,
            params.to_wit(),
        ))
    }

    /// 1-D convolution; the weight is `[O, C/groups, k]` (NCHW) or
    /// `[O, k, C/groups]` (NHWC).
    pub fn conv1d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        p: &Conv1dParams,
    ) -> Result<Tensor> {
        wrap(self.0.conv1d(
            &weight.0,
            bias.map(|b| &b.0),
            p.stride,
            p.padding,
            p.dilation,
            p.groups,
            p.layout,
        ))
    }

    /// Transposed 2-D convolution (PyTorch's `ConvTranspose2d`, NCHW); the
    /// weight is `[C, O/groups, kh, kw]`.
    pub fn conv_transpose2d(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        params: &ConvParams,
        output_padding: (u32, u32),
    ) -> Result<Tensor> {
        wrap(self.0.conv_transpose2d(
            &weight.0,
            bias.map(|b| &b.0),
            params.to_wit(),
            output_padding,
        ))
    }

    /// Max pooling (PyTorch's `MaxPool2d`).
    pub fn max_pool2d(&self, params: &PoolParams) -> Result<Tensor> {
        wrap(self.0.max_pool2d(params.to_wit()))
    }

    /// Average pooling (PyTorch's `AvgPool2d`).
    pub fn avg_pool2d(&self, params: &PoolParams) -> Result<Tensor> {
        wrap(self.0.avg_pool2d(params.to_wit()))
    }

    /// Adaptive average pooling to `size` (rows, columns).
    pub fn adaptive_avg_pool2d(&self, size: (u32, u32), layout: Layout) -> Result<Tensor> {
        wrap(self.0.adaptive_avg_pool2d(size, layout))
    }

    /// Pads the last `pads.len()` axes, outermost first (`pads[i]` is
    /// (before, after)); `value` is the constant of [`PadMode::Constant`].
    pub fn pad(&self, pads: &[(u32, u32)], mode: PadMode, value: f32) -> Result<Tensor> {
        wrap(self.0.pad(pads, mode, value))
    }

    /// Group normalisation with `weight`/`bias` `[C]`, then `activation`.
    pub fn group_norm(
        &self,
        groups: u32,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
        layout: Layout,
        activation: Activation,
    ) -> Result<Tensor> {
        wrap(self.0.group_norm(
            groups,
            weight.map(|w| &w.0),
            bias.map(|b| &b.0),
            eps,
            layout,
            activation,
        ))
    }

    /// Nearest resampling to `size` (every dtype).
    pub fn upsample_nearest(&self, size: (u32, u32), layout: Layout) -> Result<Tensor> {
        wrap(self.0.upsample_nearest(size, layout))
    }

    /// Bilinear resampling to `size`.
    pub fn upsample_bilinear(
        &self,
        size: (u32, u32),
        align_corners: bool,
        layout: Layout,
    ) -> Result<Tensor> {
        wrap(self.0.upsample_bilinear(size, align_corners, layout))
    }

    /// e^x, elementwise.
    pub fn exp(&self) -> Result<Tensor> {
        wrap(self.0.exp())
    }
    /// Natural logarithm, elementwise.
    pub fn log(&self) -> Result<Tensor> {
        wrap(self.0.log())
    }
    /// Square root, elementwise.
    pub fn sqrt(&self) -> Result<Tensor> {
        wrap(self.0.sqrt())
    }
    /// `1 / sqrt(x)`, elementwise.
    pub fn rsqrt(&self) -> Result<Tensor> {
        wrap(self.0.rsqrt())
    }
    /// `|x|`, elementwise (integers too).
    pub fn abs(&self) -> Result<Tensor> {
        wrap(self.0.abs())
    }
    /// `-x`, elementwise (integers too).
    pub fn neg(&self) -> Result<Tensor> {
        wrap(self.0.neg())
    }
    /// `1 / (1 + e^-x)`, elementwise.
    pub fn sigmoid(&self) -> Result<Tensor> {
        wrap(self.0.sigmoid())
    }
    /// Sine, elementwise.
    pub fn sin(&self) -> Result<Tensor> {
        wrap(self.0.sin())
    }
    /// Cosine, elementwise.
    pub fn cos(&self) -> Result<Tensor> {
        wrap(self.0.cos())
    }
    /// `self ** exponent`, broadcasting.
    pub fn pow(&self, exponent: &Tensor) -> Result<Tensor> {
        wrap(self.0.pow(&exponent.0))
    }
    /// Elementwise minimum, broadcasting (NaN wins).
    pub fn minimum(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.minimum(&rhs.0))
    }
    /// Elementwise maximum, broadcasting (NaN wins).
    pub fn maximum(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.maximum(&rhs.0))
    }
    /// `min(max(self, min), max)`; either bound may be `None`.
    pub fn clamp(&self, min: Option<f32>, max: Option<f32>) -> Result<Tensor> {
        wrap(self.0.clamp(min, max))
    }
    /// `self == rhs` as u8 0/1, broadcasting.
    pub fn eq(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.eq(&rhs.0))
    }
    /// `self != rhs` as u8 0/1.
    pub fn ne(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.ne(&rhs.0))
    }
    /// `self < rhs` as u8 0/1.
    pub fn lt(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.lt(&rhs.0))
    }
    /// `self <= rhs` as u8 0/1.
    pub fn le(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.le(&rhs.0))
    }
    /// `self > rhs` as u8 0/1.
    pub fn gt(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.gt(&rhs.0))
    }
    /// `self >= rhs` as u8 0/1.
    pub fn ge(&self, rhs: &Tensor) -> Result<Tensor> {
        wrap(self.0.ge(&rhs.0))
    }
    /// `condition != 0 ? on_true : on_false` elementwise, broadcasting
    /// (the contract's `where`).
    pub fn select(condition: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        wrap(wit::Tensor::where_(&condition.0, &on_true.0, &on_false.0))
    }
    /// Running sum along `axis`.
    pub fn cumsum(&self, axis: i32) -> Result<Tensor> {
        wrap(self.0.cumsum(axis))
    }
    /// `[start, start + step, ...]` below `end`.
    pub fn arange(dtype: DType, start: f64, end: f64, step: f64) -> Result<Tensor> {
        wrap(wit::Tensor::arange(dtype, start, end, step))
    }
    /// `steps` values from `start` to `end` inclusive.
    pub fn linspace(dtype: DType, start: f64, end: f64, steps: u32) -> Result<Tensor> {
        wrap(wit::Tensor::linspace(dtype, start, end, steps))
    }
    /// Uniform samples in `[low, high)`, the same for a seed on every device.
    pub fn random_uniform(
        dtype: DType,
        shape: &[u32],
        seed: u64,
        low: f32,
        high: f32,
    ) -> Result<Tensor> {
        wrap(wit::Tensor::random_uniform(dtype, shape, seed, low, high))
    }
    /// Normal samples, the same for a seed on every device.
    pub fn random_normal(
        dtype: DType,
        shape: &[u32],
        seed: u64,
        mean: f32,
        std: f32,
    ) -> Result<Tensor> {
        wrap(wit::Tensor::random_normal(dtype, shape, seed, mean, std))
    }
    /// A scalar f32 tensor (an operand to broadcast).
    pub fn scalar(value: f32) -> Result<Tensor> {
        Tensor::from_f32(&[], &[value])
    }
}
