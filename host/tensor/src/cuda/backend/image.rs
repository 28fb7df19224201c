//! [`ImageBackend`] for CUDA: convolutions through cuDNN ([`super::super::dnn`])
//! or, without it, the `im2col` kernel and a cuBLAS GEMM (a 1×1 convolution
//! is a GEMM straight on the input); the epilogue, pooling, padding, group
//! norm and resampling run as kernels of `image.cu`.

use std::ffi::c_void;
use std::sync::Arc;

use cudarc::cublas::sys as cublas;
use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg, result};

use super::{CudaBackend, ELEMENTWISE_THREADS, Fill, element_width, fault, grid};
use crate::cuda::blas;
use crate::cuda::dnn::ForwardCall;
use crate::cuda::storage::CudaStorage;
use crate::image::{
    Activation, Conv2d, ConvTranspose2d, Epilogue, GroupNorm, ImageBackend, Layout, PadMode,
    PadSpec, Pool2d, PoolKind, Resize, ResizeMode,
};
use crate::{DType, Result, Tensor, TensorError};

/// Mirrors `struct ConvGeom` in image.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ConvGeom {
    n: i64,
    c: i64,
    h: i64,
    w: i64,
    o: i64,
    kh: i64,
    kw: i64,
    sy: i64,
    sx: i64,
    py: i64,
    px: i64,
    dy: i64,
    dx: i64,
    groups: i64,
    oh: i64,
    ow: i64,
    nhwc: i32,
    pad: i32,
}

/// Mirrors `struct PoolGeom`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PoolGeom {
    n: i64,
    c: i64,
    h: i64,
    w: i64,
    kh: i64,
    kw: i64,
    sy: i64,
    sx: i64,
    py: i64,
    px: i64,
    oh: i64,
    ow: i64,
    kind: i32,
    nhwc: i32,
}

/// Mirrors `struct PadGeom` (dims left-aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct PadGeom {
    in_shape: [i64; 8],
    before: [i64; 8],
    out_shape: [i64; 8],
    rank: i32,
    mode: i32,
}

/// Mirrors `struct GnGeom`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct GnGeom {
    n: i64,
    c: i64,
    spatial: i64,
    groups: i64,
    eps: f32,
    nhwc: i32,
    act: i32,
    pad: i32,
}

/// Mirrors `struct ResizeGeom`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct ResizeGeom {
    n: i64,
    c: i64,
    h: i64,
    w: i64,
    oh: i64,
    ow: i64,
    nhwc: i32,
    align_corners: i32,
}

// SAFETY: plain #[repr(C)] data matching the kernels' parameter types.
unsafe impl DeviceRepr for ConvGeom {}
unsafe impl DeviceRepr for PoolGeom {}
unsafe impl DeviceRepr for PadGeom {}
unsafe impl DeviceRepr for GnGeom {}
unsafe impl DeviceRepr for ResizeGeom {}

fn nhwc(layout: Layout) -> i32 {
    (layout == Layout::Nhwc) as i32
}

fn conv_geom(s: &Conv2d) -> ConvGeom {
    let i = |v: usize| v as i64;
    ConvGeom {
        n: i(s.n),
        c: i(s.c),
        h: i(s.h),
        w: i(s.w),
        o: i(s.o),
        kh: i(s.kh),
        kw: i(s.kw),
        sy: i(s.stride[0]),
        sx: i(s.stride[1]),
        py: i(s.padding[0]),
        px: i(s.padding[1]),
        dy: i(s.dilation[0]),
        dx: i(s.dilation[1]),
        groups: i(s.groups),
        oh: i(s.oh),
        ow: i(s.ow),
        nhwc: nhwc(s.layout),
        pad: 0,
    }
}

fn dim(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        TensorError::InvalidArgument(format!(
            "a convolution GEMM dimension of {v} exceeds cuBLAS's limit of {}",
            i32::MAX
        ))
    })
}

/// One column-major strided-batched GEMM: `C = op(A) · op(B)`.
struct Gemm {
    ta: bool,
    tb: bool,
    m: usize,
    n: usize,
    k: usize,
    a: (u64, usize, usize),
    b: (u64, usize, usize),
    c: (u64, usize, usize),
    count: usize,
}

impl CudaBackend {
    /// Turns convolutions' use of cuDNN on or off (on by default where the
    /// library loads); off runs the im2col + cuBLAS path. For tests that
    /// compare the two.
    pub fn set_cudnn(&self, on: bool) {
        self.dnn.set_enabled(on);
    }

    /// Why this backend's convolutions do not use cuDNN, or None if they do.
    pub fn cudnn_unavailable(&self) -> Option<String> {
        self.dnn.unavailable(&self.stream)
    }

    /// A scratch buffer of `bytes` (charged, freed in stream order when
    /// the tensor drops; a recorded graph's own buffer when replayed).
    fn scratch(&self, bytes: usize) -> Result<(Tensor, u64)> {
        self.alloc(DType::U8, &[bytes], Fill::Overwritten)
    }

    /// Scratch that a graph recording does not log (cuDNN's one-off
    /// algorithm search), charged like any buffer.
    fn unrecorded_scratch(&self, bytes: usize) -> Result<(Tensor, u64)> {
        let reservation = self.account.reserve(bytes as u64)?;
        self.bind()?;
        // SAFETY: a plain stream-ordered allocation on the worker's stream.
        let ptr = unsafe { result::malloc_async(self.stream.cu_stream(), bytes) }
            .map_err(fault("allocating cuDNN's search workspace"))?;
        let storage = CudaStorage::new(ptr, bytes, Arc::clone(&self.stream), reservation);
        Ok((Tensor::new(DType::U8, vec![bytes], Arc::new(storage)), ptr))
    }

    fn gemm(&self, dtype: DType, g: Gemm) -> Result<()> {
        let ty = blas::data_type(dtype)?;
        let op = |t: bool| {
            if t {
                cublas::cublasOperation_t::CUBLAS_OP_T
            } else {
                cublas::cublasOperation_t::CUBLAS_OP_N
            }
        };
        let (one, zero) = (1.0f32, 0.0f32);
        // SAFETY: the handle is bound to this backend's stream; every
        // matrix the strides reach lies inside its buffer (worked out by
        // the callers from the checked geometry).
        let status = unsafe {
            cublas::cublasGemmStridedBatchedEx(
                self.blas_handle(),
                op(g.ta),
                op(g.tb),
                dim(g.m)?,
                dim(g.n)?,
                dim(g.k)?,
                (&one as *const f32).cast::<c_void>(),
                g.a.0 as *const c_void,
                ty,
                dim(g.a.1)?,
                g.a.2 as i64,
                g.b.0 as *const c_void,
                ty,
                dim(g.b.1)?,
                g.b.2 as i64,
                (&zero as *const f32).cast::<c_void>(),
                g.c.0 as *mut c_void,
                ty,
                dim(g.c.1)?,
                g.c.2 as i64,
                dim(g.count)?,
                cublas::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cublas::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        if status == cublas::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            Ok(())
        } else {
            Err(TensorError::DeviceFault(format!(
                "cuda: cuBLAS GEMM of a convolution failed: {status:?}"
            )))
        }
    }

    /// The convolution without cuDNN: im2col per group, then one GEMM.
    fn conv_gemm(&self, x: &Tensor, w: &Tensor, s: &Conv2d, py: u64) -> Result<()> {
        let dtype = x.dtype();
        let es = dtype.size() as u64;
        let (cg, og) = (s.c / s.groups, s.o / s.groups);
        let (k, p) = (cg * s.kh * s.kw, s.oh * s.ow);
        let (px, pw) = (self.ptr(x), self.ptr(w));
        let cols = if s.is_pointwise() {
            None
        } else {
            Some(self.alloc(dtype, &[s.n * p, k], Fill::Overwritten)?)
        };
        let geom = conv_geom(s);
        for g in 0..s.groups {
            let a = match &cols {
                Some((_, pc)) => {
                    let (pc, total, group) = (*pc, (s.n * p * k) as u64, g as i64);
                    launch!(
                        self,
                        format!("im2col_{dtype}"),
                        grid(total, ELEMENTWISE_THREADS),
                        geom,
                        px,
                        pc,
                        group,
                        total
                    )?;
                    pc
                }
                None => px,
            };
            let wg = pw + (g * og * k) as u64 * es;
            let gemm = match (s.layout, cols.is_some()) {
                // out[n*p, o] (row stride o, columns g*og..) = cols · wgᵀ
                (Layout::Nhwc, _) => Gemm {
                    ta: true,
                    tb: false,
                    m: og,
                    n: s.n * p,
                    k,
                    a: (wg, k, 0),
                    b: (a, k, 0),
                    c: (py + (g * og) as u64 * es, s.o, 0),
                    count: 1,
                },
                // out[n] [o, p] = w [o, c] · x[n] [c, p], per image
                (Layout::Nchw, false) => Gemm {
                    ta: false,
                    tb: false,
                    m: p,
                    n: s.o,
                    k: s.c,
                    a: (px, p, s.c * p),
                    b: (pw, s.c, 0),
                    c: (py, p, s.o * p),
                    count: s.n,
                },
                // out[n, g*og..] [og, p] = wg [og, k] · cols[n]ᵀ [k, p]
                (Layout::Nchw, true) => Gemm {
                    ta: true,
                    tb: false,
                    m: p,
                    n: og,
                    k,
                    a: (a, k, p * k),
                    b: (wg, k, 0),
                    c: (py + (g * og * p) as u64 * es, p, s.o * p),
                    count: s.n,
                },
            };
            self.gemm(dtype, gemm)?;
        }
        Ok(())
    }

    /// `y = act(y + bias + residual)` in place over `numel` elements.
    #[allow(clippy::too_many_arguments)]
    fn epilogue(
        &self,
        dtype: DType,
        py: u64,
        numel: usize,
        e: &Epilogue<'_>,
        layout: Layout,
        channels: usize,
        spatial: usize,
    ) -> Result<()> {
        if e.is_identity() || numel == 0 {
            return Ok(());
        }
        let pb = e.bias.map_or(0, |b| self.ptr(b));
        let pr = e.residual.map_or(0, |r| self.ptr(r));
        let (n, ch, sp, nh, act) = (
            numel as u64,
            channels as i64,
            spatial as i64,
            nhwc(layout),
            e.activation.code(),
        );
        launch!(
            self,
            format!("epilogue_{dtype}"),
            grid(n, ELEMENTWISE_THREADS),
            py,
            pb,
            pr,
            n,
            ch,
            sp,
            nh,
            act
        )
    }
}

impl ImageBackend for CudaBackend {
    fn conv2d(&self, x: &Tensor, w: &Tensor, e: &Epilogue<'_>, s: &Conv2d) -> Result<Tensor> {
        let dtype = x.dtype();
        let numel = s.n * s.o * s.oh * s.ow;
        let k = s.c / s.groups * s.kh * s.kw;
        let fill = if k == 0 {
            Fill::Zeroed
        } else {
            Fill::Overwritten
        };
        let (out, py) = self.alloc(dtype, &s.output_shape(), fill)?;
        if numel == 0 {
            return Ok(out);
        }
        let inputs: Vec<&Tensor> = [Some(x), Some(w), e.bias, e.residual]
            .into_iter()
            .flatten()
            .collect();
        self.reading(&inputs, || {
            let mut fused = false;
            if k > 0 {
                match self.dnn.get(&self.stream) {
                    Some(dnn) => {
                        let workspace = |bytes: usize| self.scratch(bytes);
                        let unrecorded = |bytes: usize| self.unrecorded_scratch(bytes);
                        let call = ForwardCall {
                            spec: s,
                            dtype,
                            x: self.ptr(x),
                            w: self.ptr(w),
                            y: py,
                            bias: e.bias.map(|b| self.ptr(b)),
                            residual: e.residual.map(|r| self.ptr(r)),
                            activation: e.activation,
                            stream: self.queue().cu_stream() as u64,
                            workspace: &workspace,
                            unrecorded: &unrecorded,
                        };
                        fused = dnn.forward(&call)?;
                    }
                    None => self.conv_gemm(x, w, s, py)?,
                }
            }
            if !fused {
                self.epilogue(dtype, py, numel, e, s.layout, s.o, s.oh * s.ow)?;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn conv_transpose2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        s: &ConvTranspose2d,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let numel = s.n * s.o * s.oh * s.ow;
        let empty_input = s.n * s.c * s.h * s.w == 0;
        let (out, py) = self.alloc(
            dtype,
            &s.output_shape(),
            if empty_input {
                Fill::Zeroed
            } else {
                Fill::Overwritten
            },
        )?;
        if numel == 0 {
            return Ok(out);
        }
        let inputs: Vec<&Tensor> = [Some(x), Some(w), bias].into_iter().flatten().collect();
        self.reading(&inputs, || {
            if !empty_input {
                match self.dnn.get(&self.stream) {
                    Some(dnn) => {
                        let workspace = |bytes: usize| self.scratch(bytes);
                        let buffers = (self.ptr(x), self.ptr(w), py);
                        let stream = self.queue().cu_stream() as u64;
                        dnn.transposed(s, dtype, buffers, stream, &workspace)?;
                    }
                    None => self.conv_transpose_gemm(x, w, s, py)?,
                }
            }
            let e = Epilogue {
                bias,
                residual: None,
                activation: Activation::None,
            };
            self.epilogue(dtype, py, numel, &e, Layout::Nchw, s.o, s.oh * s.ow)
        })?;
        Ok(out)
    }

    fn pool2d(&self, x: &Tensor, s: &Pool2d) -> Result<Tensor> {
        let dtype = x.dtype();
        let (out, py) = self.alloc(dtype, &s.output_shape(), Fill::Overwritten)?;
        let total = out.numel() as u64;
        if total == 0 {
            return Ok(out);
        }
        let i = |v: usize| v as i64;
        let geom = PoolGeom {
            n: i(s.n),
            c: i(s.c),
            h: i(s.h),
            w: i(s.w),
            kh: i(s.kernel[0]),
            kw: i(s.kernel[1]),
            sy: i(s.stride[0]),
            sx: i(s.stride[1]),
            py: i(s.padding[0]),
            px: i(s.padding[1]),
            oh: i(s.oh),
            ow: i(s.ow),
            kind: match s.kind {
                PoolKind::Max => 0,
                PoolKind::Avg {
                    count_include_pad: false,
                } => 1,
                PoolKind::Avg {
                    count_include_pad: true,
                } => 2,
                PoolKind::AdaptiveAvg => 3,
            },
            nhwc: nhwc(s.layout),
        };
        let px = self.ptr(x);
        self.reading(&[x], || {
            launch!(
                self,
                format!("pool_{dtype}"),
                grid(total, ELEMENTWISE_THREADS),
                geom,
                px,
                py,
                total
            )
        })?;
        Ok(out)
    }

    fn pad(&self, x: &Tensor, s: &PadSpec) -> Result<Tensor> {
        let dtype = x.dtype();
        let shape = s.output_shape();
        let rank = shape.len();
        if rank > 8 {
            return Err(TensorError::InvalidArgument(format!(
                "pad on CUDA takes tensors of rank <= 8, this one has rank {rank}"
            )));
        }
        let (out, py) = self.alloc(dtype, &shape, Fill::Overwritten)?;
        let total = out.numel() as u64;
        if total == 0 {
            return Ok(out);
        }
        let mut geom = PadGeom {
            in_shape: [1; 8],
            before: [0; 8],
            out_shape: [1; 8],
            rank: rank as i32,
            mode: match s.mode {
                PadMode::Constant(_) => 0,
                PadMode::Reflect => 1,
                PadMode::Replicate => 2,
            },
        };
        for (d, &len) in shape.iter().enumerate() {
            geom.in_shape[d] = s.input[d] as i64;
            geom.before[d] = s.before[d] as i64;
            geom.out_shape[d] = len as i64;
        }
        // The constant as the tensor's own bytes (the CPU's conversion).
        let value = match s.mode {
            PadMode::Constant(v) => v,
            _ => 0.0,
        };
        let bytes = crate::cpu::CpuData::from_f32(dtype, vec![value])
            .bytes()
            .to_vec();
        let mut raw = [0u8; 8];
        raw[..bytes.len()].copy_from_slice(&bytes);
        let px = self.ptr(x);
        let cfg = grid(total, ELEMENTWISE_THREADS);
        self.reading(&[x], || match element_width(dtype) {
            8 => {
                let f = raw[0];
                launch!(self, "pad_w8", cfg, geom, px, py, total, f)
            }
            16 => {
                let f = u16::from_le_bytes([raw[0], raw[1]]);
                launch!(self, "pad_w16", cfg, geom, px, py, total, f)
            }
            32 => {
                let f = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                launch!(self, "pad_w32", cfg, geom, px, py, total, f)
            }
            _ => {
                let f = u64::from_le_bytes(raw);
                launch!(self, "pad_w64", cfg, geom, px, py, total, f)
            }
        })?;
        Ok(out)
    }

    fn group_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        s: &GroupNorm,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let (out, py) = self.alloc(dtype, x.shape(), Fill::Overwritten)?;
        if out.numel() == 0 {
            return Ok(out);
        }
        let geom = GnGeom {
            n: s.n as i64,
            c: s.c as i64,
            spatial: s.spatial as i64,
            groups: s.groups as i64,
            eps: s.eps,
            nhwc: nhwc(s.layout),
            act: s.activation.code(),
            pad: 0,
        };
        let blocks = (s.n * s.groups).clamp(1, 1 << 20) as u32;
        let members = s.c / s.groups * s.spatial;
        let threads = members.div_ceil(4).next_power_of_two().clamp(32, 1024) as u32;
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let (px, pw, pb) = (
            self.ptr(x),
            weight.map_or(0, |w| self.ptr(w)),
            bias.map_or(0, |b| self.ptr(b)),
        );
        let inputs: Vec<&Tensor> = [Some(x), weight, bias].into_iter().flatten().collect();
        self.reading(&inputs, || {
            launch!(
                self,
                format!("group_norm_{dtype}"),
                cfg,
                geom,
                px,
                pw,
                pb,
                py
            )
        })?;
        Ok(out)
    }

    fn resize(&self, x: &Tensor, s: &Resize) -> Result<Tensor> {
        let dtype = x.dtype();
        let (out, py) = self.alloc(dtype, &s.output_shape(), Fill::Overwritten)?;
        let total = out.numel() as u64;
        if total == 0 {
            return Ok(out);
        }
        let geom = ResizeGeom {
            n: s.n as i64,
            c: s.c as i64,
            h: s.h as i64,
            w: s.w as i64,
            oh: s.oh as i64,
            ow: s.ow as i64,
            nhwc: nhwc(s.layout),
            align_corners: matches!(
                s.mode,
                ResizeMode::Bilinear {
                    align_corners: true
                }
            ) as i32,
        };
        let name = match s.mode {
            ResizeMode::Nearest => format!("nearest_w{}", element_width(dtype)),
            ResizeMode::Bilinear { .. } => format!("bilinear_{dtype}"),
        };
        let px = self.ptr(x);
        self.reading(&[x], || {
            launch!(
                self,
                name,
                grid(total, ELEMENTWISE_THREADS),
                geom,
                px,
                py,
                total
            )
        })?;
        Ok(out)
    }
}

impl CudaBackend {
    /// The transposed convolution without cuDNN: per group, one GEMM into
    /// columns `[n, h*w, O/g*kh*kw]`, then col2im gathers them.
    fn conv_transpose_gemm(
        &self,
        x: &Tensor,
        w: &Tensor,
        s: &ConvTranspose2d,
        py: u64,
    ) -> Result<()> {
        let dtype = x.dtype();
        let es = dtype.size() as u64;
        let (cig, cog) = (s.c / s.groups, s.o / s.groups);
        let (pin, r) = (s.h * s.w, cog * s.kh * s.kw);
        let (_cols, pc) = self.alloc(dtype, &[s.n, pin, r], Fill::Overwritten)?;
        let (px, pw) = (self.ptr(x), self.ptr(w));
        let geom = ConvGeom {
            n: s.n as i64,
            c: s.c as i64,
            h: s.h as i64,
            w: s.w as i64,
            o: s.o as i64,
            kh: s.kh as i64,
            kw: s.kw as i64,
            sy: s.stride[0] as i64,
            sx: s.stride[1] as i64,
            py: s.padding[0] as i64,
            px: s.padding[1] as i64,
            dy: s.dilation[0] as i64,
            dx: s.dilation[1] as i64,
            groups: s.groups as i64,
            oh: s.oh as i64,
            ow: s.ow as i64,
            nhwc: 0,
            pad: 0,
        };
        for g in 0..s.groups {
            // colsᵀ[n] [r, pin] = wgᵀ [r, cig] · x[n, g] [cig, pin] in
            // column-major terms: C = A(r × cig, ld r) · B(pin × cig, ld pin)ᵀ.
            self.gemm(
                dtype,
                Gemm {
                    ta: false,
                    tb: true,
                    m: r,
                    n: pin,
                    k: cig,
                    a: (pw + (g * cig * r) as u64 * es, r, 0),
                    b: (px + (g * cig * pin) as u64 * es, pin, s.c * pin),
                    c: (pc, r, pin * r),
                    count: s.n,
                },
            )?;
            let (total, group) = ((s.n * cog * s.oh * s.ow) as u64, g as i64);
            launch!(
                self,
                format!("col2im_{dtype}"),
                grid(total, ELEMENTWISE_THREADS),
                geom,
                pc,
                py,
                group,
                total
            )?;
        }
        Ok(())
    }
}
