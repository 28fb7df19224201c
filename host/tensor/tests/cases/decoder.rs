//! The decoder ops (linear, silu-mul, rope, attention, attention-cached,
//! write, sample) and recorded graphs, against naive f64 references.

use wasmpod_tensor::{
    AttentionOptions, Capture, DType, Device, RopeConfig, RopeLayout, RopeScaling, Sampling, Tensor,
};

use crate::assert_err;
use crate::support::*;

/// `x [rows, in] @ w[out, in]^T + b + r`.
fn linear_ref(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    r: Option<&[f64]>,
    rows: usize,
    inp: usize,
    out: usize,
) -> Vec<f64> {
    let mut y = vec![0.0; rows * out];
    for i in 0..rows {
        for o in 0..out {
            let mut s: f64 = (0..inp).map(|k| x[i * inp + k] * w[o * inp + k]).sum();
            if let Some(b) = b {
                s += b[o];
            }
            if let Some(r) = r {
                s += r[i * out + o];
            }
            y[i * out + o] = s;
        }
    }
    y
}

pub fn linear_matches_reference(dev: &Device) {
    let mut rng = Rng::new(180);
    for dtype in FLOATS {
        // rows 1..4 run a GEMV on a GPU, more rows a GEMM; in 64 and 2048
        // take the vector loads, 5 the scalar tail.
        for (lead, inp, out) in [
            (&[1usize][..], 64usize, 7usize),
            (&[2], 5, 3),
            (&[3], 2048, 33),
            (&[1, 4], 64, 130),
            (&[2, 3], 64, 9),
            (&[17], 40, 1),
        ] {
            let rows: usize = lead.iter().product();
            let mut xs = lead.to_vec();
            xs.push(inp);
            let mut ys = lead.to_vec();
            ys.push(out);
            let (x, xv) = random(dev, &mut rng, dtype, &xs, 1.0);
            let (w, wv) = random(dev, &mut rng, dtype, &[out, inp], 1.0);
            let (b, bv) = random(dev, &mut rng, dtype, &[out], 1.0);
            let (r, rv) = random(dev, &mut rng, dtype, &ys, 1.0);
            let scale = (inp as f64).sqrt() + 2.0;
            let plain = dev.linear(&x, &w, None, None).unwrap();
            let want = linear_ref(&xv, &wv, None, None, rows, inp, out);
            check(
                dev,
                &format!("linear {xs:?}x{out}"),
                &plain,
                dtype,
                &ys,
                &want,
                scale,
            );
            let full = dev.linear(&x, &w, Some(&b), Some(&r)).unwrap();
            let want = linear_ref(&xv, &wv, Some(&bv), Some(&rv), rows, inp, out);
            check(
                dev,
                &format!("linear+bias+residual {xs:?}x{out}"),
                &full,
                dtype,
                &ys,
                &want,
                scale,
            );
        }
    }
}

pub fn linear_many_matches_linear(dev: &Device) {
    let mut rng = Rng::new(181);
    for dtype in FLOATS {
        for rows in [1usize, 2, 6] {
            let (x, xv) = random(dev, &mut rng, dtype, &[rows, 64], 1.0);
            let outs = [64usize, 16, 16];
            let ws: Vec<(Tensor, Vec<f64>)> = outs
                .iter()
                .map(|&o| random(dev, &mut rng, dtype, &[o, 64], 1.0))
                .collect();
            let bs: Vec<(Tensor, Vec<f64>)> = outs
                .iter()
                .map(|&o| random(dev, &mut rng, dtype, &[o], 1.0))
                .collect();
            let w_refs: Vec<&Tensor> = ws.iter().map(|(t, _)| t).collect();
            let b_refs: Vec<&Tensor> = bs.iter().map(|(t, _)| t).collect();
            for with_bias in [false, true] {
                let biases = if with_bias { &b_refs[..] } else { &[][..] };
                let ys = dev.linear_many(&x, &w_refs, biases).unwrap();
                assert_eq!(ys.len(), 3);
                for (i, y) in ys.iter().enumerate() {
                    let b = with_bias.then(|| bs[i].1.as_slice());
                    let want = linear_ref(&xv, &ws[i].1, b, None, rows, 64, outs[i]);
                    check(
                        dev,
                        &format!("linear-many {rows} rows layer {i}"),
                        y,
                        dtype,
                        &[rows, outs[i]],
                        &want,
                        10.0,
                    );
                }
            }
        }
    }
}

pub fn linear_errors(dev: &Device) {
    let x = dev.zeros(DType::F32, &[2, 8]).unwrap();
    let w = dev.zeros(DType::F32, &[4, 8]).unwrap();
    let bad_w = dev.zeros(DType::F32, &[8, 4]).unwrap();
    let w16 = dev.zeros(DType::BF16, &[4, 8]).unwrap();
    let b = dev.zeros(DType::F32, &[4]).unwrap();
    let ints = dev.zeros(DType::I32, &[2, 8]).unwrap();
    assert_err!(dev.linear(&x, &bad_w, None, None), ShapeMismatch);
    assert_err!(dev.linear(&x, &w16, None, None), DTypeMismatch);
    assert_err!(dev.linear(&ints, &w, None, None), DTypeMismatch);
    assert_err!(dev.linear(&x, &w, Some(&x), None), ShapeMismatch);
    assert_err!(dev.linear(&x, &w, None, Some(&x)), ShapeMismatch);
    assert_err!(dev.linear_many(&x, &[], &[]), InvalidArgument);
    assert_err!(dev.linear_many(&x, &[&w, &w], &[&b]), InvalidArgument);
}

pub fn silu_mul_matches_reference(dev: &Device) {
    let mut rng = Rng::new(182);
    for dtype in FLOATS {
        let (g, gv) = random(dev, &mut rng, dtype, &[3, 257], 4.0);
        let (u, uv) = random(dev, &mut rng, dtype, &[3, 257], 2.0);
        let want: Vec<f64> = gv
            .iter()
            .zip(&uv)
            .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
            .collect();
        let got = dev.silu_mul(&g, &u).unwrap();
        check(dev, "silu-mul", &got, dtype, &[3, 257], &want, 1.0);
    }
    let g = dev.zeros(DType::F32, &[3]).unwrap();
    let u = dev.zeros(DType::F32, &[4]).unwrap();
    assert_err!(dev.silu_mul(&g, &u), ShapeMismatch);
}

fn rope_cfg(layout: RopeLayout, rotary_dim: u32) -> RopeConfig {
    RopeConfig {
        theta: 10000.0,
        rotary_dim,
        layout,
        scaling: RopeScaling::None,
    }
}

/// Rotary embeddings as transformers computes them: inv_freq, angle =
/// position * inv_freq in f32, the rotation in f64.
fn rope_ref(x: &[f64], shape: [usize; 4], pos: &[i64], rd: usize, layout: RopeLayout) -> Vec<f64> {
    let [_, seq, heads, dim] = shape;
    let mut out = x.to_vec();
    for (t, token) in out.chunks_mut(heads * dim).enumerate() {
        let p = if pos.len() == seq {
            pos[t % seq]
        } else {
            pos[t]
        };
        for head in token.chunks_mut(dim) {
            let orig = head.to_vec();
            for i in 0..rd / 2 {
                let inv = (1.0 / 10000f64.powf(2.0 * i as f64 / rd as f64)) as f32;
                let angle = (p as f32 * inv) as f64;
                let (a, b) = match layout {
                    RopeLayout::Half => (i, i + rd / 2),
                    RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                };
                head[a] = orig[a] * angle.cos() - orig[b] * angle.sin();
                head[b] = orig[b] * angle.cos() + orig[a] * angle.sin();
            }
        }
    }
    out
}

pub fn rope_matches_reference(dev: &Device) {
    let mut rng = Rng::new(183);
    for dtype in FLOATS {
        for (shape, per_batch, layout, rd) in [
            ([1usize, 1, 4, 64], false, RopeLayout::Half, 0usize),
            ([2, 5, 3, 8], true, RopeLayout::Half, 0),
            ([2, 5, 3, 8], false, RopeLayout::Interleaved, 0),
            ([1, 6, 2, 32], false, RopeLayout::Half, 16),
        ] {
            let [b, s, _, d] = shape;
            let (x, xv) = random(dev, &mut rng, dtype, &shape, 1.0);
            let n = if per_batch { b * s } else { s };
            let pos: Vec<i64> = rng.ints(n, 0, 300);
            let pshape: Vec<usize> = if per_batch { vec![b, s] } else { vec![s] };
            let positions = dev.upload_i64(&pshape, &pos).unwrap();
            let rotary = if rd == 0 { d } else { rd };
            let got = dev
                .rope(&x, &positions, &rope_cfg(layout, rd as u32))
                .unwrap();
            let want = rope_ref(&xv, shape, &pos, rotary, layout);
            check(
                dev,
                &format!("rope {shape:?} {layout:?} rd {rotary}"),
                &got,
                dtype,
                &shape,
                &want,
                2.0,
            );
        }
    }
    let x = dev.zeros(DType::F32, &[1, 2, 1, 8]).unwrap();
    let p = dev.upload_i64(&[3], &[0, 1, 2]).unwrap();
    assert_err!(
        dev.rope(&x, &p, &rope_cfg(RopeLayout::Half, 0)),
        ShapeMismatch
    );
    let p = dev.upload_i64(&[2], &[0, 1]).unwrap();
    assert_err!(
        dev.rope(&x, &p, &rope_cfg(RopeLayout::Half, 3)),
        InvalidArgument
    );
    let flat = dev.zeros(DType::F32, &[2, 8]).unwrap();
    assert_err!(
        dev.rope(&flat, &p, &rope_cfg(RopeLayout::Half, 0)),
        ShapeMismatch
    );
    let wide = dev.zeros(DType::F32, &[1, 2, 1, 300]).unwrap();
    assert_err!(
        dev.rope(&wide, &p, &rope_cfg(RopeLayout::Half, 0)),
        InvalidArgument
    );
}

/// What attention sees, for the reference.
struct AttnCase<'a> {
    q: &'a [f64],
    k: &'a [f64],
    v: &'a [f64],
    qs: [usize; 4],
    ks: [usize; 4],
    causal: bool,
    scale: f64,
    window: Option<usize>,
}

/// Naive attention; `visible(b, i) -> (position, end)`.
fn attention_ref(
    c: &AttnCase,
    visible: impl Fn(usize, usize) -> (i64, usize),
    mask: Option<&[f64]>,
) -> Vec<f64> {
    let [batch, q_len, q_heads, d] = c.qs;
    let [_, kv_len, kv_heads, _] = c.ks;
    let group = q_heads / kv_heads;
    let mut out = vec![0.0; c.q.len()];
    for b in 0..batch {
        for i in 0..q_len {
            let (pos, end) = visible(b, i);
            for h in 0..q_heads {
                let kvh = h / group;
                let qo = ((b * q_len + i) * q_heads + h) * d;
                let keys: Vec<usize> = (0..end.min(kv_len))
                    .filter(|&j| c.window.is_none_or(|w| (pos - j as i64) < w as i64))
                    .filter(|&j| mask.is_none_or(|m| m[b * kv_len + j] != 0.0))
                    .collect();
                if keys.is_empty() {
                    continue;
                }
                let ko = |j: usize| ((b * kv_len + j) * kv_heads + kvh) * d;
                let scores: Vec<f64> = keys
                    .iter()
                    .map(|&j| c.scale * (0..d).map(|e| c.q[qo + e] * c.k[ko(j) + e]).sum::<f64>())
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = weights.iter().sum();
                for e in 0..d {
                    out[qo + e] = keys
                        .iter()
                        .zip(&weights)
                        .map(|(&j, w)| w * c.v[ko(j) + e])
                        .sum::<f64>()
                        / total;
                }
            }
        }
    }
    out
}

pub fn attention_matches_reference(dev: &Device) {
    let mut rng = Rng::new(184);
    for dtype in FLOATS {
        // (q shape, kv shape, causal, valid, masked, window): encoder-like
        // with padding, decode over a cache (GQA, one query), prefill.
        for (qs, ks, causal, valid, masked, window) in [
            (
                [3usize, 9, 4, 32],
                [3usize, 9, 4, 32],
                false,
                Some(vec![9i64, 4, 1]),
                false,
                None,
            ),
            ([2, 7, 2, 16], [2, 7, 2, 16], false, None, true, None),
            (
                [1, 1, 8, 64],
                [1, 150, 2, 64],
                true,
                Some(vec![97]),
                false,
                None,
            ),
            (
                [1, 3, 8, 64],
                [1, 80, 2, 64],
                true,
                Some(vec![40]),
                false,
                None,
            ),
            ([2, 37, 4, 64], [2, 37, 2, 64], true, None, false, None),
            (
                [1, 20, 2, 80],
                [1, 20, 2, 80],
                true,
                None,
                false,
                Some(6usize),
            ),
            ([1, 5, 2, 256], [1, 9, 1, 256], false, None, false, None),
        ] {
            let (q, qv) = random(dev, &mut rng, dtype, &qs, 1.0);
            let (k, kv) = random(dev, &mut rng, dtype, &ks, 1.0);
            let (v, vv) = random(dev, &mut rng, dtype, &ks, 1.0);
            let valid_t = valid
                .as_ref()
                .map(|l| dev.upload_i64(&[l.len()], l).unwrap());
            let mask: Option<Vec<f64>> = masked.then(|| {
                (0..ks[0] * ks[1])
                    .map(|i| if (i * 7) % 5 == 0 { 0.0 } else { 1.0 })
                    .collect()
            });
            let mask_t = mask
                .as_ref()
                .map(|m| upload(dev, DType::U8, &[ks[0], ks[1]], m));
            let options = AttentionOptions {
                causal,
                scale: None,
                window: window.map(|w| w as u32),
            };
            let got = dev
                .attention(&q, &k, &v, &options, valid_t.as_ref(), mask_t.as_ref())
                .unwrap();
            let case = AttnCase {
                q: &qv,
                k: &kv,
                v: &vv,
                qs,
                ks,
                causal,
                scale: 1.0 / (qs[3] as f64).sqrt(),
                window,
            };
            let want = attention_ref(
                &case,
                |b, i| {
                    let len = valid
                        .as_ref()
                        .map_or(ks[1], |l| l[b.min(l.len() - 1)] as usize);
                    let pos = len as i64 - qs[1] as i64 + i as i64;
                    let end = if case.causal {
                        (pos + 1).clamp(0, len as i64) as usize
                    } else {
                        len
                    };
                    (pos, end)
                },
                mask.as_deref(),
            );
            check(
                dev,
                &format!("attention {dtype} {qs:?} over {ks:?}"),
                &got,
                dtype,
                &qs,
                &want,
                1.0,
            );
        }
    }
}

pub fn attention_masks_everything_to_zeros(dev: &Device) {
    let q = upload(dev, DType::F32, &[1, 2, 1, 4], &[1.0; 8]);
    let k = upload(dev, DType::F32, &[1, 3, 1, 4], &[0.5; 12]);
    let none = upload(dev, DType::U8, &[1, 3], &[0.0; 3]);
    let out = dev
        .attention(&q, &k, &k, &AttentionOptions::default(), None, Some(&none))
        .unwrap();
    assert_eq!(read(dev, &out), vec![0.0; 8]);
    let zero = dev.upload_i64(&[1], &[0]).unwrap();
    let out = dev
        .attention(&q, &k, &k, &AttentionOptions::default(), Some(&zero), None)
        .unwrap();
    assert_eq!(read(dev, &out), vec![0.0; 8]);
}

pub fn attention_errors(dev: &Device) {
    let q = dev.zeros(DType::F32, &[1, 2, 3, 8]).unwrap();
    let k = dev.zeros(DType::F32, &[1, 4, 2, 8]).unwrap();
    let k2 = dev.zeros(DType::F32, &[1, 4, 1, 8]).unwrap();
    let opts = AttentionOptions::default();
    // 3 query heads over 2 kv heads.
    assert_err!(dev.attention(&q, &k, &k, &opts, None, None), ShapeMismatch);
    let kb = dev.zeros(DType::BF16, &[1, 4, 1, 8]).unwrap();
    assert_err!(
        dev.attention(&q, &kb, &kb, &opts, None, None),
        DTypeMismatch
    );
    let bad_valid = dev.upload_i64(&[3], &[1, 2, 3]).unwrap();
    assert_err!(
        dev.attention(&q, &k2, &k2, &opts, Some(&bad_valid), None),
        ShapeMismatch
    );
    let bad_mask = dev.zeros(DType::U8, &[1, 3]).unwrap();
    assert_err!(
        dev.attention(&q, &k2, &k2, &opts, None, Some(&bad_mask)),
        ShapeMismatch
    );
    let nan = AttentionOptions {
        scale: Some(f32::NAN),
        ..opts
    };
    assert_err!(
        dev.attention(&q, &k2, &k2, &nan, None, None),
        InvalidArgument
    );
    let big = dev.zeros(DType::F32, &[1, 1, 1, 300]).unwrap();
    assert_err!(
        dev.attention(&big, &big, &big, &opts, None, None),
        InvalidArgument
    );
}

/// attention-cached equals its parts: rope on q and k, the cache writes,
/// then plain causal attention over the filled cache.
pub fn attention_cached_matches_its_parts(dev: &Device) {
    let mut rng = Rng::new(185);
    for dtype in FLOATS {
        // (batch, new tokens, q heads, kv heads, head dim, capacity, first
        // position): decode steps and a prefill.
        for (b, s, hq, hkv, d, cap, p0) in [
            (1usize, 1usize, 8usize, 2usize, 64usize, 130usize, 70usize),
            (2, 1, 4, 4, 32, 64, 63),
            (1, 3, 4, 1, 64, 40, 10),
            (1, 24, 4, 2, 64, 24, 0),
            (2, 9, 2, 2, 16, 32, 5),
        ] {
            let rope = rope_cfg(RopeLayout::Half, 0);
            let opts = AttentionOptions {
                causal: true,
                ..Default::default()
            };
            let (q, qv) = random(dev, &mut rng, dtype, &[b, s, hq, d], 1.0);
            let (k, kv) = random(dev, &mut rng, dtype, &[b, s, hkv, d], 1.0);
            let (v, vv) = random(dev, &mut rng, dtype, &[b, s, hkv, d], 1.0);
            // Earlier slots filled, later ones garbage that must be ignored.
            let (kc, kcv) = random(dev, &mut rng, dtype, &[b, cap, hkv, d], 1.0);
            let (vc, vcv) = random(dev, &mut rng, dtype, &[b, cap, hkv, d], 1.0);
            let pos: Vec<i64> = (p0 as i64..(p0 + s) as i64).collect();
            let positions = dev.upload_i64(&[s], &pos).unwrap();
            let got = dev
                .attention_cached(&q, &k, &v, &kc, &vc, &positions, Some(&rope), &opts)
                .unwrap();
            // Reference: the caches after the writes, then attention.
            let k_rot = rope_ref(&kv, [b, s, hkv, d], &pos, d, RopeLayout::Half);
            let q_rot = rope_ref(&qv, [b, s, hq, d], &pos, d, RopeLayout::Half);
            let (mut kc_ref, mut vc_ref) = (kcv.clone(), vcv.clone());
            let token = hkv * d;
            for bi in 0..b {
                for (i, &p) in pos.iter().enumerate() {
                    let from = (bi * s + i) * token;
                    let to = (bi * cap + p as usize) * token;
                    kc_ref[to..to + token].copy_from_slice(&k_rot[from..from + token]);
                    vc_ref[to..to + token].copy_from_slice(&vv[from..from + token]);
                }
            }
            let what =
                format!("attention-cached {dtype} b{b} s{s} {hq}/{hkv} d{d} cap {cap} at {p0}");
            check(
                dev,
                &format!("{what}: k-cache"),
                &kc,
                dtype,
                &[b, cap, hkv, d],
                &kc_ref,
                2.0,
            );
            check(
                dev,
                &format!("{what}: v-cache"),
                &vc,
                dtype,
                &[b, cap, hkv, d],
                &vc_ref,
                2.0,
            );
            // The reference attends to the rounded rotated keys as stored.
            let kc_stored = read(dev, &kc);
            let case = AttnCase {
                q: &q_rot,
                k: &kc_stored,
                v: &vc_ref,
                qs: [b, s, hq, d],
                ks: [b, cap, hkv, d],
                causal: true,
                scale: 1.0 / (d as f64).sqrt(),
                window: None,
            };
            let want = attention_ref(&case, |_, i| (pos[i], pos[i] as usize + 1), None);
            check(dev, &what, &got, dtype, &[b, s, hq, d], &want, 1.0);
        }
    }
}

pub fn attention_cached_errors(dev: &Device) {
    let q = dev.zeros(DType::F32, &[1, 2, 2, 8]).unwrap();
    let k = dev.zeros(DType::F32, &[1, 2, 1, 8]).unwrap();
    let cache = dev.zeros(DType::F32, &[1, 4, 1, 8]).unwrap();
    let cache2 = dev.zeros(DType::F32, &[1, 4, 1, 8]).unwrap();
    let opts = AttentionOptions {
        causal: true,
        ..Default::default()
    };
    let at = |p: &[i64]| dev.upload_i64(&[p.len()], p).unwrap();
    // Out of the cache, not consecutive, one cache twice, a read-only cache.
    assert_err!(
        dev.attention_cached(&q, &k, &k, &cache, &cache2, &at(&[3, 4]), None, &opts),
        InvalidArgument
    );
    assert_err!(
        dev.attention_cached(&q, &k, &k, &cache, &cache2, &at(&[0, 2]), None, &opts),
        InvalidArgument
    );
    assert_err!(
        dev.attention_cached(&q, &k, &k, &cache, &cache, &at(&[0, 1]), None, &opts),
        InvalidArgument
    );
    let weight = dev
        .zeros(DType::F32, &[1, 4, 1, 8])
        .unwrap()
        .into_read_only();
    assert_err!(
        dev.attention_cached(&q, &k, &k, &weight, &cache2, &at(&[0, 1]), None, &opts),
        InvalidArgument
    );
    assert_err!(
        dev.attention_cached(&q, &k, &k, &cache, &cache2, &at(&[0]), None, &opts),
        ShapeMismatch
    );
    // The caches are untouched by failed calls.
    assert_eq!(read(dev, &cache), vec![0.0; 32]);
}

pub fn write_in_place(dev: &Device) {
    let mut rng = Rng::new(186);
    for dtype in ALL {
        let target = dev.zeros(dtype, &[2, 5, 3]).unwrap();
        let view = dev.reshape(&target, &[10, 3]).unwrap();
        let (src, sv) = random(dev, &mut rng, dtype, &[2, 2, 3], 1.0);
        dev.write(&target, &src, 1, 1, None).unwrap();
        let mut want = vec![0.0; 30];
        for o in 0..2 {
            for j in 0..2 {
                for r in 0..3 {
                    want[(o * 5 + 1 + j) * 3 + r] = sv[(o * 2 + j) * 3 + r];
                }
            }
        }
        // Through the view too: same storage.
        check(
            dev,
            &format!("write {dtype}"),
            &view,
            dtype,
            &[10, 3],
            &want,
            1.0,
        );
        // An offset from a tensor adds to start.
        let (row, rv) = random(dev, &mut rng, dtype, &[2, 1, 3], 1.0);
        let off = dev.upload_i64(&[1], &[3]).unwrap();
        dev.write(&target, &row, -2, 1, Some(&off)).unwrap();
        for o in 0..2 {
            for r in 0..3 {
                want[(o * 5 + 4) * 3 + r] = rv[o * 3 + r];
            }
        }
        check(
            dev,
            &format!("write {dtype} at offset"),
            &target,
            dtype,
            &[2, 5, 3],
            &want,
            1.0,
        );
    }
    let t = dev.zeros(DType::F32, &[4, 2]).unwrap();
    let src = dev.zeros(DType::F32, &[3, 2]).unwrap();
    assert_err!(dev.write(&t, &src, 0, 2, None), InvalidArgument);
    let off = dev.upload_i64(&[1], &[-3]).unwrap();
    assert_err!(dev.write(&t, &src, 0, 1, Some(&off)), InvalidArgument);
    let wrong = dev.zeros(DType::F32, &[3, 3]).unwrap();
    assert_err!(dev.write(&t, &wrong, 0, 0, None), ShapeMismatch);
    let bf = dev.zeros(DType::BF16, &[3, 2]).unwrap();
    assert_err!(dev.write(&t, &bf, 0, 0, None), DTypeMismatch);
    let view = dev.reshape(&t, &[8]).unwrap();
    assert_err!(
        dev.write(&t, &view.with_shape(vec![4, 2]), 0, 0, None),
        InvalidArgument
    );
    let weight = dev.zeros(DType::F32, &[4, 2]).unwrap().into_read_only();
    let msg = assert_err!(dev.write(&weight, &src, 0, 0, None), InvalidArgument);
    assert!(msg.contains("read-only"), "{msg}");
    // A reshape of a weight is read-only too.
    let flat = dev.reshape(&weight, &[8]).unwrap();
    let row = dev.zeros(DType::F32, &[2]).unwrap();
    assert_err!(dev.write(&flat, &row, 0, 0, None), InvalidArgument);
}

fn sampling(temperature: f32, top_k: u32, top_p: f32, seed: u64) -> Sampling {
    Sampling {
        temperature,
        top_k,
        top_p,
        seed,
    }
}

pub fn sample_rules(dev: &Device) {
    let mut rng = Rng::new(187);
    for dtype in FLOATS {
        let (logits, lv) = random(dev, &mut rng, dtype, &[4, 300], 3.0);
        let counter = dev.upload_i64(&[1], &[5]).unwrap();
        let draw =
            |p: &Sampling, c: &Tensor| dev.to_i64_vec(&dev.sample(&logits, p, c).unwrap()).unwrap();
        // Greedy: the largest logit, lowest id on ties.
        let greedy = draw(&sampling(0.0, 0, 1.0, 1), &counter);
        for (r, &id) in greedy.iter().enumerate() {
            let row = &lv[r * 300..(r + 1) * 300];
            let best = (0..300).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            assert_eq!(id as usize, best, "greedy row {r} ({dtype})");
        }
        assert_eq!(draw(&sampling(1.0, 1, 1.0, 9), &counter), greedy);
        // Same seed and counter: same ids; draws stay in the top k.
        let p = sampling(0.9, 5, 1.0, 42);
        let a = draw(&p, &counter);
        assert_eq!(a, draw(&p, &counter));
        for c in 0..20 {
            let ids = draw(&p, &dev.upload_i64(&[1], &[c]).unwrap());
            for (r, &id) in ids.iter().enumerate() {
                let row = &lv[r * 300..(r + 1) * 300];
                let above = row.iter().filter(|&&x| x > row[id as usize]).count();
                assert!(
                    above < 5,
                    "row {r}: id {id} has {above} larger logits ({dtype})"
                );
            }
        }
        // Different counters draw differently (with near certainty here).
        let spread: std::collections::HashSet<i64> = (0..40)
            .map(|c| {
                draw(
                    &sampling(2.0, 0, 1.0, 3),
                    &dev.upload_i64(&[1], &[c]).unwrap(),
                )[0]
            })
            .collect();
        assert!(spread.len() > 5, "{spread:?}");
    }
    let one_d = dev.upload_f32(&[3], &[0.0, 5.0, 1.0]).unwrap();
    let c = dev.upload_i64(&[1], &[0]).unwrap();
    let id = dev.sample(&one_d, &sampling(0.0, 0, 1.0, 0), &c).unwrap();
    assert_eq!(id.shape(), &[] as &[usize]);
    assert_eq!(dev.to_i64_vec(&id).unwrap(), vec![1]);
    assert_err!(
        dev.sample(&one_d, &sampling(-1.0, 0, 1.0, 0), &c),
        InvalidArgument
    );
    assert_err!(
        dev.sample(&one_d, &sampling(1.0, 0, 0.0, 0), &c),
        InvalidArgument
    );
    let two = dev.upload_i64(&[2], &[0, 1]).unwrap();
    assert_err!(
        dev.sample(&one_d, &sampling(1.0, 0, 1.0, 0), &two),
        ShapeMismatch
    );
    let ints = dev.zeros(DType::I32, &[3]).unwrap();
    assert_err!(
        dev.sample(&ints, &sampling(1.0, 0, 1.0, 0), &c),
        DTypeMismatch
    );
}

/// A recorded step replays into the same tensors: inputs changed in place
/// show up in the results, in-place ops (the cache, a counter) run again.
pub fn graph_replays_into_the_same_tensors(dev: &Device) {
    let x = dev.upload_f32(&[1, 4], &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let w = dev
        .upload_f32(&[2, 4], &[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0])
        .unwrap();
    let step = dev.upload_i64(&[1], &[0]).unwrap();
    let one = dev.upload_i64(&[1], &[1]).unwrap();
    let log = dev.zeros(DType::F32, &[3, 2]).unwrap();
    let mut capture = Some(Capture::new());
    let (y, z) = Capture::scope(&mut capture, || {
        let y = dev.linear(&x, &w, None, None).unwrap();
        let z = dev.silu_mul(&y, &y).unwrap();
        // Append y to the log at the step, then advance the step.
        dev.write(&log, &y, 0, 0, Some(&step)).unwrap();
        let next = dev.add(&step, &one).unwrap();
        dev.write(&step, &next, 0, 0, None).unwrap();
        (y, z)
    });
    let graph = capture.take().unwrap().finish().unwrap();
    assert_eq!(graph.len(), 5);
    assert_eq!(read(dev, &y), vec![1.0, 5.0]);
    // New input, in place; replay twice.
    dev.write(
        &x,
        &dev.upload_f32(&[1, 4], &[2.0, 0.5, 0.5, 0.0]).unwrap(),
        0,
        0,
        None,
    )
    .unwrap();
    graph.replay().unwrap();
    assert_eq!(read(dev, &y), vec![2.0, 1.0]);
    let silu = |v: f64| v / (1.0 + (-v).exp()) * v;
    assert_close(
        "graph silu",
        DType::F32,
        &read(dev, &z),
        &[silu(2.0), silu(1.0)],
        1.0,
    );
    graph.replay().unwrap();
    assert_eq!(dev.to_i64_vec(&step).unwrap(), vec![3]);
    assert_eq!(read(dev, &log), vec![1.0, 5.0, 2.0, 1.0, 2.0, 1.0]);
    // A fourth step does not fit the log: the write is skipped, nothing
    // else breaks.
    graph.replay().unwrap();
    assert_eq!(read(dev, &log), vec![1.0, 5.0, 2.0, 1.0, 2.0, 1.0]);
    assert_eq!(dev.to_i64_vec(&step).unwrap(), vec![4]);
}

/// Sampling inside a graph draws new numbers each replay (the counter is a
/// device tensor), and the same ones as eager sampling at that counter.
pub fn graph_sampling_follows_the_counter(dev: &Device) {
    let mut rng = Rng::new(188);
    let (logits, _) = random(dev, &mut rng, DType::F32, &[2, 50], 2.0);
    let counter = dev.upload_i64(&[1], &[0]).unwrap();
    let one = dev.upload_i64(&[1], &[1]).unwrap();
    let p = sampling(1.5, 0, 0.95, 77);
    let mut capture = Some(Capture::new());
    let ids = Capture::scope(&mut capture, || {
        let ids = dev.sample(&logits, &p, &counter).unwrap();
        let next = dev.add(&counter, &one).unwrap();
        dev.write(&counter, &next, 0, 0, None).unwrap();
        ids
    });
    let graph = capture.take().unwrap().finish().unwrap();
    for c in 1..6 {
        graph.replay().unwrap();
        let eager = dev
            .sample(&logits, &p, &dev.upload_i64(&[1], &[c]).unwrap())
            .unwrap();
        assert_eq!(
            dev.to_i64_vec(&ids).unwrap(),
            dev.to_i64_vec(&eager).unwrap(),
            "counter {c}"
        );
    }
}

pub fn capture_records_one_device_and_no_uploads(dev: &Device) {
    let a = dev.upload_f32(&[2], &[1.0, 2.0]).unwrap();
    let mut capture = Some(Capture::new());
    let b = Capture::scope(&mut capture, || {
        // Made from guest data: a constant, not an op of the graph.
        let c = dev.upload_f32(&[2], &[10.0, 20.0]).unwrap();
        dev.add(&a, &c).unwrap()
    });
    let graph = capture.take().unwrap().finish().unwrap();
    assert_eq!(graph.len(), 1);
    dev.write(&a, &dev.upload_f32(&[2], &[3.0, 4.0]).unwrap(), 0, 0, None)
        .unwrap();
    graph.replay().unwrap();
    assert_eq!(read(dev, &b), vec![13.0, 24.0]);
    // Another device's op cannot join the capture.
    let other = Device::cpu(wasmpod_tensor::MemoryAccount::unlimited("other"));
    let mut capture = Some(Capture::new());
    let outcome = Capture::scope(&mut capture, || {
        dev.scale(&a, 1.0, 0.0).unwrap();
        let t = other.zeros(DType::F32, &[1]);
        t.map(|_| ())
    });
    assert_err!(outcome, InvalidArgument);
}
