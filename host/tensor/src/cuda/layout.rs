//! Strided index plans for the kernels that walk several operands at once
//! (broadcast binary ops, permute, slice, concat): dimensions merged where
//! the memory allows, then packed into the `Layout` struct of kernels.cu.

use cudarc::driver::DeviceRepr;

/// Dimensions one kernel launch handles; more (after merging) are split
/// into several launches over the leading dimensions.
pub(crate) const MAX_DIMS: usize = 8;

/// Mirrors `struct Layout` in kernels.cu (dims right-aligned).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    shape: [i64; MAX_DIMS],
    strides: [[i64; MAX_DIMS]; 3],
    base: [i64; 3],
    rank: i32,
    pad: i32,
}

// SAFETY: plain #[repr(C)] data matching the kernel's parameter type.
unsafe impl DeviceRepr for Layout {}

/// One launch: its layout and element count.
#[derive(Debug)]
pub(crate) struct Launch {
    pub(crate) layout: Layout,
    pub(crate) numel: u64,
}

/// Element strides of a contiguous row-major `shape`.
pub(crate) fn contiguous(shape: &[usize]) -> Vec<i64> {
    crate::shape::strides(shape)
        .into_iter()
        .map(|s| s as i64)
        .collect()
}

/// Drops size-1 dimensions and merges neighbours that every operand walks
/// contiguously, so the common cases become one or two dimensions.
fn merge(shape: &[usize], strides: &[Vec<i64>; 3]) -> (Vec<usize>, [Vec<i64>; 3]) {
    let mut out_shape: Vec<usize> = Vec::new();
    let mut out: [Vec<i64>; 3] = Default::default();
    for (d, &len) in shape.iter().enumerate() {
        if len == 1 {
            continue;
        }
        let mergeable = out_shape.last().is_some_and(|_| {
            (0..3).all(|o| {
                let prev = *out[o].last().expect("same length as out_shape");
                prev == strides[o][d] * len as i64
            })
        });
        if mergeable {
            *out_shape.last_mut().expect("checked") *= len;
            for o in 0..3 {
                *out[o].last_mut().expect("checked") = strides[o][d];
            }
        } else {
            out_shape.push(len);
            for o in 0..3 {
                out[o].push(strides[o][d]);
            }
        }
    }
    (out_shape, out)
}

/// Launches that visit every index of `shape`, with operand `o` at element
/// offset `base[o] + sum(index[d] * strides[o][d])`. Empty when `shape` has
/// no elements.
pub(crate) fn plan(shape: &[usize], strides: [Vec<i64>; 3], base: [i64; 3]) -> Vec<Launch> {
    if shape.contains(&0) {
        return Vec::new();
    }
    let (shape, strides) = merge(shape, &strides);
    let mut launches = Vec::new();
    split(&shape, &strides, base, &mut launches);
    launches
}

fn split(shape: &[usize], strides: &[Vec<i64>; 3], base: [i64; 3], out: &mut Vec<Launch>) {
    if shape.len() > MAX_DIMS {
        let rest: [Vec<i64>; 3] = std::array::from_fn(|o| strides[o][1..].to_vec());
        for i in 0..shape[0] as i64 {
            let b = std::array::from_fn(|o| base[o] + i * strides[o][0]);
            split(&shape[1..], &rest, b, out);
        }
        return;
    }
    let rank = shape.len();
    let first = MAX_DIMS - rank;
    let mut layout = Layout {
        shape: [1; MAX_DIMS],
        strides: [[0; MAX_DIMS]; 3],
        base,
        rank: rank as i32,
        pad: 0,
    };
    for d in 0..rank {
        layout.shape[first + d] = shape[d] as i64;
        for (dst, src) in layout.strides.iter_mut().zip(strides) {
            dst[first + d] = src[d];
        }
    }
    out.push(Launch {
        layout,
        numel: shape.iter().map(|&d| d as u64).product(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_operands_merge_to_one_dimension() {
        let s = contiguous(&[2, 3, 4]);
        let l = plan(&[2, 3, 4], [s.clone(), s.clone(), s], [0; 3]);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].layout.rank, 1);
        assert_eq!(l[0].numel, 24);
        assert_eq!(l[0].layout.shape[MAX_DIMS - 1], 24);
    }

    #[test]
    fn broadcast_keeps_the_broadcast_dimension() {
        // [2, 3] + [3]: b's row stride is 0, so two dims remain.
        let l = plan(
            &[2, 3],
            [vec![3, 1], vec![0, 1], contiguous(&[2, 3])],
            [0; 3],
        );
        assert_eq!(l[0].layout.rank, 2);
        assert_eq!(l[0].layout.strides[1][MAX_DIMS - 2..], [0, 1]);
    }

    #[test]
    fn deep_layouts_split_over_leading_dims() {
        // Fully transposed strides never merge: ten dims, two launches' worth.
        let shape = [2usize; 10];
        let dst = contiguous(&shape);
        let src: Vec<i64> = dst.iter().rev().copied().collect();
        let n = shape.len();
        let launches = plan(&shape, [src, dst, vec![0; n]], [0; 3]);
        let total: u64 = launches.iter().map(|l| l.numel).sum();
        assert_eq!(total, shape.iter().product::<usize>() as u64);
        assert_eq!(launches.len(), 4);
        assert!(launches.iter().all(|l| l.layout.rank as usize <= MAX_DIMS));
        assert_eq!(
            plan(&[3, 0], [vec![0, 0], vec![0, 0], vec![0, 0]], [0; 3]).len(),
            0
        );
    }
}
