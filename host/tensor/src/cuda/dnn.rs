//! cuDNN for the convolutions, loaded at run time like the rest of CUDA.
//!
//! Nothing links against cuDNN: `libcudnn.so.9` is opened the first time a
//! worker runs a convolution. When it is missing (or too old to have the
//! functions used here) [`DnnSlot::get`] says so once and the backend falls
//! back to its own im2col kernel and cuBLAS, which gives the same results
//! more slowly.
//!
//! Each worker backend has its own cuDNN handle, bound to its stream. A
//! convolution's descriptors and algorithm are planned once per geometry
//! and dtype (the algorithm measured with `cudnnFindConvolutionForward
//! AlgorithmEx`, as PyTorch does with `cudnn.benchmark`) and kept in the
//! handle's plan cache. ReLU epilogues (with bias and residual) run fused
//! in `cudnnConvolutionBiasActivationForward` where cuDNN supports the
//! configuration; a plan it refuses keeps the plain convolution and the
//! backend's epilogue kernel. Set `WASMPOD_CUDNN_TRACE=1` to see each plan's
//! choice on stderr.

use std::collections::HashMap;
use std::ffi::{CStr, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cudnn::sys;
use cudarc::driver::CudaStream;

use crate::image::{Activation, Conv2d, ConvTranspose2d, Layout};
use crate::{DType, Result, Tensor, TensorError};

/// Largest workspace a convolution may use (and the find step measures with).
const MAX_WORKSPACE: usize = 256 << 20;

/// The functions this module calls; all must resolve for cuDNN to be used.
const SYMBOLS: [&str; 24] = [
    "cudnnCreate",
    "cudnnDestroy",
    "cudnnSetStream",
    "cudnnGetVersion",
    "cudnnGetErrorString",
    "cudnnCreateTensorDescriptor",
    "cudnnSetTensorNdDescriptor",
    "cudnnDestroyTensorDescriptor",
    "cudnnCreateFilterDescriptor",
    "cudnnSetFilterNdDescriptor",
    "cudnnDestroyFilterDescriptor",
    "cudnnCreateConvolutionDescriptor",
    "cudnnSetConvolutionNdDescriptor",
    "cudnnSetConvolutionGroupCount",
    "cudnnSetConvolutionMathType",
    "cudnnDestroyConvolutionDescriptor",
    "cudnnCreateActivationDescriptor",
    "cudnnSetActivationDescriptor",
    "cudnnDestroyActivationDescriptor",
    "cudnnGetConvolutionForwardAlgorithm_v7",
    "cudnnFindConvolutionForwardAlgorithmEx",
    "cudnnConvolutionForward",
    "cudnnConvolutionBiasActivationForward",
    "cudnnConvolutionBackwardData",
];

fn trace() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("WASMPOD_CUDNN_TRACE").is_some_and(|v| v != "0"))
}

/// Whether cuDNN can be loaded, and its version (probed once per process).
pub fn probe() -> std::result::Result<usize, String> {
    static PROBE: OnceLock<std::result::Result<usize, String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            let found = catch_unwind(|| {
                // SAFETY: only dlopens libcudnn and looks symbols up by name.
                unsafe {
                    if !sys::is_culib_present() {
                        return Err("libcudnn.so.9 was not found (install the nvidia-cudnn-cu13 wheel or cuDNN 9, or put its lib directory on LD_LIBRARY_PATH)".to_string());
                    }
                    let lib = sys::culib();
                    if let Some(missing) = SYMBOLS.iter().find(|s| lib.get::<*const c_void>(s.as_bytes()).is_err()) {
                        return Err(format!("the cuDNN library found lacks {missing} (cuDNN 9 is needed)"));
                    }
                    Ok(sys::cudnnGetVersion())
                }
            });
            let result = found.unwrap_or_else(|_| Err("loading cuDNN panicked".to_string()));
            if trace() {
                eprintln!("wasmpod-tensor: cuDNN: {result:?}");
            }
            result
        })
        .clone()
}

fn status(what: &str, s: sys::cudnnStatus_t) -> Result<()> {
    if s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
        return Ok(());
    }
    // SAFETY: cudnnGetErrorString returns a static C string.
    let text = unsafe { CStr::from_ptr(sys::cudnnGetErrorString(s)) }.to_string_lossy();
    Err(TensorError::DeviceFault(format!(
        "cudnn: {what}: {s:?} ({text})"
    )))
}

fn data_type(dtype: DType) -> sys::cudnnDataType_t {
    match dtype {
        DType::F16 => sys::cudnnDataType_t::CUDNN_DATA_HALF,
        DType::BF16 => sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16,
        _ => sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
    }
}

fn int(v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        TensorError::InvalidArgument(format!(
            "a convolution dimension of {v} exceeds cuDNN's limit of {}",
            i32::MAX
        ))
    })
}

struct TensorDesc(sys::cudnnTensorDescriptor_t);
struct FilterDesc(sys::cudnnFilterDescriptor_t);
struct ConvDesc(sys::cudnnConvolutionDescriptor_t);
struct ActDesc(sys::cudnnActivationDescriptor_t);

impl TensorDesc {
    /// An `n × c × h × w` image in `layout`.
    fn image(dtype: DType, layout: Layout, n: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        let mut d = std::ptr::null_mut();
        // SAFETY: out-pointer to a fresh descriptor.
        status("creating a tensor descriptor", unsafe {
            sys::cudnnCreateTensorDescriptor(&mut d)
        })?;
        let desc = Self(d);
        let dims = [int(n)?, int(c)?, int(h)?, int(w)?];
        let s = layout.strides(c, h, w);
        let strides = [int(s[0])?, int(s[1])?, int(s[2])?, int(s[3])?];
        // SAFETY: four dims and strides, as declared.
        status("describing a tensor", unsafe {
            sys::cudnnSetTensorNdDescriptor(
                desc.0,
                data_type(dtype),
                4,
                dims.as_ptr(),
                strides.as_ptr(),
            )
        })?;
        Ok(desc)
    }
}

impl FilterDesc {
    fn new(dtype: DType, layout: Layout, k: usize, c: usize, h: usize, w: usize) -> Result<Self> {
        let mut d = std::ptr::null_mut();
        // SAFETY: out-pointer to a fresh descriptor.
        status("creating a filter descriptor", unsafe {
            sys::cudnnCreateFilterDescriptor(&mut d)
        })?;
        let desc = Self(d);
        let format = match layout {
            Layout::Nchw => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW,
            Layout::Nhwc => sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC,
        };
        let dims = [int(k)?, int(c)?, int(h)?, int(w)?];
        // SAFETY: four dims, as declared.
        status("describing a filter", unsafe {
            sys::cudnnSetFilterNdDescriptor(desc.0, data_type(dtype), format, 4, dims.as_ptr())
        })?;
        Ok(desc)
    }
}

impl ConvDesc {
    fn new(
        dtype: DType,
        pad: [usize; 2],
        stride: [usize; 2],
        dil: [usize; 2],
        groups: usize,
    ) -> Result<Self> {
        let mut d = std::ptr::null_mut();
        // SAFETY: out-pointer to a fresh descriptor.
        status("creating a convolution descriptor", unsafe {
            sys::cudnnCreateConvolutionDescriptor(&mut d)
        })?;
        let desc = Self(d);
        let pads = [int(pad[0])?, int(pad[1])?];
        let strides = [int(stride[0])?, int(stride[1])?];
        let dils = [int(dil[0])?, int(dil[1])?];
        // f16/bf16 data compute in f32 ("pseudo half"), as the contract says.
        // SAFETY: arrays of arrayLength = 2.
        status("describing a convolution", unsafe {
            sys::cudnnSetConvolutionNdDescriptor(
                desc.0,
                2,
                pads.as_ptr(),
                strides.as_ptr(),
                dils.as_ptr(),
                sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
            )
        })?;
        // f32 is true FP32 (no TF32), like the backend's GEMM; f16/bf16 use
        // the tensor cores.
        let math = if dtype == DType::F32 {
            sys::cudnnMathType_t::CUDNN_FMA_MATH
        } else {
            sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
        };
        // SAFETY: a live descriptor.
        status("setting the math type", unsafe {
            sys::cudnnSetConvolutionMathType(desc.0, math)
        })?;
        status("setting the group count", unsafe {
            sys::cudnnSetConvolutionGroupCount(desc.0, int(groups)?)
        })?;
        Ok(desc)
    }
}

impl ActDesc {
    fn relu() -> Result<Self> {
        let mut d = std::ptr::null_mut();
        // SAFETY: out-pointer to a fresh descriptor.
        status("creating an activation descriptor", unsafe {
            sys::cudnnCreateActivationDescriptor(&mut d)
        })?;
        let desc = Self(d);
        // SAFETY: a live descriptor.
        status("describing the activation", unsafe {
            sys::cudnnSetActivationDescriptor(
                desc.0,
                sys::cudnnActivationMode_t::CUDNN_ACTIVATION_RELU,
                sys::cudnnNanPropagation_t::CUDNN_PROPAGATE_NAN,
                0.0,
            )
        })?;
        Ok(desc)
    }
}

// SAFETY (all four): each destroys a descriptor it created, once.
impl Drop for TensorDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyTensorDescriptor(self.0) };
    }
}
impl Drop for FilterDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyFilterDescriptor(self.0) };
    }
}
impl Drop for ConvDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyConvolutionDescriptor(self.0) };
    }
}
impl Drop for ActDesc {
    fn drop(&mut self) {
        unsafe { sys::cudnnDestroyActivationDescriptor(self.0) };
    }
}

/// What the plan of one convolution geometry holds.
struct ForwardPlan {
    x: TensorDesc,
    w: FilterDesc,
    y: TensorDesc,
    bias: TensorDesc,
    conv: ConvDesc,
    relu: ActDesc,
    algo: sys::cudnnConvolutionFwdAlgo_t,
    workspace: usize,
    /// Cleared the first time cuDNN refuses the fused call for this plan.
    fused: AtomicBool,
}

struct BackwardPlan {
    dy: TensorDesc,
    w: FilterDesc,
    dx: TensorDesc,
    conv: ConvDesc,
    algo: sys::cudnnConvolutionBwdDataAlgo_t,
    workspace: usize,
}

struct Handle(sys::cudnnHandle_t);

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by cudnnCreate, destroyed once.
        unsafe { sys::cudnnDestroy(self.0) };
    }
}

struct Inner {
    handle: Handle,
    forward: HashMap<(Conv2d, DType), ForwardPlan>,
    backward: HashMap<(ConvTranspose2d, DType), BackwardPlan>,
}

/// One worker's cuDNN handle and plan cache.
pub(crate) struct Dnn {
    inner: Mutex<Inner>,
}

// SAFETY: the handle and descriptors are only used under the mutex, with
// the worker's context bound; cuDNN handles may move between threads.
unsafe impl Send for Dnn {}
unsafe impl Sync for Dnn {}

/// Where a backend keeps its cuDNN handle: made on first use, or the reason
/// it cannot be.
#[derive(Default)]
pub(crate) struct DnnSlot {
    dnn: OnceLock<std::result::Result<Dnn, String>>,
    disabled: AtomicBool,
}

impl DnnSlot {
    /// The handle for `stream`, or None when cuDNN is unavailable or
    /// switched off ([`DnnSlot::set_enabled`]).
    pub(crate) fn get(&self, stream: &Arc<CudaStream>) -> Option<&Dnn> {
        if self.disabled.load(Ordering::Relaxed) {
            return None;
        }
        self.dnn.get_or_init(|| Dnn::new(stream)).as_ref().ok()
    }

    pub(crate) fn set_enabled(&self, on: bool) {
        self.disabled.store(!on, Ordering::Relaxed);
    }

    /// Why convolutions do not use cuDNN, if they do not.
    pub(crate) fn unavailable(&self, stream: &Arc<CudaStream>) -> Option<String> {
        if self.disabled.load(Ordering::Relaxed) {
            return Some("switched off for this backend".into());
        }
        self.dnn
            .get_or_init(|| Dnn::new(stream))
            .as_ref()
            .err()
            .cloned()
    }
}

/// Device buffers of one forward convolution.
pub(crate) struct ForwardCall<'a> {
    pub spec: &'a Conv2d,
    pub dtype: DType,
    pub x: u64,
    pub w: u64,
    pub y: u64,
    pub bias: Option<u64>,
    pub residual: Option<u64>,
    pub activation: Activation,
    /// The stream to queue on (the worker's, or a graph capture's).
    pub stream: u64,
    /// Allocates a workspace of the given size (charged to the worker; a
    /// graph's recorded buffer when replayed).
    pub workspace: &'a dyn Fn(usize) -> Result<(Tensor, u64)>,
    /// Allocates scratch outside any graph recording (the find step's).
    pub unrecorded: &'a dyn Fn(usize) -> Result<(Tensor, u64)>,
}

impl Dnn {
    fn new(stream: &Arc<CudaStream>) -> std::result::Result<Dnn, String> {
        probe()?;
        let made = catch_unwind(AssertUnwindSafe(|| -> Result<Dnn> {
            let mut h = std::ptr::null_mut();
            // SAFETY: out-pointer; the stream lives as long as the backend.
            status("creating a handle", unsafe { sys::cudnnCreate(&mut h) })?;
            let handle = Handle(h);
            status("binding the stream", unsafe {
                sys::cudnnSetStream(handle.0, stream.cu_stream() as _)
            })?;
            Ok(Dnn {
                inner: Mutex::new(Inner {
                    handle,
                    forward: HashMap::new(),
                    backward: HashMap::new(),
                }),
            })
        }));
        let result = match made {
            Ok(Ok(d)) => Ok(d),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("creating a cuDNN handle panicked".into()),
        };
        if let Err(e) = &result {
            eprintln!("wasmpod-tensor: convolutions run without cuDNN: {e}");
        }
        result
    }

    /// Plans `c`'s geometry into the cache unless it is there.
    fn plan_forward(inner: &mut Inner, c: &ForwardCall<'_>) -> Result<()> {
        let s = c.spec;
        let key = (s.clone(), c.dtype);
        if inner.forward.contains_key(&key) {
            return Ok(());
        }
        let x = TensorDesc::image(c.dtype, s.layout, s.n, s.c, s.h, s.w)?;
        let w = FilterDesc::new(c.dtype, s.layout, s.o, s.c / s.groups, s.kh, s.kw)?;
        let y = TensorDesc::image(c.dtype, s.layout, s.n, s.o, s.oh, s.ow)?;
        let bias = TensorDesc::image(c.dtype, Layout::Nchw, 1, s.o, 1, 1)?;
        let conv = ConvDesc::new(c.dtype, s.padding, s.stride, s.dilation, s.groups)?;
        let h = inner.handle.0;
        // Measure the candidates on the real buffers, within the workspace
        // cap (scratch that a recorded graph must not see: planning happens
        // once, not per run).
        // SAFETY: the handle is live; the stream belongs to its context.
        status("binding the stream", unsafe {
            sys::cudnnSetStream(h, c.stream as _)
        })?;
        let (ws, ws_ptr) = (c.unrecorded)(MAX_WORKSPACE)
            .or_else(|_| (c.unrecorded)(MAX_WORKSPACE / 8))
            .map(|(t, p)| (Some(t), p))
            .unwrap_or((None, 0));
        let ws_len = ws.as_ref().map_or(0, |t| t.numel());
        let mut perf = [sys::cudnnConvolutionFwdAlgoPerf_t {
            algo: sys::cudnnConvolutionFwdAlgo_t::CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM,
            status: sys::cudnnStatus_t::CUDNN_STATUS_NOT_SUPPORTED,
            time: 0.0,
            memory: 0,
            determinism: sys::cudnnDeterminism_t::CUDNN_NON_DETERMINISTIC,
            mathType: sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            reserved: [0; 3],
        }; 8];
        let mut found = 0;
        // SAFETY: descriptors are live; x, w, y and the workspace are device
        // buffers of the sizes the descriptors say (checked by the front).
        let measured = unsafe {
            sys::cudnnFindConvolutionForwardAlgorithmEx(
                h,
                x.0,
                c.x as *const c_void,
                w.0,
                c.w as *const c_void,
                conv.0,
                y.0,
                c.y as *mut c_void,
                perf.len() as i32,
                &mut found,
                perf.as_mut_ptr(),
                ws_ptr as *mut c_void,
                ws_len,
            )
        };
        drop(ws);
        let ok = |p: &sys::cudnnConvolutionFwdAlgoPerf_t| {
            p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS && p.memory <= MAX_WORKSPACE
        };
        let mut pick = (measured == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS)
            .then(|| {
                perf[..found.max(0) as usize]
                    .iter()
                    .find(|p| ok(p))
                    .copied()
            })
            .flatten();
        if pick.is_none() {
            // The heuristics need no buffers.
            found = 0;
            // SAFETY: as above.
            let s2 = unsafe {
                sys::cudnnGetConvolutionForwardAlgorithm_v7(
                    h,
                    x.0,
                    w.0,
                    conv.0,
                    y.0,
                    perf.len() as i32,
                    &mut found,
                    perf.as_mut_ptr(),
                )
            };
            status("choosing a convolution algorithm", s2)?;
            pick = perf[..found.max(0) as usize]
                .iter()
                .find(|p| ok(p))
                .copied();
        }
        let Some(best) = pick else {
            return Err(TensorError::DeviceFault(format!(
                "cudnn: no algorithm runs the convolution {s:?} ({}) within {MAX_WORKSPACE} bytes of workspace",
                c.dtype
            )));
        };
        if trace() {
            eprintln!(
                "wasmpod-tensor: cudnn plan {} {}x{}x{}x{} -> {} k{}x{} s{:?} p{:?} g{} {}: {:?} {:.3} ms, {} bytes (find: {:?})",
                s.layout.name(),
                s.n,
                s.c,
                s.h,
                s.w,
                s.o,
                s.kh,
                s.kw,
                s.stride,
                s.padding,
                s.groups,
                c.dtype,
                best.algo,
                best.time,
                best.memory,
                measured
            );
        }
        let plan = ForwardPlan {
            x,
            w,
            y,
            bias,
            conv,
            relu: ActDesc::relu()?,
            algo: best.algo,
            workspace: best.memory,
            fused: AtomicBool::new(true),
        };
        inner.forward.insert(key, plan);
        Ok(())
    }

    /// Runs the convolution into `c.y`. Returns true when the epilogue
    /// (bias, residual, ReLU) was fused in; false leaves it to the caller.
    pub(crate) fn forward(&self, c: &ForwardCall<'_>) -> Result<bool> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        Self::plan_forward(&mut inner, c)?;
        let h = inner.handle.0;
        // SAFETY: the handle is live; the stream belongs to its context.
        status("binding the stream", unsafe {
            sys::cudnnSetStream(h, c.stream as _)
        })?;
        let plan = &inner.forward[&(c.spec.clone(), c.dtype)];
        let (ws, ws_ptr) = if plan.workspace > 0 {
            let (t, p) = (c.workspace)(plan.workspace)?;
            (Some(t), p)
        } else {
            (None, 0)
        };
        let (one, zero) = (1.0f32, 0.0f32);
        let alpha = (&one as *const f32).cast::<c_void>();
        // Fused only with a bias (batch-norm folded into the convolution
        // always has one): cuDNN's fused call needs a bias operand.
        let fuse = c.activation == Activation::Relu && plan.fused.load(Ordering::Relaxed);
        if let (true, Some(bias)) = (fuse, c.bias) {
            let (z, alpha2) = match c.residual {
                Some(r) => (r, &one),
                None => (c.y, &zero),
            };
            // SAFETY: every pointer is a live device buffer matching its
            // descriptor; z aliases y only with alpha2 = 0 (allowed).
            let s = unsafe {
                sys::cudnnConvolutionBiasActivationForward(
                    h,
                    alpha,
                    plan.x.0,
                    c.x as *const c_void,
                    plan.w.0,
                    c.w as *const c_void,
                    plan.conv.0,
                    plan.algo,
                    ws_ptr as *mut c_void,
                    plan.workspace,
                    (alpha2 as *const f32).cast(),
                    plan.y.0,
                    z as *const c_void,
                    plan.bias.0,
                    bias as *const c_void,
                    plan.relu.0,
                    plan.y.0,
                    c.y as *mut c_void,
                )
            };
            if s == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS {
                drop(ws);
                return Ok(true);
            }
            plan.fused.store(false, Ordering::Relaxed);
            if trace() {
                eprintln!(
                    "wasmpod-tensor: cudnn refused the fused bias+relu for {:?} {}: {s:?}; using conv + epilogue kernel",
                    c.spec, c.dtype
                );
            }
        }
        // SAFETY: as above.
        let s = unsafe {
            sys::cudnnConvolutionForward(
                h,
                alpha,
                plan.x.0,
                c.x as *const c_void,
                plan.w.0,
                c.w as *const c_void,
                plan.conv.0,
                plan.algo,
                ws_ptr as *mut c_void,
                plan.workspace,
                (&zero as *const f32).cast(),
                plan.y.0,
                c.y as *mut c_void,
            )
        };
        drop(ws);
        status("running a convolution", s)?;
        Ok(false)
    }

    /// The transposed convolution (cuDNN's backward-data) into `y`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn transposed(
        &self,
        s: &ConvTranspose2d,
        dtype: DType,
        (x, w, y): (u64, u64, u64),
        stream: u64,
        workspace: &dyn Fn(usize) -> Result<(Tensor, u64)>,
    ) -> Result<()> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the handle is live; the stream belongs to its context.
        status("binding the stream", unsafe {
            sys::cudnnSetStream(inner.handle.0, stream as _)
        })?;
        let key = (s.clone(), dtype);
        if !inner.backward.contains_key(&key) {
            {
                let dy = TensorDesc::image(dtype, Layout::Nchw, s.n, s.c, s.h, s.w)?;
                let wd = FilterDesc::new(dtype, Layout::Nchw, s.c, s.o / s.groups, s.kh, s.kw)?;
                let dx = TensorDesc::image(dtype, Layout::Nchw, s.n, s.o, s.oh, s.ow)?;
                let conv = ConvDesc::new(dtype, s.padding, s.stride, s.dilation, s.groups)?;
                let mut perf = [sys::cudnnConvolutionBwdDataAlgoPerf_t {
                    algo: sys::cudnnConvolutionBwdDataAlgo_t::CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
                    status: sys::cudnnStatus_t::CUDNN_STATUS_NOT_SUPPORTED,
                    time: 0.0,
                    memory: 0,
                    determinism: sys::cudnnDeterminism_t::CUDNN_NON_DETERMINISTIC,
                    mathType: sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
                    reserved: [0; 3],
                }; 8];
                let mut found = 0;
                // SAFETY: live descriptors, output arrays of the given length.
                status("choosing a transposed-convolution algorithm", unsafe {
                    sys::cudnnGetConvolutionBackwardDataAlgorithm_v7(
                        inner.handle.0,
                        wd.0,
                        dy.0,
                        conv.0,
                        dx.0,
                        perf.len() as i32,
                        &mut found,
                        perf.as_mut_ptr(),
                    )
                })?;
                let best = perf[..found.max(0) as usize]
                    .iter()
                    .find(|p| {
                        p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
                            && p.memory <= MAX_WORKSPACE
                    })
                    .copied()
                    .ok_or_else(|| {
                        TensorError::DeviceFault(format!(
                            "cudnn: no algorithm runs the transposed convolution {s:?}"
                        ))
                    })?;
                if trace() {
                    eprintln!(
                        "wasmpod-tensor: cudnn transposed plan {s:?} {dtype}: {:?}, {} bytes",
                        best.algo, best.memory
                    );
                }
                let plan = BackwardPlan {
                    dy,
                    w: wd,
                    dx,
                    conv,
                    algo: best.algo,
                    workspace: best.memory,
                };
                inner.backward.insert(key.clone(), plan);
            }
        }
        let h = inner.handle.0;
        let plan = &inner.backward[&key];
        let (ws, ws_ptr) = if plan.workspace > 0 {
            let (t, p) = workspace(plan.workspace)?;
            (Some(t), p)
        } else {
            (None, 0)
        };
        let (one, zero) = (1.0f32, 0.0f32);
        // SAFETY: live descriptors and device buffers of matching sizes.
        let st = unsafe {
            sys::cudnnConvolutionBackwardData(
                h,
                (&one as *const f32).cast(),
                plan.w.0,
                w as *const c_void,
                plan.dy.0,
                x as *const c_void,
                plan.conv.0,
                plan.algo,
                ws_ptr as *mut c_void,
                plan.workspace,
                (&zero as *const f32).cast(),
                plan.dx.0,
                y as *mut c_void,
            )
        };
        drop(ws);
        status("running a transposed convolution", st)
    }
}
