//! GEMM through cuBLAS: f32 (plain FP32, no TF32, like PyTorch's default),
//! f16 and bf16 on the tensor cores with f32 accumulation. Row-major
//! products are issued as the column-major product of the transposes
//! (C^T = B^T A^T), which needs no copies.

use std::ffi::c_void;

use cudarc::cublas::sys;

use crate::shape::{broadcast_strides, strides};
use crate::{DType, Result, TensorError};

/// How the batch of a `[batch.., m, k] x [batch.., k, n]` product maps onto
/// cuBLAS calls.
#[derive(Debug, PartialEq)]
pub(crate) enum Batching {
    /// One strided-batched call: each operand either steps one matrix per
    /// batch entry or is broadcast (stride 0).
    Strided {
        count: usize,
        step_a: bool,
        step_b: bool,
    },
    /// Broadcast patterns no single stride describes: matrix offsets of a
    /// and b for each output matrix, for a pointer-array batched call.
    Offsets { a: Vec<usize>, b: Vec<usize> },
}

/// Plans the batch of `a_batch x b_batch -> out_batch` (right-aligned
/// NumPy broadcasting).
pub(crate) fn plan_batch(a_batch: &[usize], b_batch: &[usize], out_batch: &[usize]) -> Batching {
    let count: usize = out_batch.iter().product();
    let sa = broadcast_strides(a_batch, out_batch);
    let sb = broadcast_strides(b_batch, out_batch);
    let own = strides(out_batch);
    // Dimensions of size 1 never move the index, so their strides don't matter.
    let walks = |s: &[usize]| (0..out_batch.len()).all(|d| out_batch[d] == 1 || s[d] == own[d]);
    let fixed = |s: &[usize]| (0..out_batch.len()).all(|d| out_batch[d] == 1 || s[d] == 0);
    let mode = |s: &[usize]| {
        if walks(s) {
            Some(true)
        } else if fixed(s) {
            Some(false)
        } else {
            None
        }
    };
    if let (Some(step_a), Some(step_b)) = (mode(&sa), mode(&sb)) {
        return Batching::Strided {
            count,
            step_a,
            step_b,
        };
    }
    let offsets = |s: &[usize]| {
        (0..count)
            .map(|mut i| {
                let mut off = 0;
                for d in 0..out_batch.len() {
                    off += (i / own[d]) * s[d];
                    i %= own[d];
                }
                off
            })
            .collect()
    };
    Batching::Offsets {
        a: offsets(&sa),
        b: offsets(&sb),
    }
}

pub(crate) fn data_type(dtype: DType) -> Result<sys::cudaDataType> {
    match dtype {
        DType::F32 => Ok(sys::cudaDataType::CUDA_R_32F),
        DType::F16 => Ok(sys::cudaDataType::CUDA_R_16F),
        DType::BF16 => Ok(sys::cudaDataType::CUDA_R_16BF),
        other => Err(TensorError::DTypeMismatch(format!(
            "matmul on CUDA takes f32, f16 or bf16, got {other}"
        ))),
    }
}

fn dim(what: &str, v: usize) -> Result<i32> {
    i32::try_from(v).map_err(|_| {
        TensorError::InvalidArgument(format!(
            "matmul {what} = {v} exceeds cuBLAS's limit of {}",
            i32::MAX
        ))
    })
}

fn check(status: sys::cublasStatus_t) -> Result<()> {
    if status == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
        Ok(())
    } else {
        Err(TensorError::DeviceFault(format!(
            "cuda: cuBLAS GEMM failed: {status:?}"
        )))
    }
}

/// Row-major shape of one product: `[m, k] x [k, n] -> [m, n]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GemmShape {
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
}

/// `count` products with matrices `step_*` elements apart (0 = broadcast).
/// Pointers are device addresses of row-major data of type `dtype`.
///
/// # Safety
/// The handle must be bound to the stream that orders these buffers, and
/// the buffers must hold every matrix the strides reach.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_strided(
    handle: sys::cublasHandle_t,
    dtype: DType,
    s: GemmShape,
    a: u64,
    step_a: i64,
    b: u64,
    step_b: i64,
    c: u64,
    count: usize,
) -> Result<()> {
    let ty = data_type(dtype)?;
    let (m, n, k) = (dim("m", s.m)?, dim("n", s.n)?, dim("k", s.k)?);
    let count = dim("batch", count)?;
    let (alpha, beta) = (1.0f32, 0.0f32);
    let alpha = (&alpha as *const f32).cast::<c_void>();
    let beta = (&beta as *const f32).cast::<c_void>();
    let compute = sys::cublasComputeType_t::CUBLAS_COMPUTE_32F;
    let algo = sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT;
    let op = sys::cublasOperation_t::CUBLAS_OP_N;
    // Column-major view: C^T [n x m] = B^T [n x k] * A^T [k x m].
    // SAFETY: forwarded from the caller; alpha/beta outlive the call.
    let status = unsafe {
        if count == 1 {
            sys::cublasGemmEx(
                handle,
                op,
                op,
                n,
                m,
                k,
                alpha,
                b as *const c_void,
                ty,
                n,
                a as *const c_void,
                ty,
                k,
                beta,
                c as *mut c_void,
                ty,
                n,
                compute,
                algo,
            )
        } else {
            sys::cublasGemmStridedBatchedEx(
                handle,
                op,
                op,
                n,
                m,
                k,
                alpha,
                b as *const c_void,
                ty,
                n,
                step_b,
                a as *const c_void,
                ty,
                k,
                step_a,
                beta,
                c as *mut c_void,
                ty,
                n,
                (s.m * s.n) as i64,
                count,
                compute,
                algo,
            )
        }
    };
    check(status)
}

/// A linear layer's product with Hugging Face's `[out, in]` weight, read
/// transposed in place: `y[rows, out] = x[rows, in] @ w^T (+ beta * y)`.
/// Column-major that is `y^T [out, rows] = op_T(w) [out, in] * x^T [in,
/// rows]`, with `w` seen as `[in, out]` (ld = in).
///
/// # Safety
/// As for [`gemm_strided`]; `y` must hold rows*out elements.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_linear(
    handle: sys::cublasHandle_t,
    dtype: DType,
    rows: usize,
    inputs: usize,
    outputs: usize,
    x: u64,
    w: u64,
    y: u64,
    beta: f32,
) -> Result<()> {
    let ty = data_type(dtype)?;
    let (m, n, k) = (dim("out", outputs)?, dim("rows", rows)?, dim("in", inputs)?);
    let alpha = 1.0f32;
    // SAFETY: forwarded from the caller; alpha/beta outlive the call.
    let status = unsafe {
        sys::cublasGemmEx(
            handle,
            sys::cublasOperation_t::CUBLAS_OP_T,
            sys::cublasOperation_t::CUBLAS_OP_N,
            m,
            n,
            k,
            (&alpha as *const f32).cast(),
            w as *const c_void,
            ty,
            k,
            x as *const c_void,
            ty,
            k,
            (&beta as *const f32).cast(),
            y as *mut c_void,
            ty,
            m,
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    };
    check(status)
}

/// Products whose operands are given by device arrays of pointers
/// (`a_ptrs`, `b_ptrs`, `c_ptrs`, each `count` u64 device addresses).
///
/// # Safety
/// As for [`gemm_strided`]; the pointer arrays must be on the device and
/// every pointer in them valid.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_pointers(
    handle: sys::cublasHandle_t,
    dtype: DType,
    s: GemmShape,
    a_ptrs: u64,
    b_ptrs: u64,
    c_ptrs: u64,
    count: usize,
) -> Result<()> {
    let ty = data_type(dtype)?;
    let (m, n, k) = (dim("m", s.m)?, dim("n", s.n)?, dim("k", s.k)?);
    let count = dim("batch", count)?;
    let (alpha, beta) = (1.0f32, 0.0f32);
    let op = sys::cublasOperation_t::CUBLAS_OP_N;
    // SAFETY: forwarded from the caller; alpha/beta outlive the call.
    let status = unsafe {
        sys::cublasGemmBatchedEx(
            handle,
            op,
            op,
            n,
            m,
            k,
            (&alpha as *const f32).cast(),
            b_ptrs as *const *const c_void,
            ty,
            n,
            a_ptrs as *const *const c_void,
            ty,
            k,
            (&beta as *const f32).cast(),
            c_ptrs as *const *mut c_void,
            ty,
            n,
            count,
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
        )
    };
    check(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_plans() {
        assert_eq!(
            plan_batch(&[4], &[4], &[4]),
            Batching::Strided {
                count: 4,
                step_a: true,
                step_b: true
            }
        );
        assert_eq!(
            plan_batch(&[2, 3], &[], &[2, 3]),
            Batching::Strided {
                count: 6,
                step_a: true,
                step_b: false
            }
        );
        assert_eq!(
            plan_batch(&[1, 1], &[5], &[1, 5]),
            Batching::Strided {
                count: 5,
                step_a: false,
                step_b: true
            }
        );
        assert_eq!(
            plan_batch(&[2, 1], &[1, 3], &[2, 3]),
            Batching::Offsets {
                a: vec![0, 0, 0, 1, 1, 1],
                b: vec![0, 1, 2, 0, 1, 2]
            }
        );
    }
}
