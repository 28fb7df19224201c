//! Resampling and padding on the CPU: nearest and bilinear resizing of the
//! spatial axes (index rules from [`crate::image::spec`]), and padding of
//! any axes for every dtype.

use rayon::prelude::*;

use crate::image::spec::{linear_source, nearest_source};
use crate::image::{PadSpec, Resize, ResizeMode};
use crate::shape::strides;

/// Nearest resampling of any element type.
pub fn nearest<T: Copy + Default + Send + Sync>(x: &[T], s: &Resize) -> Vec<T> {
    let [sn, sc, sh, sw] = s.layout.strides(s.c, s.h, s.w);
    let [on, oc, ohs, ows] = s.layout.strides(s.c, s.oh, s.ow);
    let ys: Vec<usize> = (0..s.oh).map(|o| nearest_source(s.h, s.oh, o)).collect();
    let xs: Vec<usize> = (0..s.ow).map(|o| nearest_source(s.w, s.ow, o)).collect();
    let mut out = vec![T::default(); s.n * s.c * s.oh * s.ow];
    for n in 0..s.n {
        for c in 0..s.c {
            for (oy, &iy) in ys.iter().enumerate() {
                for (ox, &ix) in xs.iter().enumerate() {
                    out[n * on + c * oc + oy * ohs + ox * ows] =
                        x[n * sn + c * sc + iy * sh + ix * sw];
                }
            }
        }
    }
    out
}

/// Bilinear resampling (f32), PyTorch's formula for either corner rule.
pub fn bilinear(x: &[f32], s: &Resize) -> Vec<f32> {
    let ResizeMode::Bilinear { align_corners } = s.mode else {
        unreachable!("called for bilinear resizes")
    };
    let [sn, sc, sh, sw] = s.layout.strides(s.c, s.h, s.w);
    let [_, oc, ohs, ows] = s.layout.strides(s.c, s.oh, s.ow);
    let ys: Vec<_> = (0..s.oh)
        .map(|o| linear_source(s.h, s.oh, o, align_corners))
        .collect();
    let xs: Vec<_> = (0..s.ow)
        .map(|o| linear_source(s.w, s.ow, o, align_corners))
        .collect();
    let mut out = vec![0f32; s.n * s.c * s.oh * s.ow];
    let image = s.c * s.oh * s.ow;
    out.par_chunks_mut(image.max(1))
        .enumerate()
        .for_each(|(n, dst)| {
            for c in 0..s.c {
                let base = n * sn + c * sc;
                for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
                    for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
                        let at = |y: usize, xx: usize| x[base + y * sh + xx * sw];
                        let top = at(y0, x0) * (1.0 - lx) + at(y0, x1) * lx;
                        let bottom = at(y1, x0) * (1.0 - lx) + at(y1, x1) * lx;
                        dst[c * oc + oy * ohs + ox * ows] = top * (1.0 - ly) + bottom * ly;
                    }
                }
            }
        });
    out
}

/// Padding of any element type; `fill` is the constant (already in `T`).
pub fn pad<T: Copy + Send + Sync>(x: &[T], s: &PadSpec, fill: T) -> Vec<T> {
    let out_shape = s.output_shape();
    let numel: usize = out_shape.iter().product();
    let mut out = vec![fill; numel];
    if numel == 0 || x.is_empty() {
        return out;
    }
    let rank = out_shape.len();
    if rank == 0 {
        out[0] = x[0];
        return out;
    }
    let in_strides = strides(&s.input);
    let row = out_shape[rank - 1];
    // Sources along the last axis, worked out once.
    let last: Vec<Option<usize>> = (0..row).map(|i| s.source(rank - 1, i)).collect();
    let outer = strides(&out_shape[..rank - 1]);
    out.par_chunks_mut(row).enumerate().for_each(|(r, dst)| {
        let mut rem = r;
        let mut base = Some(0usize);
        for d in 0..rank - 1 {
            let i = rem / outer[d];
            rem %= outer[d];
            base = match (base, s.source(d, i)) {
                (Some(b), Some(src)) => Some(b + src * in_strides[d]),
                _ => None,
            };
        }
        if let Some(b) = base {
            for (o, src) in dst.iter_mut().zip(&last) {
                if let Some(j) = src {
                    *o = x[b + j];
                }
            }
        }
    });
    out
}
