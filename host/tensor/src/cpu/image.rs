//! [`ImageBackend`] for the CPU: f32 compute over the kernels of `conv`,
//! `pool`, `norm2d` and `resample`, results stored in the input's dtype.

use super::data::{CpuData, map_data};
use super::{CpuBackend, conv, norm2d, pool, resample};
use crate::image::{
    Conv2d, ConvTranspose2d, Epilogue, GroupNorm, ImageBackend, Layout, PadMode, PadSpec, Pool2d,
    Resize, ResizeMode,
};
use crate::{Result, Tensor};

impl ImageBackend for CpuBackend {
    fn conv2d(&self, x: &Tensor, w: &Tensor, e: &Epilogue<'_>, s: &Conv2d) -> Result<Tensor> {
        self.alloc_f32(x.dtype(), &s.output_shape(), || {
            let mut out = conv::conv2d(&self.data(x).f32s(), &self.data(w).f32s(), s);
            let (db, dr) = (
                e.bias.map(|b| self.data(b)),
                e.residual.map(|r| self.data(r)),
            );
            let bias = db.as_ref().map(|d| d.f32s());
            let residual = dr.as_ref().map(|d| d.f32s());
            conv::epilogue(
                &mut out,
                s.layout,
                s.o,
                s.oh * s.ow,
                bias.as_deref(),
                residual.as_deref(),
                e.activation,
            );
            out
        })
    }

    fn conv_transpose2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        s: &ConvTranspose2d,
    ) -> Result<Tensor> {
        self.alloc_f32(x.dtype(), &s.output_shape(), || {
            let mut out = conv::conv_transpose2d(&self.data(x).f32s(), &self.data(w).f32s(), s);
            let db = bias.map(|b| self.data(b));
            let bias = db.as_ref().map(|d| d.f32s());
            conv::epilogue(
                &mut out,
                Layout::Nchw,
                s.o,
                s.oh * s.ow,
                bias.as_deref(),
                None,
                crate::image::Activation::None,
            );
            out
        })
    }

    fn pool2d(&self, x: &Tensor, s: &Pool2d) -> Result<Tensor> {
        self.alloc_f32(x.dtype(), &s.output_shape(), || {
            pool::pool2d(&self.data(x).f32s(), s)
        })
    }

    fn pad(&self, x: &Tensor, s: &PadSpec) -> Result<Tensor> {
        let value = match s.mode {
            PadMode::Constant(v) => v,
            PadMode::Reflect | PadMode::Replicate => 0.0,
        };
        let fill = CpuData::from_f32(x.dtype(), vec![value]);
        self.alloc(x.dtype(), &s.output_shape(), || {
            match (&*self.data(x), &fill) {
                (CpuData::F32(v), CpuData::F32(f)) => CpuData::F32(resample::pad(v, s, f[0])),
                (CpuData::F16(v), CpuData::F16(f)) => CpuData::F16(resample::pad(v, s, f[0])),
                (CpuData::BF16(v), CpuData::BF16(f)) => CpuData::BF16(resample::pad(v, s, f[0])),
                (CpuData::I32(v), CpuData::I32(f)) => CpuData::I32(resample::pad(v, s, f[0])),
                (CpuData::I64(v), CpuData::I64(f)) => CpuData::I64(resample::pad(v, s, f[0])),
                (CpuData::U8(v), CpuData::U8(f)) => CpuData::U8(resample::pad(v, s, f[0])),
                _ => unreachable!("the fill was built in the input's dtype"),
            }
        })
    }

    fn group_norm(
        &self,
        x: &Tensor,
        weight: Option<&Tensor>,
        bias: Option<&Tensor>,
        s: &GroupNorm,
    ) -> Result<Tensor> {
        self.alloc_f32(x.dtype(), x.shape(), || {
            let (dw, db) = (weight.map(|w| self.data(w)), bias.map(|b| self.data(b)));
            let w = dw.as_ref().map(|d| d.f32s());
            let b = db.as_ref().map(|d| d.f32s());
            norm2d::group_norm(&self.data(x).f32s(), w.as_deref(), b.as_deref(), s)
        })
    }

    fn resize(&self, x: &Tensor, s: &Resize) -> Result<Tensor> {
        let shape = s.output_shape();
        match s.mode {
            ResizeMode::Nearest => self.alloc(x.dtype(), &shape, || {
                map_data!(&*self.data(x), |v| resample::nearest(v, s))
            }),
            ResizeMode::Bilinear { .. } => self.alloc_f32(x.dtype(), &shape, || {
                resample::bilinear(&self.data(x).f32s(), s)
            }),
        }
    }
}
