//! The elementwise long tail: math functions (exp, log, sqrt, rsqrt, abs,
//! neg, sigmoid, sin, cos), clamp, pow and elementwise min/max,
//! comparisons and `where`, cumulative sums, ranges (arange, linspace) and
//! seeded random tensors. [`front`] holds the checked [`crate::Device`]
//! methods, [`philox`] the counter-based generator both backends share (so
//! a seed gives the same numbers on the CPU and on a GPU), and
//! [`MathBackend`] the part of [`crate::Backend`] that computes them.

mod front;
pub mod philox;

use crate::{DType, Result, Tensor};

/// Elementwise functions of one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MathOp {
    Exp,
    /// Natural logarithm.
    Log,
    Sqrt,
    /// `1 / sqrt(x)`.
    Rsqrt,
    Abs,
    Neg,
    Sigmoid,
    Sin,
    Cos,
}

impl MathOp {
    /// The op's name in the WIT contract.
    pub fn name(self) -> &'static str {
        match self {
            MathOp::Exp => "exp",
            MathOp::Log => "log",
            MathOp::Sqrt => "sqrt",
            MathOp::Rsqrt => "rsqrt",
            MathOp::Abs => "abs",
            MathOp::Neg => "neg",
            MathOp::Sigmoid => "sigmoid",
            MathOp::Sin => "sin",
            MathOp::Cos => "cos",
        }
    }

    /// abs and neg also take integers (wrapping, as Rust's `wrapping_*`).
    pub fn takes_integers(self) -> bool {
        matches!(self, MathOp::Abs | MathOp::Neg)
    }

    /// The f32 reference every backend matches.
    pub fn apply(self, x: f32) -> f32 {
        match self {
            MathOp::Exp => x.exp(),
            MathOp::Log => x.ln(),
            MathOp::Sqrt => x.sqrt(),
            MathOp::Rsqrt => 1.0 / x.sqrt(),
            MathOp::Abs => x.abs(),
            MathOp::Neg => -x,
            MathOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            MathOp::Sin => x.sin(),
            MathOp::Cos => x.cos(),
        }
    }

    /// Code the CUDA kernels take.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Elementwise functions of two tensors (NumPy broadcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PairOp {
    /// `a ** b` (floats).
    Pow,
    /// Elementwise minimum; NaN wins.
    Minimum,
    /// Elementwise maximum; NaN wins.
    Maximum,
}

impl PairOp {
    pub fn name(self) -> &'static str {
        match self {
            PairOp::Pow => "pow",
            PairOp::Minimum => "minimum",
            PairOp::Maximum => "maximum",
        }
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// Elementwise comparisons; results are u8 tensors of 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CompareOp {
    pub fn name(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
        }
    }

    /// The comparison of two values (IEEE for floats: NaN is unequal to
    /// everything).
    pub fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            CompareOp::Lt => a < b,
            CompareOp::Le => a <= b,
            CompareOp::Gt => a > b,
            CompareOp::Ge => a >= b,
        }
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

/// A 1-D range of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// `start + i * step` for `i in 0..n`.
    Arange { start: f64, step: f64, n: usize },
    /// `n` values from `start` to `end` inclusive, evenly spaced (PyTorch's
    /// formula: the second half counts back from `end`, so both ends are
    /// exact).
    Linspace { start: f64, end: f64, n: usize },
}

impl Range {
    pub fn len(&self) -> usize {
        match *self {
            Range::Arange { n, .. } | Range::Linspace { n, .. } => n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Value `i` (in f64; converted to the tensor's dtype on store).
    pub fn value(&self, i: usize) -> f64 {
        match *self {
            Range::Arange { start, step, .. } => start + i as f64 * step,
            Range::Linspace { start, end, n } => {
                if n == 1 {
                    return start;
                }
                let step = (end - start) / (n - 1) as f64;
                if i < n / 2 {
                    start + i as f64 * step
                } else {
                    end - (n - 1 - i) as f64 * step
                }
            }
        }
    }
}

/// What a random tensor is drawn from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    /// Uniform on `[low, high)`.
    Uniform { low: f32, high: f32 },
    /// Normal with this mean and standard deviation.
    Normal { mean: f32, std: f32 },
}

/// The long-tail ops of a backend. Arguments arrive checked by the front;
/// `out_shape` is the broadcast shape of the operands.
pub trait MathBackend {
    fn math(&self, op: MathOp, a: &Tensor) -> Result<Tensor>;
    /// `min(max(a, lo), hi)` with either bound optional.
    fn clamp(&self, a: &Tensor, lo: Option<f32>, hi: Option<f32>) -> Result<Tensor>;
    fn pair(&self, op: PairOp, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Tensor>;
    /// u8 0/1 results.
    fn compare(&self, op: CompareOp, a: &Tensor, b: &Tensor, out_shape: &[usize])
    -> Result<Tensor>;
    /// `cond != 0 ? a : b`, all three broadcast to `out_shape`.
    fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor, out_shape: &[usize]) -> Result<Tensor>;
    /// Running sum along `axis` (floats accumulate in f64, integers wrap).
    fn cumsum(&self, a: &Tensor, axis: usize) -> Result<Tensor>;
    /// A 1-D tensor of the range's values.
    fn range(&self, dtype: DType, range: &Range) -> Result<Tensor>;
    /// Element `i` from [`philox::sample`] of `seed` (float dtypes).
    fn random(
        &self,
        dtype: DType,
        shape: &[usize],
        seed: u64,
        dist: Distribution,
    ) -> Result<Tensor>;
}
