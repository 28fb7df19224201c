//! Shape arithmetic shared by every backend: broadcasting, strides, axis
//! normalisation, reshape inference and matmul planning.

use crate::{DType, TensorError};

/// Row-major strides (in elements) of `shape`.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Number of elements of `shape`, or None if it overflows usize.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Bytes of a `dtype` tensor of `shape`, or None if that overflows usize.
pub fn checked_bytes(dtype: DType, shape: &[usize]) -> Option<usize> {
    checked_numel(shape)?.checked_mul(dtype.size())
}

/// NumPy broadcasting of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, TensorError> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(TensorError::ShapeMismatch(format!(
                    "shapes {a:?} and {b:?} do not broadcast (dimension {i} of the result: {da} vs {db}); each pair of trailing dimensions must be equal or 1"
                )));
            }
        };
    }
    Ok(out)
}

/// Strides for reading a tensor of shape `shape` as if it had the broadcast
/// shape `out` (0 where a dimension is broadcast).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let offset = out.len() - shape.len();
    (0..out.len())
        .map(|i| {
            if i < offset {
                0
            } else {
                let d = shape[i - offset];
                if d == 1 && out[i] != 1 {
                    0
                } else {
                    own[i - offset]
                }
            }
        })
        .collect()
}

/// A possibly negative axis made absolute for a tensor of rank `rank`.
pub fn normalize_axis(axis: i32, rank: usize) -> Result<usize, TensorError> {
    let r = rank as i64;
    let a = axis as i64;
    let abs = if a < 0 { a + r } else { a };
    if abs < 0 || abs >= r {
        return Err(TensorError::InvalidArgument(format!(
            "axis {axis} is out of range for a tensor of rank {rank} (valid: {} to {})",
            -r,
            r - 1
        )));
    }
    Ok(abs as usize)
}

/// Resolve a reshape request (one entry may be -1) for `numel` elements.
pub fn infer_reshape(from: &[usize], to: &[i64]) -> Result<Vec<usize>, TensorError> {
    let numel: usize = from.iter().product();
    let mut known = 1usize;
    let mut infer = None;
    for (i, &d) in to.iter().enumerate() {
        match d {
            -1 if infer.is_none() => infer = Some(i),
            -1 => {
                return Err(TensorError::InvalidArgument(format!(
                    "reshape to {to:?}: only one dimension may be -1"
                )));
            }
            d if d < 0 => {
                return Err(TensorError::InvalidArgument(format!(
                    "reshape to {to:?}: dimension {d} is negative (only -1, meaning inferred, is allowed)"
                )));
            }
            d => known = known.saturating_mul(d as usize),
        }
    }
    let mut out: Vec<usize> = to.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        if known == 0 || !numel.is_multiple_of(known) {
            return Err(TensorError::ShapeMismatch(format!(
                "cannot reshape {from:?} ({numel} elements) to {to:?}: the other dimensions' product {known} does not divide {numel}"
            )));
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(TensorError::ShapeMismatch(format!(
            "cannot reshape {from:?} ({numel} elements) to {to:?} ({known} elements)"
        )));
    }
    Ok(out)
}

/// How a (possibly batched, possibly 1-D) matmul maps to 2-D products.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulPlan {
    /// Shape of lhs seen as `[batch.., m, k]` (1-D lhs gets m = 1).
    pub lhs: Vec<usize>,
    /// Shape of rhs seen as `[batch.., k, n]` (1-D rhs gets n = 1).
    pub rhs: Vec<usize>,
    /// Broadcast batch dimensions of the result.
    pub batch: Vec<usize>,
    /// The result's shape as the caller sees it (promoted axes dropped).
    pub out: Vec<usize>,
}

pub fn plan_matmul(a: &[usize], b: &[usize]) -> Result<MatmulPlan, TensorError> {
    if a.is_empty() || b.is_empty() {
        return Err(TensorError::ShapeMismatch(format!(
            "matmul needs operands of rank >= 1, got {a:?} and {b:?}; use mul for scalars"
        )));
    }
    let lhs: Vec<usize> = if a.len() == 1 {
        vec![1, a[0]]
    } else {
        a.to_vec()
    };
    let rhs: Vec<usize> = if b.len() == 1 {
        vec![b[0], 1]
    } else {
        b.to_vec()
    };
    let (m, k) = (lhs[lhs.len() - 2], lhs[lhs.len() - 1]);
    let (k2, n) = (rhs[rhs.len() - 2], rhs[rhs.len() - 1]);
    if k != k2 {
        return Err(TensorError::ShapeMismatch(format!(
            "matmul of {a:?} and {b:?}: the inner dimensions differ ({k} vs {k2}); lhs [.., m, k] needs rhs [.., k, n] (transpose one?)"
        )));
    }
    let batch = broadcast(&lhs[..lhs.len() - 2], &rhs[..rhs.len() - 2]).map_err(|_| {
        TensorError::ShapeMismatch(format!(
            "matmul of {a:?} and {b:?}: the batch dimensions do not broadcast"
        ))
    })?;
    let mut out = batch.clone();
    if a.len() > 1 {
        out.push(m);
    }
    if b.len() > 1 {
        out.push(n);
    }
    Ok(MatmulPlan {
        lhs,
        rhs,
        batch,
        out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast(&[2, 3], &[3]).unwrap(), vec![2, 3]);
        assert_eq!(broadcast(&[4, 1, 3], &[2, 1]).unwrap(), vec![4, 2, 3]);
        assert_eq!(broadcast(&[], &[2]).unwrap(), vec![2]);
        assert!(matches!(
            broadcast(&[2, 3], &[2]),
            Err(TensorError::ShapeMismatch(_))
        ));
        assert_eq!(broadcast_strides(&[3], &[2, 3]), vec![0, 1]);
        assert_eq!(broadcast_strides(&[2, 1], &[2, 4]), vec![1, 0]);
    }

    #[test]
    fn axes_and_reshape() {
        assert_eq!(normalize_axis(-1, 3).unwrap(), 2);
        assert!(normalize_axis(3, 3).is_err());
        assert!(normalize_axis(-4, 3).is_err());
        assert_eq!(infer_reshape(&[2, 6], &[3, -1]).unwrap(), vec![3, 4]);
        assert_eq!(infer_reshape(&[0, 6], &[0, 6]).unwrap(), vec![0, 6]);
        assert!(infer_reshape(&[2, 6], &[5, -1]).is_err());
        assert!(infer_reshape(&[2, 6], &[-1, -1]).is_err());
        assert!(infer_reshape(&[2, 6], &[2, 7]).is_err());
    }

    #[test]
    fn matmul_plans() {
        let p = plan_matmul(&[2, 3, 4], &[4, 5]).unwrap();
        assert_eq!((p.batch.clone(), p.out.clone()), (vec![2], vec![2, 3, 5]));
        assert_eq!(plan_matmul(&[4], &[4, 5]).unwrap().out, vec![5]);
        assert_eq!(plan_matmul(&[3, 4], &[4]).unwrap().out, vec![3]);
        assert_eq!(plan_matmul(&[4], &[4]).unwrap().out, Vec::<usize>::new());
        assert!(plan_matmul(&[3, 4], &[5, 2]).is_err());
    }

    #[test]
    fn broadcasting_edge_cases() {
        assert_eq!(broadcast(&[], &[]).unwrap(), Vec::<usize>::new());
        assert_eq!(broadcast(&[0, 3], &[3]).unwrap(), vec![0, 3]);
        assert_eq!(broadcast(&[0, 1], &[1, 5]).unwrap(), vec![0, 5]);
        assert!(broadcast(&[0], &[2]).is_err());
        assert_eq!(
            broadcast(&[2, 1, 3, 1], &[4, 1, 5]).unwrap(),
            vec![2, 4, 3, 5]
        );
        assert_eq!(broadcast_strides(&[], &[2, 3]), vec![0, 0]);
        assert_eq!(
            broadcast_strides(&[4, 1, 5], &[2, 4, 3, 5]),
            vec![0, 5, 0, 1]
        );
        assert_eq!(strides(&[]), Vec::<usize>::new());
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[2, 0, 4]), vec![0, 4, 1]);
    }

    #[test]
    fn sizes_overflow_to_none() {
        assert_eq!(checked_numel(&[]), Some(1));
        assert_eq!(checked_numel(&[3, 0, 5]), Some(0));
        assert_eq!(checked_numel(&[usize::MAX, 2]), None);
        assert_eq!(checked_bytes(DType::I64, &[usize::MAX / 4]), None);
        assert_eq!(checked_bytes(DType::F16, &[3, 5]), Some(30));
    }

    #[test]
    fn axes_of_scalars_and_extremes() {
        assert!(normalize_axis(0, 0).is_err());
        assert!(normalize_axis(-1, 0).is_err());
        assert_eq!(normalize_axis(-4, 4).unwrap(), 0);
        assert!(normalize_axis(i32::MIN, 4).is_err());
        assert!(normalize_axis(i32::MAX, 4).is_err());
        assert_eq!(infer_reshape(&[], &[1, 1]).unwrap(), vec![1, 1]);
        assert_eq!(infer_reshape(&[1, 1], &[]).unwrap(), Vec::<usize>::new());
        assert_eq!(infer_reshape(&[], &[-1]).unwrap(), vec![1]);
        assert!(infer_reshape(&[0, 4], &[0, -1]).is_err());
        assert!(infer_reshape(&[4], &[-3, -1]).is_err());
    }

    #[test]
    fn matmul_batch_plans() {
        let p = plan_matmul(&[2, 1, 3, 4], &[5, 4, 6]).unwrap();
        assert_eq!(p.batch, vec![2, 5]);
        assert_eq!(p.out, vec![2, 5, 3, 6]);
        let p = plan_matmul(&[4], &[2, 4, 6]).unwrap();
        assert_eq!((p.lhs, p.batch, p.out), (vec![1, 4], vec![2], vec![2, 6]));
        let p = plan_matmul(&[2, 3, 4], &[4]).unwrap();
        assert_eq!((p.rhs, p.out), (vec![4, 1], vec![2, 3]));
        assert!(plan_matmul(&[2, 3, 4], &[3, 4, 5]).is_err());
        assert!(plan_matmul(&[], &[4]).is_err());
    }
}
