//! `wasmpod:serverless/tensor`: the guest's tensors, kept in the instance's
//! resource table and computed by the worker's devices.

use std::sync::Arc;

use wasmpod_tensor::{BinaryOp, DType, Device, ReduceOp, Tensor, TensorError, UnaryOp};
use wasmtime::component::{Resource, ResourceTable};

use super::fault::TensorFault;
use crate::gpu::WorkerDevices;
use crate::runtime::bindings::tensor::{self as wit, Dtype};

/// A tensor in an instance's resource table, with the index of the slice
/// device that holds it.
pub struct TensorEntry {
    pub tensor: Tensor,
    pub device: usize,
    /// Set when the tensor is a model weight as the model store handed it
    /// out: snapshots and page-ins re-acquire it through the store (shared,
    /// no copy) instead of saving its bytes.
    pub origin: Option<WeightOrigin>,
    /// The bytes while the instance is paged out; `tensor` is then a
    /// placeholder without device memory.
    pub(crate) paged: Option<wasmpod_tensor::PagedTensor>,
}

/// Which model weight a tensor entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightOrigin {
    pub model: String,
    pub weight: String,
}

impl TensorEntry {
    pub(crate) fn new(tensor: Tensor, device: usize) -> Self {
        Self {
            tensor,
            device,
            origin: None,
            paged: None,
        }
    }
}

type TensorResult<T> = Result<T, TensorFault>;

/// `tensor-error` as the guest sees it.
pub(crate) fn to_wit_error(e: TensorError) -> wit::TensorError {
    match e {
        TensorError::ShapeMismatch(m) => wit::TensorError::ShapeMismatch(m),
        TensorError::DTypeMismatch(m) => wit::TensorError::DtypeMismatch(m),
        TensorError::InvalidArgument(m) => wit::TensorError::InvalidArgument(m),
        TensorError::QuotaExceeded(m) => wit::TensorError::QuotaExceeded(m),
        TensorError::DeviceFault(m) => wit::TensorError::DeviceFault(m),
    }
}

pub(crate) fn from_wit_dtype(d: Dtype) -> DType {
    match d {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::Bf16 => DType::BF16,
        Dtype::I32 => DType::I32,
        Dtype::I64 => DType::I64,
        Dtype::U8 => DType::U8,
    }
}

pub(crate) fn to_wit_dtype(d: DType) -> Dtype {
    match d {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::Bf16,
        DType::I32 => Dtype::I32,
        DType::I64 => Dtype::I64,
        DType::U8 => Dtype::U8,
    }
}

fn dims(shape: &[u32]) -> Vec<usize> {
    shape.iter().map(|&d| d as usize).collect()
}

/// The tensor interface's share of an instance's state: the devices of the
/// worker's slice.
pub struct TensorCtx {
    pub(crate) devices: Arc<WorkerDevices>,
}

impl TensorCtx {
    pub(crate) fn new(devices: Arc<WorkerDevices>) -> Self {
        Self { devices }
    }
}

/// What the tensor interface's host functions work on: its context and the
/// instance's resource table (shared with the other interfaces, as the
/// guest's handle table is).
pub struct TensorView<'a> {
    pub(crate) ctx: &'a mut TensorCtx,
    pub(crate) table: &'a mut ResourceTable,
}

impl TensorView<'_> {
    /// Put a tensor computed on device `device` into the table.
    fn push_tensor(
        &mut self,
        tensor: Tensor,
        device: usize,
    ) -> TensorResult<Resource<TensorEntry>> {
        Ok(self.table.push(TensorEntry::new(tensor, device))?)
    }

    fn entry(&self, r: &Resource<TensorEntry>) -> TensorResult<&TensorEntry> {
        Ok(self.table.get(r)?)
    }

    fn device_at(&self, index: usize) -> Device {
        self.ctx
            .devices
            .device(index)
            .expect("tensor entries hold valid device indices")
            .clone()
    }

    /// Run `f` on a new tensor built on the primary device.
    fn create(
        &mut self,
        f: impl FnOnce(&Device) -> Result<Tensor, TensorError>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let device = self.ctx.devices.primary().clone();
        let t = f(&device)?;
        self.push_tensor(t, 0)
    }

    /// A unary op: runs on the operand's device.
    fn op1(
        &mut self,
        a: &Resource<TensorEntry>,
        f: impl FnOnce(&Device, &Tensor) -> Result<Tensor, TensorError>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let entry = self.entry(a)?;
        let (index, tensor) = (entry.device, entry.tensor.clone());
        let t = f(&self.device_at(index), &tensor)?;
        self.push_tensor(t, index)
    }

    /// A binary op: both operands must be on one device.
    fn op2(
        &mut self,
        a: &Resource<TensorEntry>,
        b: &Resource<TensorEntry>,
        f: impl FnOnce(&Device, &Tensor, &Tensor) -> Result<Tensor, TensorError>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let (ea, eb) = (self.entry(a)?, self.entry(b)?);
        if ea.device != eb.device {
            return Err(TensorError::InvalidArgument(format!(
                "operands are on devices {} and {}; move one with to-device first",
                ea.device, eb.device
            ))
            .into());
        }
        let (index, ta, tb) = (ea.device, ea.tensor.clone(), eb.tensor.clone());
        let t = f(&self.device_at(index), &ta, &tb)?;
        self.push_tensor(t, index)
    }

    /// Optional operands (norm weights) must sit on the operand's device.
    fn optional(
        &self,
        r: &Option<Resource<TensorEntry>>,
        device: usize,
    ) -> TensorResult<Option<Tensor>> {
        let Some(r) = r else { return Ok(None) };
        let e = self.entry(r)?;
        if e.device != device {
            return Err(TensorError::InvalidArgument(format!(
                "the weight is on device {} but the input on device {device}; move it with to-device",
                e.device
            ))
            .into());
        }
        Ok(Some(e.tensor.clone()))
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.binary(op, x, y))
    }

    fn unary(
        &mut self,
        op: UnaryOp,
        a: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.unary(op, x))
    }

    fn reduce(
        &mut self,
        op: ReduceOp,
        a: Resource<TensorEntry>,
        axis: i32,
        keep_dim: bool,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.reduce(op, x, axis, keep_dim))
    }

    fn read<T>(
        &self,
        a: &Resource<TensorEntry>,
        f: impl FnOnce(&Device, &Tensor) -> Result<T, TensorError>,
    ) -> TensorResult<T> {
        let e = self.entry(a)?;
        Ok(f(&self.device_at(e.device), &e.tensor)?)
    }
}

impl wit::Host for TensorView<'_> {
    fn convert_tensor_error(&mut self, err: TensorFault) -> wasmtime::Result<wit::TensorError> {
        match err {
            TensorFault::Tensor(e) => Ok(to_wit_error(e)),
            TensorFault::Trap(trap) => Err(trap),
        }
    }
}

impl wit::HostTensor for TensorView<'_> {
    fn from_bytes(
        &mut self,
        dtype: Dtype,
        shape: Vec<u32>,
        data: Vec<u8>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.create(|d| d.upload(from_wit_dtype(dtype), &dims(&shape), &data))
    }

    fn from_f32(&mut self, shape: Vec<u32>, data: Vec<f32>) -> TensorResult<Resource<TensorEntry>> {
        self.create(|d| d.upload(DType::F32, &dims(&shape), bytemuck::cast_slice(&data)))
    }

    fn from_i64(&mut self, shape: Vec<u32>, data: Vec<i64>) -> TensorResult<Resource<TensorEntry>> {
        self.create(|d| d.upload(DType::I64, &dims(&shape), bytemuck::cast_slice(&data)))
    }

    fn zeros(&mut self, dtype: Dtype, shape: Vec<u32>) -> TensorResult<Resource<TensorEntry>> {
        self.create(|d| d.zeros(from_wit_dtype(dtype), &dims(&shape)))
    }

    fn concat(
        &mut self,
        tensors: Vec<Resource<TensorEntry>>,
        axis: i32,
    ) -> TensorResult<Resource<TensorEntry>> {
        let mut parts = Vec::with_capacity(tensors.len());
        for r in &tensors {
            let e = self.entry(r)?;
            parts.push((e.device, e.tensor.clone()));
        }
        let index = parts.first().map(|(d, _)| *d).unwrap_or(0);
        if let Some((other, _)) = parts.iter().find(|(d, _)| *d != index) {
            return Err(TensorError::InvalidArgument(format!(
                "concat operands are on devices {index} and {other}; move them to one device first"
            ))
            .into());
        }
        let refs: Vec<&Tensor> = parts.iter().map(|(_, t)| t).collect();
        let t = self.device_at(index).concat(&refs, axis)?;
        self.push_tensor(t, index)
    }

    fn dtype(&mut self, a: Resource<TensorEntry>) -> wasmtime::Result<Dtype> {
        Ok(to_wit_dtype(self.table.get(&a)?.tensor.dtype()))
    }

    fn shape(&mut self, a: Resource<TensorEntry>) -> wasmtime::Result<Vec<u32>> {
        Ok(self
            .table
            .get(&a)?
            .tensor
            .shape()
            .iter()
            .map(|&d| d as u32)
            .collect())
    }

    fn device_index(&mut self, a: Resource<TensorEntry>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&a)?.device as u32)
    }

    fn to_bytes(&mut self, a: Resource<TensorEntry>) -> TensorResult<Vec<u8>> {
        self.read(&a, |d, t| d.download(t))
    }

    fn to_f32(&mut self, a: Resource<TensorEntry>) -> TensorResult<Vec<f32>> {
        self.read(&a, |d, t| d.to_f32_vec(t))
    }

    fn to_i64(&mut self, a: Resource<TensorEntry>) -> TensorResult<Vec<i64>> {
        self.read(&a, |d, t| d.to_i64_vec(t))
    }

    fn to_device(
        &mut self,
        a: Resource<TensorEntry>,
        index: u32,
    ) -> TensorResult<Resource<TensorEntry>> {
        let index = index as usize;
        let Some(target) = self.ctx.devices.device(index).cloned() else {
            return Err(TensorError::InvalidArgument(format!(
                "device index {index} is outside this worker's slice of {} device(s)",
                self.ctx.devices.len()
            ))
            .into());
        };
        let e = self.entry(&a)?;
        let (from, tensor) = (self.device_at(e.device), e.tensor.clone());
        let t = target.copy_from(&tensor, &from)?;
        self.push_tensor(t, index)
    }

    fn matmul(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.matmul(x, y))
    }

    fn add(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.binary(BinaryOp::Add, a, b)
    }

    fn sub(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.binary(BinaryOp::Sub, a, b)
    }

    fn mul(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.binary(BinaryOp::Mul, a, b)
    }

    fn div(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.binary(BinaryOp::Div, a, b)
    }

    fn scale(
        &mut self,
        a: Resource<TensorEntry>,
        factor: f32,
        offset: f32,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.scale(x, factor, offset))
    }

    fn relu(&mut self, a: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.unary(UnaryOp::Relu, a)
    }

    fn gelu(&mut self, a: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.unary(UnaryOp::Gelu, a)
    }

    fn silu(&mut self, a: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.unary(UnaryOp::Silu, a)
    }

    fn tanh(&mut self, a: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.unary(UnaryOp::Tanh, a)
    }

    fn softmax(
        &mut self,
        a: Resource<TensorEntry>,
        axis: i32,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.softmax(x, axis))
    }

    fn layer_norm(
        &mut self,
        a: Resource<TensorEntry>,
        weight: Option<Resource<TensorEntry>>,
        bias: Option<Resource<TensorEntry>>,
        eps: f32,
    ) -> TensorResult<Resource<TensorEntry>> {
        let device = self.entry(&a)?.device;
        let w = self.optional(&weight, device)?;
        let b = self.optional(&bias, device)?;
        self.op1(&a, |d, x| d.layer_norm(x, w.as_ref(), b.as_ref(), eps))
    }

    fn rms_norm(
        &mut self,
        a: Resource<TensorEntry>,
        weight: Option<Resource<TensorEntry>>,
        eps: f32,
    ) -> TensorResult<Resource<TensorEntry>> {
        let device = self.entry(&a)?.device;
        let w = self.optional(&weight, device)?;
        self.op1(&a, |d, x| d.rms_norm(x, w.as_ref(), eps))
    }

    fn gather(
        &mut self,
        table: Resource<TensorEntry>,
        indices: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&table, &indices, |d, t, i| d.gather(t, i))
    }

    fn reshape(
        &mut self,
        a: Resource<TensorEntry>,
        shape: Vec<i64>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.reshape(x, &shape))
    }

    fn permute(
        &mut self,
        a: Resource<TensorEntry>,
        dims_: Vec<u32>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let order = dims(&dims_);
        self.op1(&a, |d, x| d.permute(x, &order))
    }

    fn transpose(
        &mut self,
        a: Resource<TensorEntry>,
        axis0: i32,
        axis1: i32,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.transpose(x, axis0, axis1))
    }

    fn slice(
        &mut self,
        a: Resource<TensorEntry>,
        axis: i32,
        start: u32,
        end: u32,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.slice(x, axis, start as usize, end as usize))
    }

    fn sum(
        &mut self,
        a: Resource<TensorEntry>,
        axis: i32,
        keep_dim: bool,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.reduce(ReduceOp::Sum, a, axis, keep_dim)
    }

    fn mean(
        &mut self,
        a: Resource<TensorEntry>,
        axis: i32,
        keep_dim: bool,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.reduce(ReduceOp::Mean, a, axis, keep_dim)
    }

    fn max(
        &mut self,
        a: Resource<TensorEntry>,
        axis: i32,
        keep_dim: bool,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.reduce(ReduceOp::Max, a, axis, keep_dim)
    }

    fn cast(
        &mut self,
        a: Resource<TensorEntry>,
        dtype: Dtype,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.cast(x, from_wit_dtype(dtype)))
    }

    fn argmax(
        &mut self,
        a: Resource<TensorEntry>,
        axis: i32,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&a, |d, x| d.argmax(x, axis))
    }

    fn top_k(
        &mut self,
        a: Resource<TensorEntry>,
        k: u32,
    ) -> TensorResult<(Resource<TensorEntry>, Resource<TensorEntry>)> {
        let e = self.entry(&a)?;
        let (index, tensor) = (e.device, e.tensor.clone());
        let (values, indices) = self.device_at(index).top_k(&tensor, k as usize)?;
        Ok((
            self.push_tensor(values, index)?,
            self.push_tensor(indices, index)?,
        ))
    }

    fn drop(&mut self, a: Resource<TensorEntry>) -> wasmtime::Result<()> {
        self.table.delete(a)?;
        Ok(())
    }
}
