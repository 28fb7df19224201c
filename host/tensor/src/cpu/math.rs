//! [`MathBackend`] for the CPU: floats compute in f32 (sums in f64),
//! integers in i64, wrapping on store, as the rest of the backend.

use rayon::prelude::*;

use super::data::CpuData;
use super::{CpuBackend, elementwise, unary_math};
use crate::math::{CompareOp, Distribution, MathBackend, MathOp, PairOp, Range, philox};
use crate::{DType, Result, Tensor};

/// NaN-propagating minimum and maximum (`f32::min` would drop the NaN).
fn fmin(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

fn pick<T>(t: bool, x: T, y: T) -> T {
    if t { x } else { y }
}

fn fmax(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

impl MathBackend for CpuBackend {
    fn math(&self, op: MathOp, a: &Tensor) -> Result<Tensor> {
        let dtype = a.dtype();
        if dtype.is_int() {
            return self.alloc(dtype, a.shape(), || {
                let da = self.data(a);
                let x = da.i64s();
                let v = match op {
                    MathOp::Abs => elementwise::map(&x, i64::wrapping_abs),
                    _ => elementwise::map(&x, i64::wrapping_neg),
                };
                CpuData::from_i64(dtype, v)
            });
        }
        self.alloc_f32(dtype, a.shape(), || {
            elementwise::map(&self.data(a).f32s(), |v| op.apply(v))
        })
    }

    fn clamp(&self, a: &Tensor, lo: Option<f32>, hi: Option<f32>) -> Result<Tensor> {
        let dtype = a.dtype();
        if dtype.is_int() {
            let lo = lo.map_or(i64::MIN, |l| l.ceil() as i64);
            let hi = hi.map_or(i64::MAX, |h| h.floor() as i64);
            return self.alloc(dtype, a.shape(), || {
                CpuData::from_i64(
                    dtype,
                    elementwise::map(&self.data(a).i64s(), |v| v.clamp(lo, hi)),
                )
            });
        }
        let (lo, hi) = (lo.unwrap_or(f32::NEG_INFINITY), hi.unwrap_or(f32::INFINITY));
        self.alloc_f32(dtype, a.shape(), || {
            elementwise::map(&self.data(a).f32s(), |v| {
                if v.is_nan() { v } else { v.clamp(lo, hi) }
            })
        })
    }

    fn pair(&self, op: PairOp, a: &Tensor, b: &Tensor, out: &[usize]) -> Result<Tensor> {
        let dtype = a.dtype();
        let (sa, sb) = (a.shape(), b.shape());
        if dtype.is_int() {
            return self.alloc(dtype, out, || {
                let (da, db) = (self.data(a), self.data(b));
                let (x, y) = (da.i64s(), db.i64s());
                let v = match op {
                    PairOp::Minimum => elementwise::broadcast_map(&x, sa, &y, sb, out, i64::min),
                    _ => elementwise::broadcast_map(&x, sa, &y, sb, out, i64::max),
                };
                CpuData::from_i64(dtype, v)
            });
        }
        self.alloc_f32(dtype, out, || {
            let (da, db) = (self.data(a), self.data(b));
            let (x, y) = (da.f32s(), db.f32s());
            match op {
                PairOp::Pow => elementwise::broadcast_map(&x, sa, &y, sb, out, f32::powf),
                PairOp::Minimum => elementwise::broadcast_map(&x, sa, &y, sb, out, fmin),
                PairOp::Maximum => elementwise::broadcast_map(&x, sa, &y, sb, out, fmax),
            }
        })
    }

    fn compare(&self, op: CompareOp, a: &Tensor, b: &Tensor, out: &[usize]) -> Result<Tensor> {
        let (sa, sb) = (a.shape(), b.shape());
        self.alloc(DType::U8, out, || {
            let (da, db) = (self.data(a), self.data(b));
            CpuData::U8(if a.dtype().is_int() {
                let (x, y) = (da.i64s(), db.i64s());
                elementwise::broadcast_map(&x, sa, &y, sb, out, |p, q| op.holds(p, q) as u8)
            } else {
                let (x, y) = (da.f32s(), db.f32s());
                elementwise::broadcast_map(&x, sa, &y, sb, out, |p, q| op.holds(p, q) as u8)
            })
        })
    }

    fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor, out: &[usize]) -> Result<Tensor> {
        let truth: Vec<bool> = if cond.dtype().is_int() {
            self.data(cond).i64s().iter().map(|&v| v != 0).collect()
        } else {
            self.data(cond).f32s().iter().map(|&v| v != 0.0).collect()
        };
        let c = (truth.as_slice(), cond.shape());
        macro_rules! typed {
            ($variant:ident) => {{
                let (da, db) = (self.data(a), self.data(b));
                let (CpuData::$variant(x), CpuData::$variant(y)) = (&*da, &*db) else {
                    unreachable!("the front checks that the choices share a dtype")
                };
                CpuData::$variant(unary_math::broadcast3(
                    c,
                    (x, a.shape()),
                    (y, b.shape()),
                    out,
                    pick,
                ))
            }};
        }
        self.alloc(a.dtype(), out, || match a.dtype() {
            DType::F32 => typed!(F32),
            DType::F16 => typed!(F16),
            DType::BF16 => typed!(BF16),
            DType::I32 => typed!(I32),
            DType::I64 => typed!(I64),
            DType::U8 => typed!(U8),
        })
    }

    fn cumsum(&self, a: &Tensor, axis: usize) -> Result<Tensor> {
        let dtype = a.dtype();
        if dtype.is_int() {
            return self.alloc(dtype, a.shape(), || {
                let da = self.data(a);
                let x = da.i64s();
                let v =
                    unary_math::cumsum(&x, a.shape(), axis, 0i64, |s, v| s.wrapping_add(v), |s| s);
                CpuData::from_i64(dtype, v)
            });
        }
        self.alloc_f32(dtype, a.shape(), || {
            let da = self.data(a);
            let x = da.f32s();
            unary_math::cumsum(&x, a.shape(), axis, 0f64, |s, v| s + v as f64, |s| s as f32)
        })
    }

    fn range(&self, dtype: DType, range: &Range) -> Result<Tensor> {
        let n = range.len();
        self.alloc(dtype, &[n], || {
            if dtype.is_int() {
                CpuData::from_i64(dtype, (0..n).map(|i| range.value(i) as i64).collect())
            } else {
                CpuData::from_f32(dtype, (0..n).map(|i| range.value(i) as f32).collect())
            }
        })
    }

    fn random(
        &self,
        dtype: DType,
        shape: &[usize],
        seed: u64,
        dist: Distribution,
    ) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        self.alloc_f32(dtype, shape, || {
            let mut v = vec![0f32; n];
            v.par_iter_mut()
                .enumerate()
                .for_each(|(i, o)| *o = philox::sample(seed, i as u64, dist));
            v
        })
    }
}
