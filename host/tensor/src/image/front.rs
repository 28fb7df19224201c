//! The checked front of the image ops: [`Device`] methods that validate
//! shapes, dtypes and parameters once for every backend, work out the
//! output geometry ([`super::spec`]) and only then call the backend.

use super::spec::{
    Activation, Conv2d, ConvTranspose2d, Epilogue, GroupNorm, Layout, PadMode, PadSpec, Pool2d,
    PoolKind, Resize, ResizeMode, conv_out_len, conv_transpose_out_len, pool_out_len,
};
use crate::{Device, Result, Tensor, TensorError};

/// Stride, padding, dilation and groups of a convolution, per spatial axis
/// (rows, columns), and the layout of its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvParams {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub layout: Layout,
}

impl Default for ConvParams {
    fn default() -> Self {
        Self {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            layout: Layout::Nchw,
        }
    }
}

impl ConvParams {
    /// Parameters of a 1-D convolution (its one axis is the 2-D columns).
    pub fn one_d(
        stride: usize,
        padding: usize,
        dilation: usize,
        groups: usize,
        layout: Layout,
    ) -> Self {
        Self {
            stride: [1, stride],
            padding: [0, padding],
            dilation: [1, dilation],
            groups,
            layout,
        }
    }
}

/// Window, stride and padding of a max or average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolParams {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub ceil_mode: bool,
    /// Average pooling only: count padded positions in the divisor.
    pub count_include_pad: bool,
    pub layout: Layout,
}

fn float(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(TensorError::DTypeMismatch(format!(
            "{op} needs a float tensor (f32, f16 or bf16), got {}; cast it first",
            t.dtype()
        )))
    }
}

fn same(op: &str, what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() == b.dtype() {
        Ok(())
    } else {
        Err(TensorError::DTypeMismatch(format!(
            "{op}: the input is {} but the {what} is {}; cast one so they match",
            a.dtype(),
            b.dtype()
        )))
    }
}

fn rank(op: &str, t: &Tensor, want: usize, layout: &str) -> Result<()> {
    if t.rank() == want {
        Ok(())
    } else {
        Err(TensorError::ShapeMismatch(format!(
            "{op} takes a rank-{want} input ({layout}), got shape {:?}",
            t.shape()
        )))
    }
}

fn positive(op: &str, what: &str, v: [usize; 2]) -> Result<()> {
    if v.iter().all(|&x| x >= 1) {
        Ok(())
    } else {
        Err(TensorError::InvalidArgument(format!(
            "{op}: {what} is {v:?}; every entry must be at least 1"
        )))
    }
}

fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::Nchw => "[N, C, H, W]",
        Layout::Nhwc => "[N, H, W, C]",
    }
}

impl Device {
    fn image_operand(&self, t: &Tensor) -> Result<()> {
        if self.holds(t) {
            Ok(())
        } else {
            Err(TensorError::InvalidArgument(format!(
                "the tensor is not on device {}; move it with to-device",
                self.name()
            )))
        }
    }

    fn check_epilogue(&self, op: &str, x: &Tensor, e: &Epilogue<'_>, out: &[usize]) -> Result<()> {
        if let Some(b) = e.bias {
            self.image_operand(b)?;
            same(op, "bias", x, b)?;
        }
        if let Some(r) = e.residual {
            self.image_operand(r)?;
            same(op, "residual", x, r)?;
            if r.shape() != out {
                return Err(TensorError::ShapeMismatch(format!(
                    "{op}: the residual has shape {:?} but the output has {out:?}; they must be equal",
                    r.shape()
                )));
            }
        }
        Ok(())
    }

    /// `act(conv2d(x, w) + bias + residual)`: a 2-D convolution (PyTorch's
    /// `Conv2d`, cross-correlation) with an optional fused epilogue.
    pub fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        epilogue: Epilogue<'_>,
        p: &ConvParams,
    ) -> Result<Tensor> {
        let spec = self.conv2d_spec("conv2d", x, w, p)?;
        if let Some(b) = epilogue.bias
            && b.shape() != [spec.o]
        {
            return Err(TensorError::ShapeMismatch(format!(
                "conv2d: the bias has shape {:?} but must be [{}] (one per output channel)",
                b.shape(),
                spec.o
            )));
        }
        self.check_epilogue("conv2d", x, &epilogue, &spec.output_shape())?;
        // Operands in a fixed order (x, w, bias?, residual?) so a recorded
        // step can rebuild the epilogue from them.
        let (has_bias, act) = (epilogue.bias.is_some(), epilogue.activation);
        let mut inputs = vec![x, w];
        inputs.extend(epilogue.bias);
        inputs.extend(epilogue.residual);
        crate::graph::run1(self, &inputs, move |b, t| {
            let e = Epilogue {
                bias: has_bias.then(|| &t[2]),
                residual: t.get(if has_bias { 3 } else { 2 }),
                activation: act,
            };
            b.conv2d(&t[0], &t[1], &e, &spec)
        })
    }

    fn conv2d_spec(&self, op: &str, x: &Tensor, w: &Tensor, p: &ConvParams) -> Result<Conv2d> {
        float(op, x)?;
        same(op, "weight", x, w)?;
        self.image_operand(x)?;
        self.image_operand(w)?;
        rank(op, x, 4, layout_name(p.layout))?;
        if w.rank() != 4 {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: the weight must be rank 4 ({}), got {:?}",
                match p.layout {
                    Layout::Nchw => "[O, C/groups, kh, kw]",
                    Layout::Nhwc => "[O, kh, kw, C/groups]",
                },
                w.shape()
            )));
        }
        positive(op, "stride", p.stride)?;
        positive(op, "dilation", p.dilation)?;
        let (n, c, h, wd) = p.layout.split(x.shape());
        let ws = w.shape();
        let (o, cg, kh, kw) = match p.layout {
            Layout::Nchw => (ws[0], ws[1], ws[2], ws[3]),
            Layout::Nhwc => (ws[0], ws[3], ws[1], ws[2]),
        };
        let g = p.groups;
        if g == 0 || c % g != 0 || o % g != 0 {
            return Err(TensorError::InvalidArgument(format!(
                "{op}: groups = {g} must be at least 1 and divide both the input channels ({c}) and the output channels ({o})"
            )));
        }
        if cg != c / g || kh == 0 || kw == 0 {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: the weight {ws:?} does not fit an input with {c} channels in {g} group(s): it needs {} input channels per group and a kernel of at least 1×1",
                c / g
            )));
        }
        let out = |axis: usize, len: usize, k: usize| {
            conv_out_len(len, k, p.stride[axis], p.padding[axis], p.dilation[axis]).ok_or_else(|| {
                TensorError::ShapeMismatch(format!(
                    "{op}: the kernel ({k}, dilation {}) is larger than the padded input ({len} + 2×{}) along spatial axis {axis} of {:?}",
                    p.dilation[axis],
                    p.padding[axis],
                    x.shape()
                ))
            })
        };
        let (oh, ow) = (out(0, h, kh)?, out(1, wd, kw)?);
        Ok(Conv2d {
            layout: p.layout,
            n,
            c,
            h,
            w: wd,
            o,
            kh,
            kw,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            groups: g,
            oh,
            ow,
        })
    }

    /// A 1-D convolution over `[N, C, L]` (NCHW) or `[N, L, C]` (NHWC) with
    /// weight `[O, C/g, k]` or `[O, k, C/g]`; `p` as from
    /// [`ConvParams::one_d`]. Runs as a 2-D convolution of height 1.
    pub fn conv1d(
        &self,
        x: &Tensor,
        w: &Tensor,
        epilogue: Epilogue<'_>,
        p: &ConvParams,
    ) -> Result<Tensor> {
        let one_d = match p.layout {
            Layout::Nchw => "[N, C, L]",
            Layout::Nhwc => "[N, L, C]",
        };
        rank("conv1d", x, 3, one_d)?;
        if w.rank() != 3 {
            return Err(TensorError::ShapeMismatch(format!(
                "conv1d: the weight must be rank 3, got {:?}",
                w.shape()
            )));
        }
        let lift = |s: &[usize]| match p.layout {
            Layout::Nchw => vec![s[0], s[1], 1, s[2]],
            Layout::Nhwc => vec![s[0], 1, s[1], s[2]],
        };
        let x4 = x.with_shape(lift(x.shape()));
        let w4 = w.with_shape(lift(w.shape()));
        let res4 = epilogue.residual.map(|r| {
            if r.rank() == 3 {
                r.with_shape(lift(r.shape()))
            } else {
                r.clone()
            }
        });
        let e = Epilogue {
            residual: res4.as_ref(),
            ..epilogue
        };
        let p2 = ConvParams {
            stride: [1, p.stride[1]],
            padding: [0, p.padding[1]],
            dilation: [1, p.dilation[1]],
            ..*p
        };
        let out = self.conv2d(&x4, &w4, e, &p2)?;
        let s = out.shape().to_vec();
        Ok(match p.layout {
            Layout::Nchw => out.with_shape(vec![s[0], s[1], s[3]]),
            Layout::Nhwc => out.with_shape(vec![s[0], s[2], s[3]]),
        })
    }

    /// A 2-D transposed convolution (PyTorch's `ConvTranspose2d`): input
    /// `[N, C, H, W]`, weight `[C, O/groups, kh, kw]`, NCHW only.
    pub fn conv_transpose2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        p: &ConvParams,
        output_padding: [usize; 2],
    ) -> Result<Tensor> {
        let op = "conv-transpose2d";
        if p.layout != Layout::Nchw {
            return Err(TensorError::InvalidArgument(format!(
                "{op} takes NCHW tensors only; permute an NHWC input to [N, C, H, W] first"
            )));
        }
        float(op, x)?;
        same(op, "weight", x, w)?;
        self.image_operand(x)?;
        self.image_operand(w)?;
        rank(op, x, 4, "[N, C, H, W]")?;
        positive(op, "stride", p.stride)?;
        positive(op, "dilation", p.dilation)?;
        let (n, c, h, wd) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let ws = w.shape();
        let g = p.groups;
        if w.rank() != 4 || g == 0 || c % g != 0 || ws[0] != c || ws[2] == 0 || ws[3] == 0 {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: the weight {ws:?} must be [C = {c}, O/groups, kh, kw] with groups = {g} (at least 1) dividing C"
            )));
        }
        let (o, kh, kw) = (ws[1] * g, ws[2], ws[3]);
        for axis in 0..2 {
            if output_padding[axis] >= p.stride[axis].max(p.dilation[axis]) {
                return Err(TensorError::InvalidArgument(format!(
                    "{op}: output padding {output_padding:?} must be smaller than the stride or the dilation along each axis"
                )));
            }
        }
        let out = |axis: usize, len: usize, k: usize| {
            conv_transpose_out_len(
                len,
                k,
                p.stride[axis],
                p.padding[axis],
                p.dilation[axis],
                output_padding[axis],
            )
            .ok_or_else(|| {
                TensorError::ShapeMismatch(format!(
                    "{op}: padding {:?} leaves no output along spatial axis {axis} of {:?}",
                    p.padding,
                    x.shape()
                ))
            })
        };
        let spec = ConvTranspose2d {
            n,
            c,
            h,
            w: wd,
            o,
            kh,
            kw,
            stride: p.stride,
            padding: p.padding,
            dilation: p.dilation,
            output_padding,
            groups: g,
            oh: out(0, h, kh)?,
            ow: out(1, wd, kw)?,
        };
        if let Some(b) = bias {
            self.image_operand(b)?;
            same(op, "bias", x, b)?;
            if b.shape() != [o] {
                return Err(TensorError::ShapeMismatch(format!(
                    "{op}: the bias has shape {:?} but must be [{o}]",
                    b.shape()
                )));
            }
        }
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        crate::graph::run1(self, &inputs, move |b, t| {
            b.conv_transpose2d(&t[0], &t[1], t.get(2), &spec)
        })
    }

    fn pool_spec(&self, op: &str, x: &Tensor, kind: PoolKind, p: &PoolParams) -> Result<Pool2d> {
        float(op, x)?;
        self.image_operand(x)?;
        rank(op, x, 4, layout_name(p.layout))?;
        positive(op, "kernel size", p.kernel)?;
        positive(op, "stride", p.stride)?;
        let (n, c, h, w) = p.layout.split(x.shape());
        let mut out = [0; 2];
        for (axis, len) in [h, w].into_iter().enumerate() {
            if p.padding[axis] * 2 > p.kernel[axis] {
                return Err(TensorError::InvalidArgument(format!(
                    "{op}: padding {:?} must be at most half the kernel size {:?}",
                    p.padding, p.kernel
                )));
            }
            out[axis] = pool_out_len(
                len,
                p.kernel[axis],
                p.stride[axis],
                p.padding[axis],
                p.ceil_mode,
            )
            .filter(|&o| o > 0)
            .ok_or_else(|| {
                TensorError::ShapeMismatch(format!(
                    "{op}: the window {:?} is larger than the padded input {:?}",
                    p.kernel,
                    x.shape()
                ))
            })?;
        }
        Ok(Pool2d {
            kind,
            layout: p.layout,
            n,
            c,
            h,
            w,
            kernel: p.kernel,
            stride: p.stride,
            padding: p.padding,
            oh: out[0],
            ow: out[1],
        })
    }

    /// Max pooling over 2-D windows (PyTorch's `MaxPool2d`, dilation 1).
    pub fn max_pool2d(&self, x: &Tensor, p: &PoolParams) -> Result<Tensor> {
        let spec = self.pool_spec("max-pool2d", x, PoolKind::Max, p)?;
        crate::graph::run1(self, &[x], move |b, t| b.pool2d(&t[0], &spec))
    }

    /// Average pooling over 2-D windows (PyTorch's `AvgPool2d`).
    pub fn avg_pool2d(&self, x: &Tensor, p: &PoolParams) -> Result<Tensor> {
        let kind = PoolKind::Avg {
            count_include_pad: p.count_include_pad,
        };
        let spec = self.pool_spec("avg-pool2d", x, kind, p)?;
        crate::graph::run1(self, &[x], move |b, t| b.pool2d(&t[0], &spec))
    }

    /// Adaptive average pooling to `size` (PyTorch's `AdaptiveAvgPool2d`).
    pub fn adaptive_avg_pool2d(
        &self,
        x: &Tensor,
        size: [usize; 2],
        layout: Layout,
    ) -> Result<Tensor> {
        let op = "adaptive-avg-pool2d";
        float(op, x)?;
        self.image_operand(x)?;
        rank(op, x, 4, layout_name(layout))?;
        positive(op, "output size", size)?;
        let (n, c, h, w) = layout.split(x.shape());
        if h == 0 || w == 0 {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: the input {:?} has an empty spatial axis",
                x.shape()
            )));
        }
        let spec = Pool2d {
            kind: PoolKind::AdaptiveAvg,
            layout,
            n,
            c,
            h,
            w,
            kernel: [0, 0],
            stride: [0, 0],
            padding: [0, 0],
            oh: size[0],
            ow: size[1],
        };
        crate::graph::run1(self, &[x], move |b, t| b.pool2d(&t[0], &spec))
    }

    /// Pads the last `pads.len()` axes: `pads[i]` is (before, after) for
    /// axis `rank - pads.len() + i`. Every dtype; a constant is converted
    /// to the tensor's dtype.
    pub fn pad(&self, x: &Tensor, pads: &[(usize, usize)], mode: PadMode) -> Result<Tensor> {
        self.image_operand(x)?;
        let r = x.rank();
        if r > 8 {
            return Err(TensorError::InvalidArgument(format!(
                "pad takes tensors of rank <= 8, this one is {:?}",
                x.shape()
            )));
        }
        if pads.len() > r {
            return Err(TensorError::InvalidArgument(format!(
                "pad: {} (before, after) pairs for a tensor of rank {r} ({:?}); give at most one per axis",
                pads.len(),
                x.shape()
            )));
        }
        let mut before = vec![0; r];
        let mut after = vec![0; r];
        for (i, &(b, a)) in pads.iter().enumerate() {
            let d = r - pads.len() + i;
            let len = x.shape()[d];
            let bad = match mode {
                PadMode::Reflect => (b > 0 || a > 0) && (b >= len || a >= len),
                PadMode::Replicate => (b > 0 || a > 0) && len == 0,
                PadMode::Constant(_) => false,
            };
            if bad {
                return Err(TensorError::InvalidArgument(format!(
                    "pad: axis {d} has length {len}; {} padding of ({b}, {a}) needs {}",
                    if matches!(mode, PadMode::Reflect) {
                        "reflect"
                    } else {
                        "replicate"
                    },
                    if matches!(mode, PadMode::Reflect) {
                        "each side smaller than the length"
                    } else {
                        "a non-empty axis"
                    }
                )));
            }
            before[d] = b;
            after[d] = a;
        }
        let spec = PadSpec {
            input: x.shape().to_vec(),
            before,
            after,
            mode,
        };
        let out = spec.output_shape();
        crate::shape::checked_bytes(x.dtype(), &out).ok_or_else(|| {
            TensorError::InvalidArgument(format!("pad: the result {out:?} is too large"))
        })?;
        crate::graph::run1(self, &[x], move |b, t| b.pad(&t[0], &spec))
    }

    /// Group normalisation (PyTorch's `GroupNorm`) with an optional fused
    /// activation: channels split into `groups`, each normalised over its
    /// channels and the spatial axes, then scaled by `weight [C]` and
    /// shifted by `bias [C]`. Input `[N, C, ...]` (NCHW) or `[N, ..., C]`.
    #[allow(clippy::too_many_arguments)]
    pub fn group_norm(
        &self,
        x: &Tensor,
        groups: usize,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
        layout: Layout,
        activation: Activation,
    ) -> Result<Tensor> {
        let op = "group-norm";
        float(op, x)?;
        self.image_operand(x)?;
        if x.rank() < 2 {
            return Err(TensorError::ShapeMismatch(format!(
                "{op} needs a tensor of rank >= 2 ([N, C, ...] or [N, ..., C]), got {:?}",
                x.shape()
            )));
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(TensorError::InvalidArgument(format!(
                "{op}: eps is {eps}, it must be finite and >= 0 (typically 1e-5)"
            )));
        }
        let s = x.shape();
        let c = match layout {
            Layout::Nchw => s[1],
            Layout::Nhwc => s[s.len() - 1],
        };
        if groups == 0 || c % groups != 0 {
            return Err(TensorError::InvalidArgument(format!(
                "{op}: groups = {groups} must be at least 1 and divide the {c} channels of {s:?}"
            )));
        }
        for (what, t) in [("weight", weight), ("bias", bias)] {
            if let Some(t) = t {
                self.image_operand(t)?;
                same(op, what, x, t)?;
                if t.shape() != [c] {
                    return Err(TensorError::ShapeMismatch(format!(
                        "{op}: the {what} has shape {:?} but must be [{c}] (one per channel)",
                        t.shape()
                    )));
                }
            }
        }
        let spec = GroupNorm {
            layout,
            n: s[0],
            c,
            spatial: x.numel().checked_div(s[0] * c).unwrap_or(0),
            groups,
            eps,
            activation,
        };
        let has_weight = weight.is_some();
        let mut inputs = vec![x];
        inputs.extend(weight);
        inputs.extend(bias);
        let has_bias = bias.is_some();
        crate::graph::run1(self, &inputs, move |b, t| {
            let w = has_weight.then(|| &t[1]);
            let bias = has_bias.then(|| &t[t.len() - 1]);
            b.group_norm(&t[0], w, bias, &spec)
        })
    }

    /// Resamples the spatial axes to `size` (PyTorch's `interpolate` with
    /// `mode="nearest"` or `"bilinear"`). Nearest takes every dtype,
    /// bilinear floats.
    pub fn resize(
        &self,
        x: &Tensor,
        size: [usize; 2],
        mode: ResizeMode,
        layout: Layout,
    ) -> Result<Tensor> {
        let op = match mode {
            ResizeMode::Nearest => "upsample-nearest",
            ResizeMode::Bilinear { .. } => "upsample-bilinear",
        };
        if matches!(mode, ResizeMode::Bilinear { .. }) {
            float(op, x)?;
        }
        self.image_operand(x)?;
        rank(op, x, 4, layout_name(layout))?;
        positive(op, "output size", size)?;
        let (n, c, h, w) = layout.split(x.shape());
        if h == 0 || w == 0 {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: the input {:?} has an empty spatial axis",
                x.shape()
            )));
        }
        let spec = Resize {
            mode,
            layout,
            n,
            c,
            h,
            w,
            oh: size[0],
            ow: size[1],
        };
        let out = spec.output_shape();
        crate::shape::checked_bytes(x.dtype(), &out).ok_or_else(|| {
            TensorError::InvalidArgument(format!("{op}: the result {out:?} is too large"))
        })?;
        crate::graph::run1(self, &[x], move |b, t| b.resize(&t[0], &spec))
    }
}
