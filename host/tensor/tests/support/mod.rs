//! Helpers of the conformance suite: deterministic data, uploads in any
//! dtype, naive index arithmetic and tolerance checks against f64
//! references.

#![allow(dead_code)]

use half::{bf16, f16};
use wasmpod_tensor::{DType, Device, Tensor};

pub const ALL: [DType; 6] = DType::ALL;
pub const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
pub const INTS: [DType; 3] = [DType::I32, DType::I64, DType::U8];

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }

    /// `n` values uniform in [-scale, scale).
    pub fn floats(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.unit() * scale).collect()
    }

    /// `n` integers in `lo..hi`.
    pub fn ints(&mut self, n: usize, lo: i64, hi: i64) -> Vec<i64> {
        (0..n)
            .map(|_| lo + (self.next_u64() % (hi - lo) as u64) as i64)
            .collect()
    }

    /// Values suited to `dtype`: floats in [-scale, scale), integers in
    /// a range every integer dtype holds (0..100 for u8, -50..50 otherwise).
    pub fn values(&mut self, dtype: DType, n: usize, scale: f64) -> Vec<f64> {
        match dtype {
            DType::U8 => self.ints(n, 0, 100).into_iter().map(|v| v as f64).collect(),
            d if d.is_int() => self
                .ints(n, -50, 50)
                .into_iter()
                .map(|v| v as f64)
                .collect(),
            _ => self.floats(n, scale),
        }
    }
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Little-endian bytes of `values` in `dtype` (floats round to nearest,
/// integers must be in range).
pub fn encode(dtype: DType, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for &v in values {
        match dtype {
            DType::F32 => out.extend((v as f32).to_le_bytes()),
            DType::F16 => out.extend(f16::from_f64(v).to_le_bytes()),
            DType::BF16 => out.extend(bf16::from_f64(v).to_le_bytes()),
            DType::I32 => out.extend((v as i32).to_le_bytes()),
            DType::I64 => out.extend((v as i64).to_le_bytes()),
            DType::U8 => out.push(v as u8),
        }
    }
    out
}

/// Upload `values` as a `dtype` tensor of `shape`.
pub fn upload(dev: &Device, dtype: DType, shape: &[usize], values: &[f64]) -> Tensor {
    assert_eq!(numel(shape), values.len(), "test data for {shape:?}");
    dev.upload(dtype, shape, &encode(dtype, values))
        .unwrap_or_else(|e| panic!("upload {dtype} {shape:?}: {e}"))
}

/// Random `dtype` tensor of `shape` and the values it actually stores
/// (after rounding to the dtype): the inputs a reference must use.
pub fn random(
    dev: &Device,
    rng: &mut Rng,
    dtype: DType,
    shape: &[usize],
    scale: f64,
) -> (Tensor, Vec<f64>) {
    let values = rng.values(dtype, numel(shape), scale);
    let t = upload(dev, dtype, shape, &values);
    let stored = read(dev, &t);
    (t, stored)
}

/// A tensor's values as f64 (through `to_f32_vec`, exact for every value
/// the tests store).
pub fn read(dev: &Device, t: &Tensor) -> Vec<f64> {
    dev.to_f32_vec(t)
        .expect("read back")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Relative tolerance of a result stored in `dtype` (a few units in the
/// last place: f32 for compute-order differences, f16/bf16 for the final
/// rounding plus a GPU computing in native precision).
pub fn rtol(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2e-5,
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
        _ => 0.0,
    }
}

/// `got` matches `want` elementwise within `|err| <= rtol * (|want| + scale)`,
/// where `scale` is the magnitude of the terms a value was computed from
/// (so results that cancel to ~0 are judged against their inputs).
pub fn assert_close(what: &str, dtype: DType, got: &[f64], want: &[f64], scale: f64) {
    assert_eq!(got.len(), want.len(), "{what}: element count");
    let tol = rtol(dtype);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() {
            assert!(g.is_nan(), "{what}: element {i} is {g}, want NaN");
            continue;
        }
        if w.is_infinite() {
            assert_eq!(g, w, "{what}: element {i}");
            continue;
        }
        let err = (g - w).abs();
        let bound = tol * (w.abs() + scale);
        assert!(
            err <= bound,
            "{what} ({dtype}): element {i} is {g}, want {w} (error {err:e} > {bound:e})"
        );
    }
}

/// Check shape, dtype and values of `t` against a reference.
pub fn check(
    dev: &Device,
    what: &str,
    t: &Tensor,
    dtype: DType,
    shape: &[usize],
    want: &[f64],
    scale: f64,
) {
    assert_eq!(t.shape(), shape, "{what}: shape");
    assert_eq!(t.dtype(), dtype, "{what}: dtype");
    let got = read(dev, t);
    if dtype.is_int() {
        assert_eq!(got, want, "{what} ({dtype})");
    } else {
        assert_close(what, dtype, &got, want, scale);
    }
}

/// An integer result wrapped to `dtype`, as the backends store it.
pub fn wrap(dtype: DType, v: i64) -> f64 {
    match dtype {
        DType::I32 => v as i32 as f64,
        DType::U8 => v as u8 as f64,
        _ => v as f64,
    }
}

/// Row-major strides.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Multi-index of flat position `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Flat position of a multi-index.
pub fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(strides(shape)).map(|(i, s)| i * s).sum()
}

/// Flat position in `shape` of the output multi-index `out_idx` under NumPy
/// broadcasting (right-aligned, size-1 dimensions pinned to 0).
pub fn broadcast_index(out_idx: &[usize], shape: &[usize]) -> usize {
    let off = out_idx.len() - shape.len();
    let idx: Vec<usize> = shape
        .iter()
        .enumerate()
        .map(|(d, &n)| if n == 1 { 0 } else { out_idx[off + d] })
        .collect();
    ravel(&idx, shape)
}

/// Reference NumPy broadcast of two shapes (panics if they do not fit).
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|i| {
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
            if da == 1 { db } else { da }
        })
        .collect()
}

/// Asserts `result` is an error of the given `TensorError` variant whose
/// message is non-empty, and returns the message.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $variant:ident) => {{
        match $result {
            Err(wasmpod_tensor::TensorError::$variant(msg)) => {
                assert!(
                    !msg.is_empty(),
                    "empty message for {}",
                    stringify!($variant)
                );
                msg
            }
            Err(other) => panic!(
                "{}: expected {} but got {other:?}",
                stringify!($result),
                stringify!($variant)
            ),
            Ok(v) => panic!(
                "{}: expected {} but it succeeded with {v:?}",
                stringify!($result),
                stringify!($variant)
            ),
        }
    }};
}
