//! The host side of the image ops and the elementwise long tail (issue
//! 17): WIT records and enums turned into the tensor crate's parameters,
//! and the ops with several optional operands gathered onto one device.

use wasmpod_tensor::image::{Activation, Epilogue, Layout, PadMode, ResizeMode};
use wasmpod_tensor::{ConvParams, PoolParams};
use wasmtime::component::Resource;

use super::fault::TensorFault;
use super::tensor::{TensorEntry, TensorView};
use crate::runtime::bindings::tensor as wit;

type TensorResult<T> = Result<T, TensorFault>;

pub(super) fn layout(l: wit::Layout) -> Layout {
    match l {
        wit::Layout::Nchw => Layout::Nchw,
        wit::Layout::Nhwc => Layout::Nhwc,
    }
}

pub(super) fn activation(a: wit::Activation) -> Activation {
    match a {
        wit::Activation::None => Activation::None,
        wit::Activation::Relu => Activation::Relu,
        wit::Activation::Silu => Activation::Silu,
        wit::Activation::Gelu => Activation::Gelu,
    }
}

fn pair((a, b): (u32, u32)) -> [usize; 2] {
    [a as usize, b as usize]
}

pub(super) fn conv_params(p: &wit::Conv2dParams) -> ConvParams {
    ConvParams {
        stride: pair(p.stride),
        padding: pair(p.padding),
        dilation: pair(p.dilation),
        groups: p.groups as usize,
        layout: layout(p.layout),
    }
}

pub(super) fn pool_params(p: &wit::Pool2dParams) -> PoolParams {
    PoolParams {
        kernel: pair(p.kernel),
        stride: pair(p.stride),
        padding: pair(p.padding),
        ceil_mode: p.ceil_mode,
        count_include_pad: p.count_include_pad,
        layout: layout(p.layout),
    }
}

pub(super) fn pad_mode(mode: wit::PadMode, value: f32) -> PadMode {
    match mode {
        wit::PadMode::Constant => PadMode::Constant(value),
        wit::PadMode::Reflect => PadMode::Reflect,
        wit::PadMode::Replicate => PadMode::Replicate,
    }
}

pub(super) fn resize_mode(bilinear: Option<bool>) -> ResizeMode {
    match bilinear {
        None => ResizeMode::Nearest,
        Some(align_corners) => ResizeMode::Bilinear { align_corners },
    }
}

/// How a convolution call is shaped: 1-D or 2-D, and its epilogue.
pub(super) struct ConvCall {
    pub(super) params: ConvParams,
    pub(super) one_d: bool,
    pub(super) activation: Activation,
}

impl TensorView<'_> {
    /// conv1d, conv2d and conv2d-fused: operands x, weight, bias?, residual?.
    pub(super) fn conv_op(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        residual: Option<Resource<TensorEntry>>,
        call: ConvCall,
    ) -> TensorResult<Resource<TensorEntry>> {
        let mut handles = vec![&x, &weight];
        handles.extend(bias.as_ref());
        handles.extend(residual.as_ref());
        let (index, t) = self.operands(&handles)?;
        let e = Epilogue {
            bias: bias.is_some().then(|| &t[2]),
            residual: residual.is_some().then(|| &t[t.len() - 1]),
            activation: call.activation,
        };
        let device = self.device_at(index);
        let y = self.recorded(|| {
            if call.one_d {
                device.conv1d(&t[0], &t[1], e, &call.params)
            } else {
                device.conv2d(&t[0], &t[1], e, &call.params)
            }
        })?;
        self.push_tensor(y, index)
    }

    pub(super) fn conv_transpose_op(
        &mut self,
        x: Resource<TensorEntry>,
        weight: Resource<TensorEntry>,
        bias: Option<Resource<TensorEntry>>,
        params: ConvParams,
        output_padding: [usize; 2],
    ) -> TensorResult<Resource<TensorEntry>> {
        let mut handles = vec![&x, &weight];
        handles.extend(bias.as_ref());
        let (index, t) = self.operands(&handles)?;
        let device = self.device_at(index);
        let y = self.recorded(|| {
            device.conv_transpose2d(&t[0], &t[1], t.get(2), &params, output_padding)
        })?;
        self.push_tensor(y, index)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn group_norm_op(
        &mut self,
        x: Resource<TensorEntry>,
        groups: u32,
        weight: Option<Resource<TensorEntry>>,
        bias: Option<Resource<TensorEntry>>,
        eps: f32,
        layout: Layout,
        activation: Activation,
    ) -> TensorResult<Resource<TensorEntry>> {
        let mut handles = vec![&x];
        handles.extend(weight.as_ref());
        handles.extend(bias.as_ref());
        let (index, t) = self.operands(&handles)?;
        let w = weight.is_some().then(|| &t[1]);
        let b = bias.is_some().then(|| &t[t.len() - 1]);
        let device = self.device_at(index);
        let y = self.recorded(|| {
            device.group_norm(&t[0], groups as usize, w, b, eps, layout, activation)
        })?;
        self.push_tensor(y, index)
    }

    pub(super) fn select_op(
        &mut self,
        cond: Resource<TensorEntry>,
        on_true: Resource<TensorEntry>,
        on_false: Resource<TensorEntry>,
    ) -> TensorResult<Resource<TensorEntry>> {
        let (index, t) = self.operands(&[&cond, &on_true, &on_false])?;
        let device = self.device_at(index);
        let y = self.recorded(|| device.select(&t[0], &t[1], &t[2]))?;
        self.push_tensor(y, index)
    }
}
