//! The checked front of the long-tail ops: [`Device`] methods that
//! validate dtypes, shapes and arguments, then call the backend.

use super::{CompareOp, Distribution, MathOp, PairOp, Range};
use crate::shape::{broadcast, checked_bytes, normalize_axis};
use crate::{DType, Device, Result, Tensor, TensorError};

/// Ranges and random tensors are capped here, so a typo in a bound is an
/// error rather than an attempt at a huge allocation.
const MAX_GENERATED: usize = 1 << 31;

fn owned(dev: &Device, t: &Tensor) -> Result<()> {
    if dev.holds(t) {
        Ok(())
    } else {
        Err(TensorError::InvalidArgument(format!(
            "the tensor is not on device {}; move it with to-device",
            dev.name()
        )))
    }
}

fn same_dtype(op: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() == b.dtype() {
        Ok(())
    } else {
        Err(TensorError::DTypeMismatch(format!(
            "{op} operands have dtypes {} and {}; cast one so they match",
            a.dtype(),
            b.dtype()
        )))
    }
}

fn need_float(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(TensorError::DTypeMismatch(format!(
            "{op} needs a float tensor (f32, f16 or bf16), got {}; cast it first",
            t.dtype()
        )))
    }
}

fn generated(op: &str, dtype: DType, shape: &[usize]) -> Result<()> {
    match checked_bytes(dtype, shape) {
        Some(_) if shape.iter().product::<usize>() <= MAX_GENERATED => Ok(()),
        _ => Err(TensorError::InvalidArgument(format!(
            "{op}: a tensor of shape {shape:?} is larger than the {MAX_GENERATED} elements this op makes at once"
        ))),
    }
}

impl Device {
    /// An elementwise function (see [`MathOp`]): floats, and integers for
    /// abs and neg.
    pub fn math(&self, op: MathOp, a: &Tensor) -> Result<Tensor> {
        if !op.takes_integers() {
            need_float(op.name(), a)?;
        }
        owned(self, a)?;
        crate::graph::run1(self, &[a], move |b, t| b.math(op, &t[0]))
    }

    /// `min(max(a, lo), hi)`; either bound may be absent. Every dtype (an
    /// integer tensor clamps to the bounds rounded inward).
    pub fn clamp(&self, a: &Tensor, lo: Option<f32>, hi: Option<f32>) -> Result<Tensor> {
        owned(self, a)?;
        let bad = |v: Option<f32>| v.is_some_and(f32::is_nan);
        if bad(lo) || bad(hi) || matches!((lo, hi), (Some(l), Some(h)) if l > h) {
            return Err(TensorError::InvalidArgument(format!(
                "clamp bounds min {lo:?}, max {hi:?}: they must not be NaN and min must be <= max"
            )));
        }
        crate::graph::run1(self, &[a], move |b, t| b.clamp(&t[0], lo, hi))
    }

    /// pow, minimum or maximum with NumPy broadcasting.
    pub fn pair(&self, op: PairOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        same_dtype(op.name(), a, b)?;
        if op == PairOp::Pow {
            need_float("pow", a)?;
        }
        owned(self, a)?;
        owned(self, b)?;
        let out = broadcast(a.shape(), b.shape())?;
        crate::graph::run1(self, &[a, b], move |be, t| be.pair(op, &t[0], &t[1], &out))
    }

    /// An elementwise comparison with NumPy broadcasting: a u8 tensor of 0
    /// and 1. Every dtype; both operands the same.
    pub fn compare(&self, op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        same_dtype(op.name(), a, b)?;
        owned(self, a)?;
        owned(self, b)?;
        let out = broadcast(a.shape(), b.shape())?;
        crate::graph::run1(self, &[a, b], move |be, t| {
            be.compare(op, &t[0], &t[1], &out)
        })
    }

    /// `cond != 0 ? on_true : on_false`, elementwise, all three broadcast
    /// together. `cond` may have any dtype; the two choices share one.
    pub fn select(&self, cond: &Tensor, on_true: &Tensor, on_false: &Tensor) -> Result<Tensor> {
        same_dtype("where", on_true, on_false)?;
        for t in [cond, on_true, on_false] {
            owned(self, t)?;
        }
        let out = broadcast(on_true.shape(), on_false.shape())
            .and_then(|s| broadcast(cond.shape(), &s))
            .map_err(|_| {
                TensorError::ShapeMismatch(format!(
                    "where: the condition {:?} and the choices {:?} and {:?} do not broadcast together",
                    cond.shape(),
                    on_true.shape(),
                    on_false.shape()
                ))
            })?;
        crate::graph::run1(self, &[cond, on_true, on_false], move |b, t| {
            b.select(&t[0], &t[1], &t[2], &out)
        })
    }

    /// Cumulative sum along `axis` (every dtype; integers wrap).
    pub fn cumsum(&self, a: &Tensor, axis: i32) -> Result<Tensor> {
        owned(self, a)?;
        let axis = normalize_axis(axis, a.rank())?;
        crate::graph::run1(self, &[a], move |b, t| b.cumsum(&t[0], axis))
    }

    /// `[start, start + step, ...]` up to `end` (exclusive), as PyTorch's
    /// `arange`.
    pub fn arange(&self, dtype: DType, start: f64, end: f64, step: f64) -> Result<Tensor> {
        if !(start.is_finite() && end.is_finite() && step.is_finite()) || step == 0.0 {
            return Err(TensorError::InvalidArgument(format!(
                "arange({start}, {end}, step {step}): the bounds must be finite and the step finite and non-zero"
            )));
        }
        let count = ((end - start) / step).ceil();
        let n = if count > 0.0 { count as usize } else { 0 };
        if count > MAX_GENERATED as f64 {
            return Err(TensorError::InvalidArgument(format!(
                "arange({start}, {end}, step {step}) would have {count} elements; at most {MAX_GENERATED}"
            )));
        }
        generated("arange", dtype, &[n])?;
        let range = Range::Arange { start, step, n };
        crate::graph::run1(self, &[], move |b, _| b.range(dtype, &range))
    }

    /// `steps` values from `start` to `end` inclusive, as PyTorch's
    /// `linspace`.
    pub fn linspace(&self, dtype: DType, start: f64, end: f64, steps: usize) -> Result<Tensor> {
        if !(start.is_finite() && end.is_finite()) {
            return Err(TensorError::InvalidArgument(format!(
                "linspace({start}, {end}): the bounds must be finite"
            )));
        }
        generated("linspace", dtype, &[steps])?;
        let range = Range::Linspace {
            start,
            end,
            n: steps,
        };
        crate::graph::run1(self, &[], move |b, _| b.range(dtype, &range))
    }

    /// A float tensor of uniform or normal samples: element `i` depends
    /// only on `seed` and `i` ([`super::philox`]), on every backend.
    pub fn random(
        &self,
        dtype: DType,
        shape: &[usize],
        seed: u64,
        dist: Distribution,
    ) -> Result<Tensor> {
        if !dtype.is_float() {
            return Err(TensorError::DTypeMismatch(format!(
                "random tensors are float (f32, f16 or bf16), not {dtype}; cast the result instead"
            )));
        }
        let ok = match dist {
            Distribution::Uniform { low, high } => {
                low.is_finite() && high.is_finite() && low <= high
            }
            Distribution::Normal { mean, std } => mean.is_finite() && std.is_finite() && std >= 0.0,
        };
        if !ok {
            return Err(TensorError::InvalidArgument(format!(
                "random: {dist:?} is not a distribution (bounds finite with low <= high; std finite and >= 0)"
            )));
        }
        generated("random", dtype, shape)?;
        let shape = shape.to_vec();
        crate::graph::run1(self, &[], move |b, _| b.random(dtype, &shape, seed, dist))
    }

    pub fn exp(&self, a: &Tensor) -> Result<Tensor> {
        self.math(MathOp::Exp, a)
    }

    pub fn log(&self, a: &Tensor) -> Result<Tensor> {
        self.math(MathOp::Log, a)
    }

    pub fn sqrt(&self, a: &Tensor) -> Result<Tensor> {
        self.math(MathOp::Sqrt, a)
    }

    pub fn rsqrt(&self, a: &Tensor) -> Result<Tensor> {
        self.math(MathOp::Rsqrt, a)
    }

    pub fn sigmoid(&self, a: &Tensor) -> Result<Tensor> {
        self.math(MathOp::Sigmoid, a)
    }

    pub fn pow(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.pair(PairOp::Pow, a, b)
    }

    pub fn minimum(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.pair(PairOp::Minimum, a, b)
    }

    pub fn maximum(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.pair(PairOp::Maximum, a, b)
    }
}
