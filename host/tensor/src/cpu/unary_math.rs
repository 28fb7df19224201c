//! Kernels of the elementwise long tail that the broadcast helpers in
//! `elementwise` do not already cover: a three-operand broadcast (`where`)
//! and running sums.

use super::rows::around;
use crate::shape::{broadcast_strides, strides};

/// `pick(c, a, b)` with all three operands broadcast to `out_shape`.
pub fn broadcast3<C: Copy, T: Copy + Default>(
    c: (&[C], &[usize]),
    a: (&[T], &[usize]),
    b: (&[T], &[usize]),
    out_shape: &[usize],
    pick: impl Fn(C, T, T) -> T,
) -> Vec<T> {
    let numel: usize = out_shape.iter().product();
    let mut out = vec![T::default(); numel];
    if numel == 0 {
        return out;
    }
    let sc = broadcast_strides(c.1, out_shape);
    let sa = broadcast_strides(a.1, out_shape);
    let sb = broadcast_strides(b.1, out_shape);
    let own = strides(out_shape);
    for (i, o) in out.iter_mut().enumerate() {
        let (mut oc, mut oa, mut ob, mut rem) = (0, 0, 0, i);
        for d in 0..out_shape.len() {
            let k = rem / own[d];
            rem %= own[d];
            oc += k * sc[d];
            oa += k * sa[d];
            ob += k * sb[d];
        }
        *o = pick(c.0[oc], a.0[oa], b.0[ob]);
    }
    out
}

/// Running sums along `axis` of `shape`, accumulated in `A`.
pub fn cumsum<T: Copy + Default, A: Copy>(
    x: &[T],
    shape: &[usize],
    axis: usize,
    zero: A,
    step: impl Fn(A, T) -> A,
    finish: impl Fn(A) -> T,
) -> Vec<T> {
    let (outer, len, inner) = around(shape, axis);
    let mut out = vec![T::default(); x.len()];
    for o in 0..outer {
        for i in 0..inner {
            let mut acc = zero;
            for j in 0..len {
                let at = (o * len + j) * inner + i;
                acc = step(acc, x[at]);
                out[at] = finish(acc);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_broadcasts_three_ways() {
        let c = [1u8, 0];
        let a = [10i64, 20, 30];
        let b = [-1i64];
        let out = broadcast3((&c, &[2, 1]), (&a, &[3]), (&b, &[]), &[2, 3], |c, a, b| {
            if c != 0 { a } else { b }
        });
        assert_eq!(out, vec![10, 20, 30, -1, -1, -1]);
    }

    #[test]
    fn cumsum_middle_axis() {
        let x: Vec<i64> = (0..12).collect(); // [2, 3, 2]
        let out = cumsum(&x, &[2, 3, 2], 1, 0i64, |a, v| a + v, |a| a);
        assert_eq!(out, vec![0, 1, 2, 4, 6, 9, 6, 7, 14, 16, 24, 27]);
    }
}
