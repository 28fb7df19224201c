//! The trait a compute backend implements. Arguments arrive already checked
//! by [`crate::Device`] (shapes agree, axes are in range, dtypes are
//! accepted), so a backend only computes and allocates.

use std::sync::Arc;

use crate::decoder::{AttentionPlan, RopePlan, Sampling};
use crate::graph::{NativeGraph, Step};
use crate::{DType, HostBuffer, ImageBackend, MathBackend, MemoryAccount, Result, Tensor};

/// Elementwise binary ops (NumPy broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// Elementwise activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    Relu,
    /// Exact (erf) GELU.
    Gelu,
    Silu,
    Tanh,
}

/// Reductions along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
}

/// A compute device as one worker sees it: allocations are charged to
/// `account()`. One backend value per worker (a GPU backend keeps the worker's
/// stream in it); backends of one physical device share its context.
///
/// Invariants callers rely on: every returned tensor is fresh memory (never
/// exposing bytes of an earlier allocation), charged to the account, and
/// contiguous row-major.
///
/// The op families of [`crate::image`] and [`crate::math`] are their own
/// traits, each implemented next to its kernels.
pub trait Backend: Send + Sync + ImageBackend + MathBackend {
    /// Short name for logs and errors ("cpu", "cuda:0").
    fn name(&self) -> &str;
    /// The account new allocations are charged to.
    fn account(&self) -> &Arc<MemoryAccount>;
    /// True if `t`'s storage belongs to this backend's device.
    fn owns(&self, t: &Tensor) -> bool;

    fn upload(&self, dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor>;
    fn zeros(&self, dtype: DType, shape: &[usize]) -> Result<Tensor>;
    fn download(&self, t: &Tensor) -> Result<Vec<u8>>;
    /// Copy `t`, held by another backend, onto this one directly (GPU to
    /// GPU over NVLink/PCIe) when the two can; `None` when they cannot and
    /// the copy must go through host memory.
    fn copy_in(&self, _t: &Tensor) -> Option<Result<Tensor>> {
        None
    }

    /// A host buffer of `len` bytes to page a tensor out into: pinned where
    /// the device can DMA from it directly, pageable otherwise.
    fn host_buffer(&self, len: usize) -> Result<HostBuffer> {
        Ok(HostBuffer::pageable(len))
    }
    /// Copy `t` into `dst`, exactly `t`'s size (checked by the front).
    fn download_into(&self, t: &Tensor, dst: &mut HostBuffer) -> Result<()> {
        let bytes = self.download(t)?;
        dst.as_mut_slice().copy_from_slice(&bytes);
        Ok(())
    }
    /// Upload from a host buffer (length checked by the front): one bulk
    /// copy where the buffer is pinned.
    fn upload_host(&self, dtype: DType, shape: &[usize], src: &HostBuffer) -> Result<Tensor> {
        self.upload(dtype, shape, src.as_slice())
    }

    /// [`Backend::upload_host`] for many buffers at once: a GPU queues every
    /// copy and waits once, so the link never idles between them.
    fn upload_host_batch(&self, items: &[(DType, &[usize], &HostBuffer)]) -> Result<Vec<Tensor>> {
        items
            .iter()
            .map(|(dtype, shape, src)| self.upload_host(*dtype, shape, src))
            .collect()
    }

    /// Moves `t`'s buffer out as a host buffer without copying, where the
    /// backend keeps tensors in host memory and `t` is the only handle to
    /// its storage; gives `t` back otherwise.
    fn take_host(&self, t: Tensor) -> std::result::Result<HostBuffer, Tensor> {
        Err(t)
    }
    /// Like [`Backend::upload_host`], consuming the buffer (the CPU backend
    /// adopts a buffer it gave out with [`Backend::take_host`]).
    fn upload_host_owned(&self, dtype: DType, shape: &[usize], src: HostBuffer) -> Result<Tensor> {
        self.upload_host(dtype, shape, &src)
    }

    /// `[batch.., m, k] x [batch.., k, n]`; both operands already broadcast
    /// to rank >= 2 with equal batch dims by the front (`a` and `b` may have
    /// batch dims of size 1 that broadcast: `out_batch` is the result's).
    fn matmul(&self, a: &Tensor, b: &Tensor, out_batch: &[usize]) -> Result<Tensor>;
    /// `out_shape` is the broadcast shape of `a` and `b`.
    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Tensor>;
    fn unary(&self, op: UnaryOp, a: &Tensor) -> Result<Tensor>;
    /// `a * factor + offset`.
    fn scale(&self, a: &Tensor, factor: f32, offset: f32) -> Result<Tensor>;
    fn softmax(&self, a: &Tensor, axis: usize) -> Result<Tensor>;
    /// Over the last axis; `weight`/`bias` have that axis' length.
    fn layer_norm(
        &self,
        a: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor>;
    fn rms_norm(&self, a: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor>;
    /// `table [rows, dim]`, integer `indices` (already range-checked).
    fn gather(&self, table: &Tensor, indices: &Tensor) -> Result<Tensor>;
    fn permute(&self, a: &Tensor, dims: &[usize]) -> Result<Tensor>;
    fn slice(&self, a: &Tensor, axis: usize, start: usize, end: usize) -> Result<Tensor>;
    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor>;
    fn reduce(&self, op: ReduceOp, a: &Tensor, axis: usize, keep_dim: bool) -> Result<Tensor>;
    fn cast(&self, a: &Tensor, dtype: DType) -> Result<Tensor>;
    /// i64 indices of the maximum along `axis` (axis removed).
    fn argmax(&self, a: &Tensor, axis: usize) -> Result<Tensor>;
    /// Values and i64 indices of the `k` largest along the last axis.
    fn top_k(&self, a: &Tensor, k: usize) -> Result<(Tensor, Tensor)>;

    // ---- Decoder ops (issue 18); arguments checked by `decoder.rs`.

    /// `x [rows, in]` times each `(weight [out_i, in], bias [out_i])`
    /// transposed, one `[rows, out_i]` result per layer; `residual [rows,
    /// out]` (only with one layer) added last.
    fn linear(
        &self,
        x: &Tensor,
        layers: &[(&Tensor, Option<&Tensor>)],
        residual: Option<&Tensor>,
    ) -> Result<Vec<Tensor>>;
    /// `silu(gate) * up` (same shape and dtype).
    fn silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor>;
    /// `x [batch, seq, heads, head_dim]` rotated at integer `positions`
    /// (`[seq]` or `[batch, seq]`).
    fn rope(&self, x: &Tensor, positions: &Tensor, plan: &RopePlan) -> Result<Tensor>;
    /// `q [b, sq, hq, d]` over `k`, `v` `[b, sk, hkv, d]`; `valid` integer
    /// `[b]` or `[1]` (clamped to 0..=sk), `key_mask [b, sk]` (nonzero =
    /// attend).
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        plan: &AttentionPlan,
        valid: Option<&Tensor>,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor>;
    /// Rotates `q` and `k` (with `rope`), writes `k` and `v` into the caches
    /// at `positions` (slots outside the cache are skipped), and attends
    /// over the caches.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<Tensor>;
    /// Copies `src` into `target` along `axis` from `start` plus the value
    /// of `offset` on; does nothing when that does not fit (the front
    /// checked it outside replays).
    fn write(
        &self,
        target: &Tensor,
        src: &Tensor,
        axis: usize,
        start: usize,
        offset: Option<&Tensor>,
    ) -> Result<()>;
    /// One i64 id per row of `logits [rows, vocab]`, by `crate::sampling`.
    fn sample(&self, logits: &Tensor, params: &Sampling, counter: &Tensor) -> Result<Tensor>;

    /// A native form of a recorded graph (a CUDA graph), or `None` to
    /// replay it by re-running its steps.
    fn build_graph(&self, _steps: &[Step]) -> Result<Option<Box<dyn NativeGraph>>> {
        Ok(None)
    }
}
