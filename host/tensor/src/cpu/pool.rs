//! Max, average and adaptive average pooling on the CPU (f32), in either
//! layout; windows come from [`Pool2d::window`], shared with the GPU.

use rayon::prelude::*;

use crate::image::{Pool2d, PoolKind};

pub fn pool2d(x: &[f32], s: &Pool2d) -> Vec<f32> {
    let [sn, sc, sh, sw] = s.layout.strides(s.c, s.h, s.w);
    let [_, oc, ohs, ows] = s.layout.strides(s.c, s.oh, s.ow);
    let wy: Vec<_> = (0..s.oh).map(|o| s.window(0, o)).collect();
    let wx: Vec<_> = (0..s.ow).map(|o| s.window(1, o)).collect();
    let image = s.c * s.oh * s.ow;
    let mut out = vec![0f32; s.n * image];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(image).enumerate().for_each(|(n, dst)| {
        for c in 0..s.c {
            let base = n * sn + c * sc;
            for (oy, y) in wy.iter().enumerate() {
                for (ox, xw) in wx.iter().enumerate() {
                    let cells = (y.start..y.end)
                        .flat_map(|iy| (xw.start..xw.end).map(move |ix| (iy, ix)))
                        .map(|(iy, ix)| x[base + iy * sh + ix * sw]);
                    let v = match s.kind {
                        // NaN propagates, as in PyTorch.
                        PoolKind::Max => cells.fold(f32::NEG_INFINITY, |m, v| {
                            if m.is_nan() || v.is_nan() {
                                f32::NAN
                            } else {
                                m.max(v)
                            }
                        }),
                        PoolKind::Avg { .. } | PoolKind::AdaptiveAvg => {
                            let count = y.count * xw.count;
                            let sum: f32 = cells.sum();
                            if count == 0 { 0.0 } else { sum / count as f32 }
                        }
                    };
                    dst[c * oc + oy * ohs + ox * ows] = v;
                }
            }
        }
    });
    out
}
