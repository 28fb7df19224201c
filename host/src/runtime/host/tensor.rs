//! `wasmpod:serverless/tensor`: the guest's tensors, kept in the instance's
//! resource table and computed by the worker's devices.

use std::sync::Arc;

use wasmpod_tensor::image::Activation;
use wasmpod_tensor::math::{CompareOp, Distribution, MathOp, PairOp};
use wasmpod_tensor::{
    BinaryOp, Capture, ConvParams, DType, Device, ReduceOp, Tensor, TensorError, UnaryOp,
};
use wasmtime::component::{Resource, ResourceTable};

use super::fault::TensorFault;
use super::vision::{self, ConvCall};
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
/// worker's slice, and the graph being recorded (between `capture-begin`
/// and `capture-end`).
pub struct TensorCtx {
    pub(crate) devices: Arc<WorkerDevices>,
    pub(crate) capture: Option<Capture>,
}

impl TensorCtx {
    pub(crate) fn new(devices: Arc<WorkerDevices>) -> Self {
        Self {
            devices,
            capture: None,
        }
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
    pub(super) fn push_tensor(
        &mut self,
        tensor: Tensor,
        device: usize,
    ) -> TensorResult<Resource<TensorEntry>> {
        Ok(self.table.push(TensorEntry::new(tensor, device))?)
    }

    pub(super) fn entry(&self, r: &Resource<TensorEntry>) -> TensorResult<&TensorEntry> {
        Ok(self.table.get(r)?)
    }

    /// Runs device ops, recorded into the open capture if there is one.
    pub(super) fn recorded<R>(&mut self, f: impl FnOnce() -> R) -> R {
        Capture::scope(&mut self.ctx.capture, f)
    }

    pub(super) fn device_at(&self, index: usize) -> Device {
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
        let t = self.recorded(|| f(&device))?;
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
        let device = self.device_at(index);
        let t = self.recorded(|| f(&device, &tensor))?;
        self.push_tensor(t, index)
    }

    /// A binary op: both operands must be on one device.
    pub(super) fn op2(
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
        let device = self.device_at(index);
        let t = self.recorded(|| f(&device, &ta, &tb))?;
        self.push_tensor(t, index)
    }

    /// Optional operands (norm weights) must sit on the operand's device.
    pub(super) fn optional(
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

    fn capture_begin(&mut self) -> TensorResult<()> {
        self.begin_capture()
    }

    fn capture_end(&mut self) -> TensorResult<Resource<super::graph::GraphEntry>> {
        self.end_capture()
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
        let device = self.device_at(index);
        let t = self.recorded(|| device.concat(&refs, axis))?;
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
        let t = self.recorded(|| target.copy_from(&tensor, &from))?;
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
        let device = self.device_at(index);
        let (values, indices) = self.recorded(|| device.top_k(&tensor, k as usize))?;
        Ok((
            self.push_tensor(values, index)?,
            self.push_tensor(indices, index)?,
        ))
    }

    fn drop(&mut self, a: Resource<TensorEntry>) -> wasmtime::Result<()> {
        self.table.delete(a)?;
        Ok(())
    }

    // ---- Decoder ops (issue 18): see decoder.rs.

    fn linear(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        residual: Option<Resource<TensorEntry>>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.linear_op(x, weight, bias, residual)
    }

    fn linear_many(
        &mut self,
        x: Resource<TensorEntry>,
        weights: Vec<Resource<TensorEntry>>,
        biases: Vec<Resource<TensorEntry>>,
    ) -> TensorResult<Vec<Resource<TensorEntry>>> {
        self.linear_many_op(x, weights, biases)
    }

    fn silu_mul(
        &mut self,
        gate: Resource<TensorEntry>,
        up: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&gate, &up, |d, g, u| d.silu_mul(g, u))
    }

    fn rope(
        &mut self,
        x: Resource<TensorEntry>,
        positions: Resource<TensorEntry>,
        config: wit::RopeConfig,
    ) -> TensorResult<Resource<TensorEntry>> {
        let config = super::decoder::rope_config(&config);
        self.op2(&x, &positions, |d, x, p| d.rope(x, p, &config))
    }

    fn attention(
        &mut self,
        q: Resource<TensorEntry>,
        k: Resource<TensorEntry>,
        v: Resource<TensorEntry>,
        options: wit::AttentionOptions,
        valid: Option<Resource<TensorEntry>>,
        key_mask: Option<Resource<TensorEntry>>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.attention_op(q, k, v, options, valid, key_mask)
    }

    fn attention_cached(
        &mut self,
        q: Resource<TensorEntry>,
        k: Resource<TensorEntry>,
        v: Resource<TensorEntry>,
        k_cache: Resource<TensorEntry>,
        v_cache: Resource<TensorEntry>,
        positions: Resource<TensorEntry>,
        rope: Option<wit::RopeConfig>,
        options: wit::AttentionOptions,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.attention_cached_op([q, k, v, k_cache, v_cache, positions], rope, options)
    }

    fn write(
        &mut self,
        target: Resource<TensorEntry>,
        src: Resource<TensorEntry>,
        axis: i32,
        start: u32,
        offset: Option<Resource<TensorEntry>>,
    ) -> TensorResult<()> {
        self.write_op(target, src, axis, start, offset)
    }

    fn sample(
        &mut self,
        logits: Resource<TensorEntry>,
        params: wit::Sampling,
        counter: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let params = super::decoder::sampling(&params);
        self.op2(&logits, &counter, |d, l, c| d.sample(l, &params, c))
    }

    // ---- Image ops and the elementwise long tail (issue 17): see vision.rs.

    fn conv2d(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        params: wit::Conv2dParams,
    ) -> TensorResult<Resource<TensorEntry>> {
        let call = ConvCall {
            params: vision::conv_params(&params),
            one_d: false,
            activation: Activation::None,
        };
        self.conv_op(x, weight, bias, None, call)
    }

    fn conv2d_fused(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        residual: Option<Resource<TensorEntry>>,
        activation: wit::Activation,
        params: wit::Conv2dParams,
    ) -> TensorResult<Resource<TensorEntry>> {
        let call = ConvCall {
            params: vision::conv_params(&params),
            one_d: false,
            activation: vision::activation(activation),
        };
        self.conv_op(x, weight, bias, residual, call)
    }

    fn conv1d(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        stride: u32,
        padding: u32,
        dilation: u32,
        groups: u32,
        layout: wit::Layout,
    ) -> TensorResult<Resource<TensorEntry>> {
        let params = ConvParams::one_d(
            stride as usize,
            padding as usize,
            dilation as usize,
            groups as usize,
            vision::layout(layout),
        );
        let call = ConvCall {
            params,
            one_d: true,
            activation: Activation::None,
        };
        self.conv_op(x, weight, bias, None, call)
    }

    fn conv_transpose2d(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        params: wit::Conv2dParams,
        output_padding: (u32, u32),
    ) -> TensorResult<Resource<TensorEntry>> {
        let out_pad = [output_padding.0 as usize, output_padding.1 as usize];
        self.conv_transpose_op(x, weight, bias, vision::conv_params(&params), out_pad)
    }

    fn max_pool2d(
        &mut self,
        x: Resource<TensorEntry>,
        params: wit::Pool2dParams,
    ) -> TensorResult<Resource<TensorEntry>> {
        let p = vision::pool_params(&params);
        self.op1(&x, |d, x| d.max_pool2d(x, &p))
    }

    fn avg_pool2d(
        &mut self,
        x: Resource<TensorEntry>,
        params: wit::Pool2dParams,
    ) -> TensorResult<Resource<TensorEntry>> {
        let p = vision::pool_params(&params);
        self.op1(&x, |d, x| d.avg_pool2d(x, &p))
    }

    fn adaptive_avg_pool2d(
        &mut self,
        x: Resource<TensorEntry>,
        size: (u32, u32),
        layout: wit::Layout,
    ) -> TensorResult<Resource<TensorEntry>> {
        let size = [size.0 as usize, size.1 as usize];
        self.op1(&x, |d, x| {
            d.adaptive_avg_pool2d(x, size, vision::layout(layout))
        })
    }

    fn pad(
        &mut self,
        x: Resource<TensorEntry>,
        pads: Vec<(u32, u32)>,
        mode: wit::PadMode,
        value: f32,
    ) -> TensorResult<Resource<TensorEntry>> {
        let pads: Vec<(usize, usize)> = pads
            .iter()
            .map(|&(b, a)| (b as usize, a as usize))
            .collect();
        self.op1(&x, |d, x| d.pad(x, &pads, vision::pad_mode(mode, value)))
    }

    fn group_norm(
        &mut self,
        x: Resource<TensorEntry>,
        groups: u32,
        weight: Option<Resource<TensorEntry>>,
        bias: Option<Resource<TensorEntry>>,
        eps: f32,
        layout: wit::Layout,
        activation: wit::Activation,
    ) -> TensorResult<Resource<TensorEntry>> {
        let (layout, activation) = (vision::layout(layout), vision::activation(activation));
        self.group_norm_op(x, groups, weight, bias, eps, layout, activation)
    }

    fn upsample_nearest(
        &mut self,
        x: Resource<TensorEntry>,
        size: (u32, u32),
        layout: wit::Layout,
    ) -> TensorResult<Resource<TensorEntry>> {
        let size = [size.0 as usize, size.1 as usize];
        self.op1(&x, |d, x| {
            d.resize(x, size, vision::resize_mode(None), vision::layout(layout))
        })
    }

    fn upsample_bilinear(
        &mut self,
        x: Resource<TensorEntry>,
        size: (u32, u32),
        align_corners: bool,
        layout: wit::Layout,
    ) -> TensorResult<Resource<TensorEntry>> {
        let size = [size.0 as usize, size.1 as usize];
        let mode = vision::resize_mode(Some(align_corners));
        self.op1(&x, |d, x| d.resize(x, size, mode, vision::layout(layout)))
    }

    fn exp(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Exp, x))
    }

    fn log(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Log, x))
    }

    fn sqrt(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Sqrt, x))
    }

    fn rsqrt(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Rsqrt, x))
    }

    fn abs(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Abs, x))
    }

    fn neg(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Neg, x))
    }

    fn sigmoid(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Sigmoid, x))
    }

    fn sin(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Sin, x))
    }

    fn cos(&mut self, x: Resource<TensorEntry>) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.math(MathOp::Cos, x))
    }

    fn pow(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.pair(PairOp::Pow, x, y))
    }

    fn minimum(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.pair(PairOp::Minimum, x, y))
    }

    fn maximum(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.pair(PairOp::Maximum, x, y))
    }

    fn clamp(
        &mut self,
        x: Resource<TensorEntry>,
        min: Option<f32>,
        max: Option<f32>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.clamp(x, min, max))
    }

    fn eq(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.compare(CompareOp::Eq, x, y))
    }

    fn ne(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.compare(CompareOp::Ne, x, y))
    }

    fn lt(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.compare(CompareOp::Lt, x, y))
    }

    fn le(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.compare(CompareOp::Le, x, y))
    }

    fn gt(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.compare(CompareOp::Gt, x, y))
    }

    fn ge(
        &mut self,
        a: Resource<TensorEntry>,
        b: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op2(&a, &b, |d, x, y| d.compare(CompareOp::Ge, x, y))
    }

    fn where_(
        &mut self,
        condition: Resource<TensorEntry>,
        on_true: Resource<TensorEntry>,
        on_false: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.select_op(condition, on_true, on_false)
    }

    fn cumsum(
        &mut self,
        x: Resource<TensorEntry>,
        axis: i32,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.op1(&x, |d, x| d.cumsum(x, axis))
    }

    fn arange(
        &mut self,
        dtype: Dtype,
        start: f64,
        end: f64,
        step: f64,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.create(|d| d.arange(from_wit_dtype(dtype), start, end, step))
    }

    fn linspace(
        &mut self,
        dtype: Dtype,
        start: f64,
        end: f64,
        steps: u32,
    ) -> TensorResult<Resource<TensorEntry>> {
        self.create(|d| d.linspace(from_wit_dtype(dtype), start, end, steps as usize))
    }

    fn random_uniform(
        &mut self,
        dtype: Dtype,
        shape: Vec<u32>,
        seed: u64,
        low: f32,
        high: f32,
    ) -> TensorResult<Resource<TensorEntry>> {
        let dist = Distribution::Uniform { low, high };
        self.create(|d| d.random(from_wit_dtype(dtype), &dims(&shape), seed, dist))
    }

    fn random_normal(
        &mut self,
        dtype: Dtype,
        shape: Vec<u32>,
        seed: u64,
        mean: f32,
        std: f32,
    ) -> TensorResult<Resource<TensorEntry>> {
        let dist = Distribution::Normal { mean, std };
        self.create(|d| d.random(from_wit_dtype(dtype), &dims(&shape), seed, dist))
    }
}
