//! Gather, reshape, permute, transpose, slice, concat and cast.

use wasmpod_tensor::{DType, Device};

use crate::assert_err;
use crate::support::*;

pub fn gather_every_index_dtype(dev: &Device) {
    let mut rng = Rng::new(40);
    for table_dtype in ALL {
        let (table, tv) = random(dev, &mut rng, table_dtype, &[10, 3], 2.0);
        for index_dtype in INTS {
            for shape in [&[][..], &[4], &[2, 3], &[0], &[2, 0, 2]] {
                let idx = rng.ints(numel(shape), 0, 10);
                let idx_f: Vec<f64> = idx.iter().map(|&i| i as f64).collect();
                let it = upload(dev, index_dtype, shape, &idx_f);
                let mut want_shape = shape.to_vec();
                want_shape.push(3);
                let want: Vec<f64> = idx
                    .iter()
                    .flat_map(|&i| tv[i as usize * 3..i as usize * 3 + 3].to_vec())
                    .collect();
                let got = dev.gather(&table, &it).unwrap();
                let what = format!("gather {table_dtype} by {index_dtype} {shape:?}");
                check(dev, &what, &got, table_dtype, &want_shape, &want, 0.0);
            }
        }
    }
    // A large lookup (parallel copy) and a table with empty rows.
    let (table, tv) = random(dev, &mut rng, DType::F32, &[1000, 64], 1.0);
    let idx = rng.ints(700, 0, 1000);
    let got = dev
        .gather(&table, &dev.upload_i64(&[700], &idx).unwrap())
        .unwrap();
    let want: Vec<f64> = idx
        .iter()
        .flat_map(|&i| tv[i as usize * 64..(i as usize + 1) * 64].to_vec())
        .collect();
    check(
        dev,
        "large gather",
        &got,
        DType::F32,
        &[700, 64],
        &want,
        0.0,
    );
    let empty_rows = dev.zeros(DType::F32, &[4, 0]).unwrap();
    let got = dev
        .gather(&empty_rows, &dev.upload_i64(&[2], &[3, 0]).unwrap())
        .unwrap();
    assert_eq!(got.shape(), &[2, 0]);
}

pub fn gather_errors(dev: &Device) {
    let table = dev.zeros(DType::F32, &[5, 2]).unwrap();
    for bad in [5, -1, i64::MAX, i64::MIN] {
        let idx = dev.upload_i64(&[3], &[0, bad, 1]).unwrap();
        let msg = assert_err!(dev.gather(&table, &idx), InvalidArgument);
        assert!(
            msg.contains(&bad.to_string()) && msg.contains("[5, 2]"),
            "{msg}"
        );
    }
    let idx = upload(dev, DType::I32, &[1], &[-3.0]);
    assert_err!(dev.gather(&table, &idx), InvalidArgument);
    let idx = upload(dev, DType::U8, &[1], &[200.0]);
    assert_err!(dev.gather(&table, &idx), InvalidArgument);
    // The empty table has no valid index.
    let empty = dev.zeros(DType::F32, &[0, 2]).unwrap();
    assert_err!(
        dev.gather(&empty, &dev.upload_i64(&[1], &[0]).unwrap()),
        InvalidArgument
    );
    for dtype in FLOATS {
        let idx = dev.zeros(dtype, &[2]).unwrap();
        assert_err!(dev.gather(&table, &idx), DTypeMismatch);
    }
    let ok = dev.upload_i64(&[1], &[0]).unwrap();
    for shape in [&[5][..], &[5, 2, 1], &[]] {
        let t = dev.zeros(DType::F32, shape).unwrap();
        assert_err!(dev.gather(&t, &ok), ShapeMismatch);
    }
}

pub fn reshape_infers_and_shares(dev: &Device) {
    let mut rng = Rng::new(41);
    let (a, av) = random(dev, &mut rng, DType::F32, &[2, 3, 4], 1.0);
    let used = dev.account().used();
    for (to, want) in [
        (&[24][..], &[24][..]),
        (&[-1], &[24]),
        (&[4, -1], &[4, 6]),
        (&[-1, 3, 2], &[4, 3, 2]),
        (&[2, 3, 4], &[2, 3, 4]),
        (&[1, 24, 1], &[1, 24, 1]),
    ] {
        let r = dev.reshape(&a, to).unwrap();
        assert_eq!(r.shape(), want);
        assert_eq!(read(dev, &r), av, "reshape keeps row-major order");
    }
    assert_eq!(dev.account().used(), used, "reshape allocates nothing");
    let s = upload(dev, DType::I64, &[], &[7.0]);
    let one = dev.reshape(&s, &[1, 1]).unwrap();
    assert_eq!(one.shape(), &[1, 1]);
    assert_eq!(dev.reshape(&one, &[]).unwrap().shape(), &[] as &[usize]);
    assert_eq!(dev.reshape(&s, &[-1]).unwrap().shape(), &[1]);
    let e = dev.zeros(DType::U8, &[0, 4]).unwrap();
    assert_eq!(dev.reshape(&e, &[2, 0, 3]).unwrap().shape(), &[2, 0, 3]);
    assert_eq!(dev.reshape(&e, &[-1]).unwrap().shape(), &[0]);
}

pub fn reshape_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 6]).unwrap();
    let msg = assert_err!(dev.reshape(&a, &[5, 3]), ShapeMismatch);
    assert!(msg.contains("[2, 6]") && msg.contains("[5, 3]"), "{msg}");
    assert_err!(dev.reshape(&a, &[5, -1]), ShapeMismatch);
    assert_err!(dev.reshape(&a, &[-1, -1]), InvalidArgument);
    assert_err!(dev.reshape(&a, &[-2, -6]), InvalidArgument);
    assert_err!(dev.reshape(&a, &[]), ShapeMismatch);
    let e = dev.zeros(DType::F32, &[0, 4]).unwrap();
    assert_err!(dev.reshape(&e, &[0, -1]), ShapeMismatch);
}

/// Every permutation of `0..n` (n small).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

fn permute_ref(x: &[f64], shape: &[usize], dims: &[usize]) -> (Vec<usize>, Vec<f64>) {
    let out_shape: Vec<usize> = dims.iter().map(|&d| shape[d]).collect();
    let values = (0..x.len())
        .map(|i| {
            let out_idx = unravel(i, &out_shape);
            let mut in_idx = vec![0; shape.len()];
            for (o, &d) in dims.iter().enumerate() {
                in_idx[d] = out_idx[o];
            }
            x[ravel(&in_idx, shape)]
        })
        .collect();
    (out_shape, values)
}

pub fn permute_every_order(dev: &Device) {
    let mut rng = Rng::new(42);
    for dtype in ALL {
        for shape in [
            &[][..],
            &[5],
            &[2, 3],
            &[2, 3, 4],
            &[2, 1, 3, 2],
            &[2, 0, 3],
        ] {
            let (a, av) = random(dev, &mut rng, dtype, shape, 2.0);
            for dims in permutations(shape.len()) {
                let (want_shape, want) = permute_ref(&av, shape, &dims);
                let got = dev.permute(&a, &dims).unwrap();
                check(
                    dev,
                    &format!("permute {shape:?} by {dims:?}"),
                    &got,
                    dtype,
                    &want_shape,
                    &want,
                    0.0,
                );
            }
        }
    }
    // Large: the attention-head permute and a full reversal.
    let (a, av) = random(dev, &mut rng, DType::F32, &[2, 64, 12, 32], 1.0);
    for dims in [[0, 2, 1, 3], [3, 2, 1, 0]] {
        let (ws, want) = permute_ref(&av, &[2, 64, 12, 32], &dims);
        check(
            dev,
            "large permute",
            &dev.permute(&a, &dims).unwrap(),
            DType::F32,
            &ws,
            &want,
            0.0,
        );
    }
}

pub fn permute_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[2, 3, 4]).unwrap();
    for dims in [&[0, 1][..], &[0, 1, 1], &[0, 1, 3], &[0, 1, 2, 3], &[]] {
        let msg = assert_err!(dev.permute(&a, dims), InvalidArgument);
        assert!(msg.contains("[2, 3, 4]"), "{msg}");
    }
}

pub fn transpose_negative_axes(dev: &Device) {
    let mut rng = Rng::new(43);
    let shape = [2, 3, 4];
    let (a, av) = random(dev, &mut rng, DType::BF16, &shape, 1.0);
    for (x, y) in [(0i32, 1i32), (-1, -2), (0, -1), (2, 0), (1, 1), (-3, 2)] {
        let (ax, ay) = (x.rem_euclid(3) as usize, y.rem_euclid(3) as usize);
        let mut dims = vec![0, 1, 2];
        dims.swap(ax, ay);
        let (ws, want) = permute_ref(&av, &shape, &dims);
        let got = dev.transpose(&a, x, y).unwrap();
        check(
            dev,
            &format!("transpose {x} {y}"),
            &got,
            DType::BF16,
            &ws,
            &want,
            0.0,
        );
    }
    assert_err!(dev.transpose(&a, 3, 0), InvalidArgument);
    assert_err!(dev.transpose(&a, 0, -4), InvalidArgument);
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.transpose(&s, 0, 0), InvalidArgument);
}

fn slice_ref(
    x: &[f64],
    shape: &[usize],
    axis: usize,
    start: usize,
    end: usize,
) -> (Vec<usize>, Vec<f64>) {
    let mut out_shape = shape.to_vec();
    out_shape[axis] = end - start;
    let values = (0..numel(&out_shape))
        .map(|i| {
            let mut idx = unravel(i, &out_shape);
            idx[axis] += start;
            x[ravel(&idx, shape)]
        })
        .collect();
    (out_shape, values)
}

pub fn slice_every_axis(dev: &Device) {
    let mut rng = Rng::new(44);
    for dtype in ALL {
        let shape = [3, 4, 5];
        let (a, av) = random(dev, &mut rng, dtype, &shape, 2.0);
        for axis in -3..3i32 {
            let abs = axis.rem_euclid(3) as usize;
            let len = shape[abs];
            for (start, end) in [
                (0, len),
                (1, len),
                (0, 1),
                (1, 3.min(len)),
                (2, 2),
                (len, len),
            ] {
                let (ws, want) = slice_ref(&av, &shape, abs, start, end);
                let got = dev.slice(&a, axis, start, end).unwrap();
                check(
                    dev,
                    &format!("slice axis {axis} {start}..{end}"),
                    &got,
                    dtype,
                    &ws,
                    &want,
                    0.0,
                );
            }
        }
    }
    let v = dev.upload_i64(&[5], &[0, 1, 2, 3, 4]).unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.slice(&v, -1, 1, 4).unwrap()).unwrap(),
        vec![1, 2, 3]
    );
    let e = dev.zeros(DType::F32, &[0, 4]).unwrap();
    assert_eq!(dev.slice(&e, 1, 1, 3).unwrap().shape(), &[0, 2]);
}

pub fn slice_errors(dev: &Device) {
    let a = dev.zeros(DType::F32, &[3, 4]).unwrap();
    let msg = assert_err!(dev.slice(&a, 1, 2, 5), InvalidArgument);
    assert!(msg.contains("2..5") && msg.contains("[3, 4]"), "{msg}");
    assert_err!(dev.slice(&a, 0, 2, 1), InvalidArgument);
    assert_err!(dev.slice(&a, 0, 4, 4), InvalidArgument);
    assert_err!(dev.slice(&a, 2, 0, 1), InvalidArgument);
    assert_err!(dev.slice(&a, -3, 0, 1), InvalidArgument);
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.slice(&s, 0, 0, 0), InvalidArgument);
}

fn concat_ref(parts: &[(Vec<f64>, Vec<usize>)], axis: usize) -> (Vec<usize>, Vec<f64>) {
    let mut shape = parts[0].1.clone();
    shape[axis] = parts.iter().map(|(_, s)| s[axis]).sum();
    let values = (0..numel(&shape))
        .map(|i| {
            let mut idx = unravel(i, &shape);
            for (v, s) in parts {
                if idx[axis] < s[axis] {
                    return v[ravel(&idx, s)];
                }
                idx[axis] -= s[axis];
            }
            unreachable!()
        })
        .collect();
    (shape, values)
}

pub fn concat_every_axis(dev: &Device) {
    let mut rng = Rng::new(45);
    for dtype in ALL {
        for axis in -3..3i32 {
            let abs = axis.rem_euclid(3) as usize;
            let mut tensors = Vec::new();
            let mut parts = Vec::new();
            for len in [2, 0, 3, 1] {
                let mut shape = vec![2, 3, 4];
                shape[abs] = len;
                let (t, v) = random(dev, &mut rng, dtype, &shape, 2.0);
                tensors.push(t);
                parts.push((v, shape));
            }
            let refs: Vec<_> = tensors.iter().collect();
            let (ws, want) = concat_ref(&parts, abs);
            let got = dev.concat(&refs, axis).unwrap();
            check(
                dev,
                &format!("concat axis {axis}"),
                &got,
                dtype,
                &ws,
                &want,
                0.0,
            );
            let single = dev.concat(&refs[..1], axis).unwrap();
            check(
                dev,
                "concat of one",
                &single,
                dtype,
                &parts[0].1,
                &parts[0].0,
                0.0,
            );
        }
    }
    let a = dev.upload_f32(&[2], &[1.0, 2.0]).unwrap();
    let b = dev.upload_f32(&[1], &[3.0]).unwrap();
    assert_eq!(
        dev.to_f32_vec(&dev.concat(&[&a, &b, &a], 0).unwrap())
            .unwrap(),
        vec![1.0, 2.0, 3.0, 1.0, 2.0]
    );
}

pub fn concat_errors(dev: &Device) {
    assert_err!(dev.concat(&[], 0), InvalidArgument);
    let a = dev.zeros(DType::F32, &[2, 3]).unwrap();
    let b = dev.zeros(DType::F32, &[3, 3]).unwrap();
    let msg = assert_err!(dev.concat(&[&a, &b], 1), ShapeMismatch);
    assert!(msg.contains("[2, 3]") && msg.contains("[3, 3]"), "{msg}");
    let c = dev.zeros(DType::F32, &[2, 3, 1]).unwrap();
    assert_err!(dev.concat(&[&a, &c], 0), ShapeMismatch);
    let h = dev.zeros(DType::F16, &[2, 3]).unwrap();
    let msg = assert_err!(dev.concat(&[&a, &h], 0), DTypeMismatch);
    assert!(msg.contains("f16") && msg.contains("f32"), "{msg}");
    assert_err!(dev.concat(&[&a, &a], 2), InvalidArgument);
    assert_err!(dev.concat(&[&a, &a], -3), InvalidArgument);
    let s = dev.zeros(DType::F32, &[]).unwrap();
    assert_err!(dev.concat(&[&s, &s], 0), InvalidArgument);
}

pub fn cast_every_pair(dev: &Device) {
    // Small integers are exact in every dtype, so every pair round-trips.
    let values: Vec<f64> = vec![0.0, 1.0, 2.0, 7.0, 42.0, 99.0];
    for from in ALL {
        let a = upload(dev, from, &[2, 3], &values);
        for to in ALL {
            let c = dev.cast(&a, to).unwrap();
            check(
                dev,
                &format!("cast {from} -> {to}"),
                &c,
                to,
                &[2, 3],
                &values,
                0.0,
            );
        }
        let e = dev.zeros(from, &[0, 2]).unwrap();
        for to in ALL {
            assert_eq!(dev.cast(&e, to).unwrap().shape(), &[0, 2]);
        }
    }
    // Float-to-float casts round to nearest.
    let mut rng = Rng::new(46);
    let (a, av) = random(dev, &mut rng, DType::F32, &[100], 10.0);
    for to in [DType::F16, DType::BF16] {
        let c = dev.cast(&a, to).unwrap();
        let want: Vec<f64> = av
            .iter()
            .map(|&v| match to {
                DType::F16 => half::f16::from_f64(v).to_f64(),
                _ => half::bf16::from_f64(v).to_f64(),
            })
            .collect();
        assert_eq!(read(dev, &c), want, "cast f32 -> {to}");
    }
}

pub fn cast_truncates_and_saturates(dev: &Device) {
    let a = dev
        .upload_f32(&[6], &[2.7, -2.7, 0.5, -0.5, 1e10, -1e10])
        .unwrap();
    let i32s = dev.to_i64_vec(&dev.cast(&a, DType::I32).unwrap()).unwrap();
    assert_eq!(i32s, vec![2, -2, 0, 0, i32::MAX as i64, i32::MIN as i64]);
    let i64s = dev.to_i64_vec(&dev.cast(&a, DType::I64).unwrap()).unwrap();
    assert_eq!(i64s, vec![2, -2, 0, 0, 10_000_000_000, -10_000_000_000]);
    let u8s = dev.to_i64_vec(&dev.cast(&a, DType::U8).unwrap()).unwrap();
    assert_eq!(u8s, vec![2, 0, 0, 0, 255, 0]);
    let n = dev.upload_f32(&[1], &[f32::NAN]).unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.cast(&n, DType::I32).unwrap()).unwrap(),
        vec![0]
    );
    // Integer narrowing wraps.
    let w = dev.upload_i64(&[3], &[300, -1, 1 << 32]).unwrap();
    assert_eq!(
        dev.to_i64_vec(&dev.cast(&w, DType::U8).unwrap()).unwrap(),
        vec![44, 255, 0]
    );
    assert_eq!(
        dev.to_i64_vec(&dev.cast(&w, DType::I32).unwrap()).unwrap(),
        vec![300, -1, 0]
    );
    // Casting to the same dtype is free.
    let used = dev.account().used();
    let same = dev.cast(&a, DType::F32).unwrap();
    assert_eq!(dev.account().used(), used);
    assert_eq!(dev.to_f32_vec(&same).unwrap(), dev.to_f32_vec(&a).unwrap());
}
