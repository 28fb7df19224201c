//! Matrix products: 2-D sizes, vectors, batches with broadcasting, every
//! float dtype, the parallel schedules and the error paths.

use wasmpod_tensor::{DType, Device};

use crate::assert_err;
use crate::support::*;

/// Naive f64 matmul with the contract's rules: 1-D lhs is a row vector, 1-D
/// rhs a column vector (those axes dropped), batch dims broadcast.
pub fn reference(
    a: &[f64],
    a_shape: &[usize],
    b: &[f64],
    b_shape: &[usize],
) -> (Vec<usize>, Vec<f64>) {
    let lhs = if a_shape.len() == 1 {
        vec![1, a_shape[0]]
    } else {
        a_shape.to_vec()
    };
    let rhs = if b_shape.len() == 1 {
        vec![b_shape[0], 1]
    } else {
        b_shape.to_vec()
    };
    let (m, k) = (lhs[lhs.len() - 2], lhs[lhs.len() - 1]);
    let n = rhs[rhs.len() - 1];
    let (lb, rb) = (&lhs[..lhs.len() - 2], &rhs[..rhs.len() - 2]);
    let batch = broadcast_shape(lb, rb);
    let mut full = batch.clone();
    full.extend([m, n]);
    let mut out = Vec::with_capacity(numel(&full));
    for bi in 0..numel(&batch) {
        let idx = unravel(bi, &batch);
        let oa = broadcast_index(&idx, lb) * m * k;
        let ob = broadcast_index(&idx, rb) * k * n;
        for i in 0..m {
            for j in 0..n {
                out.push((0..k).map(|l| a[oa + i * k + l] * b[ob + l * n + j]).sum());
            }
        }
    }
    let mut shape = batch;
    if a_shape.len() > 1 {
        shape.push(m);
    }
    if b_shape.len() > 1 {
        shape.push(n);
    }
    (shape, out)
}

fn check_case(dev: &Device, rng: &mut Rng, dtype: DType, a_shape: &[usize], b_shape: &[usize]) {
    let (a, av) = random(dev, rng, dtype, a_shape, 1.0);
    let (b, bv) = random(dev, rng, dtype, b_shape, 1.0);
    let (shape, want) = reference(&av, a_shape, &bv, b_shape);
    let got = dev
        .matmul(&a, &b)
        .unwrap_or_else(|e| panic!("{a_shape:?} x {b_shape:?}: {e}"));
    let k = a_shape[a_shape.len() - 1].max(1) as f64;
    check(
        dev,
        &format!("matmul {a_shape:?} x {b_shape:?}"),
        &got,
        dtype,
        &shape,
        &want,
        k.sqrt(),
    );
}

pub fn matmul_2d_sizes(dev: &Device) {
    let mut rng = Rng::new(10);
    for (m, k, n) in [
        (1, 1, 1),
        (2, 3, 4),
        (5, 1, 7),
        (16, 16, 16),
        (17, 33, 9),
        (3, 64, 1),
        (1, 40, 65),
        (0, 4, 3),
        (3, 4, 0),
    ] {
        check_case(dev, &mut rng, DType::F32, &[m, k], &[k, n]);
    }
    // k = 0: an empty sum, so every element is 0.
    let a = dev.zeros(DType::F32, &[3, 0]).unwrap();
    let b = dev.zeros(DType::F32, &[0, 2]).unwrap();
    let c = dev.matmul(&a, &b).unwrap();
    check(dev, "k = 0", &c, DType::F32, &[3, 2], &[0.0; 6], 0.0);
}

pub fn matmul_vectors(dev: &Device) {
    let mut rng = Rng::new(11);
    for dtype in FLOATS {
        check_case(dev, &mut rng, dtype, &[4], &[4, 3]); // -> [3]
        check_case(dev, &mut rng, dtype, &[3, 4], &[4]); // -> [3]
        check_case(dev, &mut rng, dtype, &[5], &[5]); // -> []
        check_case(dev, &mut rng, dtype, &[4], &[2, 4, 3]); // -> [2, 3]
        check_case(dev, &mut rng, dtype, &[2, 3, 4], &[4]); // -> [2, 3]
    }
    let a = dev.upload_f32(&[3], &[1.0, 2.0, 3.0]).unwrap();
    let dot = dev.matmul(&a, &a).unwrap();
    assert_eq!(dot.shape(), &[] as &[usize]);
    assert_eq!(dev.to_f32_vec(&dot).unwrap(), vec![14.0]);
}

pub fn matmul_batched_and_broadcast(dev: &Device) {
    let mut rng = Rng::new(12);
    for (a, b) in [
        (vec![2, 3, 4], vec![2, 4, 5]),       // equal batches
        (vec![2, 3, 4], vec![4, 5]),          // shared rhs (linear layer)
        (vec![3, 4], vec![2, 4, 5]),          // shared lhs
        (vec![2, 1, 3, 4], vec![1, 3, 4, 2]), // both broadcast
        (vec![2, 3, 3, 4], vec![4, 5]),       // rank 4 x rank 2
        (vec![1, 3, 4], vec![2, 4, 5]),       // size-1 batch on lhs
        (vec![2, 3, 4], vec![1, 4, 5]),       // size-1 batch on rhs
        (vec![3, 2, 2, 3], vec![3, 1, 3, 2]), // rank 4 both sides
        (vec![0, 3, 4], vec![4, 2]),          // empty batch
        (vec![2, 0, 4], vec![2, 4, 3]),       // empty m
    ] {
        check_case(dev, &mut rng, DType::F32, &a, &b);
    }
}

pub fn matmul_half_precision(dev: &Device) {
    let mut rng = Rng::new(13);
    for dtype in [DType::F16, DType::BF16] {
        check_case(dev, &mut rng, dtype, &[7, 19], &[19, 5]);
        check_case(dev, &mut rng, dtype, &[2, 4, 8], &[8, 3]);
        check_case(dev, &mut rng, dtype, &[2, 4, 8], &[2, 8, 3]);
    }
}

pub fn matmul_large_parallel(dev: &Device) {
    let mut rng = Rng::new(14);
    // One big product (multithreaded GEMM), many small ones (one per task),
    // a tall folded batch, and two medium products run one after another.
    check_case(dev, &mut rng, DType::F32, &[67, 130], &[130, 71]);
    check_case(dev, &mut rng, DType::F32, &[16, 8, 9], &[16, 9, 10]);
    check_case(dev, &mut rng, DType::F32, &[4, 32, 64], &[64, 48]);
    check_case(dev, &mut rng, DType::F32, &[2, 128, 130], &[2, 130, 129]);
}

pub fn matmul_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    let b = dev.zeros(DType::F32, &[4, 2]).unwrap();
    let msg = assert_err!(dev.matmul(&a, &b), ShapeMismatch);
    assert!(msg.contains("[2, 3]") && msg.contains("[4, 2]"), "{msg}");
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.matmul(&s, &a), ShapeMismatch);
    assert_err!(dev.matmul(&a, &s), ShapeMismatch);
    let x = dev.zeros(DType::F32, &[2, 2, 3]).unwrap();
    let y = dev.zeros(DType::F32, &[3, 3, 4]).unwrap();
    assert_err!(dev.matmul(&x, &y), ShapeMismatch);
    let v = dev.zeros(DType::F32, &[4]).unwrap();
    assert_err!(dev.matmul(&a, &v), ShapeMismatch);
    for dtype in INTS {
        let i = dev.zeros(dtype, &[2, 2]).unwrap();
        assert_err!(dev.matmul(&i, &i), DTypeMismatch);
    }
    let h = dev.zeros(DType::F16, &[3, 2]).unwrap();
    assert_err!(dev.matmul(&a, &h), DTypeMismatch);
}
