//! The elementwise long tail: math functions, clamp, pow/minimum/maximum,
//! comparisons, where, cumsum, arange/linspace and seeded random tensors.

use wasmpod_tensor::math::{CompareOp, Distribution, MathOp, PairOp, philox};
use wasmpod_tensor::{DType, Device};

use crate::assert_err;
use crate::support::*;

const FLOAT_OPS: [MathOp; 9] = [
    MathOp::Exp,
    MathOp::Log,
    MathOp::Sqrt,
    MathOp::Rsqrt,
    MathOp::Abs,
    MathOp::Neg,
    MathOp::Sigmoid,
    MathOp::Sin,
    MathOp::Cos,
];

fn math_ref(op: MathOp, v: f64) -> f64 {
    match op {
        MathOp::Exp => v.exp(),
        MathOp::Log => v.ln(),
        MathOp::Sqrt => v.sqrt(),
        MathOp::Rsqrt => 1.0 / v.sqrt(),
        MathOp::Abs => v.abs(),
        MathOp::Neg => -v,
        MathOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        MathOp::Sin => v.sin(),
        MathOp::Cos => v.cos(),
    }
}

pub fn math_functions(dev: &Device) {
    let mut rng = Rng::new(180);
    for dtype in FLOATS {
        for op in FLOAT_OPS {
            // log/sqrt/rsqrt take positive inputs here; NaN cases below.
            let positive = matches!(op, MathOp::Log | MathOp::Sqrt | MathOp::Rsqrt);
            let raw = rng.values(dtype, 2 * 300, 3.0);
            let vals: Vec<f64> = raw
                .iter()
                .map(|v| if positive { v.abs() + 0.05 } else { *v })
                .collect();
            let x = upload(dev, dtype, &[2, 300], &vals);
            let stored = read(dev, &x);
            let want: Vec<f64> = stored.iter().map(|&v| math_ref(op, v)).collect();
            let got = dev.math(op, &x).unwrap();
            check(
                dev,
                &format!("{} {dtype}", op.name()),
                &got,
                dtype,
                &[2, 300],
                &want,
                1e-3,
            );
        }
    }
    let edge = dev
        .upload_f32(&[4], &[0.0, -1.0, f32::INFINITY, f32::NAN])
        .unwrap();
    let log = dev.to_f32_vec(&dev.log(&edge).unwrap()).unwrap();
    assert_eq!(log[0], f32::NEG_INFINITY);
    assert!(log[1].is_nan() && log[3].is_nan());
    assert_eq!(log[2], f32::INFINITY);
    let rs = dev.to_f32_vec(&dev.rsqrt(&edge).unwrap()).unwrap();
    assert_eq!((rs[0], rs[2]), (f32::INFINITY, 0.0));
    let sg = dev
        .to_f32_vec(
            &dev.sigmoid(&dev.upload_f32(&[2], &[-200.0, 200.0]).unwrap())
                .unwrap(),
        )
        .unwrap();
    assert_eq!(sg, vec![0.0, 1.0]);
    // abs and neg of integers wrap.
    for dtype in INTS {
        let vals: Vec<f64> = if dtype == DType::U8 {
            vec![0.0, 1.0, 200.0]
        } else {
            vec![-5.0, 0.0, 7.0]
        };
        let x = upload(dev, dtype, &[3], &vals);
        let abs: Vec<f64> = vals
            .iter()
            .map(|&v| wrap(dtype, (v as i64).wrapping_abs()))
            .collect();
        let neg: Vec<f64> = vals
            .iter()
            .map(|&v| wrap(dtype, (v as i64).wrapping_neg()))
            .collect();
        check(
            dev,
            &format!("abs {dtype}"),
            &dev.math(MathOp::Abs, &x).unwrap(),
            dtype,
            &[3],
            &abs,
            0.0,
        );
        check(
            dev,
            &format!("neg {dtype}"),
            &dev.math(MathOp::Neg, &x).unwrap(),
            dtype,
            &[3],
            &neg,
            0.0,
        );
        assert_err!(dev.exp(&x), DTypeMismatch);
    }
    let min = dev
        .upload(DType::I32, &[1], &i32::MIN.to_le_bytes())
        .unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.math(MathOp::Abs, &min).unwrap())
            .unwrap(),
        vec![i32::MIN as i64]
    );
}

pub fn clamp_every_dtype(dev: &Device) {
    let mut rng = Rng::new(181);
    for dtype in ALL {
        let (x, xv) = random(dev, &mut rng, dtype, &[5, 7], 3.0);
        for (lo, hi) in [
            (Some(-1.5f32), Some(2.5f32)),
            (None, Some(0.0)),
            (Some(10.0), None),
            (None, None),
        ] {
            let want: Vec<f64> = xv
                .iter()
                .map(|&v| {
                    let (l, h) = if dtype.is_int() {
                        (
                            lo.map_or(f64::MIN, |l| (l as f64).ceil()),
                            hi.map_or(f64::MAX, |h| (h as f64).floor()),
                        )
                    } else {
                        (
                            lo.map_or(f64::NEG_INFINITY, f64::from),
                            hi.map_or(f64::INFINITY, f64::from),
                        )
                    };
                    v.max(l).min(h)
                })
                .collect();
            let got = dev.clamp(&x, lo, hi).unwrap();
            check(
                dev,
                &format!("clamp {dtype} {lo:?}..{hi:?}"),
                &got,
                dtype,
                &[5, 7],
                &want,
                0.0,
            );
        }
    }
    let nan = dev.upload_f32(&[2], &[f32::NAN, 5.0]).unwrap();
    assert!(
        dev.to_f32_vec(&dev.clamp(&nan, Some(0.0), Some(1.0)).unwrap())
            .unwrap()[0]
            .is_nan()
    );
    assert_err!(dev.clamp(&nan, Some(2.0), Some(1.0)), InvalidArgument);
    assert_err!(dev.clamp(&nan, Some(f32::NAN), None), InvalidArgument);
}

pub fn pow_minimum_maximum_broadcast(dev: &Device) {
    let mut rng = Rng::new(182);
    let pairs: [(&[usize], &[usize]); 4] = [
        (&[3, 4], &[3, 4]),
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[], &[5]),
    ];
    for dtype in ALL {
        for (sa, sb) in pairs {
            let (a, av) = random(dev, &mut rng, dtype, sa, 2.0);
            let (b, bv) = random(dev, &mut rng, dtype, sb, 2.0);
            let out = broadcast_shape(sa, sb);
            let at = |v: &[f64], s: &[usize], i: usize| v[broadcast_index(&unravel(i, &out), s)];
            for op in [PairOp::Minimum, PairOp::Maximum, PairOp::Pow] {
                if op == PairOp::Pow && dtype.is_int() {
                    assert_err!(dev.pair(op, &a, &b), DTypeMismatch);
                    continue;
                }
                let want: Vec<f64> = (0..numel(&out))
                    .map(|i| {
                        let (x, y) = (at(&av, sa, i), at(&bv, sb, i));
                        match op {
                            PairOp::Pow => x.abs().powf(y),
                            PairOp::Minimum => x.min(y),
                            PairOp::Maximum => x.max(y),
                        }
                    })
                    .collect();
                let lhs = if op == PairOp::Pow {
                    upload(
                        dev,
                        dtype,
                        sa,
                        &av.iter().map(|v| v.abs()).collect::<Vec<_>>(),
                    )
                } else {
                    a.clone()
                };
                let got = dev.pair(op, &lhs, &b).unwrap();
                check(
                    dev,
                    &format!("{} {dtype} {sa:?},{sb:?}", op.name()),
                    &got,
                    dtype,
                    &out,
                    &want,
                    1.0,
                );
            }
        }
    }
    let x = dev.upload_f32(&[2], &[f32::NAN, 1.0]).unwrap();
    let y = dev.upload_f32(&[2], &[0.0, f32::NAN]).unwrap();
    assert!(
        dev.to_f32_vec(&dev.maximum(&x, &y).unwrap())
            .unwrap()
            .iter()
            .all(|v| v.is_nan())
    );
    assert_err!(
        dev.minimum(&x, &dev.zeros(DType::F16, &[2]).unwrap()),
        DTypeMismatch
    );
    assert_err!(
        dev.minimum(&x, &dev.zeros(DType::F32, &[3]).unwrap()),
        ShapeMismatch
    );
}

pub fn comparisons_and_where(dev: &Device) {
    let mut rng = Rng::new(183);
    let ops = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Lt,
        CompareOp::Le,
        CompareOp::Gt,
        CompareOp::Ge,
    ];
    for dtype in ALL {
        // Few distinct values, so equality happens.
        let av: Vec<f64> = rng.ints(24, 0, 4).into_iter().map(|v| v as f64).collect();
        let bv: Vec<f64> = rng.ints(4, 0, 4).into_iter().map(|v| v as f64).collect();
        let a = upload(dev, dtype, &[2, 3, 4], &av);
        let b = upload(dev, dtype, &[4], &bv);
        for op in ops {
            let want: Vec<f64> = (0..24)
                .map(|i| op.holds(av[i], bv[i % 4]) as u8 as f64)
                .collect();
            let got = dev.compare(op, &a, &b).unwrap();
            check(
                dev,
                &format!("{} {dtype}", op.name()),
                &got,
                DType::U8,
                &[2, 3, 4],
                &want,
                0.0,
            );
        }
        // where(cond [2, 1, 4], a [2, 3, 4], b []) in this dtype.
        let cond_v: Vec<f64> = rng.ints(8, 0, 2).into_iter().map(|v| v as f64).collect();
        for cdt in [DType::U8, DType::F32, DType::I64] {
            let cond = upload(dev, cdt, &[2, 1, 4], &cond_v);
            let other = upload(dev, dtype, &[], &[3.0]);
            let got = dev.select(&cond, &a, &other).unwrap();
            let want: Vec<f64> = (0..24)
                .map(|i| {
                    let (n, k) = (i / 12, i % 4);
                    if cond_v[n * 4 + k] != 0.0 { av[i] } else { 3.0 }
                })
                .collect();
            check(
                dev,
                &format!("where {cdt} ? {dtype}"),
                &got,
                dtype,
                &[2, 3, 4],
                &want,
                0.0,
            );
        }
    }
    let nan = dev.upload_f32(&[2], &[f32::NAN, 1.0]).unwrap();
    assert_eq!(
        dev.download(&dev.compare(CompareOp::Eq, &nan, &nan).unwrap())
            .unwrap(),
        vec![0, 1]
    );
    assert_eq!(
        dev.download(&dev.compare(CompareOp::Ne, &nan, &nan).unwrap())
            .unwrap(),
        vec![1, 0]
    );
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    assert_err!(
        dev.compare(CompareOp::Lt, &a, &dev.zeros(DType::I32, &[2, 3]).unwrap()),
        DTypeMismatch
    );
    assert_err!(
        dev.select(&dev.zeros(DType::U8, &[4]).unwrap(), &a, &a),
        ShapeMismatch
    );
    assert_err!(
        dev.select(
            &dev.zeros(DType::U8, &[3]).unwrap(),
            &a,
            &dev.zeros(DType::F16, &[3]).unwrap()
        ),
        DTypeMismatch
    );
    // A deep broadcast that the GPU splits into several launches.
    let c = upload(
        dev,
        DType::U8,
        &[2, 1, 2, 1, 2, 1, 2, 1, 2, 1],
        &[1.0, 0.0].repeat(16),
    );
    let x = upload(
        dev,
        DType::F32,
        &[1, 2, 1, 2, 1, 2, 1, 2, 1, 2],
        &(0..32).map(f64::from).collect::<Vec<_>>(),
    );
    let y = upload(dev, DType::F32, &[1], &[-1.0]);
    let got = read(dev, &dev.select(&c, &x, &y).unwrap());
    let out = [2usize; 10];
    let want: Vec<f64> = (0..1024)
        .map(|i| {
            let idx = unravel(i, &out);
            let ci = broadcast_index(&idx, &[2, 1, 2, 1, 2, 1, 2, 1, 2, 1]);
            let xi = broadcast_index(&idx, &[1, 2, 1, 2, 1, 2, 1, 2, 1, 2]);
            if ci.is_multiple_of(2) {
                xi as f64
            } else {
                -1.0
            }
        })
        .collect();
    assert_eq!(got, want, "where over ten broadcast axes");
}

pub fn cumsum_every_axis(dev: &Device) {
    let mut rng = Rng::new(184);
    for dtype in ALL {
        let shape = [3, 4, 5];
        let (x, xv) = random(dev, &mut rng, dtype, &shape, 2.0);
        for axis in -3i32..3 {
            let ax = axis.rem_euclid(3) as usize;
            let mut want = vec![0.0; xv.len()];
            for (i, w) in want.iter_mut().enumerate() {
                let mut idx = unravel(i, &shape);
                let upto = idx[ax];
                let mut s = 0i64;
                let mut f = 0.0;
                for j in 0..=upto {
                    idx[ax] = j;
                    let v = xv[ravel(&idx, &shape)];
                    s = s.wrapping_add(v as i64);
                    f += v;
                }
                *w = if dtype.is_int() { wrap(dtype, s) } else { f };
            }
            let got = dev.cumsum(&x, axis).unwrap();
            check(
                dev,
                &format!("cumsum {dtype} axis {axis}"),
                &got,
                dtype,
                &shape,
                &want,
                10.0,
            );
        }
        assert_err!(dev.cumsum(&x, 3), InvalidArgument);
    }
}

pub fn ranges(dev: &Device) {
    for dtype in ALL {
        let a = dev.arange(dtype, 0.0, 5.0, 1.0).unwrap();
        check(
            dev,
            &format!("arange {dtype}"),
            &a,
            dtype,
            &[5],
            &[0.0, 1.0, 2.0, 3.0, 4.0],
            0.0,
        );
        let l = dev.linspace(dtype, 0.0, 8.0, 5).unwrap();
        check(
            dev,
            &format!("linspace {dtype}"),
            &l,
            dtype,
            &[5],
            &[0.0, 2.0, 4.0, 6.0, 8.0],
            0.0,
        );
    }
    let a = dev.arange(DType::F32, 1.0, -1.0, -0.5).unwrap();
    assert_eq!(dev.to_f32_vec(&a).unwrap(), vec![1.0, 0.5, 0.0, -0.5]);
    let l = dev
        .to_f32_vec(&dev.linspace(DType::F32, -1.0, 1.0, 7).unwrap())
        .unwrap();
    assert_eq!((l[0], l[6]), (-1.0, 1.0));
    assert!((l[1] + 2.0 / 3.0).abs() < 1e-7, "{l:?}");
    assert_eq!(dev.linspace(DType::F32, 3.0, 9.0, 1).unwrap().shape(), &[1]);
    assert_eq!(dev.arange(DType::I64, 0.0, 0.0, 1.0).unwrap().shape(), &[0]);
    assert_eq!(dev.linspace(DType::F32, 0.0, 1.0, 0).unwrap().shape(), &[0]);
    let big = dev.arange(DType::F32, 0.0, 70000.0, 1.0).unwrap();
    let v = dev.to_f32_vec(&big).unwrap();
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32));
    assert_err!(dev.arange(DType::F32, 0.0, 1.0, 0.0), InvalidArgument);
    assert_err!(
        dev.arange(DType::F32, 0.0, f64::INFINITY, 1.0),
        InvalidArgument
    );
    assert_err!(dev.arange(DType::F32, 0.0, 1e12, 1.0), InvalidArgument);
    assert_err!(dev.linspace(DType::F32, f64::NAN, 1.0, 3), InvalidArgument);
}

pub fn random_matches_philox(dev: &Device) {
    for dtype in FLOATS {
        for dist in [
            Distribution::Uniform {
                low: -2.0,
                high: 3.0,
            },
            Distribution::Normal {
                mean: 0.5,
                std: 2.0,
            },
        ] {
            for seed in [0u64, 42, u64::MAX] {
                let shape = [3, 1001];
                let t = dev.random(dtype, &shape, seed, dist).unwrap();
                // The reference, rounded to the dtype the way an upload rounds.
                let want: Vec<f64> = (0..3003)
                    .map(|i| philox::sample(seed, i, dist) as f64)
                    .collect();
                let want = read(dev, &upload(dev, dtype, &shape, &want));
                check(
                    dev,
                    &format!("random {dtype} {dist:?} seed {seed}"),
                    &t,
                    dtype,
                    &shape,
                    &want,
                    1e-6,
                );
            }
        }
    }
    let a = dev
        .random(
            DType::F32,
            &[64],
            1,
            Distribution::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )
        .unwrap();
    let b = dev
        .random(
            DType::F32,
            &[64],
            2,
            Distribution::Normal {
                mean: 0.0,
                std: 1.0,
            },
        )
        .unwrap();
    assert_ne!(dev.to_f32_vec(&a).unwrap(), dev.to_f32_vec(&b).unwrap());
    assert_err!(
        dev.random(
            DType::I32,
            &[4],
            0,
            Distribution::Uniform {
                low: 0.0,
                high: 1.0
            }
        ),
        DTypeMismatch
    );
    assert_err!(
        dev.random(
            DType::F32,
            &[4],
            0,
            Distribution::Uniform {
                low: 1.0,
                high: 0.0
            }
        ),
        InvalidArgument
    );
    assert_err!(
        dev.random(
            DType::F32,
            &[4],
            0,
            Distribution::Normal {
                mean: 0.0,
                std: -1.0
            }
        ),
        InvalidArgument
    );
    assert_err!(
        dev.random(
            DType::F32,
            &[1 << 20, 1 << 12],
            0,
            Distribution::Normal {
                mean: 0.0,
                std: 1.0
            }
        ),
        InvalidArgument
    );
}
