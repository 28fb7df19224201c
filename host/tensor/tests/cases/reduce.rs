//! Sum, mean, max, argmax and top-k.

use wasmpod_tensor::{DType, Device, ReduceOp};

use crate::assert_err;
use crate::support::*;

/// Reference reduction of `axis`, returning the kept-dim shape.
fn reduce_ref(op: ReduceOp, x: &[f64], shape: &[usize], axis: usize) -> (Vec<usize>, Vec<f64>) {
    let mut out_shape = shape.to_vec();
    out_shape[axis] = 1;
    let values = (0..numel(&out_shape))
        .map(|i| {
            let mut idx = unravel(i, &out_shape);
            let lane: Vec<f64> = (0..shape[axis])
                .map(|j| {
                    idx[axis] = j;
                    x[ravel(&idx, shape)]
                })
                .collect();
            match op {
                ReduceOp::Sum => lane.iter().sum(),
                ReduceOp::Mean => lane.iter().sum::<f64>() / lane.len() as f64,
                ReduceOp::Max => lane.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            }
        })
        .collect();
    (out_shape, values)
}

fn dropped(shape: &[usize], axis: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s.remove(axis);
    s
}

const OPS: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max];

pub fn reductions_every_axis(dev: &Device) {
    let mut rng = Rng::new(50);
    for dtype in FLOATS {
        for shape in [&[6][..], &[3, 4], &[2, 3, 4], &[2, 1, 3, 2], &[0, 3]] {
            let (a, av) = random(dev, &mut rng, dtype, shape, 2.0);
            let rank = shape.len() as i32;
            for op in OPS {
                for axis in -rank..rank {
                    let abs = axis.rem_euclid(rank) as usize;
                    if shape[abs] == 0 && op != ReduceOp::Sum {
                        continue; // an error, see reductions_empty_axes
                    }
                    let (kept, want) = reduce_ref(op, &av, shape, abs);
                    let what = format!("{op:?} {shape:?} axis {axis}");
                    let scale = 2.0 * (shape[abs] as f64).sqrt();
                    let got = dev.reduce(op, &a, axis, true).unwrap();
                    check(dev, &what, &got, dtype, &kept, &want, scale);
                    let got = dev.reduce(op, &a, axis, false).unwrap();
                    check(dev, &what, &got, dtype, &dropped(shape, abs), &want, scale);
                }
            }
        }
    }
}

pub fn reductions_integers(dev: &Device) {
    let mut rng = Rng::new(51);
    for dtype in INTS {
        let shape = [3, 4, 5];
        let (a, av) = random(dev, &mut rng, dtype, &shape, 0.0);
        for op in [ReduceOp::Sum, ReduceOp::Max] {
            for axis in -3..3i32 {
                let abs = axis.rem_euclid(3) as usize;
                let (kept, want) = reduce_ref(op, &av, &shape, abs);
                let want: Vec<f64> = want.iter().map(|&v| wrap(dtype, v as i64)).collect();
                let got = dev.reduce(op, &a, axis, true).unwrap();
                check(
                    dev,
                    &format!("{op:?} {dtype} axis {axis}"),
                    &got,
                    dtype,
                    &kept,
                    &want,
                    0.0,
                );
            }
        }
    }
    // u8 sums wrap, i64 sums are exact.
    let a = upload(dev, DType::U8, &[3], &[200.0, 100.0, 1.0]);
    assert_eq!(read(dev, &dev.sum(&a, 0, false).unwrap()), vec![45.0]);
    let b = dev.upload_i64(&[2], &[1 << 60, 3]).unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.sum(&b, 0, false).unwrap()).unwrap(),
        vec![(1 << 60) + 3]
    );
    assert_eq!(
        dev.to_i64_vec(&dev.max(&b, -1, true).unwrap()).unwrap(),
        vec![1 << 60]
    );
}

pub fn reductions_large_rows(dev: &Device) {
    let mut rng = Rng::new(52);
    for shape in [&[100, 1000][..], &[50, 40, 30]] {
        let (a, av) = random(dev, &mut rng, DType::F32, shape, 1.0);
        for op in OPS {
            for axis in 0..shape.len() {
                let (kept, want) = reduce_ref(op, &av, shape, axis);
                let got = dev.reduce(op, &a, axis as i32, true).unwrap();
                let scale = (shape[axis] as f64).sqrt();
                check(
                    dev,
                    &format!("large {op:?} {shape:?} {axis}"),
                    &got,
                    DType::F32,
                    &kept,
                    &want,
                    scale,
                );
            }
        }
    }
}

pub fn reductions_empty_axes(dev: &Device) {
    for dtype in ALL {
        let e = dev.zeros(dtype, &[2, 0]).unwrap();
        let s = dev.sum(&e, 1, false).unwrap();
        check(dev, "sum of nothing", &s, dtype, &[2], &[0.0, 0.0], 0.0);
        let s = dev.sum(&e, 0, true).unwrap();
        assert_eq!(s.shape(), &[1, 0]);
        assert_err!(dev.max(&e, 1, false), InvalidArgument);
        assert_eq!(dev.max(&e, 0, false).unwrap().shape(), &[0]);
        assert_err!(dev.argmax(&e, 1), InvalidArgument);
    }
    let f = dev.zeros(DType::F32, &[2, 0]).unwrap();
    assert_err!(dev.mean(&f, -1, false), InvalidArgument);
    // NaN propagates through max.
    let n = dev.upload_f32(&[3], &[1.0, f32::NAN, 2.0]).unwrap();
    assert!(dev.to_f32_vec(&dev.max(&n, 0, false).unwrap()).unwrap()[0].is_nan());
}

pub fn reduce_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    for op in OPS {
        for axis in [2, -3] {
            let msg = assert_err!(dev.reduce(op, &a, axis, false), InvalidArgument);
            assert!(msg.contains("rank 2"), "{msg}");
        }
        let s = dev.zeros(DType::F32, &[]).unwrap();
        assert_err!(dev.reduce(op, &s, 0, false), InvalidArgument);
    }
    for dtype in INTS {
        let i = dev.zeros(dtype, &[2]).unwrap();
        assert_err!(dev.mean(&i, 0, false), DTypeMismatch);
    }
}

fn argmax_ref(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let mut out_shape = shape.to_vec();
    out_shape[axis] = 1;
    (0..numel(&out_shape))
        .map(|i| {
            let mut idx = unravel(i, &out_shape);
            let mut best = 0;
            let mut best_v = f64::NEG_INFINITY;
            for j in 0..shape[axis] {
                idx[axis] = j;
                let v = x[ravel(&idx, shape)];
                if j == 0 || v > best_v {
                    best = j;
                    best_v = v;
                }
            }
            best as f64
        })
        .collect()
}

pub fn argmax_every_axis(dev: &Device) {
    let mut rng = Rng::new(53);
    for dtype in ALL {
        for shape in [&[7][..], &[3, 4], &[2, 3, 4], &[100, 700], &[0, 3]] {
            let (a, av) = random(dev, &mut rng, dtype, shape, 4.0);
            let rank = shape.len() as i32;
            for axis in -rank..rank {
                let abs = axis.rem_euclid(rank) as usize;
                if shape[abs] == 0 {
                    continue;
                }
                let want = argmax_ref(&av, shape, abs);
                let got = dev.argmax(&a, axis).unwrap();
                check(
                    dev,
                    &format!("argmax {dtype} {shape:?} axis {axis}"),
                    &got,
                    DType::I64,
                    &dropped(shape, abs),
                    &want,
                    0.0,
                );
            }
        }
    }
    // Ties report the first maximum.
    let t = dev
        .upload_f32(&[2, 3], &[1.0, 5.0, 5.0, 2.0, 2.0, 2.0])
        .unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.argmax(&t, 1).unwrap()).unwrap(),
        vec![1, 0]
    );
    let s = dev.upload_i64(&[1], &[4]).unwrap();
    let r = dev.argmax(&s, 0).unwrap();
    assert_eq!(
        (r.shape(), dev.to_i64_vec(&r).unwrap()),
        (&[] as &[usize], vec![0])
    );
}

pub fn argmax_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    assert_err!(dev.argmax(&a, 2), InvalidArgument);
    assert_err!(dev.argmax(&a, -3), InvalidArgument);
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.argmax(&s, 0), InvalidArgument);
    assert_err!(dev.argmax(&s, -1), InvalidArgument);
}

/// Reference top-k: stable sort descending (ties keep the lower index).
fn top_k_ref(x: &[f64], d: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut values, mut indices) = (Vec::new(), Vec::new());
    let rows = x.len().checked_div(d).unwrap_or(0);
    for row in x.chunks(d.max(1)).take(rows) {
        let mut idx: Vec<usize> = (0..d).collect();
        idx.sort_by(|&p, &q| row[q].partial_cmp(&row[p]).unwrap());
        for &i in &idx[..k] {
            values.push(row[i]);
            indices.push(i as f64);
        }
    }
    (values, indices)
}

pub fn top_k_rows(dev: &Device) {
    let mut rng = Rng::new(54);
    for dtype in ALL {
        for shape in [&[9][..], &[3, 8], &[2, 2, 5], &[40, 1000], &[0, 4]] {
            let (a, av) = random(dev, &mut rng, dtype, shape, 4.0);
            let d = *shape.last().unwrap();
            for k in [0, 1, 3, d] {
                if k > d {
                    continue;
                }
                let (want_v, want_i) = top_k_ref(&av, d, k);
                let mut out_shape = shape.to_vec();
                *out_shape.last_mut().unwrap() = k;
                let (values, indices) = dev.top_k(&a, k).unwrap();
                let what = format!("top-{k} {dtype} {shape:?}");
                check(dev, &what, &values, dtype, &out_shape, &want_v, 0.0);
                check(dev, &what, &indices, DType::I64, &out_shape, &want_i, 0.0);
            }
        }
    }
    let t = dev
        .upload_f32(&[6], &[1.0, 3.0, 3.0, -1.0, 3.0, 2.0])
        .unwrap();
    let (v, i) = dev.top_k(&t, 4).unwrap();
    assert_eq!(dev.to_f32_vec(&v).unwrap(), vec![3.0, 3.0, 3.0, 2.0]);
    assert_eq!(dev.to_i64_vec(&i).unwrap(), vec![1, 2, 4, 5]);
}

pub fn top_k_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    let msg = assert_err!(dev.top_k(&a, 4), InvalidArgument);
    assert!(msg.contains('4') && msg.contains("[2, 3]"), "{msg}");
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.top_k(&s, 1), ShapeMismatch);
    assert_err!(dev.top_k(&s, 0), ShapeMismatch);
}
