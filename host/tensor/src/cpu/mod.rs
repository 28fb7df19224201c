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

mod conv;
mod data;
mod elementwise;
mod image;
mod layout;
mod math;
mod matmul;
mod norm2d;
mod pool;
mod resample;
mod rows;
mod unary_math;

use std::any::Any;
use std::sync::Arc;

use data::map_data;
pub use data::{CpuData, bytes_to_f32, bytes_to_f64, bytes_to_i64};
use rows::around;

use crate::{
    Backend, BinaryOp, DType, MemoryAccount, ReduceOp, Reservation, Result, Storage, Tensor,
    TensorError, UnaryOp,
};

/// Work below this many elements stays on the calling thread.
const PAR_THRESHOLD: usize = 1 << 15;

/// A CPU tensor buffer and the quota bytes it holds (released on drop).
#[derive(Debug)]
pub struct CpuStorage {
    data: CpuData,
    _reservation: Reservation,
}

impl CpuStorage {
    pub fn data(&self) -> &CpuData {
        &self.data
    }
}

impl Storage for CpuStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len_bytes(&self) -> usize {
        self.data.len() * self.data.dtype().size()
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

    fn data<'t>(&self, t: &'t Tensor) -> &'t CpuData {
        &t.storage()
            .as_any()
            .downcast_ref::<CpuStorage>()
            .expect("Device checks that operands are CPU tensors")
            .data
    }

    /// Reserve quota for the result, then build it: nothing is allocated
    /// for the result unless the reservation succeeded.
    fn alloc(
        &self,
        dtype: DType,
        shape: &[usize],
        build: impl FnOnce() -> CpuData,
    ) -> Result<Tensor> {
        let numel: usize = shape.iter().product();
        let bytes = numel
            .checked_mul(dtype.size())
            .ok_or_else(|| TensorError::InvalidArgument(format!("shape {shape:?} is too large")))?;
        let reservation = self.account.reserve(bytes as u64)?;
        let data = build();
        debug_assert_eq!(data.len(), numel);
        debug_assert_eq!(data.dtype(), dtype);
        Ok(Tensor::new(
            dtype,
            shape.to_vec(),
            Arc::new(CpuStorage {
                data,
                _reservation: reservation,
            }),
        ))
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
            Ok(Ok(owned)) => Ok(crate::HostBuffer::CpuResident(owned.data)),
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
            let (x, y) = (self.data(a).f32s(), self.data(b).f32s());
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
            let (x, y) = (self.data(a).i64s(), self.data(b).i64s());
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
            let (x, y) = (self.data(a).f32s(), self.data(b).f32s());
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
            let x = self.data(a).f32s();
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
            let w = weight.map(|w| self.data(w).f32s());
            let b = bias.map(|b| self.data(b).f32s());
            rows::layer_norm(&self.data(a).f32s(), d, w.as_deref(), b.as_deref(), eps)
        })
    }

    fn rms_norm(&self, a: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        let d = *a.shape().last().expect("the front checks rank >= 1");
        self.alloc_f32(a.dtype(), a.shape(), || {
            let w = weight.map(|w| self.data(w).f32s());
            rows::rms_norm(&self.data(a).f32s(), d, w.as_deref(), eps)
        })
    }

    fn gather(&self, table: &Tensor, indices: &Tensor) -> Result<Tensor> {
        let dim = table.shape()[1];
        let mut shape = indices.shape().to_vec();
        shape.push(dim);
        self.alloc(table.dtype(), &shape, || {
            let idx = self.data(indices).i64s();
            map_data!(self.data(table), |v| layout::gather(v, dim, &idx))
        })
    }

    fn permute(&self, a: &Tensor, dims: &[usize]) -> Result<Tensor> {
        let shape: Vec<usize> = dims.iter().map(|&d| a.shape()[d]).collect();
        self.alloc(a.dtype(), &shape, || {
            map_data!(self.data(a), |v| layout::permute(v, a.shape(), dims))
        })
    }

    fn slice(&self, a: &Tensor, axis: usize, start: usize, end: usize) -> Result<Tensor> {
        let mut shape = a.shape().to_vec();
        shape[axis] = end - start;
        self.alloc(a.dtype(), &shape, || {
            map_data!(self.data(a), |v| layout::slice(
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
        let datas: Vec<&CpuData> = parts.iter().map(|p| self.data(p)).collect();
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
                let x = self.data(a).i64s();
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
        let order = match self.data(&indices) {
            CpuData::I64(v) => v,
            _ => unreachable!("built as i64 above"),
        };
        let values = self.alloc(a.dtype(), &shape, || {
            let pick = |n: usize, i: i64| n / k * d + i as usize;
            map_data!(src, |v| order
                .iter()
                .enumerate()
                .map(|(n, &i)| v[pick(n, i)])
                .collect())
        })?;
        Ok((values, indices))
    }
}
