//! The checked front of the tensor API: one method per WIT op.
//!
//! Every method validates its arguments here, once for all backends, and
//! returns a [`TensorError`] naming what is wrong; only then does it call the
//! backend, which can assume well-formed arguments.
//!
//! Dtype rules: matmul, the activations, scale, softmax, the norms and mean
//! take float tensors only (`DTypeMismatch` otherwise); operands of one op
//! share a dtype; add/sub/mul/div, sum, max, argmax, top-k, gather (table),
//! cast and data movement take every dtype; gather indices are integers.
//! Results keep the input dtype (argmax and top-k indices are i64).

use std::sync::Arc;

use crate::cpu::CpuBackend;
use crate::graph;
use crate::shape::{broadcast, checked_bytes, infer_reshape, normalize_axis, plan_matmul};
use crate::{
    Backend, BinaryOp, DType, HostBuffer, MemoryAccount, ReduceOp, Result, Tensor, TensorError,
    UnaryOp,
};

/// A worker's view of one device: a backend plus argument checking.
#[derive(Clone)]
pub struct Device {
    backend: Arc<dyn Backend>,
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

fn size_of(dtype: DType, shape: &[usize]) -> Result<usize> {
    checked_bytes(dtype, shape).ok_or_else(|| {
        TensorError::InvalidArgument(format!(
            "a {dtype} tensor of shape {shape:?} has more bytes than this machine can address"
        ))
    })
}

fn check_len(dtype: DType, shape: &[usize], len: usize) -> Result<()> {
    let want = size_of(dtype, shape)?;
    if want == len {
        Ok(())
    } else {
        Err(TensorError::ShapeMismatch(format!(
            "shape {shape:?} of {dtype} needs {want} bytes ({} elements of {} bytes), got {len}; pass exactly product(shape) * size(dtype) bytes",
            want / dtype.size(),
            dtype.size()
        )))
    }
}

/// Norm epsilons must keep `sqrt(var + eps)` positive and finite.
fn check_eps(op: &str, eps: f32) -> Result<()> {
    if eps.is_finite() && eps >= 0.0 {
        Ok(())
    } else {
        Err(TensorError::InvalidArgument(format!(
            "{op}: eps is {eps}, it must be finite and >= 0 (typically 1e-5 or 1e-6)"
        )))
    }
}

impl Device {
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }

    /// A CPU device whose allocations are charged to `account`.
    pub fn cpu(account: Arc<MemoryAccount>) -> Self {
        Self::new(Arc::new(CpuBackend::new(account)))
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The backend's name ("cpu", "cuda:0").
    pub fn name(&self) -> &str {
        self.backend.name()
    }

    /// The account this device's allocations are charged to.
    pub fn account(&self) -> &Arc<MemoryAccount> {
        self.backend.account()
    }

    /// True if `t` can be an operand of this device's ops.
    pub fn holds(&self, t: &Tensor) -> bool {
        self.backend.owns(t)
    }

    fn owned(&self, t: &Tensor) -> Result<()> {
        if self.backend.owns(t) {
            Ok(())
        } else {
            Err(TensorError::InvalidArgument(format!(
                "the tensor is not on device {}; move it with to-device",
                self.backend.name()
            )))
        }
    }

    /// Upload row-major little-endian bytes.
    pub fn upload(&self, dtype: DType, shape: &[usize], bytes: &[u8]) -> Result<Tensor> {
        check_len(dtype, shape, bytes.len())?;
        self.backend.upload(dtype, shape, bytes)
    }

    /// Upload f32 values.
    pub fn upload_f32(&self, shape: &[usize], values: &[f32]) -> Result<Tensor> {
        self.upload(DType::F32, shape, bytemuck::cast_slice(values))
    }

    /// Upload i64 values.
    pub fn upload_i64(&self, shape: &[usize], values: &[i64]) -> Result<Tensor> {
        self.upload(DType::I64, shape, bytemuck::cast_slice(values))
    }

    /// A host buffer of `len` bytes to page tensors of this device into
    /// (pinned on a GPU, so paging back in is one DMA).
    pub fn host_buffer(&self, len: usize) -> Result<HostBuffer> {
        self.backend.host_buffer(len)
    }

    /// Copy `t` into `dst`, which must be exactly `t`'s size.
    pub fn download_into(&self, t: &Tensor, dst: &mut HostBuffer) -> Result<()> {
        self.owned(t)?;
        let want = size_of(t.dtype(), t.shape())?;
        if dst.len() != want {
            return Err(TensorError::ShapeMismatch(format!(
                "a {} tensor of shape {:?} has {want} bytes but the host buffer has {}",
                t.dtype(),
                t.shape(),
                dst.len()
            )));
        }
        self.backend.download_into(t, dst)
    }

    /// Upload a host buffer (one bulk copy when it is pinned).
    pub fn upload_host(&self, dtype: DType, shape: &[usize], src: &HostBuffer) -> Result<Tensor> {
        check_len(dtype, shape, src.len())?;
        self.backend.upload_host(dtype, shape, src)
    }

    /// Upload many host buffers, waiting once for all of them (bulk page-in).
    pub fn upload_host_batch(
        &self,
        items: &[(DType, &[usize], &HostBuffer)],
    ) -> Result<Vec<Tensor>> {
        for (dtype, shape, src) in items {
            check_len(*dtype, shape, src.len())?;
        }
        self.backend.upload_host_batch(items)
    }

    /// Moves `t`'s buffer out without a copy where the backend can (CPU,
    /// sole handle); gives `t` back otherwise.
    pub fn take_host(&self, t: Tensor) -> std::result::Result<HostBuffer, Tensor> {
        if !self.backend.owns(&t) {
            return Err(t);
        }
        self.backend.take_host(t)
    }

    /// [`Device::upload_host`], consuming the buffer (no copy for a buffer
    /// the CPU backend gave out with [`Device::take_host`]).
    pub fn upload_host_owned(
        &self,
        dtype: DType,
        shape: &[usize],
        src: HostBuffer,
    ) -> Result<Tensor> {
        check_len(dtype, shape, src.len())?;
        self.backend.upload_host_owned(dtype, shape, src)
    }

    pub fn zeros(&self, dtype: DType, shape: &[usize]) -> Result<Tensor> {
        size_of(dtype, shape)?;
        let shape = shape.to_vec();
        graph::run1(self, &[], move |b, _| b.zeros(dtype, &shape))
    }

    pub fn download(&self, t: &Tensor) -> Result<Vec<u8>> {
        self.owned(t)?;
        self.backend.download(t)
    }

    /// Read back as f32 values (any dtype, converted).
    pub fn to_f32_vec(&self, t: &Tensor) -> Result<Vec<f32>> {
        let bytes = self.download(t)?;
        Ok(crate::cpu::bytes_to_f32(t.dtype(), &bytes))
    }

    /// Read back as i64 values (integer dtypes only).
    pub fn to_i64_vec(&self, t: &Tensor) -> Result<Vec<i64>> {
        if !t.dtype().is_int() {
            return Err(TensorError::DTypeMismatch(format!(
                "to-i64 reads integer tensors, this one is {}; use to-f32 or cast first",
                t.dtype()
            )));
        }
        let bytes = self.download(t)?;
        Ok(crate::cpu::bytes_to_i64(t.dtype(), &bytes))
    }

    pub fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        need_float("matmul", a)?;
        same_dtype("matmul", a, b)?;
        self.owned(a)?;
        self.owned(b)?;
        let plan = plan_matmul(a.shape(), b.shape())?;
        let lhs = a.with_shape(plan.lhs.clone());
        let rhs = b.with_shape(plan.rhs.clone());
        let batch = plan.batch.clone();
        let out = graph::run1(self, &[&lhs, &rhs], move |be, t| {
            be.matmul(&t[0], &t[1], &batch)
        })?;
        Ok(out.with_shape(plan.out))
    }

    pub fn binary(&self, op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        same_dtype(&format!("{op:?}").to_lowercase(), a, b)?;
        self.owned(a)?;
        self.owned(b)?;
        let out = broadcast(a.shape(), b.shape())?;
        graph::run1(self, &[a, b], move |be, t| {
            be.binary(op, &t[0], &t[1], &out)
        })
    }

    pub fn unary(&self, op: UnaryOp, a: &Tensor) -> Result<Tensor> {
        need_float(&format!("{op:?}").to_lowercase(), a)?;
        self.owned(a)?;
        graph::run1(self, &[a], move |b, t| b.unary(op, &t[0]))
    }

    pub fn scale(&self, a: &Tensor, factor: f32, offset: f32) -> Result<Tensor> {
        need_float("scale", a)?;
        self.owned(a)?;
        graph::run1(self, &[a], move |b, t| b.scale(&t[0], factor, offset))
    }

    pub fn softmax(&self, a: &Tensor, axis: i32) -> Result<Tensor> {
        need_float("softmax", a)?;
        self.owned(a)?;
        let axis = normalize_axis(axis, a.rank())?;
        graph::run1(self, &[a], move |b, t| b.softmax(&t[0], axis))
    }

    fn norm_weight(&self, op: &str, a: &Tensor, w: Option<&Tensor>, what: &str) -> Result<()> {
        let Some(w) = w else { return Ok(()) };
        self.owned(w)?;
        same_dtype(op, a, w)?;
        let last = *a.shape().last().unwrap_or(&1);
        if w.shape() != [last] {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: {what} has shape {:?} but must be [{last}] (the size of the input's last axis)",
                w.shape()
            )));
        }
        Ok(())
    }

    pub fn layer_norm(
        &self,
        a: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        eps: f32,
    ) -> Result<Tensor> {
        need_float("layer-norm", a)?;
        self.owned(a)?;
        if a.rank() == 0 {
            return Err(TensorError::ShapeMismatch(
                "layer-norm needs a tensor of rank >= 1".into(),
            ));
        }
        check_eps("layer-norm", eps)?;
        self.norm_weight("layer-norm", a, weight, "weight")?;
        self.norm_weight("layer-norm", a, bias, "bias")?;
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        let mut inputs = vec![a];
        inputs.extend(weight);
        inputs.extend(bias);
        graph::run1(self, &inputs, move |be, t| {
            let w = has_w.then(|| &t[1]);
            let b = has_b.then(|| &t[if has_w { 2 } else { 1 }]);
            be.layer_norm(&t[0], w, b, eps)
        })
    }

    pub fn rms_norm(&self, a: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        need_float("rms-norm", a)?;
        self.owned(a)?;
        if a.rank() == 0 {
            return Err(TensorError::ShapeMismatch(
                "rms-norm needs a tensor of rank >= 1".into(),
            ));
        }
        check_eps("rms-norm", eps)?;
        self.norm_weight("rms-norm", a, weight, "weight")?;
        let mut inputs = vec![a];
        inputs.extend(weight);
        graph::run1(self, &inputs, move |be, t| {
            be.rms_norm(&t[0], t.get(1), eps)
        })
    }

    pub fn gather(&self, table: &Tensor, indices: &Tensor) -> Result<Tensor> {
        self.owned(table)?;
        self.owned(indices)?;
        if table.rank() != 2 {
            return Err(TensorError::ShapeMismatch(format!(
                "gather needs a table of shape [rows, dim], got {:?}",
                table.shape()
            )));
        }
        if !indices.dtype().is_int() {
            return Err(TensorError::DTypeMismatch(format!(
                "gather indices must be i32, i64 or u8, got {}; cast them first",
                indices.dtype()
            )));
        }
        let rows = table.shape()[0] as i64;
        let idx = self.to_i64_vec(indices)?;
        if let Some((at, bad)) = idx.iter().enumerate().find(|&(_, &i)| i < 0 || i >= rows) {
            return Err(TensorError::InvalidArgument(format!(
                "gather index {bad} (element {at} of indices {:?}) is outside the table {:?}: indices must be in 0..{rows}",
                indices.shape(),
                table.shape()
            )));
        }
        graph::run1(self, &[table, indices], |b, t| b.gather(&t[0], &t[1]))
    }

    /// Same storage, new shape (metadata only).
    pub fn reshape(&self, a: &Tensor, shape: &[i64]) -> Result<Tensor> {
        self.owned(a)?;
        let to = infer_reshape(a.shape(), shape)?;
        Ok(a.with_shape(to))
    }

    pub fn permute(&self, a: &Tensor, dims: &[usize]) -> Result<Tensor> {
        self.owned(a)?;
        let mut seen = vec![false; a.rank()];
        let valid = dims.len() == a.rank()
            && dims
                .iter()
                .all(|&d| d < a.rank() && !std::mem::replace(&mut seen[d], true));
        if !valid {
            return Err(TensorError::InvalidArgument(format!(
                "permute {dims:?} is not a permutation of the {} axes of {:?}: list each of 0..{} exactly once",
                a.rank(),
                a.shape(),
                a.rank()
            )));
        }
        if dims.iter().enumerate().all(|(i, &d)| i == d) {
            return Ok(a.clone());
        }
        let dims = dims.to_vec();
        graph::run1(self, &[a], move |b, t| b.permute(&t[0], &dims))
    }

    /// Swap two axes (a permute).
    pub fn transpose(&self, a: &Tensor, axis0: i32, axis1: i32) -> Result<Tensor> {
        self.owned(a)?;
        let x = normalize_axis(axis0, a.rank())?;
        let y = normalize_axis(axis1, a.rank())?;
        let mut dims: Vec<usize> = (0..a.rank()).collect();
        dims.swap(x, y);
        self.permute(a, &dims)
    }

    pub fn slice(&self, a: &Tensor, axis: i32, start: usize, end: usize) -> Result<Tensor> {
        self.owned(a)?;
        let ax = normalize_axis(axis, a.rank())?;
        let len = a.shape()[ax];
        if start > end || end > len {
            return Err(TensorError::InvalidArgument(format!(
                "slice {start}..{end} of axis {axis} (length {len}) of {:?}: need start <= end <= {len}",
                a.shape()
            )));
        }
        graph::run1(self, &[a], move |b, t| b.slice(&t[0], ax, start, end))
    }

    pub fn concat(&self, parts: &[&Tensor], axis: i32) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            return Err(TensorError::InvalidArgument(
                "concat needs at least one tensor".into(),
            ));
        };
        let ax = normalize_axis(axis, first.rank())?;
        for (i, p) in parts.iter().enumerate() {
            self.owned(p)?;
            if p.dtype() != first.dtype() {
                return Err(TensorError::DTypeMismatch(format!(
                    "concat: tensor {i} is {} but tensor 0 is {}; cast them to one dtype",
                    p.dtype(),
                    first.dtype()
                )));
            }
            let compatible = p.rank() == first.rank()
                && p.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (x, y))| i == ax || x == y);
            if !compatible {
                return Err(TensorError::ShapeMismatch(format!(
                    "concat along axis {axis}: tensor {i} has shape {:?} but tensor 0 has {:?}; they may differ only along axis {axis}",
                    p.shape(),
                    first.shape()
                )));
            }
        }
        graph::run1(self, parts, move |b, t| {
            let refs: Vec<&Tensor> = t.iter().collect();
            b.concat(&refs, ax)
        })
    }

    pub fn reduce(&self, op: ReduceOp, a: &Tensor, axis: i32, keep_dim: bool) -> Result<Tensor> {
        self.owned(a)?;
        if op == ReduceOp::Mean {
            need_float("mean", a)?;
        }
        let ax = normalize_axis(axis, a.rank())?;
        if op != ReduceOp::Sum && a.shape()[ax] == 0 {
            return Err(TensorError::InvalidArgument(format!(
                "{} along axis {axis} of {:?}: the axis is empty, so there is no value to return",
                format!("{op:?}").to_lowercase(),
                a.shape()
            )));
        }
        graph::run1(self, &[a], move |b, t| b.reduce(op, &t[0], ax, keep_dim))
    }

    pub fn cast(&self, a: &Tensor, dtype: DType) -> Result<Tensor> {
        self.owned(a)?;
        if a.dtype() == dtype {
            return Ok(a.clone());
        }
        graph::run1(self, &[a], move |b, t| b.cast(&t[0], dtype))
    }

    pub fn argmax(&self, a: &Tensor, axis: i32) -> Result<Tensor> {
        self.owned(a)?;
        let ax = normalize_axis(axis, a.rank())?;
        if a.shape()[ax] == 0 {
            return Err(TensorError::InvalidArgument(format!(
                "argmax along an empty axis of {:?}",
                a.shape()
            )));
        }
        graph::run1(self, &[a], move |b, t| b.argmax(&t[0], ax))
    }

    pub fn top_k(&self, a: &Tensor, k: usize) -> Result<(Tensor, Tensor)> {
        self.owned(a)?;
        let Some(&last) = a.shape().last() else {
            return Err(TensorError::ShapeMismatch(
                "top-k needs a tensor of rank >= 1".into(),
            ));
        };
        if k > last {
            return Err(TensorError::InvalidArgument(format!(
                "top-k with k = {k} but the last axis of {:?} has only {last} elements",
                a.shape()
            )));
        }
        let mut out = graph::run(self, &[a], move |b, t| {
            let (values, indices) = b.top_k(&t[0], k)?;
            Ok(vec![values, indices])
        })?;
        let indices = out.pop().expect("two results");
        Ok((out.pop().expect("two results"), indices))
    }

    /// Copy `t` (held by `from`) onto this device, charged to this device's
    /// account: directly between GPUs where the backends can, else download
    /// then upload.
    pub fn copy_from(&self, t: &Tensor, from: &Device) -> Result<Tensor> {
        if graph::capturing() {
            return Err(TensorError::InvalidArgument(
                "to-device cannot be recorded in a graph (a graph runs on one device); move tensors before capture-begin".into(),
            ));
        }
        if let Some(copied) = self.backend.copy_in(t) {
            return copied;
        }
        let bytes = from.download(t)?;
        self.backend.upload(t.dtype(), t.shape(), &bytes)
    }

    pub fn add(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&self, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn sum(&self, a: &Tensor, axis: i32, keep_dim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, a, axis, keep_dim)
    }

    pub fn mean(&self, a: &Tensor, axis: i32, keep_dim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Mean, a, axis, keep_dim)
    }

    pub fn max(&self, a: &Tensor, axis: i32, keep_dim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, a, axis, keep_dim)
    }

    pub fn relu(&self, a: &Tensor) -> Result<Tensor> {
        self.unary(UnaryOp::Relu, a)
    }

    pub fn gelu(&self, a: &Tensor) -> Result<Tensor> {
        self.unary(UnaryOp::Gelu, a)
    }

    pub fn silu(&self, a: &Tensor) -> Result<Tensor> {
        self.unary(UnaryOp::Silu, a)
    }

    pub fn tanh(&self, a: &Tensor) -> Result<Tensor> {
        self.unary(UnaryOp::Tanh, a)
    }
}
