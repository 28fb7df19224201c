//! Softmax, layer norm and RMS norm.

use wasmpod_tensor::{DType, Device};

use crate::assert_err;
use crate::support::*;

/// Reference softmax along `axis` of `shape`.
fn softmax_ref(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    let len = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let outer: usize = shape[..axis].iter().product();
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| (o * len + j) * inner + i;
            let max = (0..len).map(|j| x[at(j)]).fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = (0..len).map(|j| (x[at(j)] - max).exp()).sum();
            for j in 0..len {
                out[at(j)] = (x[at(j)] - max).exp() / sum;
            }
        }
    }
    out
}

pub fn softmax_every_axis(dev: &Device) {
    let mut rng = Rng::new(30);
    for dtype in FLOATS {
        for shape in [
            &[5][..],
            &[3, 4],
            &[2, 3, 4],
            &[2, 1, 3, 5],
            &[0, 4],
            &[64, 1000],
        ] {
            let (a, av) = random(dev, &mut rng, dtype, shape, 4.0);
            let rank = shape.len() as i32;
            for axis in -rank..rank {
                let abs = axis.rem_euclid(rank) as usize;
                let want = softmax_ref(&av, shape, abs);
                let got = dev.softmax(&a, axis).unwrap();
                check(
                    dev,
                    &format!("softmax {shape:?} axis {axis}"),
                    &got,
                    dtype,
                    shape,
                    &want,
                    1e-3,
                );
            }
        }
    }
}

pub fn softmax_is_stable(dev: &Device) {
    let a = dev
        .upload_f32(
            &[2, 3],
            &[1000.0, 1001.0, 1002.0, -1000.0, -1000.0, -1000.0],
        )
        .unwrap();
    let got = read(dev, &dev.softmax(&a, -1).unwrap());
    let want = softmax_ref(
        &[1000.0, 1001.0, 1002.0, -1000.0, -1000.0, -1000.0],
        &[2, 3],
        1,
    );
    assert_close("softmax of large logits", DType::F32, &got, &want, 1e-6);
    // -inf logits (masked positions) get probability 0.
    let m = dev
        .upload_f32(&[3], &[0.0, f32::NEG_INFINITY, 0.0])
        .unwrap();
    assert_eq!(
        dev.to_f32_vec(&dev.softmax(&m, 0).unwrap()).unwrap(),
        vec![0.5, 0.0, 0.5]
    );
}

pub fn softmax_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    for axis in [2, -3, i32::MAX, i32::MIN] {
        let msg = assert_err!(dev.softmax(&a, axis), InvalidArgument);
        assert!(msg.contains(&axis.to_string()), "{msg}");
    }
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.softmax(&s, 0), InvalidArgument);
    let i = dev.zeros(DType::I64, &[2]).unwrap();
    assert_err!(dev.softmax(&i, 0), DTypeMismatch);
}

fn layer_norm_ref(x: &[f64], d: usize, w: Option<&[f64]>, b: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        for (j, v) in row.iter().enumerate() {
            let y = (v - mean) / (var + eps).sqrt();
            out.push(y * w.map_or(1.0, |w| w[j]) + b.map_or(0.0, |b| b[j]));
        }
    }
    out
}

fn rms_norm_ref(x: &[f64], d: usize, w: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / d as f64;
        for (j, v) in row.iter().enumerate() {
            out.push(v / (ms + eps).sqrt() * w.map_or(1.0, |w| w[j]));
        }
    }
    out
}

const NORM_SHAPES: [&[usize]; 6] = [
    &[8],
    &[4, 8],
    &[2, 3, 16],
    &[2, 1, 2, 5],
    &[0, 6],
    &[128, 768],
];

pub fn layer_norm_variants(dev: &Device) {
    let mut rng = Rng::new(31);
    for dtype in FLOATS {
        for shape in NORM_SHAPES {
            let d = *shape.last().unwrap();
            let (a, av) = random(dev, &mut rng, dtype, shape, 3.0);
            let (w, wv) = random(dev, &mut rng, dtype, &[d], 2.0);
            let (b, bv) = random(dev, &mut rng, dtype, &[d], 1.0);
            for eps in [1e-5f32, 0.0, 0.5] {
                for (wt, bt) in [
                    (None, None),
                    (Some(&w), None),
                    (None, Some(&b)),
                    (Some(&w), Some(&b)),
                ] {
                    let want = layer_norm_ref(
                        &av,
                        d,
                        wt.map(|_| wv.as_slice()),
                        bt.map(|_| bv.as_slice()),
                        eps as f64,
                    );
                    let got = dev.layer_norm(&a, wt, bt, eps).unwrap();
                    let what = format!(
                        "layer-norm {shape:?} eps {eps} w {} b {}",
                        wt.is_some(),
                        bt.is_some()
                    );
                    check(dev, &what, &got, dtype, shape, &want, 1e-2);
                }
            }
        }
    }
    // Rows with a large common offset keep their precision.
    let x: Vec<f32> = (0..64).map(|i| 10000.0 + (i % 8) as f32).collect();
    let a = dev.upload_f32(&[8, 8], &x).unwrap();
    let want = layer_norm_ref(
        &x.iter().map(|&v| v as f64).collect::<Vec<_>>(),
        8,
        None,
        None,
        1e-5,
    );
    assert_close(
        "layer-norm offset rows",
        DType::F32,
        &read(dev, &dev.layer_norm(&a, None, None, 1e-5).unwrap()),
        &want,
        1e-3,
    );
}

pub fn rms_norm_variants(dev: &Device) {
    let mut rng = Rng::new(32);
    for dtype in FLOATS {
        for shape in NORM_SHAPES {
            let d = *shape.last().unwrap();
            let (a, av) = random(dev, &mut rng, dtype, shape, 3.0);
            let (w, wv) = random(dev, &mut rng, dtype, &[d], 2.0);
            for eps in [1e-6f32, 0.25] {
                for wt in [None, Some(&w)] {
                    let want = rms_norm_ref(&av, d, wt.map(|_| wv.as_slice()), eps as f64);
                    let got = dev.rms_norm(&a, wt, eps).unwrap();
                    check(
                        dev,
                        &format!("rms-norm {shape:?} eps {eps}"),
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
}

pub fn norm_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 4]).unwrap();
    let w3 = dev.zeros(DType::F32, &[3]).unwrap();
    let w24 = dev.zeros(DType::F32, &[2, 4]).unwrap();
    let w16 = dev.zeros(DType::F16, &[4]).unwrap();
    let ok = dev.zeros(DType::F32, &[4]).unwrap();
    let msg = assert_err!(dev.layer_norm(&a, Some(&w3), None, 1e-5), ShapeMismatch);
    assert!(msg.contains("[3]") && msg.contains("[4]"), "{msg}");
    assert_err!(dev.layer_norm(&a, None, Some(&w3), 1e-5), ShapeMismatch);
    assert_err!(dev.layer_norm(&a, Some(&w24), None, 1e-5), ShapeMismatch);
    assert_err!(
        dev.layer_norm(&a, Some(&ok), Some(&w16), 1e-5),
        DTypeMismatch
    );
    assert_err!(dev.rms_norm(&a, Some(&w3), 1e-5), ShapeMismatch);
    assert_err!(dev.rms_norm(&a, Some(&w16), 1e-5), DTypeMismatch);
    for eps in [-1e-5, f32::NAN, f32::INFINITY] {
        assert_err!(dev.layer_norm(&a, None, None, eps), InvalidArgument);
        assert_err!(dev.rms_norm(&a, None, eps), InvalidArgument);
    }
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.layer_norm(&s, None, None, 1e-5), ShapeMismatch);
    assert_err!(dev.rms_norm(&s, None, 1e-5), ShapeMismatch);
    let i = dev.zeros(DType::I32, &[2, 4]).unwrap();
    assert_err!(dev.layer_norm(&i, None, None, 1e-5), DTypeMismatch);
    assert_err!(dev.rms_norm(&i, None, 1e-5), DTypeMismatch);
}
