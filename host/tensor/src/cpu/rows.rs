//! Kernels that work along one axis: softmax, the norms, reductions, argmax
//! and top-k.
//!
//! A tensor is viewed as `[outer, len, inner]` around the axis; when the axis
//! is the last one (`inner == 1`, the common case) each lane is a contiguous
//! row and rows are spread across rayon threads.

use std::cmp::Ordering;

use rayon::prelude::*;

use super::PAR_THRESHOLD;
use crate::ReduceOp;

/// Split `shape` around `axis` into (outer, axis length, inner).
pub fn around(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Run `f` on each `block`-sized chunk of `out` (with its index), in
/// parallel when `out` is large.
fn for_blocks<T: Send>(out: &mut [T], block: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    if block == 0 {
        return;
    }
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(block)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(block).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Softmax along the middle axis of `[outer, len, inner]`, with the max
/// subtracted first so large inputs cannot overflow.
pub fn softmax(x: &[f32], outer: usize, len: usize, inner: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    debug_assert_eq!(out.len(), outer * len * inner);
    for_blocks(&mut out, len * inner, |_, block| {
        if inner == 1 {
            let max = block.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for v in block.iter_mut() {
                *v = (*v - max).exp();
                sum += *v;
            }
            let inv = 1.0 / sum;
            block.iter_mut().for_each(|v| *v *= inv);
            return;
        }
        for i in 0..inner {
            let max = (0..len)
                .map(|j| block[j * inner + i])
                .fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0f32;
            for j in 0..len {
                let e = (block[j * inner + i] - max).exp();
                block[j * inner + i] = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for j in 0..len {
                block[j * inner + i] *= inv;
            }
        }
    });
    out
}

/// Layer norm of each `d`-long row; statistics accumulate in f64 so long
/// rows with a large mean keep their precision.
pub fn layer_norm(x: &[f32], d: usize, w: Option<&[f32]>, b: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let mut out = x.to_vec();
    for_blocks(&mut out, d, |_, row| {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for (j, v) in row.iter_mut().enumerate() {
            let mut y = ((*v as f64 - mean) * inv) as f32;
            if let Some(w) = w {
                y *= w[j];
            }
            if let Some(b) = b {
                y += b[j];
            }
            *v = y;
        }
    });
    out
}

/// RMS norm of each `d`-long row.
pub fn rms_norm(x: &[f32], d: usize, w: Option<&[f32]>, eps: f32) -> Vec<f32> {
    let mut out = x.to_vec();
    for_blocks(&mut out, d, |_, row| {
        let ms = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / d as f64;
        let inv = (1.0 / (ms + eps as f64).sqrt()) as f32;
        match w {
            Some(w) => row.iter_mut().zip(w).for_each(|(v, &g)| *v *= inv * g),
            None => row.iter_mut().for_each(|v| *v *= inv),
        }
    });
    out
}

/// An accumulator for one reduction over one element type.
pub trait Accumulate: Copy + Send + Sync {
    type Acc: Copy + Send + Sync;
    fn start(op: ReduceOp) -> Self::Acc;
    fn step(op: ReduceOp, acc: Self::Acc, v: Self) -> Self::Acc;
    fn finish(op: ReduceOp, acc: Self::Acc, len: usize) -> Self;
}

/// Floats accumulate in f64 (exact enough that sums of long rows match a
/// naive f64 reference to f32 rounding).
impl Accumulate for f32 {
    type Acc = f64;
    fn start(op: ReduceOp) -> f64 {
        if op == ReduceOp::Max {
            f64::NEG_INFINITY
        } else {
            0.0
        }
    }
    fn step(op: ReduceOp, acc: f64, v: f32) -> f64 {
        match op {
            // NaN propagates, as in NumPy.
            ReduceOp::Max if v.is_nan() || acc.is_nan() => f64::NAN,
            ReduceOp::Max => acc.max(v as f64),
            ReduceOp::Sum | ReduceOp::Mean => acc + v as f64,
        }
    }
    fn finish(op: ReduceOp, acc: f64, len: usize) -> f32 {
        if op == ReduceOp::Mean {
            (acc / len as f64) as f32
        } else {
            acc as f32
        }
    }
}

/// Integers accumulate in i64 with wrapping sums.
impl Accumulate for i64 {
    type Acc = i64;
    fn start(op: ReduceOp) -> i64 {
        if op == ReduceOp::Max { i64::MIN } else { 0 }
    }
    fn step(op: ReduceOp, acc: i64, v: i64) -> i64 {
        match op {
            ReduceOp::Max => acc.max(v),
            ReduceOp::Sum | ReduceOp::Mean => acc.wrapping_add(v),
        }
    }
    fn finish(op: ReduceOp, acc: i64, len: usize) -> i64 {
        if op == ReduceOp::Mean {
            acc / len.max(1) as i64
        } else {
            acc
        }
    }
}

/// Reduce the middle axis of `[outer, len, inner]` to `[outer, inner]`.
pub fn reduce<T: Accumulate + Default>(
    op: ReduceOp,
    x: &[T],
    outer: usize,
    len: usize,
    inner: usize,
) -> Vec<T> {
    let mut out = vec![T::default(); outer * inner];
    let work = outer * len * inner;
    let lane = |o: usize, dst: &mut [T]| {
        let src = &x[o * len * inner..(o + 1) * len * inner];
        if inner == 1 {
            let acc = src.iter().fold(T::start(op), |a, &v| T::step(op, a, v));
            dst[0] = T::finish(op, acc, len);
            return;
        }
        let mut acc = vec![T::start(op); inner];
        for row in src.chunks(inner) {
            for (a, &v) in acc.iter_mut().zip(row) {
                *a = T::step(op, *a, v);
            }
        }
        for (d, a) in dst.iter_mut().zip(acc) {
            *d = T::finish(op, a, len);
        }
    };
    if inner == 0 {
        return out;
    }
    if work >= PAR_THRESHOLD {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| lane(o, d));
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| lane(o, d));
    }
    out
}

/// Total order for ranking values: NaN ranks above everything (so it is
/// reported, as NumPy's argmax does), otherwise the numeric order.
pub trait Rank: Copy + Send + Sync {
    fn rank_cmp(&self, other: &Self) -> Ordering;
}

impl Rank for f32 {
    fn rank_cmp(&self, other: &Self) -> Ordering {
        match (self.is_nan(), other.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => self.partial_cmp(other).expect("neither is NaN"),
        }
    }
}

impl Rank for i64 {
    fn rank_cmp(&self, other: &Self) -> Ordering {
        self.cmp(other)
    }
}

/// Index of the first maximum along the middle axis of `[outer, len, inner]`.
pub fn argmax<T: Rank>(x: &[T], outer: usize, len: usize, inner: usize) -> Vec<i64> {
    let mut out = vec![0i64; outer * inner];
    if inner == 0 {
        return out;
    }
    let lane = |o: usize, dst: &mut [i64]| {
        for (i, d) in dst.iter_mut().enumerate() {
            let at = |j: usize| &x[(o * len + j) * inner + i];
            let mut best = 0;
            for j in 1..len {
                if at(j).rank_cmp(at(best)) == Ordering::Greater {
                    best = j;
                }
            }
            *d = best as i64;
        }
    };
    if outer * len * inner >= PAR_THRESHOLD {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| lane(o, d));
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(o, d)| lane(o, d));
    }
    out
}

/// Indices (within each `d`-long row) of the `k` largest values, largest
/// first; equal values keep the lower index first.
pub fn top_k_indices<T: Rank>(x: &[T], d: usize, k: usize) -> Vec<i64> {
    let rows = x.len().checked_div(d).unwrap_or(0);
    let mut out = vec![0i64; rows * k];
    if k == 0 {
        return out;
    }
    let row_top = |r: usize, dst: &mut [i64]| {
        let row = &x[r * d..(r + 1) * d];
        let order = |p: &usize, q: &usize| row[*q].rank_cmp(&row[*p]).then(p.cmp(q));
        let mut idx: Vec<usize> = (0..d).collect();
        if k < d {
            // Partition first so only the k winners get sorted.
            idx.select_nth_unstable_by(k - 1, order);
            idx.truncate(k);
        }
        idx.sort_unstable_by(order);
        for (o, i) in dst.iter_mut().zip(idx) {
            *o = i as i64;
        }
    };
    if x.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(k)
            .enumerate()
            .for_each(|(r, d)| row_top(r, d));
    } else {
        out.chunks_mut(k)
            .enumerate()
            .for_each(|(r, d)| row_top(r, d));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_breaks_ties_by_index() {
        let x = [1.0f32, 3.0, 3.0, 0.0, 3.0];
        assert_eq!(top_k_indices(&x, 5, 3), vec![1, 2, 4]);
        assert_eq!(top_k_indices(&x, 5, 5), vec![1, 2, 4, 0, 3]);
        assert_eq!(top_k_indices(&[f32::NAN, 1.0], 2, 1), vec![0]);
    }

    #[test]
    fn reduce_middle_axis() {
        let x: Vec<i64> = (0..24).collect(); // [2, 3, 4]
        let s = reduce(ReduceOp::Sum, &x, 2, 3, 4);
        assert_eq!(s, vec![12, 15, 18, 21, 48, 51, 54, 57]);
        assert_eq!(argmax(&x, 2, 3, 4), vec![2; 8]);
    }
}
