//! `CudaBackend`: the tensor ops of one worker on one GPU. Each backend owns
//! a CUDA stream (its work runs in order on it, concurrently with other
//! workers') and a cuBLAS handle bound to that stream; the context and the
//! kernels are the device's, shared.
//!
//! Memory: every allocation is charged to the worker's [`MemoryAccount`]
//! before it is made, comes from the device's stream-ordered pool, and never
//! shows bytes of an earlier allocation: a buffer is zero-filled on
//! allocation unless the op that asked for it overwrites every byte of it
//! (in stream order, before anything can read it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaStream, LaunchConfig, PushKernelArg, result, sys};

use super::blas::{self, Batching, GemmShape};
use super::device::{SharedDevice, fault, guard, shared};
use super::layout::{self, contiguous};
use super::pinned::PinnedBuffer;
use super::staging::STAGE_FROM_BYTES;
use super::storage::CudaStorage;
use crate::decoder::{AttentionPlan, RopePlan, Sampling};
use crate::graph::{NativeGraph, Step};
use crate::shape::broadcast_strides;
use crate::{
    Backend, BinaryOp, DType, HostBuffer, MemoryAccount, ReduceOp, Result, Tensor, TensorError,
    UnaryOp,
};

/// Threads per block of elementwise kernels.
pub(super) const ELEMENTWISE_THREADS: u32 = 256;
/// Cap on blocks of grid-stride kernels (each thread then loops).
const MAX_BLOCKS: u64 = 1 << 20;

/// How a fresh buffer starts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// Zero-filled: the buffer is returned as is, or only partly written.
    Zeroed,
    /// Every byte is written by the op, in stream order, before any read.
    Overwritten,
}

/// The CUDA backend of one worker. Construct with [`CudaBackend::new`].
pub struct CudaBackend {
    name: String,
    account: Arc<MemoryAccount>,
    pub(super) device: Arc<SharedDevice>,
    pub(super) stream: Arc<CudaStream>,
    blas: CudaBlas,
    poison_fresh: bool,
    /// Linear layers of at most this many rows run the GEMV kernel rather
    /// than cuBLAS (0: always cuBLAS).
    pub(super) gemv_max_rows: AtomicUsize,
    /// The capture stream and cuBLAS handle graphs are built with.
    pub(super) graph_tools: Mutex<Option<super::graph::GraphTools>>,
    /// cuDNN for the convolutions (see `image`), made on first use.
    pub(super) dnn: super::dnn::DnnSlot,
}

pub(super) fn grid(n: u64, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(threads as u64).clamp(1, MAX_BLOCKS) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per row; threads a power of two from 32 to 1024, about one per
/// four elements of the row.
fn rows_grid(rows: usize, len: usize) -> LaunchConfig {
    let threads = len.div_ceil(4).next_power_of_two().clamp(32, 1024) as u32;
    LaunchConfig {
        grid_dim: ((rows as u64).clamp(1, MAX_BLOCKS) as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Split `shape` around `axis` into (outer, axis length, inner).
fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

fn index_width(n: u64) -> &'static str {
    if n <= u32::MAX as u64 { "u32" } else { "u64" }
}

fn element_width(dtype: DType) -> usize {
    dtype.size() * 8
}

impl CudaBackend {
    /// A backend on CUDA device `ordinal` charging `account`, with its own
    /// stream. Fails with `DeviceFault` when CUDA or the device is unusable
    /// (see [`super::available`]), `InvalidArgument` for a bad ordinal.
    pub fn new(ordinal: usize, account: Arc<MemoryAccount>) -> Result<Self> {
        let device = shared(ordinal)?;
        guard("creating a worker stream", || {
            device
                .ctx
                .bind_to_thread()
                .map_err(fault("binding the context"))?;
            let stream = device
                .ctx
                .new_stream()
                .map_err(fault("creating a stream"))?;
            let blas = CudaBlas::new(Arc::clone(&stream))
                .map_err(|e| TensorError::DeviceFault(format!("cuda: creating cuBLAS: {e:?}")))?;
            Ok(Self {
                name: format!("cuda:{ordinal}"),
                account,
                device: Arc::clone(&device),
                stream,
                blas,
                poison_fresh: false,
                gemv_max_rows: AtomicUsize::new(super::decoder::GEMV_MAX_ROWS),
                graph_tools: Mutex::new(None),
                dnn: Default::default(),
            })
        })
    }

    /// The device's ordinal.
    pub fn ordinal(&self) -> usize {
        self.device.ordinal
    }

    /// The GPU's name as the driver reports it ("NVIDIA H100 80GB HBM3").
    pub fn device_name(&self) -> &str {
        &self.device.name
    }

    /// The GPU's memory in bytes, as the driver reports it.
    pub fn total_memory(&self) -> Result<u64> {
        self.bind()?;
        self.device
            .ctx
            .total_mem()
            .map(|b| b as u64)
            .map_err(fault("reading the device's memory size"))
    }

    /// This worker's stream, for timing with events or interop.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Waits until the work queued on this worker's stream has finished, and
    /// reports a fault any of it hit.
    pub fn synchronize(&self) -> Result<()> {
        self.bind()?;
        self.stream.synchronize().map_err(fault("synchronizing"))
    }

    /// Test aid: fill buffers that an op claims to overwrite with 0xFF bytes
    /// (NaN for floats) instead of leaving them, so a kernel that misses an
    /// element shows up in comparisons. Costs a memset per op.
    pub fn set_poison_fresh_buffers(&mut self, on: bool) {
        self.poison_fresh = on;
    }

    /// `t` (a buffer of another GPU's context) copied onto this GPU with
    /// cuMemcpyPeerAsync on this worker's stream, ordered after the work that
    /// produced it; peer access is enabled once per pair so the copy goes
    /// over NVLink or PCIe directly rather than through host memory.
    fn copy_from_peer(&self, t: &Tensor, src: &CudaStorage) -> Result<Tensor> {
        let (out, dst) = self.alloc(t.dtype(), t.shape(), Fill::Overwritten)?;
        let bytes = t.numel() * t.dtype().size();
        if bytes == 0 {
            return Ok(out);
        }
        self.enable_peer_access(src.context())?;
        let (dst_ctx, src_ctx) = (self.device.ctx.cu_ctx(), src.context().cu_ctx());
        let src_ptr = src.device_ptr();
        self.bind()?;
        // A guest tensor may have been written in place since an earlier
        // copy: order after everything its stream queued, not a cached event.
        src.before_read_fresh(&self.stream)?;
        self.reading(&[t], || {
            // SAFETY: both buffers are live (t is borrowed, out owned) and
            // `bytes` long; the source's free waits for this read (reading
            // records it).
            unsafe {
                result::memcpy_peer_async(
                    dst_ctx,
                    dst,
                    src_ctx,
                    src_ptr,
                    bytes,
                    self.stream.cu_stream(),
                )
            }
            .map_err(fault("copying between GPUs"))
        })?;
        Ok(out)
    }

    fn enable_peer_access(&self, peer: &Arc<CudaContext>) -> Result<()> {
        static ENABLED: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
        let pair = (self.device.ctx.cu_ctx() as usize, peer.cu_ctx() as usize);
        let mut enabled = ENABLED.lock().unwrap_or_else(|p| p.into_inner());
        if pair.0 == pair.1 || enabled.contains(&pair) {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: both contexts are alive for the process (see device.rs).
        let status = unsafe { sys::cuCtxEnablePeerAccess(peer.cu_ctx(), 0) };
        match status {
            sys::cudaError_enum::CUDA_SUCCESS
            | sys::cudaError_enum::CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED => {}
            // No peer path (e.g. GPUs on different root complexes): the
            // driver still copies, staged through host memory.
            sys::cudaError_enum::CUDA_ERROR_PEER_ACCESS_UNSUPPORTED => {}
            other => {
                return Err(TensorError::DeviceFault(format!(
                    "cuda: enabling peer access between GPUs: {other:?}"
                )));
            }
        }
        // Buffers come from the peer's stream-ordered memory pool, which
        // context peer access does not cover: without this grant the driver
        // stages every copy through host memory (38 GB/s measured on 2×H200,
        // against 377 GB/s over NVLink for PyTorch).
        let grant = sys::CUmemAccessDesc {
            location: sys::CUmemLocation {
                type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE,
                id: self.device.ctx.cu_device(),
            },
            flags: sys::CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        // SAFETY: the pool belongs to a live device; `grant` is one valid
        // descriptor.
        let granted = unsafe {
            let pool = result::device::get_default_mem_pool(peer.cu_device())
                .map_err(fault("reading the peer's memory pool"))?;
            sys::cuMemPoolSetAccess(pool, &grant, 1)
        };
        if granted != sys::cudaError_enum::CUDA_SUCCESS {
            note_staged_peer_copies(granted);
        }
        enabled.push(pair);
        Ok(())
    }

    /// Linear layers of up to `rows` rows use the GEMV kernel, larger ones
    /// cuBLAS (0: cuBLAS always). For benchmarks comparing the two.
    pub fn set_gemv_max_rows(&self, rows: usize) {
        self.gemv_max_rows.store(rows, Ordering::Relaxed);
    }

    /// The cuBLAS handle to queue GEMMs with: the graph builder's while a
    /// graph is being built on this thread, else the worker's.
    pub(super) fn blas_handle(&self) -> cudarc::cublas::sys::cublasHandle_t {
        super::graph::building_blas().unwrap_or(*self.blas.handle())
    }

    pub(super) fn bind(&self) -> Result<()> {
        self.device
            .ctx
            .bind_to_thread()
            .map_err(fault("binding the context"))
    }

    pub(super) fn storage<'t>(&self, t: &'t Tensor) -> &'t CudaStorage {
        t.storage()
            .as_any()
            .downcast_ref::<CudaStorage>()
            .expect("Device checks ownership before calling")
    }

    pub(super) fn ptr(&self, t: &Tensor) -> u64 {
        self.storage(t).device_ptr()
    }

    /// A fresh buffer of `shape` charged to the account, and its address
    /// (while a graph is built: the buffer recorded for this allocation).
    pub(super) fn alloc(&self, dtype: DType, shape: &[usize], fill: Fill) -> Result<(Tensor, u64)> {
        let bytes = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| TensorError::InvalidArgument(format!("shape {shape:?} is too large")))?;
        if let Some(storage) = crate::graph::reuse(bytes)? {
            let ptr = storage
                .as_any()
                .downcast_ref::<CudaStorage>()
                .ok_or_else(|| {
                    TensorError::DeviceFault("a recorded buffer is not a CUDA buffer".into())
                })?
                .device_ptr();
            self.fill(ptr, bytes, fill)?;
            return Ok((Tensor::new(dtype, shape.to_vec(), storage), ptr));
        }
        let reservation = self.account.reserve(bytes as u64)?;
        self.bind()?;
        let stream = self.stream.cu_stream();
        let ptr = if bytes == 0 {
            0
        } else {
            // SAFETY: a plain stream-ordered allocation on our stream.
            unsafe { result::malloc_async(stream, bytes) }.map_err(|e| {
                if e.0 == cudarc::driver::sys::cudaError_enum::CUDA_ERROR_OUT_OF_MEMORY {
                    TensorError::QuotaExceeded(format!(
                        "the GPU ({}) is out of memory allocating {bytes} bytes",
                        self.name
                    ))
                } else {
                    fault("allocating")(e)
                }
            })?
        };
        let storage: Arc<dyn crate::Storage> = Arc::new(CudaStorage::new(
            ptr,
            bytes,
            Arc::clone(&self.stream),
            reservation,
        ));
        crate::graph::allocated(&storage);
        self.fill(ptr, bytes, fill)?;
        Ok((Tensor::new(dtype, shape.to_vec(), storage), ptr))
    }

    /// Clears a fresh buffer as `fill` asks (on the queue stream).
    fn fill(&self, ptr: u64, bytes: usize, fill: Fill) -> Result<()> {
        let byte = match fill {
            Fill::Zeroed => Some(0u8),
            Fill::Overwritten if self.poison_fresh => Some(0xFF),
            Fill::Overwritten => None,
        };
        if let (Some(byte), true) = (byte, bytes > 0) {
            // SAFETY: ptr holds `bytes` bytes of this context, and the
            // queue stream orders the memset before the op that follows.
            unsafe { result::memset_d8_async(ptr, byte, bytes, self.queue().cu_stream()) }
                .map_err(fault("clearing a new buffer"))?;
        }
        Ok(())
    }

    /// Runs `queue` (which enqueues work reading `inputs`) with the
    /// cross-stream ordering that shared tensors need. While a graph is
    /// built the ordering was established when the ops were recorded, and
    /// the graph keeps its inputs alive (see graph.rs).
    pub(super) fn reading<R>(
        &self,
        inputs: &[&Tensor],
        queue: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        self.bind()?;
        if crate::graph::replaying() {
            return queue();
        }
        for t in inputs {
            self.storage(t).before_read_on(&self.stream)?;
        }
        let out = queue()?;
        for t in inputs {
            self.storage(t).after_read_on(&self.stream)?;
        }
        Ok(out)
    }

    fn strided_copy(
        &self,
        width: usize,
        shape: &[usize],
        src: (u64, Vec<i64>, i64),
        dst: (u64, Vec<i64>, i64),
    ) -> Result<()> {
        let (src_ptr, src_strides, src_base) = src;
        let (dst_ptr, dst_strides, dst_base) = dst;
        let rank = shape.len();
        for l in layout::plan(
            shape,
            [src_strides, dst_strides, vec![0; rank]],
            [src_base, dst_base, 0],
        ) {
            let (lay, n) = (l.layout, l.numel);
            launch!(
                self,
                format!("copy_w{width}_{}", index_width(n)),
                grid(n, ELEMENTWISE_THREADS),
                lay,
                src_ptr,
                dst_ptr,
                n
            )?;
        }
        Ok(())
    }

    fn matmul_queue(&self, a: &Tensor, b: &Tensor, out_batch: &[usize], c: u64) -> Result<()> {
        let (ar, br) = (a.rank(), b.rank());
        let s = GemmShape {
            m: a.shape()[ar - 2],
            k: a.shape()[ar - 1],
            n: b.shape()[br - 1],
        };
        let (pa, pb) = (self.ptr(a), self.ptr(b));
        let handle = self.blas_handle();
        match blas::plan_batch(&a.shape()[..ar - 2], &b.shape()[..br - 2], out_batch) {
            Batching::Strided {
                count,
                step_a,
                step_b,
            } => {
                let step_a = if step_a { (s.m * s.k) as i64 } else { 0 };
                let step_b = if step_b { (s.k * s.n) as i64 } else { 0 };
                // SAFETY: the handle is bound to our stream; a, b and c hold
                // every matrix the strides reach (shapes checked by Device).
                unsafe {
                    blas::gemm_strided(handle, a.dtype(), s, pa, step_a, pb, step_b, c, count)
                }
            }
            Batching::Offsets { a: oa, b: ob } => {
                let esize = a.dtype().size() as u64;
                let addrs = |base: u64, offs: &[usize], mat: usize| -> Vec<u8> {
                    offs.iter()
                        .flat_map(|&o| (base + (o * mat) as u64 * esize).to_le_bytes())
                        .collect()
                };
                let count = oa.len();
                let ident: Vec<usize> = (0..count).collect();
                let a_list = self.upload(DType::U8, &[count * 8], &addrs(pa, &oa, s.m * s.k))?;
                let b_list = self.upload(DType::U8, &[count * 8], &addrs(pb, &ob, s.k * s.n))?;
                let c_list = self.upload(DType::U8, &[count * 8], &addrs(c, &ident, s.m * s.n))?;
                // SAFETY: as above; the pointer lists were uploaded on this
                // stream and stay alive until the end of this call, and
                // their frees are ordered after the GEMM on the same stream.
                unsafe {
                    blas::gemm_pointers(
                        handle,
                        a.dtype(),
                        s,
                        self.ptr(&a_list),
                        self.ptr(&b_list),
                        self.ptr(&c_list),
                        count,
                    )
                }
            }
        }
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> &str {
        &self.name
    }

    fn account(&self) -> &Arc<MemoryAccount> {
        &self.account
    }

    fn owns(&self, t: &Tensor) -> bool {
        t.storage()
            .as_any()
            .downcast_ref::<CudaStorage>()
            .is_some_and(|s| Arc::ptr_eq(s.context(), &self.device.ctx))
    }

    fn upload(&self, dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
        let (t, ptr) = self.alloc(dtype, shape, Fill::Overwritten)?;
        if crate::graph::replaying() {
            // Scratch an op uploads (GEMM pointer lists) while a graph is
            // built: the recorded buffer already holds these bytes.
            return Ok(t);
        }
        if bytes.len() >= STAGE_FROM_BYTES {
            self.device
                .staging
                .upload(&self.device.ctx, &self.stream, ptr, bytes)?;
        } else if !bytes.is_empty() {
            // SAFETY: ptr holds bytes.len() bytes (Device checked the length).
            unsafe { result::memcpy_htod_async(ptr, bytes, self.stream.cu_stream()) }
                .map_err(fault("uploading"))?;
            // The caller may free `bytes` once we return; pageable copies are
            // staged before return, but a pinned `bytes` would be read later.
            self.synchronize()?;
        }
        Ok(t)
    }

    fn zeros(&self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        Ok(self.alloc(dtype, shape, Fill::Zeroed)?.0)
    }

    fn host_buffer(&self, len: usize) -> Result<HostBuffer> {
        self.bind()?;
        Ok(HostBuffer::Pinned(PinnedBuffer::new(len)?))
    }

    fn download_into(&self, t: &Tensor, dst: &mut HostBuffer) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let src = self.ptr(t);
        let out = dst.as_mut_slice();
        self.reading(&[t], || {
            // SAFETY: out has exactly the buffer's length (checked by the
            // front); we synchronize before it is read or dropped.
            unsafe { result::memcpy_dtoh_async(out, src, self.stream.cu_stream()) }
                .map_err(fault("paging out"))
        })?;
        self.synchronize()
    }

    fn upload_host(&self, dtype: DType, shape: &[usize], src: &HostBuffer) -> Result<Tensor> {
        if !src.is_pinned() {
            return self.upload(dtype, shape, src.as_slice());
        }
        let (t, ptr) = self.alloc(dtype, shape, Fill::Overwritten)?;
        if !src.is_empty() {
            // SAFETY: ptr holds src.len() bytes (checked by the front); the
            // source is pinned, so the DMA reads it directly, and we
            // synchronize before returning so the caller may free it.
            unsafe { result::memcpy_htod_async(ptr, src.as_slice(), self.stream.cu_stream()) }
                .map_err(fault("paging in"))?;
            self.synchronize()?;
        }
        Ok(t)
    }

    fn upload_host_batch(&self, items: &[(DType, &[usize], &HostBuffer)]) -> Result<Vec<Tensor>> {
        let mut out = Vec::with_capacity(items.len());
        for (dtype, shape, src) in items {
            if !src.is_pinned() {
                out.push(self.upload(*dtype, shape, src.as_slice())?);
                continue;
            }
            let (t, ptr) = self.alloc(*dtype, shape, Fill::Overwritten)?;
            if !src.is_empty() {
                // SAFETY: ptr holds src.len() bytes (checked by the front);
                // the sources are pinned and borrowed until the single
                // synchronize below, so every DMA reads live memory.
                unsafe { result::memcpy_htod_async(ptr, src.as_slice(), self.stream.cu_stream()) }
                    .map_err(fault("paging in"))?;
            }
            out.push(t);
        }
        self.synchronize()?;
        Ok(out)
    }

    fn copy_in(&self, t: &Tensor) -> Option<Result<Tensor>> {
        let src = t.storage().as_any().downcast_ref::<CudaStorage>()?;
        Some(self.copy_from_peer(t, src))
    }

    fn download(&self, t: &Tensor) -> Result<Vec<u8>> {
        let mut out = vec![0u8; t.numel() * t.dtype().size()];
        if out.is_empty() {
            return Ok(out);
        }
        let src = self.ptr(t);
        self.reading(&[t], || {
            // SAFETY: out has exactly the buffer's length; we synchronize
            // before it is read or dropped.
            unsafe { result::memcpy_dtoh_async(&mut out, src, self.stream.cu_stream()) }
                .map_err(fault("downloading"))
        })?;
        self.synchronize()?;
        Ok(out)
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, out_batch: &[usize]) -> Result<Tensor> {
        let (ar, br) = (a.rank(), b.rank());
        let (m, k, n) = (a.shape()[ar - 2], a.shape()[ar - 1], b.shape()[br - 1]);
        let mut shape = out_batch.to_vec();
        shape.extend([m, n]);
        let empty = shape.contains(&0);
        if empty || k == 0 {
            // No products to run: the result is empty or all zeros.
            return Ok(self.alloc(a.dtype(), &shape, Fill::Zeroed)?.0);
        }
        let (out, c) = self.alloc(a.dtype(), &shape, Fill::Overwritten)?;
        self.reading(&[a, b], || self.matmul_queue(a, b, out_batch, c))?;
        Ok(out)
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, po) = self.alloc(dtype, out_shape, Fill::Overwritten)?;
        let int_div = dtype.is_int() && op == BinaryOp::Div;
        // Integer division by zero is an error, as on the CPU: the kernel
        // flags it in this word and we read it back.
        let flag = if int_div {
            Some(self.alloc(DType::I32, &[1], Fill::Zeroed)?)
        } else {
            None
        };
        let flag_ptr = flag.as_ref().map_or(0, |(_, p)| *p);
        let code: i32 = match op {
            BinaryOp::Add => 0,
            BinaryOp::Sub => 1,
            BinaryOp::Mul => 2,
            BinaryOp::Div => 3,
        };
        let to_i64 = |v: Vec<usize>| v.into_iter().map(|s| s as i64).collect::<Vec<_>>();
        let sa = to_i64(broadcast_strides(a.shape(), out_shape));
        let sb = to_i64(broadcast_strides(b.shape(), out_shape));
        let so = contiguous(out_shape);
        let (pa, pb) = (self.ptr(a), self.ptr(b));
        self.reading(&[a, b], || {
            for l in layout::plan(out_shape, [sa, sb, so], [0; 3]) {
                let (lay, n) = (l.layout, l.numel);
                launch!(
                    self,
                    format!("binary_{dtype}_{}", index_width(n)),
                    grid(n, ELEMENTWISE_THREADS),
                    lay,
                    pa,
                    pb,
                    po,
                    n,
                    code,
                    flag_ptr
                )?;
            }
            Ok(())
        })?;
        // A graph being built cannot read back; the check was made when the
        // op was recorded.
        if let (Some((flag, _)), false) = (flag, crate::graph::replaying()) {
            let hit = self.download(&flag)?;
            if hit.iter().any(|&b| b != 0) {
                return Err(TensorError::InvalidArgument(
                    "integer division by zero".into(),
                ));
            }
        }
        Ok(out)
    }

    fn unary(&self, op: UnaryOp, a: &Tensor) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        let n = a.numel() as u64;
        if n == 0 {
            return Ok(out);
        }
        let code: i32 = match op {
            UnaryOp::Relu => 0,
            UnaryOp::Gelu => 1,
            UnaryOp::Silu => 2,
            UnaryOp::Tanh => 3,
        };
        let px = self.ptr(a);
        self.reading(&[a], || {
            launch!(
                self,
                format!("unary_{dtype}"),
                grid(n, ELEMENTWISE_THREADS),
                px,
                py,
                n,
                code
            )
        })?;
        Ok(out)
    }

    fn scale(&self, a: &Tensor, factor: f32, offset: f32) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        let n = a.numel() as u64;
        if n == 0 {
            return Ok(out);
        }
        let px = self.ptr(a);
        self.reading(&[a], || {
            launch!(
                self,
                format!("scale_{dtype}"),
                grid(n, ELEMENTWISE_THREADS),
                px,
                py,
                n,
                factor,
                offset
            )
        })?;
        Ok(out)
    }

    fn softmax(&self, a: &Tensor, axis: usize) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        if a.numel() == 0 {
            return Ok(out);
        }
        let (outer, len, inner) = around(a.shape(), axis);
        let px = self.ptr(a);
        let (outer_i, len_i, inner_i) = (outer as i64, len as i64, inner as i64);
        self.reading(&[a], || {
            if inner == 1 {
                launch!(
                    self,
                    format!("softmax_rows_{dtype}"),
                    rows_grid(outer, len),
                    px,
                    py,
                    outer_i,
                    len_i
                )
            } else {
                let lanes = (outer * inner) as u64;
                launch!(
                    self,
                    format!("softmax_lanes_{dtype}"),
                    grid(lanes, ELEMENTWISE_THREADS),
                    px,
                    py,
                    outer_i,
                    len_i,
                    inner_i
                )
            }
        })?;
        Ok(out)
    }

    fn layer_norm(
        &self,
        a: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        if a.numel() == 0 {
            return Ok(out);
        }
        let len = *a.shape().last().expect("rank >= 1");
        let rows = a.numel() / len;
        let (rows_i, len_i) = (rows as i64, len as i64);
        let px = self.ptr(a);
        let pw = weight.map_or(0, |w| self.ptr(w));
        let pb = bias.map_or(0, |b| self.ptr(b));
        let inputs: Vec<&Tensor> = [Some(a), weight, bias].into_iter().flatten().collect();
        self.reading(&inputs, || {
            launch!(
                self,
                format!("layer_norm_{dtype}"),
                rows_grid(rows, len),
                px,
                pw,
                pb,
                py,
                rows_i,
                len_i,
                eps
            )
        })?;
        Ok(out)
    }

    fn rms_norm(&self, a: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        let dtype = a.dtype();
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        if a.numel() == 0 {
            return Ok(out);
        }
        let len = *a.shape().last().expect("rank >= 1");
        let rows = a.numel() / len;
        let (rows_i, len_i) = (rows as i64, len as i64);
        let px = self.ptr(a);
        let pw = weight.map_or(0, |w| self.ptr(w));
        let inputs: Vec<&Tensor> = [Some(a), weight].into_iter().flatten().collect();
        self.reading(&inputs, || {
            launch!(
                self,
                format!("rms_norm_{dtype}"),
                rows_grid(rows, len),
                px,
                pw,
                py,
                rows_i,
                len_i,
                eps
            )
        })?;
        Ok(out)
    }

    fn gather(&self, table: &Tensor, indices: &Tensor) -> Result<Tensor> {
        let (rows, dim) = (table.shape()[0], table.shape()[1]);
        let mut shape = indices.shape().to_vec();
        shape.push(dim);
        let (out, po) = self.alloc(table.dtype(), &shape, Fill::Overwritten)?;
        let n = (indices.numel() * dim) as u64;
        if n == 0 {
            return Ok(out);
        }
        let (pt, pi) = (self.ptr(table), self.ptr(indices));
        let (dim_i, rows_i) = (dim as i64, rows as i64);
        let width = element_width(table.dtype());
        let idx = indices.dtype();
        self.reading(&[table, indices], || {
            launch!(
                self,
                format!("gather_w{width}_{idx}"),
                grid(n, ELEMENTWISE_THREADS),
                pt,
                pi,
                po,
                n,
                dim_i,
                rows_i
            )
        })?;
        Ok(out)
    }

    fn permute(&self, a: &Tensor, dims: &[usize]) -> Result<Tensor> {
        let shape: Vec<usize> = dims.iter().map(|&d| a.shape()[d]).collect();
        let (out, po) = self.alloc(a.dtype(), &shape, Fill::Overwritten)?;
        let own = contiguous(a.shape());
        let src_strides: Vec<i64> = dims.iter().map(|&d| own[d]).collect();
        let pa = self.ptr(a);
        self.reading(&[a], || {
            self.strided_copy(
                element_width(a.dtype()),
                &shape,
                (pa, src_strides, 0),
                (po, contiguous(&shape), 0),
            )
        })?;
        Ok(out)
    }

    fn slice(&self, a: &Tensor, axis: usize, start: usize, end: usize) -> Result<Tensor> {
        let mut shape = a.shape().to_vec();
        shape[axis] = end - start;
        let (out, po) = self.alloc(a.dtype(), &shape, Fill::Overwritten)?;
        let own = contiguous(a.shape());
        let base = start as i64 * own[axis];
        let pa = self.ptr(a);
        self.reading(&[a], || {
            self.strided_copy(
                element_width(a.dtype()),
                &shape,
                (pa, own.clone(), base),
                (po, contiguous(&shape), 0),
            )
        })?;
        Ok(out)
    }

    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor> {
        let dtype = parts[0].dtype();
        let mut shape = parts[0].shape().to_vec();
        shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        let (out, po) = self.alloc(dtype, &shape, Fill::Overwritten)?;
        let out_strides = contiguous(&shape);
        self.reading(parts, || {
            let mut offset = 0i64;
            for p in parts {
                self.strided_copy(
                    element_width(dtype),
                    p.shape(),
                    (self.ptr(p), contiguous(p.shape()), 0),
                    (po, out_strides.clone(), offset * out_strides[axis]),
                )?;
                offset += p.shape()[axis] as i64;
            }
            Ok(())
        })?;
        Ok(out)
    }

    fn reduce(&self, op: ReduceOp, a: &Tensor, axis: usize, keep_dim: bool) -> Result<Tensor> {
        let dtype = a.dtype();
        let (outer, len, inner) = around(a.shape(), axis);
        let mut shape = a.shape().to_vec();
        if keep_dim {
            shape[axis] = 1;
        } else {
            shape.remove(axis);
        }
        let (out, py) = self.alloc(dtype, &shape, Fill::Overwritten)?;
        if outer * inner == 0 {
            return Ok(out);
        }
        let code: i32 = match op {
            ReduceOp::Sum => 0,
            ReduceOp::Mean => 1,
            ReduceOp::Max => 2,
        };
        let px = self.ptr(a);
        let (outer_i, len_i, inner_i) = (outer as i64, len as i64, inner as i64);
        self.reading(&[a], || {
            if inner == 1 {
                launch!(
                    self,
                    format!("reduce_rows_{dtype}"),
                    rows_grid(outer, len),
                    px,
                    py,
                    outer_i,
                    len_i,
                    code
                )
            } else {
                let lanes = (outer * inner) as u64;
                launch!(
                    self,
                    format!("reduce_lanes_{dtype}"),
                    grid(lanes, ELEMENTWISE_THREADS),
                    px,
                    py,
                    outer_i,
                    len_i,
                    inner_i,
                    code
                )
            }
        })?;
        Ok(out)
    }

    fn cast(&self, a: &Tensor, dtype: DType) -> Result<Tensor> {
        let (out, py) = self.alloc(dtype, a.shape(), Fill::Overwritten)?;
        let n = a.numel() as u64;
        if n == 0 {
            return Ok(out);
        }
        let px = self.ptr(a);
        let from = a.dtype();
        self.reading(&[a], || {
            launch!(
                self,
                format!("cast_{from}_{dtype}"),
                grid(n, ELEMENTWISE_THREADS),
                px,
                py,
                n
            )
        })?;
        Ok(out)
    }

    fn argmax(&self, a: &Tensor, axis: usize) -> Result<Tensor> {
        let dtype = a.dtype();
        let (outer, len, inner) = around(a.shape(), axis);
        let mut shape = a.shape().to_vec();
        shape.remove(axis);
        let (out, py) = self.alloc(DType::I64, &shape, Fill::Overwritten)?;
        if outer * inner == 0 {
            return Ok(out);
        }
        let px = self.ptr(a);
        let (outer_i, len_i, inner_i) = (outer as i64, len as i64, inner as i64);
        self.reading(&[a], || {
            if inner == 1 {
                launch!(
                    self,
                    format!("argmax_rows_{dtype}"),
                    rows_grid(outer, len),
                    px,
                    py,
                    outer_i,
                    len_i
                )
            } else {
                let lanes = (outer * inner) as u64;
                launch!(
                    self,
                    format!("argmax_lanes_{dtype}"),
                    grid(lanes, ELEMENTWISE_THREADS),
                    px,
                    py,
                    outer_i,
                    len_i,
                    inner_i
                )
            }
        })?;
        Ok(out)
    }

    fn top_k(&self, a: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
        let dtype = a.dtype();
        let len = *a.shape().last().expect("rank >= 1");
        let rows = a.numel().checked_div(len).unwrap_or(0);
        let mut shape = a.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = k;
        let (values, pv) = self.alloc(dtype, &shape, Fill::Overwritten)?;
        let (indices, pi) = self.alloc(DType::I64, &shape, Fill::Overwritten)?;
        if rows * k == 0 {
            return Ok((values, indices));
        }
        let px = self.ptr(a);
        let (rows_i, len_i, k_i) = (rows as i64, len as i64, k as i64);
        self.reading(&[a], || {
            launch!(
                self,
                format!("top_k_{dtype}"),
                rows_grid(rows, len),
                px,
                pv,
                pi,
                rows_i,
                len_i,
                k_i
            )
        })?;
        Ok((values, indices))
    }

    // ---- Decoder ops (issue 18): see decoder.rs.

    fn linear(
        &self,
        x: &Tensor,
        layers: &[(&Tensor, Option<&Tensor>)],
        residual: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        self.linear_op(x, layers, residual)
    }

    fn silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        self.silu_mul_op(gate, up)
    }

    fn rope(&self, x: &Tensor, positions: &Tensor, plan: &RopePlan) -> Result<Tensor> {
        self.rope_op(x, positions, plan)
    }

    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        plan: &AttentionPlan,
        valid: Option<&Tensor>,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        self.attention_op(q, k, v, plan, valid, key_mask)
    }

    fn attention_cached(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        k_cache: &Tensor,
        v_cache: &Tensor,
        positions: &Tensor,
        rope: Option<&RopePlan>,
        plan: &AttentionPlan,
    ) -> Result<Tensor> {
        self.attention_cached_op(q, k, v, k_cache, v_cache, positions, rope, plan)
    }

    fn write(
        &self,
        target: &Tensor,
        src: &Tensor,
        axis: usize,
        start: usize,
        offset: Option<&Tensor>,
    ) -> Result<()> {
        self.write_op(target, src, axis, start, offset)
    }

    fn sample(&self, logits: &Tensor, params: &Sampling, counter: &Tensor) -> Result<Tensor> {
        self.sample_op(logits, params, counter)
    }

    fn build_graph(&self, steps: &[Step]) -> Result<Option<Box<dyn NativeGraph>>> {
        self.build(steps).map(Some)
    }
}

/// A pool-access grant the driver refused leaves copies correct but staged
/// through host memory; nothing to fail for, so it is only noted on stderr
/// once (this crate has no logging dependency).
fn note_staged_peer_copies(status: sys::CUresult) {
    static NOTED: std::sync::Once = std::sync::Once::new();
    NOTED.call_once(|| {
        eprintln!(
            "wasmpod-tensor: GPU-to-GPU copies go through host memory (peer memory-pool access refused: {status:?})"
        )
    });
}

// The op families of `crate::image` and `crate::math`: children of this
// module, so they reach its private helpers.
mod image;
mod math;
