//! The CPU backend: f32 compute (f16/bf16 stored, converted on the fly),
//! multithreaded GEMM through the `gemm` crate, rayon over rows elsewhere.
//!
//! Integer tensors (i32, i64, u8) support add/sub/mul/div (computed in i64,
//! wrapping to the dtype; division truncates toward zero and a zero divisor
//! is an error), sum and max (wrapping sums), argmax, top-k, gather, cast and
//! every data-movement op. Float-only ops (matmul, activations, scale,
//! softmax, norms, mean) are rejected by the front before they get here.
//!
//! Any tensor whose storage is a [`CpuStorage`] can be an operand, whichever
//! backend (and account) made it: model weights are uploaded once by a
//! shared backend and read by every worker's. Results are charged to this
//! backend's account, reserved before the buffer is built.

mod attention;
mod conv;
mod data;
mod elementwise;
mod image;
mod layout;
mod linear;
mod math;
mod matmul;
mod norm2d;
mod pool;
mod resample;
mod rope;
mod rows;
mod unary_math;

use std::any::Any;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use data::map_data;
pub use data::{CpuData, bytes_to_f32, bytes_to_f64, bytes_to_i64};
use rayon::prelude::*;
use rows::around;

use crate::decoder::{AttentionPlan, RopePlan, Sampling};
use crate::{
    Backend, BinaryOp, DType, MemoryAccount, ReduceOp, Reservation, Result, Storage, Tensor,
    TensorError, UnaryOp,
};

/// Work below this many elements stays on the calling thread.
const PAR_THRESHOLD: usize = 1 << 15;

/// A CPU tensor buffer and the quota bytes it holds (released on drop).
///
/// The elements sit behind a lock because a few ops write a tensor in place
/// (`write`, the KV cache of `attention-cached`, a replayed graph). Writes
/// only ever target an instance's own tensors (the front refuses read-only
/// ones, i.e. model weights, the only storage shared between threads), so
/// the lock is uncontended in practice.
#[derive(Debug)]
pub struct CpuStorage {
    data: RwLock<CpuData>,
    /// Fixed for the storage's life (in-place writes keep the size).
    bytes: usize,
    _reservation: Reservation,
}

impl CpuStorage {
    pub fn data(&self) -> RwLockReadGuard<'_, CpuData> {
        self.data.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn data_mut(&self) -> RwLockWriteGuard<'_, CpuData> {
        self.data.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for CpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len_bytes(&self) -> usize {
        self.bytes
    }

    fn into_any_arc(self: Arc<Self>) -> Option<Arc<dyn Any + Send + Sync>> {
        Some(self)
    }
}

/// The CPU backend of one worker.
pub struct CpuBackend {
    account: Arc<MemoryAccount>,
}

impl CpuBackend {
    /// A backend whose allocations are charged to `account`.
    pub fn new(account: Arc<MemoryAccount>) -> Self {
        Self { account }
    }

    pub(crate) fn storage<'t>(&self, t: &'t Tensor) -> &'t CpuStorage {
        t.storage()
            .as_any()
            .downcast_ref::<CpuStorage>()
            .expect("Device checks that operands are CPU tensors")
    }

    pub(crate) fn data<'t>(&self, t: &'t Tensor) -> RwLockReadGuard<'t, CpuData> {
        self.storage(t).data()
    }

    /// Reserve quota for the result, then build it: nothing is allocated
    /// for the result unless the reservation succeeded. In a replayed
    /// graph the result goes into the buffer recorded for it instead.
    pub(crate) fn alloc(
        &self,
        dtype: DType,
        shape: &[usize],
        build: impl FnOnce() -> CpuData,
    ) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let bytes = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| TensorError::InvalidArgument(format!("shape {shape:?} is too large")))?;
        if let Some(storage) = crate::graph::reuse(bytes)? {
            let data = build();
            let target = storage
                .as_any()
                .downcast_ref::<CpuStorage>()
                .ok_or_else(|| {
                    TensorError::DeviceFault("a recorded buffer is not a CPU buffer".into())
                })?;
            *target.data_mut() = data;
            return Ok(Tensor::new(dtype, shape.to_vec(), storage));
        }
        let reservation = self.account.reserve(bytes as u64)?;
        let data = build();
        debug_assert_eq!(data.len(), numel);
        debug_assert_eq!(data.dtype(), dtype);
        let storage: Arc<dyn Storage> = Arc::new(CpuStorage {
            data: RwLock::new(data),
            bytes,
            _reservation: reservation,
        });
        crate::graph::allocated(&storage);
        Ok(Tensor::new(dtype, shape.to_vec(), storage))
    }

    /// A float result computed in f32 and stored as `dtype`.
    fn alloc_f32(
        &self,
        dtype: DType,
        shape: &[usize],
        compute: impl FnOnce() -> Vec<f32>,
    ) -> Result<Tensor> {
        self.alloc(dtype, shape, || CpuData::from_f32(dtype, compute()))
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }

    fn account(&self) -> &Arc<MemoryAccount> {
        &self.account
    }

    fn owns(&self, t: &Tensor) -> bool {
        t.storage().as_any().is::<CpuStorage>()
    }

    fn upload(&self, dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
        self.alloc(dtype, shape, || CpuData::from_bytes(dtype, bytes))
    }

    fn zeros(&self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        self.alloc(dtype, shape, || {
            CpuData::zeros(dtype, shape.iter().product())
        })
    }

    fn download(&self, t: &Tensor) -> Result<Vec<u8>> {
        Ok(self.data(t).bytes().to_vec())
    }

    fn take_host(&self, t: Tensor) -> std::result::Result<crate::HostBuffer, Tensor> {
        let (dtype, shape) = (t.dtype(), t.shape().to_vec());
        let whole = t.storage().len_bytes() == t.numel() * dtype.size();
        let storage = t.into_storage();
        let rebuild = |s: Arc<dyn Storage>| Tensor::new(dtype, shape.clone(), s);
        if !whole || Arc::strong_count(&storage) != 1 {
            return Err(rebuild(storage));
        }
        let Some(any) = Arc::clone(&storage).into_any_arc() else {
            return Err(rebuild(storage));
        };
        drop(storage);
        match any.downcast::<CpuStorage>().map(Arc::try_unwrap) {
            // The quota reservation drops here: the bytes now belong to the
            // page store's budget.
            Ok(Ok(owned)) => Ok(crate::HostBuffer::CpuResident(
                owned.data.into_inner().unwrap_or_else(|p| p.into_inner()),
            )),
            Ok(Err(shared)) => Err(rebuild(shared)),
            Err(_) => unreachable!("into_any_arc of a CpuStorage is a CpuStorage"),
        }
    }

    fn upload_host_owned(
        &self,
        dtype: DType,
        shape: &[usize],
        src: crate::HostBuffer,
    ) -> Result<Tensor> {
        match src {
            crate::HostBuffer::CpuResident(data) if data.dtype() == dtype => {
                self.alloc(dtype, shape, || data)
            }
            other => self.upload_host(dtype, shape, &other),
        }
    }

    fn download_into(&self, t: &Tensor, dst: &mut crate::HostBuffer) -> Result<()> {
        dst.as_mut_slice().copy_from_slice(self.data(t).bytes());
        Ok(())
    }

    fn matmul(&self, a: &Tensor, b: &Tensor, out_batch: &[usize]) -> Result<Tensor> {
        let (ar, br) = (a.rank(), b.rank());
        let (m, k, n) = (a.shape()[ar - 2], a.shape()[ar - 1], b.shape()[br - 1]);
        let mut out_shape = out_batch.to_vec();
        out_shape.extend([m, n]);
        self.alloc_f32(a.dtype(), &out_shape, || {
            let (da, db) = (self.data(a), self.data(b));
            let (x, y) = (da.f32s(), db.f32s());
            matmul::matmul(&matmul::Batched {
                lhs: &x,
                lhs_batch: &a.shape()[..ar - 2],
                rhs: &y,
                rhs_batch: &b.shape()[..br - 2],
                out_batch,
                m,
                k,
                n,
            })
        })
    }

    fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Tensor> {
        let dtype = a.dtype();
        let (sa, sb) = (a.shape(), b.shape());
        if dtype.is_int() {
            let (da, db) = (self.data(a), self.data(b));
            let (x, y) = (da.i64s(), db.i64s());
            if op == BinaryOp::Div && y.contains(&0) {
                return Err(TensorError::InvalidArgument(format!(
                    "integer division by zero: the divisor {sb:?} ({dtype}) contains 0; cast both to f32 for IEEE division"
                )));
            }
            // One monomorphised kernel per op, so the inner loops inline
            // and vectorise.
            let run = |x: &[i64], y: &[i64]| match op {
                BinaryOp::Add => {
                    elementwise::broadcast_map(x, sa, y, sb, out_shape, i64::wrapping_add)
                }
                BinaryOp::Sub => {
                    elementwise::broadcast_map(x, sa, y, sb, out_shape, i64::wrapping_sub)
                }
                BinaryOp::Mul => {
                    elementwise::broadcast_map(x, sa, y, sb, out_shape, i64::wrapping_mul)
                }
                BinaryOp::Div => {
                    elementwise::broadcast_map(x, sa, y, sb, out_shape, i64::wrapping_div)
                }
            };
            return self.alloc(dtype, out_shape, || CpuData::from_i64(dtype, run(&x, &y)));
        }
        self.alloc_f32(dtype, out_shape, || {
            let (da, db) = (self.data(a), self.data(b));
            let (x, y) = (da.f32s(), db.f32s());
            let (x, y) = (x.as_ref(), y.as_ref());
            match op {
                BinaryOp::Add => elementwise::broadcast_map(x, sa, y, sb, out_shape, |p, q| p + q),
                BinaryOp::Sub => elementwise::broadcast_map(x, sa, y, sb, out_shape, |p, q| p - q),
                BinaryOp::Mul => elementwise::broadcast_map(x, sa, y, sb, out_shape, |p, q| p * q),
                BinaryOp::Div => elementwise::broadcast_map(x, sa, y, sb, out_shape, |p, q| p / q),
            }
        })
    }

    fn unary(&self, op: UnaryOp, a: &Tensor) -> Result<Tensor> {
        self.alloc_f32(a.dtype(), a.shape(), || {
            let da = self.data(a);
            let x = da.f32s();
            match op {
                UnaryOp::Relu => elementwise::map(&x, elementwise::relu),
                UnaryOp::Gelu => elementwise::map(&x, elementwise::gelu),
                UnaryOp::Silu => elementwise::map(&x, elementwise::silu),
                UnaryOp::Tanh => elementwise::map(&x, f32::tanh),
            }
        })
    }

    fn scale(&self, a: &Tensor, factor: f32, offset: f32) -> Result<Tensor> {
        self.alloc_f32(a.dtype(), a.shape(), || {
            elementwise::map(&self.data(a).f32s(), |v| v * factor + offset)
        })
    }

    fn softmax(&self, a: &Tensor, axis: usize) -> Result<Tensor> {
        let (outer, len, inner) = around(a.shape(), axis);
        self.alloc_f32(a.dtype(), a.shape(), || {
            rows::softmax(&self.data(a).f32s(), outer, len, inner)
        })
    }

    fn layer_norm(
        &self,
        a: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        let d = *a.shape().last().expect("the front checks rank >= 1");
        self.alloc_f32(a.dtype(), a.shape(), || {
            let (dw, db) = (weight.map(|w| self.data(w)), bias.map(|b| self.data(b)));
            let w = dw.as_ref().map(|d| d.f32s());
            let b = db.as_ref().map(|d| d.f32s());
            rows::layer_norm(&self.data(a).f32s(), d, w.as_deref(), b.as_deref(), eps)
        })
    }

    fn rms_norm(&self, a: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        let d = *a.shape().last().expect("the front checks rank >= 1");
        self.alloc_f32(a.dtype(), a.shape(), || {
            let dw = weight.map(|w| self.data(w));
            let w = dw.as_ref().map(|d| d.f32s());
            rows::rms_norm(&self.data(a).f32s(), d, w.as_deref(), eps)
        })
    }

    fn gather(&self, table: &Tensor, indices: &Tensor) -> Result<Tensor> {
        let dim = table.shape()[1];
        let mut shape = indices.shape().to_vec();
        shape.push(dim);
        self.alloc(table.dtype(), &shape, || {
            let di = self.data(indices);
            let idx = di.i64s();
            map_data!(&*self.data(table), |v| layout::gather(v, dim, &idx))
        })
    }

    fn permute(&self, a: &Tensor, dims: &[usize]) -> Result<Tensor> {
        let shape: Vec<usize> = dims.iter().map(|&d| a.shape()[d]).collect();
        self.alloc(a.dtype(), &shape, || {
            map_data!(&*self.data(a), |v| layout::permute(v, a.shape(), dims))
        })
    }

    fn slice(&self, a: &Tensor, axis: usize, start: usize, end: usize) -> Result<Tensor> {
        let mut shape = a.shape().to_vec();
        shape[axis] = end - start;
        self.alloc(a.dtype(), &shape, || {
            map_data!(&*self.data(a), |v| layout::slice(
                v,
                a.shape(),
                axis,
                start,
                end
            ))
        })
    }

    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor> {
        let mut shape = parts[0].shape().to_vec();
        shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        let dtype = parts[0].dtype();
        let guards: Vec<_> = parts.iter().map(|p| self.data(p)).collect();
        let datas: Vec<&CpuData> = guards.iter().map(|g| &**g).collect();
        macro_rules! cat {
            ($variant:ident) => {{
                let typed: Vec<(&[_], &[usize])> = datas
                    .iter()
                    .zip(parts)
                    .map(|(d, p)| match d {
                        CpuData::$variant(v) => (v.as_slice(), p.shape()),
                        _ => unreachable!("the front checks that dtypes match"),
                    })
                    .collect();
                CpuData::$variant(layout::concat(&typed, axis))
            }};
        }
        self.alloc(dtype, &shape, || match dtype {
            DType::F32 => cat!(F32),
            DType::F16 => cat!(F16),
            DType::BF16 => cat!(BF16),
            DType::I32 => cat!(I32),
            DType::I64 => cat!(I64),
            DType::U8 => cat!(U8),
        })
    }

    fn reduce(&self, op: ReduceOp, a: &Tensor, axis: usize, keep_dim: bool) -> Result<Tensor> {
        let (outer, len, inner) = around(a.shape(), axis);
        let mut shape = a.shape().to_vec();
        if keep_dim {
            shape[axis] = 1;
        } else {
            shape.remove(axis);
        }
        let dtype = a.dtype();
        if dtype.is_int() {
            return self.alloc(dtype, &shape, || {
                let da = self.data(a);
                let x = da.i64s();
                CpuData::from_i64(dtype, rows::reduce(op, &x, outer, len, inner))
            });
        }
        self.alloc_f32(dtype, &shape, || {
            rows::reduce(op, &self.data(a).f32s(), outer, len, inner)
        })
    }

    fn cast(&self, a: &Tensor, dtype: DType) -> Result<Tensor> {
        self.alloc(dtype, a.shape(), || {
            let src = self.data(a);
            if a.dtype().is_int() {
                CpuData::from_i64(dtype, src.i64s().into_owned())
            } else {
                CpuData::from_f32(dtype, src.f32s().into_owned())
            }
        })
    }

    fn argmax(&self, a: &Tensor, axis: usize) -> Result<Tensor> {
        let (outer, len, inner) = around(a.shape(), axis);
        let mut shape = a.shape().to_vec();
        shape.remove(axis);
        self.alloc(DType::I64, &shape, || {
            let src = self.data(a);
            CpuData::I64(if a.dtype().is_int() {
                rows::argmax(&src.i64s(), outer, len, inner)
            } else {
                rows::argmax(&src.f32s(), outer, len, inner)
            })
        })
    }

    fn top_k(&self, a: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
        let d = *a.shape().last().expect("the front checks rank >= 1");
        let mut shape = a.shape().to_vec();
        *shape.last_mut().expect("rank >= 1") = k;
        let src = self.data(a);
        let indices = self.alloc(DType::I64, &shape, || {
            CpuData::I64(if a.dtype().is_int() {
                rows::top_k_indices(&src.i64s(), d, k)
            } else {
                rows::top_k_indices(&src.f32s(), d, k)
            })
        })?;
        let order = match &*self.data(&indices) {
            CpuData::I64(v) => v.clone(),
            _ => unreachable!("built as i64 above"),
        };
        let values = self.alloc(a.dtype(), &shape, || {
            let pick = |n: usize, i: i64| n / k * d + i as usize;
            map_data!(&*src, |v| order
                .iter()
                .enumerate()
                .map(|(n, &i)| v[pick(n, i)])
                .collect())
        })?;
        Ok((values, indices))
    }

    // ---- Decoder ops (issue 18)

    fn linear(
        &self,
        x: &Tensor,
        layers: &[(&Tensor, Option<&Tensor>)],
        residual: Option<&Tensor>,
    ) -> Result<Vec<Tensor>> {
        let (rows, inputs) = (x.shape()[0], x.shape()[1]);
        let dx = self.data(x);
        let xs = dx.f32s();
        let dr = residual.map(|r| self.data(r));
        let rs = dr.as_ref().map(|d| d.f32s());
        layers
            .iter()
            .map(|(w, b)| {
                let outputs = w.shape()[0];
                self.alloc_f32(x.dtype(), &[rows, outputs], || {
                    let dw = self.data(w);
                    let db = b.map(|b| self.data(b));
                    let bs = db.as_ref().map(|d| d.f32s());
                    linear::linear(
                        &xs,
                        &dw.f32s(),
                        bs.as_deref(),
                        rs.as_deref(),
                        rows,
                        inputs,
                        outputs,
                    )
                })
            })
            .collect()
    }

    fn silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        self.alloc_f32(gate.dtype(), gate.shape(), || {
            let (dg, du) = (self.data(gate), self.data(up));
            linear::silu_mul(&dg.f32s(), &du.f32s())
        })
    }

    fn rope(&self, x: &Tensor, positions: &Tensor, plan: &RopePlan) -> Result<Tensor> {
        let shape = four(x);
        self.alloc_f32(x.dtype(), x.shape(), || {
            let (dx, dp) = (self.data(x), self.data(positions));
            rope::rope(&dx.f32s(), shape, &dp.i64s(), plan)
        })
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
        let dims = attention_dims(q, k);
        let lengths: Vec<usize> = match valid {
            Some(t) => {
                let dv = self.data(t);
                let v = dv.i64s();
                (0..dims.batch)
                    .map(|b| {
                        v[if v.len() == 1 { 0 } else { b }].clamp(0, dims.kv_len as i64) as usize
                    })
                    .collect()
            }
            None => vec![dims.kv_len; dims.batch],
        };
        let mask: Option<Vec<bool>> =
            key_mask.map(|m| self.data(m).f32s().iter().map(|&x| x != 0.0).collect());
        self.alloc_f32(q.dtype(), q.shape(), || {
            let (dq, dk, dv) = (self.data(q), self.data(k), self.data(v));
            attention::attend(
                &dq.f32s(),
                &dk.f32s(),
                &dv.f32s(),
                dims,
                plan,
                |b, i| attention::plain_visible(lengths[b], dims.q_len, i, plan.causal),
                mask.as_deref(),
            )
        })
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
        let [batch, seq, q_heads, head_dim] = four(q);
        let capacity = k_cache.shape()[1];
        let pos: Vec<i64> = self.data(positions).i64s().into_owned();
        let at = |b: usize, s: usize| rope::position_of(&pos, seq, b, s);
        let rotated = |t: &Tensor| -> Vec<f32> {
            let d = self.data(t);
            match rope {
                Some(plan) => rope::rope(&d.f32s(), four(t), &pos, plan),
                None => d.f32s().into_owned(),
            }
        };
        let (q_rot, k_rot) = (rotated(q), rotated(k));
        let values = self.data(v).f32s().into_owned();
        // Each new token's keys and values land in their cache slot.
        let token = k.shape()[2] * head_dim;
        for (cache, rows) in [(k_cache, &k_rot), (v_cache, &values)] {
            let esize = cache.dtype().size();
            let fresh = CpuData::from_f32(cache.dtype(), rows.clone());
            let mut dst = self.storage(cache).data_mut();
            let dst = dst.bytes_mut();
            for b in 0..batch {
                for s in 0..seq {
                    let p = at(b, s);
                    if p < 0 || p as usize >= capacity {
                        continue;
                    }
                    let from = (b * seq + s) * token * esize;
                    let to = (b * capacity + p as usize) * token * esize;
                    dst[to..to + token * esize]
                        .copy_from_slice(&fresh.bytes()[from..from + token * esize]);
                }
            }
        }
        let dims = attention::Dims {
            batch,
            q_len: seq,
            q_heads,
            kv_len: capacity,
            kv_heads: k.shape()[2],
            head_dim,
        };
        self.alloc_f32(q.dtype(), q.shape(), || {
            let (dk, dv) = (self.data(k_cache), self.data(v_cache));
            attention::attend(
                &q_rot,
                &dk.f32s(),
                &dv.f32s(),
                dims,
                plan,
                |b, i| attention::cached_visible(at(b, i), at(b, seq - 1), capacity, plan.causal),
                None,
            )
        })
    }

    fn write(
        &self,
        target: &Tensor,
        src: &Tensor,
        axis: usize,
        start: usize,
        offset: Option<&Tensor>,
    ) -> Result<()> {
        let shift = offset.map_or(0, |o| self.data(o).i64s()[0]);
        let at = start as i64 + shift;
        let (outer, dim, inner) = around(target.shape(), axis);
        let len = src.shape()[axis];
        if at < 0 || at as usize + len > dim {
            return Ok(());
        }
        let run = len * inner * target.dtype().size();
        let row = dim * inner * target.dtype().size();
        let first = at as usize * inner * target.dtype().size();
        let from = self.data(src);
        let mut to = self.storage(target).data_mut();
        let (from, to) = (from.bytes(), to.bytes_mut());
        for o in 0..outer {
            to[o * row + first..o * row + first + run]
                .copy_from_slice(&from[o * run..(o + 1) * run]);
        }
        Ok(())
    }

    fn sample(&self, logits: &Tensor, params: &Sampling, counter: &Tensor) -> Result<Tensor> {
        let (rows, vocab) = (logits.shape()[0], logits.shape()[1]);
        let counter = self.data(counter).i64s()[0] as u64;
        self.alloc(DType::I64, &[rows], || {
            let d = self.data(logits);
            let x = d.f32s();
            CpuData::I64(
                (0..rows)
                    .into_par_iter()
                    .map(|r| {
                        crate::sampling::sample_row(
                            &x[r * vocab..(r + 1) * vocab],
                            params,
                            counter,
                            r as u64,
                        ) as i64
                    })
                    .collect(),
            )
        })
    }
}

/// `[batch, seq, heads, head_dim]` of a rank-4 tensor (checked by the
/// front).
fn four(t: &Tensor) -> [usize; 4] {
    let s = t.shape();
    [s[0], s[1], s[2], s[3]]
}

fn attention_dims(q: &Tensor, k: &Tensor) -> attention::Dims {
    let [batch, q_len, q_heads, head_dim] = four(q);
    let [_, kv_len, kv_heads, _] = four(k);
    attention::Dims {
        batch,
        q_len,
        q_heads,
        kv_len,
        kv_heads,
        head_dim,
    }
}
