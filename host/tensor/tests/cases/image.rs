//! Convolutions, pooling, padding, group norm and resampling against naive
//! f64 references written from PyTorch's definitions, in both layouts.

use wasmpod_tensor::image::{Activation, Epilogue, Layout, PadMode, ResizeMode};
use wasmpod_tensor::{ConvParams, DType, Device, PoolParams};

use crate::assert_err;
use crate::support::*;

/// `[n, c, h, w]` index of an NCHW-ordered reference value.
fn nchw(n: usize, c: usize, y: usize, x: usize, dims: [usize; 4]) -> usize {
    ((n * dims[1] + c) * dims[2] + y) * dims[3] + x
}

/// Reorders NCHW-ordered values into `layout`.
fn to_layout(v: &[f64], dims: [usize; 4], layout: Layout) -> Vec<f64> {
    match layout {
        Layout::Nchw => v.to_vec(),
        Layout::Nhwc => {
            let [n, c, h, w] = dims;
            let mut out = vec![0.0; v.len()];
            for a in 0..n {
                for b in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            out[((a * h + y) * w + x) * c + b] = v[nchw(a, b, y, x, dims)];
                        }
                    }
                }
            }
            out
        }
    }
}

/// Reorders `layout`-ordered values into NCHW.
fn from_layout(v: &[f64], dims: [usize; 4], layout: Layout) -> Vec<f64> {
    match layout {
        Layout::Nchw => v.to_vec(),
        Layout::Nhwc => {
            let [n, c, h, w] = dims;
            let mut out = vec![0.0; v.len()];
            for a in 0..n {
                for b in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            out[nchw(a, b, y, x, dims)] = v[((a * h + y) * w + x) * c + b];
                        }
                    }
                }
            }
            out
        }
    }
}

struct ConvCase {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
    groups: usize,
}

/// Naive convolution over NCHW values; returns outputs and, per output,
/// the sum of |terms| (the scale a rounding error is judged against).
fn conv_ref(x: &[f64], w: &[f64], c: &ConvCase, oh: usize, ow: usize) -> (Vec<f64>, f64) {
    let (cg, og) = (c.c / c.groups, c.o / c.groups);
    let mut out = vec![0.0; c.n * c.o * oh * ow];
    let mut scale: f64 = 0.0;
    for n in 0..c.n {
        for o in 0..c.o {
            let g = o / og;
            for oy in 0..oh {
                for ox in 0..ow {
                    let (mut acc, mut mag) = (0.0, 0.0);
                    for ci in 0..cg {
                        for ky in 0..c.k[0] {
                            for kx in 0..c.k[1] {
                                let iy =
                                    (oy * c.stride[0] + ky * c.dil[0]) as isize - c.pad[0] as isize;
                                let ix =
                                    (ox * c.stride[1] + kx * c.dil[1]) as isize - c.pad[1] as isize;
                                if iy < 0 || ix < 0 || iy as usize >= c.h || ix as usize >= c.w {
                                    continue;
                                }
                                let xv = x[nchw(
                                    n,
                                    g * cg + ci,
                                    iy as usize,
                                    ix as usize,
                                    [c.n, c.c, c.h, c.w],
                                )];
                                let wv = w[((o * cg + ci) * c.k[0] + ky) * c.k[1] + kx];
                                acc += xv * wv;
                                mag += (xv * wv).abs();
                            }
                        }
                    }
                    out[nchw(n, o, oy, ox, [c.n, c.o, oh, ow])] = acc;
                    scale = scale.max(mag);
                }
            }
        }
    }
    (out, scale)
}

fn out_len(len: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    (len + 2 * p - d * (k - 1) - 1) / s + 1
}

fn act_ref(a: Activation, v: f64) -> f64 {
    match a {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Silu => v / (1.0 + (-v).exp()),
        Activation::Gelu => 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2)),
    }
}

const CONV_CASES: [ConvCase; 7] = [
    ConvCase {
        n: 2,
        c: 3,
        h: 7,
        w: 6,
        o: 4,
        k: [3, 3],
        stride: [1, 1],
        pad: [1, 1],
        dil: [1, 1],
        groups: 1,
    },
    ConvCase {
        n: 1,
        c: 4,
        h: 9,
        w: 9,
        o: 6,
        k: [3, 3],
        stride: [2, 2],
        pad: [1, 1],
        dil: [1, 1],
        groups: 2,
    },
    ConvCase {
        n: 2,
        c: 5,
        h: 6,
        w: 8,
        o: 3,
        k: [1, 1],
        stride: [1, 1],
        pad: [0, 0],
        dil: [1, 1],
        groups: 1,
    },
    ConvCase {
        n: 1,
        c: 6,
        h: 8,
        w: 7,
        o: 6,
        k: [3, 3],
        stride: [1, 1],
        pad: [2, 2],
        dil: [2, 2],
        groups: 6,
    },
    ConvCase {
        n: 1,
        c: 3,
        h: 11,
        w: 10,
        o: 8,
        k: [7, 5],
        stride: [2, 3],
        pad: [3, 2],
        dil: [1, 1],
        groups: 1,
    },
    ConvCase {
        n: 3,
        c: 8,
        h: 4,
        w: 4,
        o: 16,
        k: [1, 1],
        stride: [2, 2],
        pad: [0, 0],
        dil: [1, 1],
        groups: 1,
    },
    ConvCase {
        n: 1,
        c: 2,
        h: 1,
        w: 1,
        o: 3,
        k: [3, 3],
        stride: [1, 1],
        pad: [1, 1],
        dil: [1, 1],
        groups: 1,
    },
];

pub fn conv2d_every_geometry_and_layout(dev: &Device) {
    let mut rng = Rng::new(170);
    for dtype in FLOATS {
        for c in &CONV_CASES {
            let (oh, ow) = (
                out_len(c.h, c.k[0], c.stride[0], c.pad[0], c.dil[0]),
                out_len(c.w, c.k[1], c.stride[1], c.pad[1], c.dil[1]),
            );
            let xs = rng.values(dtype, c.n * c.c * c.h * c.w, 1.0);
            let ws = rng.values(dtype, c.o * (c.c / c.groups) * c.k[0] * c.k[1], 1.0);
            // Reference on the values as stored in the dtype.
            let xq = read(dev, &upload(dev, dtype, &[xs.len()], &xs));
            let wq = read(dev, &upload(dev, dtype, &[ws.len()], &ws));
            let (want, scale) = conv_ref(&xq, &wq, c, oh, ow);
            for layout in [Layout::Nchw, Layout::Nhwc] {
                let xl = to_layout(&xq, [c.n, c.c, c.h, c.w], layout);
                let wl = to_layout(&wq, [c.o, c.c / c.groups, c.k[0], c.k[1]], layout);
                let x = upload(dev, dtype, &layout.shape(c.n, c.c, c.h, c.w), &xl);
                let w = upload(
                    dev,
                    dtype,
                    &layout.shape(c.o, c.c / c.groups, c.k[0], c.k[1]),
                    &wl,
                );
                let p = ConvParams {
                    stride: c.stride,
                    padding: c.pad,
                    dilation: c.dil,
                    groups: c.groups,
                    layout,
                };
                let none = Epilogue {
                    bias: None,
                    residual: None,
                    activation: Activation::None,
                };
                let got = dev.conv2d(&x, &w, none, &p).unwrap();
                let out_dims = [c.n, c.o, oh, ow];
                check(
                    dev,
                    &format!(
                        "conv2d {dtype} {:?} k{:?} s{:?} p{:?} d{:?} g{} {layout:?}",
                        [c.n, c.c, c.h, c.w],
                        c.k,
                        c.stride,
                        c.pad,
                        c.dil,
                        c.groups
                    ),
                    &got,
                    dtype,
                    &layout.shape(c.n, c.o, oh, ow),
                    &to_layout(&want, out_dims, layout),
                    scale,
                );
            }
        }
    }
}

pub fn conv2d_fused_epilogues(dev: &Device) {
    let mut rng = Rng::new(171);
    let c = &CONV_CASES[0];
    let (oh, ow) = (c.h, c.w);
    for dtype in FLOATS {
        for layout in [Layout::Nchw, Layout::Nhwc] {
            for act in [
                Activation::None,
                Activation::Relu,
                Activation::Silu,
                Activation::Gelu,
            ] {
                let (x, xv) = random(dev, &mut rng, dtype, &layout.shape(c.n, c.c, c.h, c.w), 1.0);
                let (w, wv) = random(dev, &mut rng, dtype, &layout.shape(c.o, c.c, 3, 3), 1.0);
                let (b, bv) = random(dev, &mut rng, dtype, &[c.o], 1.0);
                let out_shape = layout.shape(c.n, c.o, oh, ow);
                let (r, rv) = random(dev, &mut rng, dtype, &out_shape, 1.0);
                let (conv, scale) = conv_ref(
                    &from_layout(&xv, [c.n, c.c, c.h, c.w], layout),
                    &from_layout(&wv, [c.o, c.c, 3, 3], layout),
                    c,
                    oh,
                    ow,
                );
                let conv = to_layout(&conv, [c.n, c.o, oh, ow], layout);
                let channel = |i: usize| match layout {
                    Layout::Nchw => (i / (oh * ow)) % c.o,
                    Layout::Nhwc => i % c.o,
                };
                let p = ConvParams {
                    padding: [1, 1],
                    layout,
                    ..Default::default()
                };
                for with_residual in [false, true] {
                    let e = Epilogue {
                        bias: Some(&b),
                        residual: with_residual.then_some(&r),
                        activation: act,
                    };
                    let got = dev.conv2d(&x, &w, e, &p).unwrap();
                    let want: Vec<f64> = conv
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            act_ref(
                                act,
                                v + bv[channel(i)] + if with_residual { rv[i] } else { 0.0 },
                            )
                        })
                        .collect();
                    check(
                        dev,
                        &format!("conv2d {dtype} {layout:?} bias residual={with_residual} {act:?}"),
                        &got,
                        dtype,
                        &out_shape,
                        &want,
                        scale + 2.0,
                    );
                }
            }
        }
    }
}

pub fn conv1d_both_layouts(dev: &Device) {
    let mut rng = Rng::new(172);
    let (n, c, l, o, k) = (2, 4, 11, 6, 3);
    for dtype in FLOATS {
        let (x, xv) = random(dev, &mut rng, dtype, &[n, c, l], 1.0);
        let (w, wv) = random(dev, &mut rng, dtype, &[o, c / 2, k], 1.0);
        let (stride, pad, dil) = (2, 2, 2);
        let ol = (l + 2 * pad - dil * (k - 1) - 1) / stride + 1;
        let cc = ConvCase {
            n,
            c,
            h: 1,
            w: l,
            o,
            k: [1, k],
            stride: [1, stride],
            pad: [0, pad],
            dil: [1, dil],
            groups: 2,
        };
        let (want, scale) = conv_ref(&xv, &wv, &cc, 1, ol);
        let none = Epilogue {
            bias: None,
            residual: None,
            activation: Activation::None,
        };
        let got = dev
            .conv1d(
                &x,
                &w,
                none,
                &ConvParams::one_d(stride, pad, dil, 2, Layout::Nchw),
            )
            .unwrap();
        check(
            dev,
            &format!("conv1d {dtype} ncl"),
            &got,
            dtype,
            &[n, o, ol],
            &want,
            scale,
        );
        // [N, L, C] with weight [O, k, C/g].
        let xt = dev.transpose(&x, 1, 2).unwrap();
        let wt = dev.transpose(&w, 1, 2).unwrap();
        let got = dev
            .conv1d(
                &xt,
                &wt,
                none,
                &ConvParams::one_d(stride, pad, dil, 2, Layout::Nhwc),
            )
            .unwrap();
        let back = dev.transpose(&got, 1, 2).unwrap();
        check(
            dev,
            &format!("conv1d {dtype} nlc"),
            &back,
            dtype,
            &[n, o, ol],
            &want,
            scale,
        );
    }
}

pub fn conv_transpose2d_geometries(dev: &Device) {
    let mut rng = Rng::new(173);
    // (n, c, h, w, o, k, stride, pad, dil, out_pad, groups)
    type Geometry = [usize; 11];
    let cases: [Geometry; 4] = [
        [1, 4, 4, 4, 3, 4, 2, 1, 1, 0, 1],
        [2, 4, 3, 5, 6, 3, 2, 1, 1, 1, 2],
        [1, 2, 5, 5, 2, 3, 1, 1, 2, 0, 1],
        [1, 3, 2, 3, 4, 2, 3, 0, 1, 2, 1],
    ];
    for dtype in FLOATS {
        for &[n, c, h, w, o, k, s, p, d, op, g] in &cases {
            let (cig, cog) = (c / g, o / g);
            let oh = (h - 1) * s + d * (k - 1) + op + 1 - 2 * p;
            let ow = (w - 1) * s + d * (k - 1) + op + 1 - 2 * p;
            let (x, xv) = random(dev, &mut rng, dtype, &[n, c, h, w], 1.0);
            let (wt, wv) = random(dev, &mut rng, dtype, &[c, cog, k, k], 1.0);
            let (b, bv) = random(dev, &mut rng, dtype, &[o], 1.0);
            let mut want = vec![0.0; n * o * oh * ow];
            let mut scale: f64 = 1.0;
            for a in 0..n {
                for ci in 0..c {
                    let grp = ci / cig;
                    for iy in 0..h {
                        for ix in 0..w {
                            for co in 0..cog {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        let oy = (iy * s + ky * d) as isize - p as isize;
                                        let ox = (ix * s + kx * d) as isize - p as isize;
                                        if oy < 0
                                            || ox < 0
                                            || oy as usize >= oh
                                            || ox as usize >= ow
                                        {
                                            continue;
                                        }
                                        let term = xv[nchw(a, ci, iy, ix, [n, c, h, w])]
                                            * wv[((ci * cog + co) * k + ky) * k + kx];
                                        want[nchw(
                                            a,
                                            grp * cog + co,
                                            oy as usize,
                                            ox as usize,
                                            [n, o, oh, ow],
                                        )] += term;
                                        scale += term.abs();
                                    }
                                }
                            }
                        }
                    }
                }
            }
            for (i, v) in want.iter_mut().enumerate() {
                *v += bv[(i / (oh * ow)) % o];
            }
            let params = ConvParams {
                stride: [s, s],
                padding: [p, p],
                dilation: [d, d],
                groups: g,
                layout: Layout::Nchw,
            };
            let got = dev
                .conv_transpose2d(&x, &wt, Some(&b), &params, [op, op])
                .unwrap();
            check(
                dev,
                &format!(
                    "conv-transpose2d {dtype} {:?} k{k} s{s} p{p} d{d} op{op} g{g}",
                    [n, c, h, w]
                ),
                &got,
                dtype,
                &[n, o, oh, ow],
                &want,
                scale.min(40.0),
            );
        }
    }
}

pub fn conv_errors(dev: &Device) {
    let x = dev.zeros(DType::F32, &[1, 4, 5, 5]).unwrap();
    let w = dev.zeros(DType::F32, &[2, 4, 3, 3]).unwrap();
    let none = Epilogue {
        bias: None,
        residual: None,
        activation: Activation::None,
    };
    let p = ConvParams::default();
    assert_err!(
        dev.conv2d(&dev.zeros(DType::F32, &[4, 5, 5]).unwrap(), &w, none, &p),
        ShapeMismatch
    );
    assert_err!(
        dev.conv2d(&x, &dev.zeros(DType::F32, &[2, 3, 3, 3]).unwrap(), none, &p),
        ShapeMismatch
    );
    assert_err!(
        dev.conv2d(&x, &w, none, &ConvParams { groups: 3, ..p }),
        InvalidArgument
    );
    assert_err!(
        dev.conv2d(&x, &w, none, &ConvParams { groups: 0, ..p }),
        InvalidArgument
    );
    assert_err!(
        dev.conv2d(
            &x,
            &w,
            none,
            &ConvParams {
                stride: [0, 1],
                ..p
            }
        ),
        InvalidArgument
    );
    assert_err!(
        dev.conv2d(&x, &dev.zeros(DType::F32, &[2, 4, 7, 7]).unwrap(), none, &p),
        ShapeMismatch
    );
    assert_err!(
        dev.conv2d(&x, &dev.zeros(DType::F16, &[2, 4, 3, 3]).unwrap(), none, &p),
        DTypeMismatch
    );
    let xi = dev.zeros(DType::I32, &[1, 4, 5, 5]).unwrap();
    assert_err!(
        dev.conv2d(
            &xi,
            &dev.zeros(DType::I32, &[2, 4, 3, 3]).unwrap(),
            none,
            &p
        ),
        DTypeMismatch
    );
    let bad_bias = dev.zeros(DType::F32, &[3]).unwrap();
    assert_err!(
        dev.conv2d(
            &x,
            &w,
            Epilogue {
                bias: Some(&bad_bias),
                ..none
            },
            &p
        ),
        ShapeMismatch
    );
    let bad_res = dev.zeros(DType::F32, &[1, 2, 4, 4]).unwrap();
    let msg = assert_err!(
        dev.conv2d(
            &x,
            &w,
            Epilogue {
                residual: Some(&bad_res),
                ..none
            },
            &p
        ),
        ShapeMismatch
    );
    assert!(msg.contains("[1, 2, 3, 3]"), "{msg}");
    let wt = dev.zeros(DType::F32, &[4, 2, 3, 3]).unwrap();
    let t = ConvParams {
        stride: [2, 2],
        ..p
    };
    assert_err!(
        dev.conv_transpose2d(&x, &wt, None, &t, [2, 0]),
        InvalidArgument
    );
    assert_err!(
        dev.conv_transpose2d(
            &x,
            &wt,
            None,
            &ConvParams {
                layout: Layout::Nhwc,
                ..t
            },
            [0, 0]
        ),
        InvalidArgument
    );
    assert_err!(
        dev.conv_transpose2d(
            &x,
            &dev.zeros(DType::F32, &[3, 2, 3, 3]).unwrap(),
            None,
            &t,
            [0, 0]
        ),
        ShapeMismatch
    );
}

fn pool_ref(
    x: &[f64],
    dims: [usize; 4],
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 2],
    ceil: bool,
    kind: &str,
) -> (Vec<f64>, usize, usize) {
    let [n, c, h, w] = dims;
    let len = |l: usize, a: usize| {
        let room = l + 2 * p[a] - k[a];
        let mut o = if ceil {
            room.div_ceil(s[a]) + 1
        } else {
            room / s[a] + 1
        };
        if ceil && (o - 1) * s[a] >= l + p[a] {
            o -= 1;
        }
        o
    };
    let (oh, ow) = (len(h, 0), len(w, 1));
    let mut out = Vec::new();
    for a in 0..n {
        for b in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let y0 = (oy * s[0]) as isize - p[0] as isize;
                    let x0 = (ox * s[1]) as isize - p[1] as isize;
                    let y1 = (y0 + k[0] as isize).min((h + p[0]) as isize);
                    let x1 = (x0 + k[1] as isize).min((w + p[1]) as isize);
                    let padded = ((y1 - y0) * (x1 - x0)) as f64;
                    let (mut m, mut sum, mut cnt) = (f64::NEG_INFINITY, 0.0, 0.0);
                    for iy in y0.max(0)..y1.min(h as isize) {
                        for ix in x0.max(0)..x1.min(w as isize) {
                            let v = x[nchw(a, b, iy as usize, ix as usize, dims)];
                            m = m.max(v);
                            sum += v;
                            cnt += 1.0;
                        }
                    }
                    out.push(match kind {
                        "max" => m,
                        "avg-pad" => sum / padded,
                        _ => sum / cnt,
                    });
                }
            }
        }
    }
    (out, oh, ow)
}

pub fn pooling_every_kind(dev: &Device) {
    let mut rng = Rng::new(174);
    let dims = [2, 3, 9, 8];
    for dtype in FLOATS {
        let (xn, xv) = random(dev, &mut rng, dtype, &dims, 2.0);
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let x = upload(
                dev,
                dtype,
                &layout.shape(2, 3, 9, 8),
                &to_layout(&xv, dims, layout),
            );
            for (k, s, p, ceil) in [
                ([3, 3], [2, 2], [1, 1], false),
                ([2, 2], [2, 2], [0, 0], true),
                ([3, 2], [1, 2], [1, 0], true),
            ] {
                for kind in ["max", "avg-pad", "avg"] {
                    let (want, oh, ow) = pool_ref(&xv, dims, k, s, p, ceil, kind);
                    let params = PoolParams {
                        kernel: k,
                        stride: s,
                        padding: p,
                        ceil_mode: ceil,
                        count_include_pad: kind == "avg-pad",
                        layout,
                    };
                    let got = if kind == "max" {
                        dev.max_pool2d(&x, &params)
                    } else {
                        dev.avg_pool2d(&x, &params)
                    }
                    .unwrap();
                    check(
                        dev,
                        &format!("{kind} pool {dtype} k{k:?} s{s:?} p{p:?} ceil={ceil} {layout:?}"),
                        &got,
                        dtype,
                        &layout.shape(2, 3, oh, ow),
                        &to_layout(&want, [2, 3, oh, ow], layout),
                        2.0,
                    );
                }
            }
            for size in [[1, 1], [3, 3], [4, 5], [9, 8], [11, 10]] {
                let mut want = Vec::new();
                for a in 0..2 {
                    for b in 0..3 {
                        for oy in 0..size[0] {
                            for ox in 0..size[1] {
                                let (y0, y1) =
                                    (oy * 9 / size[0], ((oy + 1) * 9usize).div_ceil(size[0]));
                                let (x0, x1) =
                                    (ox * 8 / size[1], ((ox + 1) * 8usize).div_ceil(size[1]));
                                let mut s = 0.0;
                                for iy in y0..y1 {
                                    for ix in x0..x1 {
                                        s += xv[nchw(a, b, iy, ix, dims)];
                                    }
                                }
                                want.push(s / ((y1 - y0) * (x1 - x0)) as f64);
                            }
                        }
                    }
                }
                let got = dev.adaptive_avg_pool2d(&x, size, layout).unwrap();
                check(
                    dev,
                    &format!("adaptive avg pool {dtype} {size:?} {layout:?}"),
                    &got,
                    dtype,
                    &layout.shape(2, 3, size[0], size[1]),
                    &to_layout(&want, [2, 3, size[0], size[1]], layout),
                    2.0,
                );
            }
        }
        drop(xn);
    }
    // NaN wins a max window.
    let x = dev
        .upload_f32(&[1, 1, 2, 2], &[1.0, f32::NAN, 3.0, 2.0])
        .unwrap();
    let p = PoolParams {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        ceil_mode: false,
        count_include_pad: true,
        layout: Layout::Nchw,
    };
    assert!(dev.to_f32_vec(&dev.max_pool2d(&x, &p).unwrap()).unwrap()[0].is_nan());
}

pub fn pooling_errors(dev: &Device) {
    let x = dev.zeros(DType::F32, &[1, 2, 4, 4]).unwrap();
    let p = PoolParams {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0, 0],
        ceil_mode: false,
        count_include_pad: true,
        layout: Layout::Nchw,
    };
    assert_err!(
        dev.max_pool2d(
            &x,
            &PoolParams {
                kernel: [5, 5],
                ..p
            }
        ),
        ShapeMismatch
    );
    assert_err!(
        dev.max_pool2d(
            &x,
            &PoolParams {
                padding: [2, 0],
                ..p
            }
        ),
        InvalidArgument
    );
    assert_err!(
        dev.avg_pool2d(
            &x,
            &PoolParams {
                stride: [0, 1],
                ..p
            }
        ),
        InvalidArgument
    );
    assert_err!(
        dev.max_pool2d(&dev.zeros(DType::F32, &[2, 4, 4]).unwrap(), &p),
        ShapeMismatch
    );
    assert_err!(
        dev.max_pool2d(&dev.zeros(DType::I64, &[1, 2, 4, 4]).unwrap(), &p),
        DTypeMismatch
    );
    assert_err!(
        dev.adaptive_avg_pool2d(&x, [0, 2], Layout::Nchw),
        InvalidArgument
    );
}

pub fn pad_every_mode_and_dtype(dev: &Device) {
    let mut rng = Rng::new(175);
    for dtype in ALL {
        let shape = [2, 3, 4];
        let (x, xv) = random(dev, &mut rng, dtype, &shape, 4.0);
        for (pads, mode) in [
            (vec![(1, 2), (0, 3)], PadMode::Constant(7.0)),
            (vec![(2, 1), (3, 3)], PadMode::Reflect),
            (vec![(1, 0), (2, 1), (0, 4)], PadMode::Replicate),
            (vec![(0, 0)], PadMode::Constant(0.0)),
        ] {
            let got = dev.pad(&x, &pads, mode).unwrap();
            let r = shape.len();
            let mut before = vec![0; r];
            let mut after = vec![0; r];
            for (i, &(b, a)) in pads.iter().enumerate() {
                before[r - pads.len() + i] = b;
                after[r - pads.len() + i] = a;
            }
            let out: Vec<usize> = (0..r).map(|d| shape[d] + before[d] + after[d]).collect();
            let want: Vec<f64> = (0..numel(&out))
                .map(|i| {
                    let idx = unravel(i, &out);
                    let mut src = Vec::new();
                    for d in 0..r {
                        let len = shape[d] as isize;
                        let x = idx[d] as isize - before[d] as isize;
                        let s = if (0..len).contains(&x) {
                            x
                        } else {
                            match mode {
                                PadMode::Constant(v) => return v as f64,
                                PadMode::Replicate => x.clamp(0, len - 1),
                                PadMode::Reflect => {
                                    if x < 0 {
                                        -x
                                    } else {
                                        2 * (len - 1) - x
                                    }
                                }
                            }
                        };
                        src.push(s as usize);
                    }
                    xv[ravel(&src, &shape)]
                })
                .collect();
            check(
                dev,
                &format!("pad {dtype} {pads:?} {mode:?}"),
                &got,
                dtype,
                &out,
                &want,
                0.0,
            );
        }
    }
    let x = dev.zeros(DType::F32, &[2, 3]).unwrap();
    assert_err!(
        dev.pad(&x, &[(0, 0), (0, 0), (1, 1)], PadMode::Constant(0.0)),
        InvalidArgument
    );
    assert_err!(dev.pad(&x, &[(3, 0)], PadMode::Reflect), InvalidArgument);
    assert_eq!(
        dev.pad(&x, &[(3, 0)], PadMode::Replicate).unwrap().shape(),
        &[2, 6]
    );
}

pub fn group_norm_both_layouts(dev: &Device) {
    let mut rng = Rng::new(176);
    for dtype in FLOATS {
        for (n, c, h, w, groups) in [
            (2, 8, 5, 3, 4),
            (1, 6, 1, 1, 3),
            (3, 4, 7, 9, 1),
            (1, 32, 8, 8, 32),
        ] {
            let dims = [n, c, h, w];
            let (_, xv) = random(dev, &mut rng, dtype, &dims, 3.0);
            let (wt, wv) = random(dev, &mut rng, dtype, &[c], 1.0);
            let (bt, bv) = random(dev, &mut rng, dtype, &[c], 1.0);
            let cg = c / groups;
            for act in [Activation::None, Activation::Silu] {
                let mut want = vec![0.0; xv.len()];
                for a in 0..n {
                    for g in 0..groups {
                        let members: Vec<usize> = (g * cg..(g + 1) * cg)
                            .flat_map(|ch| (0..h * w).map(move |s| nchw(a, ch, s / w, s % w, dims)))
                            .collect();
                        let mean =
                            members.iter().map(|&i| xv[i]).sum::<f64>() / members.len() as f64;
                        let var = members.iter().map(|&i| (xv[i] - mean).powi(2)).sum::<f64>()
                            / members.len() as f64;
                        for &i in &members {
                            let ch = (i / (h * w)) % c;
                            want[i] = act_ref(
                                act,
                                (xv[i] - mean) / (var + 1e-5).sqrt() * wv[ch] + bv[ch],
                            );
                        }
                    }
                }
                for layout in [Layout::Nchw, Layout::Nhwc] {
                    let x = upload(
                        dev,
                        dtype,
                        &layout.shape(n, c, h, w),
                        &to_layout(&xv, dims, layout),
                    );
                    let got = dev
                        .group_norm(&x, groups, Some(&wt), Some(&bt), 1e-5, layout, act)
                        .unwrap();
                    check(
                        dev,
                        &format!("group-norm {dtype} {dims:?} g{groups} {act:?} {layout:?}"),
                        &got,
                        dtype,
                        &layout.shape(n, c, h, w),
                        &to_layout(&want, dims, layout),
                        4.0,
                    );
                }
            }
        }
    }
    // Rank 3 ([N, C, L]) and no affine parameters.
    let x = dev.upload_f32(&[1, 2, 2], &[1.0, 3.0, -1.0, 1.0]).unwrap();
    let got = dev
        .to_f32_vec(
            &dev.group_norm(&x, 2, None, None, 0.0, Layout::Nchw, Activation::None)
                .unwrap(),
        )
        .unwrap();
    assert_eq!(got, vec![-1.0, 1.0, -1.0, 1.0]);
    assert_err!(
        dev.group_norm(&x, 3, None, None, 1e-5, Layout::Nchw, Activation::None),
        InvalidArgument
    );
    assert_err!(
        dev.group_norm(&x, 1, None, None, f32::NAN, Layout::Nchw, Activation::None),
        InvalidArgument
    );
    let w3 = dev.zeros(DType::F32, &[3]).unwrap();
    assert_err!(
        dev.group_norm(&x, 1, Some(&w3), None, 1e-5, Layout::Nchw, Activation::None),
        ShapeMismatch
    );
    assert_err!(
        dev.group_norm(
            &dev.zeros(DType::F32, &[4]).unwrap(),
            1,
            None,
            None,
            1e-5,
            Layout::Nchw,
            Activation::None
        ),
        ShapeMismatch
    );
}

fn linear_ref(len: usize, out: usize, o: usize, align: bool) -> (usize, usize, f64) {
    let src = if align {
        if out > 1 {
            o as f64 * (len - 1) as f64 / (out - 1) as f64
        } else {
            0.0
        }
    } else {
        ((o as f64 + 0.5) * len as f64 / out as f64 - 0.5).max(0.0)
    };
    let i0 = (src.floor() as usize).min(len - 1);
    (i0, (i0 + 1).min(len - 1), src - i0 as f64)
}

pub fn resize_nearest_and_bilinear(dev: &Device) {
    let mut rng = Rng::new(177);
    let dims = [2, 3, 5, 4];
    for dtype in ALL {
        let (_, xv) = random(dev, &mut rng, dtype, &dims, 4.0);
        for layout in [Layout::Nchw, Layout::Nhwc] {
            let x = upload(
                dev,
                dtype,
                &layout.shape(2, 3, 5, 4),
                &to_layout(&xv, dims, layout),
            );
            for size in [[10, 8], [3, 7], [5, 4], [1, 1], [13, 2]] {
                let mut want = Vec::new();
                for a in 0..2 {
                    for b in 0..3 {
                        for oy in 0..size[0] {
                            for ox in 0..size[1] {
                                let iy =
                                    ((oy as f64 * 5.0 / size[0] as f64).floor() as usize).min(4);
                                let ix =
                                    ((ox as f64 * 4.0 / size[1] as f64).floor() as usize).min(3);
                                want.push(xv[nchw(a, b, iy, ix, dims)]);
                            }
                        }
                    }
                }
                let got = dev.resize(&x, size, ResizeMode::Nearest, layout).unwrap();
                check(
                    dev,
                    &format!("nearest {dtype} {size:?} {layout:?}"),
                    &got,
                    dtype,
                    &layout.shape(2, 3, size[0], size[1]),
                    &to_layout(&want, [2, 3, size[0], size[1]], layout),
                    0.0,
                );
                if !dtype.is_float() {
                    continue;
                }
                for align in [false, true] {
                    let mut want = Vec::new();
                    for a in 0..2 {
                        for b in 0..3 {
                            for oy in 0..size[0] {
                                for ox in 0..size[1] {
                                    let (y0, y1, ly) = linear_ref(5, size[0], oy, align);
                                    let (x0, x1, lx) = linear_ref(4, size[1], ox, align);
                                    let at = |y, x| xv[nchw(a, b, y, x, dims)];
                                    let top = at(y0, x0) * (1.0 - lx) + at(y0, x1) * lx;
                                    let bottom = at(y1, x0) * (1.0 - lx) + at(y1, x1) * lx;
                                    want.push(top * (1.0 - ly) + bottom * ly);
                                }
                            }
                        }
                    }
                    let got = dev
                        .resize(
                            &x,
                            size,
                            ResizeMode::Bilinear {
                                align_corners: align,
                            },
                            layout,
                        )
                        .unwrap();
                    check(
                        dev,
                        &format!("bilinear {dtype} {size:?} align={align} {layout:?}"),
                        &got,
                        dtype,
                        &layout.shape(2, 3, size[0], size[1]),
                        &to_layout(&want, [2, 3, size[0], size[1]], layout),
                        4.0,
                    );
                }
            }
        }
    }
    let x = dev.zeros(DType::I32, &[1, 1, 2, 2]).unwrap();
    assert_err!(
        dev.resize(
            &x,
            [4, 4],
            ResizeMode::Bilinear {
                align_corners: false
            },
            Layout::Nchw
        ),
        DTypeMismatch
    );
    assert_err!(
        dev.resize(&x, [0, 4], ResizeMode::Nearest, Layout::Nchw),
        InvalidArgument
    );
    assert_err!(
        dev.resize(
            &dev.zeros(DType::F32, &[2, 2]).unwrap(),
            [4, 4],
            ResizeMode::Nearest,
            Layout::Nchw
        ),
        ShapeMismatch
    );
}
