//! Batched f32 GEMM on the `gemm` crate.
//!
//! Three schedules: a batch whose rhs is shared (a linear layer applied to
//! `[batch, seq, in]`) folds into one tall GEMM; many small products run one
//! per rayon task; otherwise each product uses every thread.

use rayon::prelude::*;

use crate::shape::{broadcast_strides, strides};

/// Below this many multiply-adds a product runs on one thread.
const SERIAL_MACS: usize = 1 << 15;
/// Products smaller than this run one per task when the batch is large.
const SMALL_MACS: usize = 1 << 21;

/// Operand layout of a batched product `[batch.., m, k] x [batch.., k, n]`.
pub struct Batched<'a> {
    pub lhs: &'a [f32],
    pub lhs_batch: &'a [usize],
    pub rhs: &'a [f32],
    pub rhs_batch: &'a [usize],
    pub out_batch: &'a [usize],
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

fn parallelism(macs: usize, threads: usize) -> gemm::Parallelism {
    if macs >= SERIAL_MACS && threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `dst[m, n] = lhs[m, k] x rhs[k, n]`, all contiguous row-major.
fn gemm_into(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    m: usize,
    k: usize,
    n: usize,
    par: gemm::Parallelism,
) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    if m * n == 0 {
        return;
    }
    if k == 0 {
        dst.fill(0.0);
        return;
    }
    // SAFETY: the assert above shows dst holds m*n, lhs m*k and rhs k*n f32s;
    // with column stride 1 and row strides n, k and n every index gemm forms
    // (< rows*row_stride) is in bounds. dst is a unique &mut, so it does not
    // alias the shared inputs. alpha = 0 with read_dst = false means dst's
    // old contents are never read, beta = 1 scales the product.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// The batched product, `numel(out_batch) * m * n` f32s.
pub fn matmul(p: &Batched<'_>) -> Vec<f32> {
    let (m, k, n) = (p.m, p.k, p.n);
    let batch: usize = p.out_batch.iter().product();
    let mut out = vec![0f32; batch * m * n];
    if out.is_empty() {
        return out;
    }
    let threads = rayon::current_num_threads();
    let rhs_shared = p.rhs_batch.iter().all(|&d| d == 1);
    let lhs_full = p.lhs_batch.iter().product::<usize>() == batch;
    if rhs_shared && lhs_full {
        // Stacked lhs matrices are one [batch*m, k] matrix.
        let rows = batch * m;
        gemm_into(
            &mut out,
            p.lhs,
            p.rhs,
            rows,
            k,
            n,
            parallelism(rows * k * n, threads),
        );
        return out;
    }
    let sa = broadcast_strides(p.lhs_batch, p.out_batch);
    let sb = broadcast_strides(p.rhs_batch, p.out_batch);
    let bstrides = strides(p.out_batch);
    let operands = |bi: usize| {
        let (mut oa, mut ob, mut rem) = (0, 0, bi);
        for d in 0..p.out_batch.len() {
            let i = rem / bstrides[d];
            rem %= bstrides[d];
            oa += i * sa[d];
            ob += i * sb[d];
        }
        (
            &p.lhs[oa * m * k..(oa + 1) * m * k],
            &p.rhs[ob * k * n..(ob + 1) * k * n],
        )
    };
    let macs = m * k * n;
    if batch >= threads && macs < SMALL_MACS {
        out.par_chunks_mut(m * n).enumerate().for_each(|(bi, dst)| {
            let (lhs, rhs) = operands(bi);
            gemm_into(dst, lhs, rhs, m, k, n, gemm::Parallelism::None);
        });
    } else {
        let par = parallelism(macs, threads);
        for (bi, dst) in out.chunks_mut(m * n).enumerate() {
            let (lhs, rhs) = operands(bi);
            gemm_into(dst, lhs, rhs, m, k, n, par);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn schedules_agree() {
        let a: Vec<f32> = (0..2 * 3 * 4).map(|v| v as f32 * 0.5).collect();
        let b: Vec<f32> = (0..4 * 5).map(|v| 1.0 - v as f32 * 0.25).collect();
        let folded = matmul(&Batched {
            lhs: &a,
            lhs_batch: &[2],
            rhs: &b,
            rhs_batch: &[],
            out_batch: &[2],
            m: 3,
            k: 4,
            n: 5,
        });
        let mut want = naive(&a[..12], &b, 3, 4, 5);
        want.extend(naive(&a[12..], &b, 3, 4, 5));
        assert_eq!(folded, want);
        // rhs broadcast from [1] against an lhs batch of 2: per-batch loop.
        let b2: Vec<f32> = b.iter().chain(&b).copied().collect();
        let looped = matmul(&Batched {
            lhs: &a,
            lhs_batch: &[2],
            rhs: &b2,
            rhs_batch: &[2],
            out_batch: &[2],
            m: 3,
            k: 4,
            n: 5,
        });
        assert_eq!(looped, want);
    }
}
