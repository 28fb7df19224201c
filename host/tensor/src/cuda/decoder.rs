//! The decoder ops on CUDA (kernels in decoder.cu): which kernel serves
//! which shape, and the argument blocks the kernels take by value.
//!
//! - `linear`: at up to [`GEMV_MAX_ROWS`] rows a bandwidth-bound GEMV
//!   kernel, every layer of a `linear-many` in one launch; above that
//!   cuBLAS with the weight read transposed (bias and residual written
//!   first, added with beta = 1).
//! - `attention`: few (query, head) rows per kv head (decode) run the
//!   split-K kernel (blocks over key chunks, merged by the last block);
//!   more run the tiled kernel. `attention-cached` at decode is that one
//!   launch, rotary embeddings and cache writes included; at prefill it is
//!   rope, a cache append, then the tiled kernel.

use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

use super::backend::{CudaBackend, ELEMENTWISE_THREADS, Fill, grid};
use super::blas;
use crate::decoder::{AttentionPlan, MAX_HEAD_DIM, RopeLayout, RopePlan, Sampling};
use crate::{DType, Result, Tensor, TensorError};

/// Linear layers of at most this many rows use the GEMV kernel (the
/// default of [`CudaBackend::set_gemv_max_rows`]).
pub(super) const GEMV_MAX_ROWS: usize = 4;
/// Layers one GEMV launch takes (`LINEAR_JOBS` in decoder.cu).
const LINEAR_JOBS: usize = 8;
/// Output features per GEMV block (`GEMV_WARPS`).
const GEMV_WARPS: i64 = 4;
/// Keys per split of the decode kernel (`DECODE_CHUNK`).
const DECODE_CHUNK: usize = 64;
/// Frequencies `RopeArgs` holds (`MAX_FREQS`).
const MAX_FREQS: usize = MAX_HEAD_DIM / 2;

#[repr(C)]
#[derive(Clone, Copy)]
struct LinearJobs {
    w: [u64; LINEAR_JOBS],
    bias: [u64; LINEAR_JOBS],
    y: [u64; LINEAR_JOBS],
    out: [i64; LINEAR_JOBS],
    first_block: [i64; LINEAR_JOBS + 1],
    residual: u64,
    count: i32,
    pad: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct RopeArgs {
    inv_freq: [f32; MAX_FREQS],
    rotary_dim: i32,
    interleaved: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct AttnArgs {
    q: u64,
    k: u64,
    v: u64,
    out: u64,
    valid: u64,
    positions: u64,
    mask: u64,
    batch: i64,
    q_len: i64,
    q_heads: i64,
    kv_len: i64,
    kv_heads: i64,
    head_dim: i64,
    valid_dtype: i32,
    valid_per_batch: i32,
    pos_dtype: i32,
    pos_per_batch: i32,
    mask_dtype: i32,
    causal: i32,
    scale: f32,
    window: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct DecodeExtra {
    new_k: u64,
    new_v: u64,
    scratch: u64,
    counters: u64,
    append: i32,
    rotate: i32,
    splits: i32,
    pad: i32,
    rope: RopeArgs,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct SampleArgs {
    seed: u64,
    temperature: f32,
    top_p: f32,
    top_k: u32,
    counter_code: i32,
}

// SAFETY: plain #[repr(C)] data mirroring the structs of decoder.cu.
unsafe impl DeviceRepr for LinearJobs {}
unsafe impl DeviceRepr for AttnArgs {}
unsafe impl DeviceRepr for DecodeExtra {}
unsafe impl DeviceRepr for SampleArgs {}
unsafe impl DeviceRepr for RopeArgs {}

impl RopeArgs {
    fn new(plan: Option<&RopePlan>) -> Self {
        let mut args = RopeArgs {
            inv_freq: [0.0; MAX_FREQS],
            rotary_dim: 0,
            interleaved: 0,
        };
        if let Some(plan) = plan {
            args.inv_freq[..plan.inv_freq.len()].copy_from_slice(&plan.inv_freq);
            args.rotary_dim = plan.rotary_dim as i32;
            args.interleaved = (plan.layout == RopeLayout::Interleaved) as i32;
        }
        args
    }
}

/// The code decoder.cu's `load_code` reads an index tensor by.
fn index_code(dtype: DType) -> i32 {
    match dtype {
        DType::I32 => 0,
        DType::I64 => 1,
        _ => 2,
    }
}

/// The code of a key mask's dtype (`mask_allows`).
fn mask_code(dtype: DType) -> i32 {
    match dtype {
        DType::F32 => 0,
        DType::F16 => 1,
        DType::BF16 => 2,
        DType::I32 => 3,
        DType::I64 => 4,
        DType::U8 => 5,
    }
}

/// The tiled kernel's head-dimension bucket for `head_dim` (the front caps
/// it at MAX_HEAD_DIM).
fn head_bucket(head_dim: usize) -> usize {
    [32, 64, 128, 256]
        .into_iter()
        .find(|&d| d >= head_dim)
        .unwrap_or(256)
}

/// The decode kernel's head-dimension bucket (it has no 32).
fn decode_bucket(head_dim: usize) -> usize {
    head_bucket(head_dim).max(64)
}

/// The decode kernel's row bucket for R (query, head) rows per kv head, if
/// the decode kernel takes them (decoder.cu instantiates 4 and 8; 8 not at
/// head-dim 256).
fn decode_rows(rows: usize, bucket: usize) -> Option<usize> {
    match rows {
        1..=4 => Some(4),
        5..=8 if bucket <= 128 => Some(8),
        _ => None,
    }
}

fn one_block(threads: u32, blocks: (u32, u32)) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (blocks.0.max(1), blocks.1.max(1), 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn dims4(t: &Tensor) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

fn blocks(n: usize, what: &str) -> Result<u32> {
    u32::try_from(n).map_err(|_| {
        TensorError::InvalidArgument(format!("{what}: {n} blocks exceed the grid limit"))
    })
}

impl CudaBackend {
    pub(super) fn linear_op(
        &self,
        x: &Tensor,
        layers: &[(&Tensor, Option<&Tensor>)],
        residual: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        let dtype = x.dtype();
        let (rows, inputs) = (x.shape()[0], x.shape()[1]);
        // With no inputs to sum over no product runs: the result is the bias
        // and residual, else zeros.
        let fill = if inputs == 0 {
            Fill::Zeroed
        } else {
            Fill::Overwritten
        };
        let mut outs = Vec::with_capacity(layers.len());
        for (w, _) in layers {
            outs.push(self.alloc(dtype, &[rows, w.shape()[0]], fill)?);
        }
        if rows == 0 || layers.iter().all(|(w, _)| w.shape()[0] == 0) {
            return Ok(outs.into_iter().map(|(t, _)| t).collect());
        }
        let mut inputs_of: Vec<&Tensor> = vec![x];
        for (w, b) in layers {
            inputs_of.push(w);
            inputs_of.extend(*b);
        }
        inputs_of.extend(residual);
        let gemv = rows
            <= self
                .gemv_max_rows
                .load(std::sync::atomic::Ordering::Relaxed);
        self.reading(&inputs_of, || {
            if gemv {
                for (chunk, outs) in layers.chunks(LINEAR_JOBS).zip(outs.chunks(LINEAR_JOBS)) {
                    self.gemv(x, rows, inputs, chunk, outs, residual)?;
                }
                return Ok(());
            }
            for ((w, b), (_, y)) in layers.iter().zip(&outs) {
                let out = w.shape()[0];
                let y = *y;
                let (pb, pr) = (
                    b.map_or(0, |b| self.ptr(b)),
                    residual.map_or(0, |r| self.ptr(r)),
                );
                let beta = if pb != 0 || pr != 0 {
                    let (rows_i, out_i) = (rows as i64, out as i64);
                    launch!(
                        self,
                        format!("linear_init_{dtype}"),
                        grid((rows * out) as u64, ELEMENTWISE_THREADS),
                        y,
                        pb,
                        pr,
                        rows_i,
                        out_i
                    )?;
                    1.0
                } else {
                    0.0
                };
                if inputs == 0 {
                    continue;
                }
                // SAFETY: the handle is bound to the queue stream; x holds
                // rows*in, w out*in and y rows*out elements (checked by the
                // front / allocated above).
                unsafe {
                    blas::gemm_linear(
                        self.blas_handle(),
                        dtype,
                        rows,
                        inputs,
                        out,
                        self.ptr(x),
                        self.ptr(w),
                        y,
                        beta,
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(outs.into_iter().map(|(t, _)| t).collect())
    }

    fn gemv(
        &self,
        x: &Tensor,
        rows: usize,
        inputs: usize,
        layers: &[(&Tensor, Option<&Tensor>)],
        outs: &[(Tensor, u64)],
        residual: Option<&Tensor>,
    ) -> Result<()> {
        let mut jobs = LinearJobs {
            w: [0; LINEAR_JOBS],
            bias: [0; LINEAR_JOBS],
            y: [0; LINEAR_JOBS],
            out: [0; LINEAR_JOBS],
            first_block: [0; LINEAR_JOBS + 1],
            residual: residual.map_or(0, |r| self.ptr(r)),
            count: layers.len() as i32,
            pad: 0,
        };
        let mut total = 0i64;
        for (i, ((w, b), (_, y))) in layers.iter().zip(outs).enumerate() {
            jobs.w[i] = self.ptr(w);
            jobs.bias[i] = b.map_or(0, |b| self.ptr(b));
            jobs.y[i] = *y;
            jobs.out[i] = w.shape()[0] as i64;
            jobs.first_block[i] = total;
            total += (w.shape()[0] as i64 + GEMV_WARPS - 1) / GEMV_WARPS;
        }
        jobs.first_block[layers.len()] = total;
        let dtype = x.dtype();
        let vec = inputs.is_multiple_of(16 / dtype.size());
        let r = if rows == 1 { 1 } else { 4 };
        let name = format!("gemv{r}{}_{dtype}", if vec { "v" } else { "" });
        let px = self.ptr(x);
        let (rows_i, in_i) = (rows as i64, inputs as i64);
        let cfg = one_block(
            32 * GEMV_WARPS as u32,
            (blocks(total as usize, "linear")?, 1),
        );
        launch!(self, name, cfg, px, rows_i, in_i, jobs)
    }

    pub(super) fn silu_mul_op(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        let dtype = gate.dtype();
        let (out, py) = self.alloc(dtype, gate.shape(), Fill::Overwritten)?;
        let n = gate.numel() as u64;
        if n == 0 {
            return Ok(out);
        }
        let (pg, pu) = (self.ptr(gate), self.ptr(up));
        self.reading(&[gate, up], || {
            launch!(
                self,
                format!("silu_mul_{dtype}"),
                grid(n, ELEMENTWISE_THREADS),
                pg,
                pu,
                py,
                n
            )
        })?;
        Ok(out)
    }

    pub(super) fn rope_op(
        &self,
        x: &Tensor,
        positions: &Tensor,
        plan: &RopePlan,
    ) -> Result<Tensor> {
        let dtype = x.dtype();
        let (out, py) = self.alloc(dtype, x.shape(), Fill::Overwritten)?;
        if x.numel() == 0 {
            return Ok(out);
        }
        self.reading(&[x, positions], || self.queue_rope(x, py, positions, plan))?;
        Ok(out)
    }

    fn queue_rope(&self, x: &Tensor, y: u64, positions: &Tensor, plan: &RopePlan) -> Result<()> {
        let [batch, seq, heads, dim] = dims4(x);
        let dtype = x.dtype();
        let px = self.ptr(x);
        let pp = self.ptr(positions);
        let per_batch = (positions.rank() == 2) as i32;
        let (b, s, h, d) = (batch as i64, seq as i64, heads as i64, dim as i64);
        let args = RopeArgs::new(Some(plan));
        launch!(
            self,
            format!("rope_{dtype}_{}", positions.dtype()),
            grid(x.numel() as u64, ELEMENTWISE_THREADS),
            px,
            y,
            pp,
            per_batch,
            b,
            s,
            h,
            d,
            args
        )
    }

    pub(super) fn attention_op(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        plan: &AttentionPlan,
        valid: Option<&Tensor>,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let dtype = q.dtype();
        let (out, po) = self.alloc(dtype, q.shape(), Fill::Overwritten)?;
        if q.numel() == 0 {
            return Ok(out);
        }
        let mut args = self.attn_args(q, k, v, po, plan);
        if let Some(t) = valid {
            args.valid = self.ptr(t);
            args.valid_dtype = index_code(t.dtype());
            args.valid_per_batch = (t.numel() > 1) as i32;
        }
        if let Some(m) = key_mask {
            args.mask = self.ptr(m);
            args.mask_dtype = mask_code(m.dtype());
        }
        let mut inputs = vec![q, k, v];
        inputs.extend(valid);
        inputs.extend(key_mask);
        self.reading(&inputs, || self.queue_attention(dtype, args, None))?;
        Ok(out)
    }

    fn attn_args(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        out: u64,
        plan: &AttentionPlan,
    ) -> AttnArgs {
        let [batch, q_len, q_heads, head_dim] = dims4(q);
        let [_, kv_len, kv_heads, _] = dims4(k);
        AttnArgs {
            q: self.ptr(q),
            k: self.ptr(k),
            v: self.ptr(v),
            out,
            valid: 0,
            positions: 0,
            mask: 0,
            batch: batch as i64,
            q_len: q_len as i64,
            q_heads: q_heads as i64,
            kv_len: kv_len as i64,
            kv_heads: kv_heads as i64,
            head_dim: head_dim as i64,
            valid_dtype: 0,
            valid_per_batch: 0,
            pos_dtype: 0,
            pos_per_batch: 0,
            mask_dtype: 0,
            causal: plan.causal as i32,
            scale: plan.scale,
            window: plan.window,
        }
    }

    /// Queues the decode kernel when it takes the shape (with `append`: the
    /// new keys/values and rope of attention-cached), else the tiled one.
    fn queue_attention(
        &self,
        dtype: DType,
        args: AttnArgs,
        append: Option<(u64, u64, Option<&RopePlan>)>,
    ) -> Result<()> {
        let group = (args.q_heads / args.kv_heads) as usize;
        let rows = group * args.q_len as usize;
        let bucket = decode_bucket(args.head_dim as usize);
        if let Some(rm) = decode_rows(rows, bucket) {
            let splits = (args.kv_len as usize).div_ceil(DECODE_CHUNK).max(1);
            let heads = (args.batch * args.kv_heads) as usize;
            let scratch_floats = heads * splits * rm * (2 + bucket);
            let (_scratch, scratch) =
                self.alloc(DType::F32, &[scratch_floats], Fill::Overwritten)?;
            let (_counters, counters) = self.alloc(DType::I32, &[heads], Fill::Zeroed)?;
            let (new_k, new_v, rope) = append.unwrap_or((0, 0, None));
            let extra = DecodeExtra {
                new_k,
                new_v,
                scratch,
                counters,
                append: append.is_some() as i32,
                rotate: rope.is_some() as i32,
                splits: splits as i32,
                pad: 0,
                rope: RopeArgs::new(rope),
            };
            let cfg = one_block(
                128,
                (blocks(heads, "attention")?, blocks(splits, "attention")?),
            );
            return launch!(
                self,
                format!("attention_decode_d{bucket}_r{rm}_{dtype}"),
                cfg,
                args,
                extra
            );
        }
        debug_assert!(append.is_none(), "prefill appends before attending");
        let bucket = head_bucket(args.head_dim as usize);
        // As attention_tiles_k splits the work (decoder.cu).
        let pairs = 128 / (bucket / 32);
        let heads_per_block = group.min(pairs);
        let head_chunks = group.div_ceil(heads_per_block);
        let tiles = (args.q_len as usize).div_ceil(pairs / heads_per_block);
        let n = blocks(
            args.batch as usize * args.kv_heads as usize * head_chunks * tiles,
            "attention",
        )?;
        launch!(
            self,
            format!("attention_tiles_d{bucket}_{dtype}"),
            one_block(128, (n, 1)),
            args
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn attention_cached_op(
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
        let dtype = q.dtype();
        let (out, po) = self.alloc(dtype, q.shape(), Fill::Overwritten)?;
        if q.numel() == 0 {
            return Ok(out);
        }
        let [batch, seq, q_heads, head_dim] = dims4(q);
        let kv_heads = k.shape()[2];
        let decode = decode_rows(q_heads / kv_heads * seq, decode_bucket(head_dim)).is_some();
        let inputs = [q, k, v, k_cache, v_cache, positions];
        let mut args = self.attn_args(q, k_cache, v_cache, po, plan);
        args.positions = self.ptr(positions);
        args.pos_dtype = index_code(positions.dtype());
        args.pos_per_batch = (positions.rank() == 2) as i32;
        if decode {
            let append = Some((self.ptr(k), self.ptr(v), rope));
            self.reading(&inputs, || self.queue_attention(dtype, args, append))?;
            return Ok(out);
        }
        // Prefill: rotated queries, the cache append, then the tiled kernel.
        let rotated = match rope {
            Some(_) => Some(self.alloc(dtype, q.shape(), Fill::Overwritten)?),
            None => None,
        };
        self.reading(&inputs, || {
            if let (Some(plan), Some((_, pq))) = (rope, &rotated) {
                self.queue_rope(q, *pq, positions, plan)?;
                args.q = *pq;
            }
            let (pk, pv, pkc, pvc) = (
                self.ptr(k),
                self.ptr(v),
                self.ptr(k_cache),
                self.ptr(v_cache),
            );
            let pp = self.ptr(positions);
            let per_batch = (positions.rank() == 2) as i32;
            let (b, s, h, d) = (batch as i64, seq as i64, kv_heads as i64, head_dim as i64);
            let capacity = k_cache.shape()[1] as i64;
            let rotate = rope.is_some() as i32;
            let rope_args = RopeArgs::new(rope);
            launch!(
                self,
                format!("cache_append_{dtype}_{}", positions.dtype()),
                grid(k.numel() as u64, ELEMENTWISE_THREADS),
                pk,
                pv,
                pkc,
                pvc,
                pp,
                per_batch,
                b,
                s,
                h,
                d,
                capacity,
                rotate,
                rope_args
            )?;
            self.queue_attention(dtype, args, None)
        })?;
        drop(rotated);
        Ok(out)
    }

    pub(super) fn write_op(
        &self,
        target: &Tensor,
        src: &Tensor,
        axis: usize,
        start: usize,
        offset: Option<&Tensor>,
    ) -> Result<()> {
        let n = src.numel() as u64;
        if n == 0 {
            return Ok(());
        }
        let shape = target.shape();
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let (outer_i, len_i, inner_i, dim_i) = (
            outer as i64,
            src.shape()[axis] as i64,
            inner as i64,
            shape[axis] as i64,
        );
        let start_i = start as i64;
        let (pt, ps) = (self.ptr(target), self.ptr(src));
        let po = offset.map_or(0, |o| self.ptr(o));
        let code = offset.map_or(0, |o| index_code(o.dtype()));
        let width = target.dtype().size() * 8;
        let mut inputs = vec![target, src];
        inputs.extend(offset);
        self.reading(&inputs, || {
            launch!(
                self,
                format!("write_w{width}"),
                grid(n, ELEMENTWISE_THREADS),
                pt,
                ps,
                outer_i,
                len_i,
                inner_i,
                dim_i,
                start_i,
                po,
                code
            )
        })
    }

    pub(super) fn sample_op(
        &self,
        logits: &Tensor,
        params: &Sampling,
        counter: &Tensor,
    ) -> Result<Tensor> {
        let (rows, vocab) = (logits.shape()[0], logits.shape()[1]);
        let (out, po) = self.alloc(DType::I64, &[rows], Fill::Overwritten)?;
        if rows == 0 {
            return Ok(out);
        }
        let (_scratch, scratch) = self.alloc(DType::I64, &[rows * vocab], Fill::Overwritten)?;
        let dtype = logits.dtype();
        let args = SampleArgs {
            seed: params.seed,
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k,
            counter_code: index_code(counter.dtype()),
        };
        let (pl, pc) = (self.ptr(logits), self.ptr(counter));
        let (rows_i, vocab_i) = (rows as i64, vocab as i64);
        let cfg = one_block(1024, (blocks(rows.min(65535), "sample")?, 1));
        self.reading(&[logits, counter], || {
            launch!(
                self,
                format!("sample_{dtype}_{}", counter.dtype()),
                cfg,
                pl,
                rows_i,
                vocab_i,
                args,
                pc,
                po,
                scratch
            )
        })?;
        Ok(out)
    }
}
