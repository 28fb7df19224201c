//! Broadcast binary ops, activations and scale.

use wasmpod_tensor::{BinaryOp, DType, Device, UnaryOp};

use crate::assert_err;
use crate::support::*;

const OPS: [BinaryOp; 4] = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div];

/// Shape pairs covering every broadcasting pattern.
pub const SHAPE_PAIRS: [(&[usize], &[usize]); 14] = [
    (&[3, 4], &[3, 4]),          // same shape
    (&[3, 4], &[]),              // scalar rhs
    (&[], &[3, 4]),              // scalar lhs
    (&[3, 4], &[1]),             // one-element rhs
    (&[3, 4], &[4]),             // row (bias)
    (&[4], &[3, 4]),             // row on the left
    (&[3, 4], &[3, 1]),          // column
    (&[3, 1], &[1, 4]),          // outer product
    (&[2, 1, 4], &[3, 1]),       // batch broadcast both ways
    (&[2, 3, 4], &[3, 4]),       // rank mismatch
    (&[2, 1, 3, 2], &[4, 1, 1]), // rank 4
    (&[], &[]),                  // scalars
    (&[0, 3], &[3]),             // empty
    (&[2, 0, 1], &[1, 5]),       // empty after broadcasting
];

fn apply(op: BinaryOp, x: f64, y: f64) -> f64 {
    match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
    }
}

/// Reference broadcast of `f` over two operands.
pub fn reference(
    a: &[f64],
    sa: &[usize],
    b: &[f64],
    sb: &[usize],
    f: impl Fn(f64, f64) -> f64,
) -> (Vec<usize>, Vec<f64>) {
    let shape = broadcast_shape(sa, sb);
    let out = (0..numel(&shape))
        .map(|i| {
            let idx = unravel(i, &shape);
            f(a[broadcast_index(&idx, sa)], b[broadcast_index(&idx, sb)])
        })
        .collect();
    (shape, out)
}

/// Divisors away from 0: magnitude in [0.5, 2), either sign.
fn divisors(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let v = 0.5 + (rng.unit() + 1.0) * 0.75;
            if rng.unit() < 0.0 { -v } else { v }
        })
        .collect()
}

fn float_case(dev: &Device, rng: &mut Rng, op: BinaryOp, dtype: DType, sa: &[usize], sb: &[usize]) {
    let (a, av) = random(dev, rng, dtype, sa, 3.0);
    let (b, bv) = if op == BinaryOp::Div {
        let t = upload(dev, dtype, sb, &divisors(rng, numel(sb)));
        let v = read(dev, &t);
        (t, v)
    } else {
        random(dev, rng, dtype, sb, 3.0)
    };
    let (shape, want) = reference(&av, sa, &bv, sb, |x, y| apply(op, x, y));
    let got = dev.binary(op, &a, &b).unwrap();
    let scale = if op == BinaryOp::Add || op == BinaryOp::Sub {
        3.0
    } else {
        0.0
    };
    check(
        dev,
        &format!("{op:?} {sa:?} {sb:?}"),
        &got,
        dtype,
        &shape,
        &want,
        scale,
    );
}

pub fn binary_float_broadcasting(dev: &Device) {
    let mut rng = Rng::new(20);
    for dtype in FLOATS {
        for op in OPS {
            for (sa, sb) in SHAPE_PAIRS {
                float_case(dev, &mut rng, op, dtype, sa, sb);
            }
        }
    }
}

pub fn binary_integers(dev: &Device) {
    let mut rng = Rng::new(21);
    for dtype in INTS {
        for op in OPS {
            for (sa, sb) in SHAPE_PAIRS {
                let av = rng.values(dtype, numel(sa), 0.0);
                let bv: Vec<f64> = match (op, dtype) {
                    (BinaryOp::Div, DType::U8) => rng
                        .ints(numel(sb), 1, 20)
                        .into_iter()
                        .map(|v| v as f64)
                        .collect(),
                    (BinaryOp::Div, _) => rng
                        .ints(numel(sb), 1, 20)
                        .into_iter()
                        .map(|v| if v % 2 == 0 { v as f64 } else { -v as f64 })
                        .collect(),
                    _ => rng.values(dtype, numel(sb), 0.0),
                };
                let (a, b) = (upload(dev, dtype, sa, &av), upload(dev, dtype, sb, &bv));
                let (shape, want) = reference(&av, sa, &bv, sb, |x, y| {
                    let (x, y) = (x as i64, y as i64);
                    let v = match op {
                        BinaryOp::Add => x.wrapping_add(y),
                        BinaryOp::Sub => x.wrapping_sub(y),
                        BinaryOp::Mul => x.wrapping_mul(y),
                        BinaryOp::Div => x / y,
                    };
                    wrap(dtype, v)
                });
                let got = dev.binary(op, &a, &b).unwrap();
                check(
                    dev,
                    &format!("{op:?} {sa:?} {sb:?}"),
                    &got,
                    dtype,
                    &shape,
                    &want,
                    0.0,
                );
            }
        }
    }
    // Narrow integers wrap like the C cast of the exact result.
    let a = upload(dev, DType::U8, &[2], &[250.0, 3.0]);
    let b = upload(dev, DType::U8, &[2], &[10.0, 5.0]);
    assert_eq!(read(dev, &dev.add(&a, &b).unwrap()), vec![4.0, 8.0]);
    assert_eq!(read(dev, &dev.sub(&b, &a).unwrap()), vec![16.0, 2.0]);
    let big = dev.upload_i64(&[1], &[i64::MAX]).unwrap();
    let one = dev.upload_i64(&[1], &[1]).unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.add(&big, &one).unwrap()).unwrap(),
        vec![i64::MIN]
    );
    let x = upload(dev, DType::I32, &[1], &[2147483647.0]);
    let y = upload(dev, DType::I32, &[1], &[2.0]);
    assert_eq!(dev.to_i64_vec(&dev.mul(&x, &y).unwrap()).unwrap(), vec![-2]);
}

pub fn binary_large_fast_paths(dev: &Device) {
    // Past the parallel threshold, through each fast path and the general
    // walk.
    let mut rng = Rng::new(22);
    for (sa, sb) in [
        (&[300, 257][..], &[300, 257][..]),
        (&[300, 257], &[257]),
        (&[257], &[300, 257]),
        (&[300, 257], &[]),
        (&[], &[300, 257]),
        (&[300, 257], &[300, 1]),
        (&[4, 75, 257], &[4, 1, 257]),
        (&[2, 3, 100, 64], &[100, 64]),
    ] {
        float_case(dev, &mut rng, BinaryOp::Mul, DType::F32, sa, sb);
        float_case(dev, &mut rng, BinaryOp::Sub, DType::BF16, sa, sb);
    }
    let a = rng.ints(300 * 257, -1000, 1000);
    let b = rng.ints(257, -1000, 1000);
    let at = dev.upload_i64(&[300, 257], &a).unwrap();
    let bt = dev.upload_i64(&[257], &b).unwrap();
    let got = dev.to_i64_vec(&dev.mul(&at, &bt).unwrap()).unwrap();
    let want: Vec<i64> = a.iter().enumerate().map(|(i, x)| x * b[i % 257]).collect();
    assert_eq!(got, want);
}

pub fn integer_division(dev: &Device) {
    // Truncation toward zero (C semantics), not floor.
    let a = upload(dev, DType::I32, &[4], &[7.0, -7.0, 7.0, -7.0]);
    let b = upload(dev, DType::I32, &[4], &[2.0, 2.0, -2.0, -2.0]);
    assert_eq!(
        dev.to_i64_vec(&dev.div(&a, &b).unwrap()).unwrap(),
        vec![3, -3, -3, 3]
    );
    let min = dev.upload_i64(&[1], &[i64::MIN]).unwrap();
    let neg = dev.upload_i64(&[1], &[-1]).unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.div(&min, &neg).unwrap()).unwrap(),
        vec![i64::MIN]
    );
    for dtype in INTS {
        let x = upload(dev, dtype, &[3], &[1.0, 2.0, 3.0]);
        let z = upload(dev, dtype, &[3], &[1.0, 0.0, 1.0]);
        assert_err!(dev.div(&x, &z), InvalidArgument);
        let zero = upload(dev, dtype, &[], &[0.0]);
        assert_err!(dev.div(&x, &zero), InvalidArgument);
    }
    // Float division by zero is IEEE.
    let f = dev.upload_f32(&[3], &[1.0, -1.0, 0.0]).unwrap();
    let z = dev.upload_f32(&[], &[0.0]).unwrap();
    let q = dev.to_f32_vec(&dev.div(&f, &z).unwrap()).unwrap();
    assert_eq!(q[..2], [f32::INFINITY, f32::NEG_INFINITY]);
    assert!(q[2].is_nan());
}

pub fn binary_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    let b = dev.zeros(DType::F32, &[2]).unwrap();
    let msg = assert_err!(dev.add(&a, &b), ShapeMismatch);
    assert!(msg.contains("[2, 3]") && msg.contains("[2]"), "{msg}");
    let c = dev.zeros(DType::F32, &[4, 2, 3]).unwrap();
    let d = dev.zeros(DType::F32, &[3, 3]).unwrap();
    assert_err!(dev.mul(&c, &d), ShapeMismatch);
    let e = dev.zeros(DType::F32, &[0]).unwrap();
    assert_err!(dev.sub(&e, &b), ShapeMismatch);
    for (x, y) in [
        (DType::F32, DType::F16),
        (DType::I32, DType::I64),
        (DType::U8, DType::F32),
        (DType::BF16, DType::F16),
    ] {
        let p = dev.zeros(x, &[2]).unwrap();
        let q = dev.zeros(y, &[2]).unwrap();
        for op in OPS {
            let msg = assert_err!(dev.binary(op, &p, &q), DTypeMismatch);
            assert!(msg.contains(x.name()) && msg.contains(y.name()), "{msg}");
        }
    }
}

fn activation_ref(op: UnaryOp, x: f64) -> f64 {
    match op {
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
        UnaryOp::Silu => x / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
    }
}

const ACTIVATIONS: [UnaryOp; 4] = [UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Silu, UnaryOp::Tanh];

pub fn activations(dev: &Device) {
    let mut rng = Rng::new(23);
    for dtype in FLOATS {
        for op in ACTIVATIONS {
            for shape in [&[][..], &[0], &[7], &[3, 5], &[2, 3, 2, 2], &[200, 300]] {
                let (a, av) = random(dev, &mut rng, dtype, shape, 5.0);
                let want: Vec<f64> = av.iter().map(|&x| activation_ref(op, x)).collect();
                let got = dev.unary(op, &a).unwrap();
                check(
                    dev,
                    &format!("{op:?} {shape:?}"),
                    &got,
                    dtype,
                    shape,
                    &want,
                    1e-2,
                );
            }
        }
    }
}

pub fn activation_edge_values(dev: &Device) {
    let xs = [-100.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 100.0];
    let a = dev.upload_f32(&[7], &xs.map(|v| v as f32)).unwrap();
    for op in ACTIVATIONS {
        let got = read(dev, &dev.unary(op, &a).unwrap());
        let want: Vec<f64> = xs.iter().map(|&x| activation_ref(op, x)).collect();
        assert_close(&format!("{op:?} edges"), DType::F32, &got, &want, 1e-6);
        assert!(got.iter().all(|v| v.is_finite()), "{op:?}: {got:?}");
    }
}

pub fn scale_every_float_dtype(dev: &Device) {
    let mut rng = Rng::new(24);
    for dtype in FLOATS {
        for shape in [&[][..], &[0, 2], &[5], &[4, 6], &[300, 200]] {
            let (a, av) = random(dev, &mut rng, dtype, shape, 4.0);
            for (factor, offset) in [(1.0, 0.0), (0.125, 1.0), (-3.0, -0.5), (0.0, 2.0)] {
                let want: Vec<f64> = av.iter().map(|&x| x * factor + offset).collect();
                let got = dev.scale(&a, factor as f32, offset as f32).unwrap();
                check(
                    dev,
                    &format!("scale {shape:?}"),
                    &got,
                    dtype,
                    shape,
                    &want,
                    1.0,
                );
            }
        }
    }
}

pub fn float_only_ops_reject_integers(dev: &Device) {
    for dtype in INTS {
        let t = dev.zeros(dtype, &[2, 3]).unwrap();
        for op in ACTIVATIONS {
            let msg = assert_err!(dev.unary(op, &t), DTypeMismatch);
            assert!(msg.contains(dtype.name()), "{msg}");
        }
        assert_err!(dev.scale(&t, 2.0, 0.0), DTypeMismatch);
        assert_err!(dev.softmax(&t, -1), DTypeMismatch);
        assert_err!(dev.layer_norm(&t, None, None, 1e-5), DTypeMismatch);
        assert_err!(dev.rms_norm(&t, None, 1e-5), DTypeMismatch);
        assert_err!(dev.mean(&t, 0, false), DTypeMismatch);
    }
}
