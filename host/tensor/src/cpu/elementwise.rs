//! Elementwise kernels: broadcast binary ops, activations and scaling.
//!
//! The broadcast kernel has fast paths for the shapes models actually use
//! (same shape, scalar operand, an operand repeating along the leading axes
//! such as a bias row) and a general row-by-row walk otherwise; all of them
//! split the output across rayon threads once it is large.

use rayon::prelude::*;

use super::PAR_THRESHOLD;
use crate::shape::{broadcast_strides, strides};

/// Output elements per rayon task in elementwise kernels.
const CHUNK: usize = 1 << 14;

/// Fill `out[i] = f(i)`-style chunks in parallel when `out` is large.
fn fill_chunks<U: Send>(out: &mut [U], chunk: usize, f: impl Fn(usize, &mut [U]) + Sync) {
    let chunk = chunk.max(1);
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, dst)| f(c * chunk, dst));
    } else {
        out.chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, dst)| f(c * chunk, dst));
    }
}

/// If `small` (left-padded to the rank of `out`) is all ones followed by
/// exactly the trailing dimensions of `out`, it repeats every
/// `numel(small)` elements of the output: returns that period.
fn trailing_period(small: &[usize], out: &[usize]) -> Option<usize> {
    let offset = out.len() - small.len();
    let first = small.iter().position(|&d| d != 1).unwrap_or(small.len());
    (small[first..] == out[offset + first..]).then(|| small[first..].iter().product())
}

/// `f(a, b)` elementwise with NumPy broadcasting of `a_shape` and `b_shape`
/// to `out_shape` (already checked to be their broadcast).
pub fn broadcast_map<T, U>(
    a: &[T],
    a_shape: &[usize],
    b: &[T],
    b_shape: &[usize],
    out_shape: &[usize],
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U>
where
    T: Copy + Send + Sync,
    U: Copy + Default + Send + Sync,
{
    let numel: usize = out_shape.iter().product();
    let mut out = vec![U::default(); numel];
    if numel == 0 {
        return out;
    }
    let a_full = a.len() == numel;
    let b_full = b.len() == numel;
    if a_full && b_full {
        fill_chunks(&mut out, CHUNK, |start, dst| {
            let (x, y) = (&a[start..start + dst.len()], &b[start..start + dst.len()]);
            for ((o, &p), &q) in dst.iter_mut().zip(x).zip(y) {
                *o = f(p, q);
            }
        });
        return out;
    }
    if a_full && b.len() == 1 {
        let q = b[0];
        fill_chunks(&mut out, CHUNK, |start, dst| {
            for (o, &p) in dst.iter_mut().zip(&a[start..]) {
                *o = f(p, q);
            }
        });
        return out;
    }
    if b_full && a.len() == 1 {
        let p = a[0];
        fill_chunks(&mut out, CHUNK, |start, dst| {
            for (o, &q) in dst.iter_mut().zip(&b[start..]) {
                *o = f(p, q);
            }
        });
        return out;
    }
    if a_full && let Some(period) = trailing_period(b_shape, out_shape) {
        // `b` repeats along the leading axes (scalar, bias row, ...).
        fill_chunks(&mut out, CHUNK.div_ceil(period) * period, |start, dst| {
            for (r, row) in dst.chunks_mut(period).enumerate() {
                let x = &a[start + r * period..];
                for ((o, &p), &q) in row.iter_mut().zip(x).zip(b) {
                    *o = f(p, q);
                }
            }
        });
        return out;
    }
    if b_full && let Some(period) = trailing_period(a_shape, out_shape) {
        fill_chunks(&mut out, CHUNK.div_ceil(period) * period, |start, dst| {
            for (r, row) in dst.chunks_mut(period).enumerate() {
                let y = &b[start + r * period..];
                for ((o, &p), &q) in row.iter_mut().zip(a).zip(y) {
                    *o = f(p, q);
                }
            }
        });
        return out;
    }
    // General case: walk the output one last-axis row at a time; within a
    // row each operand either advances by one or stays (broadcast).
    let rank = out_shape.len();
    let sa = broadcast_strides(a_shape, out_shape);
    let sb = broadcast_strides(b_shape, out_shape);
    let row_len = out_shape[rank - 1];
    let (la, lb) = (sa[rank - 1], sb[rank - 1]);
    let outer = strides(&out_shape[..rank - 1]);
    let rows_per_task = CHUNK.div_ceil(row_len).max(1);
    fill_chunks(&mut out, rows_per_task * row_len, |start, dst| {
        for (r, row) in dst.chunks_mut(row_len).enumerate() {
            let mut rem = start / row_len + r;
            let (mut oa, mut ob) = (0, 0);
            for d in 0..rank - 1 {
                let i = rem / outer[d];
                rem %= outer[d];
                oa += i * sa[d];
                ob += i * sb[d];
            }
            for (j, o) in row.iter_mut().enumerate() {
                *o = f(a[oa + j * la], b[ob + j * lb]);
            }
        }
    });
    out
}

/// `f` over every element, in parallel when large.
pub fn map<T: Copy + Sync, U: Copy + Default + Send>(x: &[T], f: impl Fn(T) -> U + Sync) -> Vec<U> {
    let mut out = vec![U::default(); x.len()];
    fill_chunks(&mut out, CHUNK, |start, dst| {
        for (o, &v) in dst.iter_mut().zip(&x[start..]) {
            *o = f(v);
        }
    });
    out
}

pub fn relu(x: f32) -> f32 {
    x.max(0.0)
}

/// Exact (erf) GELU.
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(trailing_period(&[3], &[2, 3]), Some(3));
        assert_eq!(trailing_period(&[1, 1, 4], &[2, 3, 4]), Some(4));
        assert_eq!(trailing_period(&[], &[2, 3]), Some(1));
        assert_eq!(trailing_period(&[1], &[2, 3]), Some(1));
        assert_eq!(trailing_period(&[2, 1], &[2, 3]), None);
        assert_eq!(trailing_period(&[3, 4], &[2, 3, 4]), Some(12));
    }

    #[test]
    fn general_broadcast_matches_naive() {
        let a: Vec<i64> = (0..6).collect(); // [2, 1, 3]
        let b: Vec<i64> = (0..4).map(|v| v * 10).collect(); // [4, 1]
        let out = broadcast_map(&a, &[2, 1, 3], &b, &[4, 1], &[2, 4, 3], |x, y| x + y);
        let mut want = Vec::new();
        for i in 0..2 {
            for &bj in &b {
                for k in 0..3 {
                    want.push(a[i * 3 + k] + bj);
                }
            }
        }
        assert_eq!(out, want);
    }
}
