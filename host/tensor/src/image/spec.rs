//! Checked geometry of the image ops: what [`crate::Device`] computes from
//! the caller's arguments and hands to a backend, plus the index rules
//! (pooling windows, padding sources, resampling sources) every backend
//! shares, written once here so the CPU reference and the GPU kernels agree.

use crate::Tensor;

/// Where the channel axis of an image tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `[N, C, H, W]` (PyTorch's default).
    Nchw,
    /// `[N, H, W, C]` ("channels last").
    Nhwc,
}

impl Layout {
    /// The shape of an `n × c × h × w` image batch in this layout.
    pub fn shape(self, n: usize, c: usize, h: usize, w: usize) -> [usize; 4] {
        match self {
            Layout::Nchw => [n, c, h, w],
            Layout::Nhwc => [n, h, w, c],
        }
    }

    /// `(n, c, h, w)` of a rank-4 shape in this layout.
    pub fn split(self, s: &[usize]) -> (usize, usize, usize, usize) {
        match self {
            Layout::Nchw => (s[0], s[1], s[2], s[3]),
            Layout::Nhwc => (s[0], s[3], s[1], s[2]),
        }
    }

    /// Element strides `(n, c, h, w)` of a contiguous `c × h × w` image.
    pub fn strides(self, c: usize, h: usize, w: usize) -> [usize; 4] {
        match self {
            Layout::Nchw => [c * h * w, h * w, w, 1],
            Layout::Nhwc => [c * h * w, 1, w * c, c],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }
}

/// An activation fused into an op's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    None,
    Relu,
    Silu,
    /// Exact (erf) GELU.
    Gelu,
}

impl Activation {
    /// The activation of one value (the CPU reference).
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
            Activation::Gelu => 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2)),
        }
    }

    /// Code the CUDA kernels take (0 none, 1 relu, 2 silu, 3 gelu).
    pub fn code(self) -> i32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Silu => 2,
            Activation::Gelu => 3,
        }
    }
}

/// What a convolution adds to its output before it returns:
/// `act(conv + bias + residual)`.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// `[O]`, added per output channel.
    pub bias: Option<&'a Tensor>,
    /// The output's shape, added elementwise (a ResNet skip connection).
    pub residual: Option<&'a Tensor>,
    pub activation: Activation,
}

impl Epilogue<'_> {
    /// Nothing to add.
    pub fn is_identity(&self) -> bool {
        self.bias.is_none() && self.residual.is_none() && self.activation == Activation::None
    }
}

/// A 2-D convolution (cross-correlation, as PyTorch's) with its output
/// size worked out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conv2d {
    pub layout: Layout,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Output channels.
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Conv2d {
    pub fn input_shape(&self) -> [usize; 4] {
        self.layout.shape(self.n, self.c, self.h, self.w)
    }

    pub fn output_shape(&self) -> [usize; 4] {
        self.layout.shape(self.n, self.o, self.oh, self.ow)
    }

    /// The weight's shape: `[O, C/g, kh, kw]` (NCHW) or `[O, kh, kw, C/g]`.
    pub fn weight_shape(&self) -> [usize; 4] {
        let cg = self.c / self.groups;
        match self.layout {
            Layout::Nchw => [self.o, cg, self.kh, self.kw],
            Layout::Nhwc => [self.o, self.kh, self.kw, cg],
        }
    }

    /// A 1×1 convolution with stride 1 and no padding: a plain GEMM over
    /// the pixels.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.groups == 1
    }
}

/// Output length of a convolution along one axis, or None when the
/// (dilated) kernel does not fit the padded input.
pub fn conv_out_len(len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    let span = dil.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
    let padded = len.checked_add(pad.checked_mul(2)?)?;
    padded.checked_sub(span).map(|room| room / stride + 1)
}

/// A 2-D transposed convolution (NCHW; weight `[C, O/g, kh, kw]`, as
/// PyTorch's `ConvTranspose2d`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConvTranspose2d {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub output_padding: [usize; 2],
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
}

impl ConvTranspose2d {
    pub fn output_shape(&self) -> [usize; 4] {
        [self.n, self.o, self.oh, self.ow]
    }
}

/// Output length of a transposed convolution along one axis.
pub fn conv_transpose_out_len(
    len: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    out_pad: usize,
) -> Option<usize> {
    let grown = len
        .checked_sub(1)?
        .checked_mul(stride)?
        .checked_add(dil.checked_mul(k.checked_sub(1)?)?)?
        .checked_add(out_pad)?
        .checked_add(1)?;
    grown.checked_sub(pad.checked_mul(2)?).filter(|&l| l > 0)
}

/// Which pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// Maximum over the window; padding never wins; NaN propagates.
    Max,
    /// Mean over the window; with `count_include_pad` the divisor counts
    /// padded positions (PyTorch's default), otherwise only real ones.
    Avg { count_include_pad: bool },
    /// PyTorch's adaptive average pooling: output cell `i` of `out` averages
    /// input `floor(i*len/out) .. ceil((i+1)*len/out)`.
    AdaptiveAvg,
}

/// A pooling over 2-D windows with its output size worked out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool2d {
    pub kind: PoolKind,
    pub layout: Layout,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    /// Window size (unused by adaptive pooling).
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

/// One pooling window along one axis: the input range it reads and the
/// divisor an average uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: usize,
    pub end: usize,
    /// Positions counted by an average (padded ones included when asked).
    pub count: usize,
}

impl Pool2d {
    pub fn output_shape(&self) -> [usize; 4] {
        self.layout.shape(self.n, self.c, self.oh, self.ow)
    }

    /// The window of output position `o` along `axis` (0 = rows, 1 =
    /// columns), clipped to the input (PyTorch's rule for each kind).
    pub fn window(&self, axis: usize, o: usize) -> Window {
        let len = if axis == 0 { self.h } else { self.w };
        let out = if axis == 0 { self.oh } else { self.ow };
        if self.kind == PoolKind::AdaptiveAvg {
            let start = o * len / out;
            let end = ((o + 1) * len).div_ceil(out);
            return Window {
                start,
                end,
                count: end - start,
            };
        }
        let (k, s, p) = (self.kernel[axis], self.stride[axis], self.padding[axis]);
        let start = (o * s) as isize - p as isize;
        let end = (start + k as isize).min((len + p) as isize);
        let padded = (end - start) as usize;
        let (start, end) = (start.max(0) as usize, (end.max(0) as usize).min(len));
        let count = match self.kind {
            PoolKind::Avg {
                count_include_pad: true,
            } => padded,
            _ => end.saturating_sub(start),
        };
        Window { start, end, count }
    }
}

/// Output length of a max/avg pooling along one axis (PyTorch's rule: with
/// `ceil`, a last window that would start inside the right padding is
/// dropped). None when the window does not fit.
pub fn pool_out_len(len: usize, k: usize, stride: usize, pad: usize, ceil: bool) -> Option<usize> {
    let room = (len + 2 * pad).checked_sub(k)?;
    let mut out = if ceil {
        room.div_ceil(stride) + 1
    } else {
        room / stride + 1
    };
    if ceil && (out - 1) * stride >= len + pad {
        out -= 1;
    }
    Some(out)
}

/// How `pad` fills the new positions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PadMode {
    /// A constant (converted to the tensor's dtype).
    Constant(f32),
    /// Mirror without repeating the edge (`[1, 2, 3]` → `3 2 | 1 2 3 | 2 1`).
    Reflect,
    /// Repeat the edge value.
    Replicate,
}

/// A padding of every axis (zeros where an axis is untouched).
#[derive(Debug, Clone, PartialEq)]
pub struct PadSpec {
    pub input: Vec<usize>,
    pub before: Vec<usize>,
    pub after: Vec<usize>,
    pub mode: PadMode,
}

impl PadSpec {
    pub fn output_shape(&self) -> Vec<usize> {
        (0..self.input.len())
            .map(|d| self.input[d] + self.before[d] + self.after[d])
            .collect()
    }

    /// The input position output position `i` of axis `d` reads, or None
    /// for a constant fill.
    pub fn source(&self, d: usize, i: usize) -> Option<usize> {
        let len = self.input[d] as isize;
        let x = i as isize - self.before[d] as isize;
        if (0..len).contains(&x) {
            return Some(x as usize);
        }
        match self.mode {
            PadMode::Constant(_) => None,
            PadMode::Replicate => Some(x.clamp(0, len - 1) as usize),
            PadMode::Reflect => {
                // The front checks pads < len, so one reflection suffices.
                let r = if x < 0 { -x } else { 2 * (len - 1) - x };
                Some(r as usize)
            }
        }
    }
}

/// A group normalisation with a fused activation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupNorm {
    pub layout: Layout,
    pub n: usize,
    pub c: usize,
    /// Product of the spatial axes.
    pub spatial: usize,
    pub groups: usize,
    pub eps: f32,
    pub activation: Activation,
}

/// How `resize` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    /// PyTorch's `mode="nearest"`: source `floor(o * in / out)`.
    Nearest,
    /// PyTorch's `mode="bilinear"`.
    Bilinear { align_corners: bool },
}

/// A resampling of the spatial axes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Resize {
    pub mode: ResizeMode,
    pub layout: Layout,
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Resize {
    pub fn output_shape(&self) -> [usize; 4] {
        self.layout.shape(self.n, self.c, self.oh, self.ow)
    }
}

/// Nearest source of output position `o` (PyTorch computes the scale and
/// the product in f32; so do we, and so do the kernels).
pub fn nearest_source(len: usize, out: usize, o: usize) -> usize {
    let scale = len as f32 / out as f32;
    ((o as f32 * scale).floor() as usize).min(len - 1)
}

/// Linear interpolation source of output position `o`: the two input
/// positions and the weight of the second.
pub fn linear_source(len: usize, out: usize, o: usize, align_corners: bool) -> (usize, usize, f32) {
    let src = if align_corners {
        let scale = if out > 1 {
            (len - 1) as f32 / (out - 1) as f32
        } else {
            0.0
        };
        o as f32 * scale
    } else {
        let scale = len as f32 / out as f32;
        (scale * (o as f32 + 0.5) - 0.5).max(0.0)
    };
    let i0 = (src as usize).min(len - 1);
    let i1 = (i0 + 1).min(len - 1);
    (i0, i1, src - i0 as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_follow_pytorch() {
        assert_eq!(conv_out_len(224, 7, 2, 3, 1), Some(112));
        assert_eq!(conv_out_len(5, 3, 1, 0, 2), Some(1));
        assert_eq!(conv_out_len(4, 3, 1, 0, 2), None);
        assert_eq!(conv_transpose_out_len(4, 4, 2, 1, 1, 0), Some(8));
        assert_eq!(conv_transpose_out_len(3, 3, 2, 1, 1, 1), Some(6));
        assert_eq!(pool_out_len(112, 3, 2, 1, false), Some(56));
        assert_eq!(pool_out_len(5, 2, 2, 0, false), Some(2));
        assert_eq!(pool_out_len(5, 2, 2, 0, true), Some(3));
        // The last ceil window would start in the padding: dropped.
        assert_eq!(pool_out_len(4, 2, 2, 1, true), Some(3));
    }

    #[test]
    fn windows_and_sources() {
        let p = Pool2d {
            kind: PoolKind::AdaptiveAvg,
            layout: Layout::Nchw,
            n: 1,
            c: 1,
            h: 5,
            w: 5,
            kernel: [0, 0],
            stride: [0, 0],
            padding: [0, 0],
            oh: 3,
            ow: 3,
        };
        let w: Vec<(usize, usize)> = (0..3)
            .map(|o| (p.window(0, o).start, p.window(0, o).end))
            .collect();
        assert_eq!(w, vec![(0, 2), (1, 4), (3, 5)]);
        let pad = PadSpec {
            input: vec![3],
            before: vec![2],
            after: vec![2],
            mode: PadMode::Reflect,
        };
        let src: Vec<_> = (0..7).map(|i| pad.source(0, i).unwrap()).collect();
        assert_eq!(src, vec![2, 1, 0, 1, 2, 1, 0]);
        assert_eq!(nearest_source(3, 7, 6), 2);
        assert_eq!(linear_source(4, 8, 0, false), (0, 1, 0.0));
        assert_eq!(linear_source(4, 8, 7, true).0, 3);
    }
}
