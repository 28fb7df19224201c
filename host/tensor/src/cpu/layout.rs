//! Data-movement kernels, generic over the element type: permute, slice,
//! concat and gather. They copy whole rows where the layout allows it.

use rayon::prelude::*;

use super::PAR_THRESHOLD;
use super::rows::around;
use crate::shape::strides;

/// Rows of at least this many elements are copied by one task each.
const ROWS_PER_TASK_ELEMS: usize = 1 << 13;

/// Copy with axes reordered: output axis `i` is input axis `dims[i]`.
pub fn permute<T: Copy + Default + Send + Sync>(
    src: &[T],
    shape: &[usize],
    dims: &[usize],
) -> Vec<T> {
    let rank = shape.len();
    let numel: usize = shape.iter().product();
    let mut out = vec![T::default(); numel];
    if numel == 0 || rank == 0 {
        out.copy_from_slice(src);
        return out;
    }
    let in_strides = strides(shape);
    let out_shape: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
    let step: Vec<usize> = dims.iter().map(|&d| in_strides[d]).collect();
    let row_len = out_shape[rank - 1];
    let inner_step = step[rank - 1];
    let outer = strides(&out_shape[..rank - 1]);
    // One output row (last output axis) at a time: find where it starts in
    // the input, then copy it (contiguous when the last axis stays last).
    let copy_rows = |first_row: usize, dst: &mut [T]| {
        for (r, row) in dst.chunks_mut(row_len).enumerate() {
            let mut rem = first_row + r;
            let mut offset = 0;
            for d in 0..rank - 1 {
                offset += rem / outer[d] * step[d];
                rem %= outer[d];
            }
            if inner_step == 1 {
                row.copy_from_slice(&src[offset..offset + row_len]);
            } else {
                for (j, o) in row.iter_mut().enumerate() {
                    *o = src[offset + j * inner_step];
                }
            }
        }
    };
    let rows_per_task = ROWS_PER_TASK_ELEMS.div_ceil(row_len);
    let block = rows_per_task * row_len;
    if numel >= PAR_THRESHOLD {
        out.par_chunks_mut(block)
            .enumerate()
            .for_each(|(t, dst)| copy_rows(t * rows_per_task, dst));
    } else {
        copy_rows(0, &mut out);
    }
    out
}

/// Elements `start..end` along `axis`.
pub fn slice<T: Copy>(src: &[T], shape: &[usize], axis: usize, start: usize, end: usize) -> Vec<T> {
    let (outer, len, inner) = around(shape, axis);
    let mut out = Vec::with_capacity(outer * (end - start) * inner);
    for o in 0..outer {
        let base = o * len * inner;
        out.extend_from_slice(&src[base + start * inner..base + end * inner]);
    }
    out
}

/// Concatenation along `axis` of parts whose other dimensions agree.
pub fn concat<T: Copy>(parts: &[(&[T], &[usize])], axis: usize) -> Vec<T> {
    let (outer, _, inner) = around(parts[0].1, axis);
    let total: usize = parts.iter().map(|(v, _)| v.len()).sum();
    let mut out = Vec::with_capacity(total);
    for o in 0..outer {
        for (src, shape) in parts {
            let block = shape[axis] * inner;
            out.extend_from_slice(&src[o * block..(o + 1) * block]);
        }
    }
    out
}

/// Rows `idx` of a `[rows, dim]` table (indices already range-checked).
pub fn gather<T: Copy + Default + Send + Sync>(table: &[T], dim: usize, idx: &[i64]) -> Vec<T> {
    let mut out = vec![T::default(); idx.len() * dim];
    if dim == 0 {
        return out;
    }
    let copy = |(dst, &i): (&mut [T], &i64)| {
        let i = i as usize;
        dst.copy_from_slice(&table[i * dim..(i + 1) * dim]);
    };
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(dim).zip(idx).for_each(copy);
    } else {
        out.chunks_mut(dim).zip(idx).for_each(copy);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_matches_index_math() {
        let src: Vec<u32> = (0..24).collect(); // [2, 3, 4]
        let out = permute(&src, &[2, 3, 4], &[2, 0, 1]); // [4, 2, 3]
        for i in 0..4 {
            for j in 0..2 {
                for k in 0..3 {
                    assert_eq!(out[(i * 2 + j) * 3 + k], src[(j * 3 + k) * 4 + i]);
                }
            }
        }
        assert_eq!(
            permute(&src, &[2, 3, 4], &[1, 0, 2])[4..8],
            [12, 13, 14, 15]
        );
    }

    #[test]
    fn slice_concat_gather() {
        let src: Vec<u8> = (0..12).collect(); // [3, 4]
        assert_eq!(slice(&src, &[3, 4], 1, 1, 3), vec![1, 2, 5, 6, 9, 10]);
        let a = [1u8, 2, 3, 4];
        let b = [5u8, 6];
        assert_eq!(
            concat(&[(&a[..], &[2, 2][..]), (&b[..], &[2, 1][..])], 1),
            vec![1, 2, 5, 3, 4, 6]
        );
        assert_eq!(gather(&src, 4, &[2, 0]), vec![8, 9, 10, 11, 0, 1, 2, 3]);
    }
}
