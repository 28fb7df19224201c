//! Convolutions on the CPU: im2col into a scratch matrix, then one GEMM
//! per (image, group) on the `gemm` crate, which takes arbitrary strides,
//! so NCHW and NHWC results are written in place without a transpose. A
//! 1×1 convolution with stride 1 needs no im2col: the input already is the
//! matrix. The epilogue (bias, residual, activation) runs over the result
//! afterwards. Transposed convolutions run the GEMM the other way round and
//! scatter the columns back (col2im).

use rayon::prelude::*;

use super::PAR_THRESHOLD;
use crate::image::{Activation, Conv2d, ConvTranspose2d, Layout};

/// Below this many multiply-adds a GEMM runs on one thread.
const SERIAL_MACS: usize = 1 << 15;

/// A strided matrix operand: element `(i, j)` at `ptr + i * rs + j * cs`.
#[derive(Clone, Copy)]
struct Mat {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst[m, n] = lhs[m, k] · rhs[k, n]`, overwriting `dst`.
///
/// # Safety
/// Every element `(i, j)` with `i < rows`, `j < cols` of each operand must
/// lie inside one live allocation; `dst` must not overlap the inputs.
unsafe fn gemm(m: usize, n: usize, k: usize, dst: (*mut f32, isize, isize), lhs: Mat, rhs: Mat) {
    if m == 0 || n == 0 {
        return;
    }
    let macs = m * n * k;
    let par = if macs >= SERIAL_MACS && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: forwarded from the caller. alpha = 0 with read_dst = false
    // means dst's old contents are never read; beta = 1 scales the product.
    unsafe {
        gemm::gemm(
            m, n, k, dst.0, dst.2, dst.1, false, lhs.ptr, lhs.cs, lhs.rs, rhs.ptr, rhs.cs, rhs.rs,
            0.0, 1.0, false, false, false, par,
        );
    }
}

/// The convolution `x ⋆ w` (no epilogue) in the spec's layout.
pub fn conv2d(x: &[f32], w: &[f32], s: &Conv2d) -> Vec<f32> {
    let (cg, og) = (s.c / s.groups, s.o / s.groups);
    let k = cg * s.kh * s.kw;
    let p = s.oh * s.ow;
    let mut out = vec![0f32; s.n * s.o * p];
    if out.is_empty() {
        return out;
    }
    if k == 0 {
        return out;
    }
    let in_img = s.c * s.h * s.w;
    if s.is_pointwise() {
        // The input is the column matrix itself.
        match s.layout {
            Layout::Nhwc => {
                // [n*p, c] · wᵀ [c, o] in one product for the whole batch.
                // SAFETY: x holds n*p*c, w o*c and out n*p*o elements.
                unsafe {
                    gemm(
                        s.n * p,
                        s.o,
                        s.c,
                        (out.as_mut_ptr(), s.o as isize, 1),
                        Mat {
                            ptr: x.as_ptr(),
                            rs: s.c as isize,
                            cs: 1,
                        },
                        Mat {
                            ptr: w.as_ptr(),
                            rs: 1,
                            cs: s.c as isize,
                        },
                    )
                };
            }
            Layout::Nchw => {
                for n in 0..s.n {
                    // w [o, c] · x[n] [c, p]
                    // SAFETY: x[n] holds c*p, w o*c, out[n] o*p elements.
                    unsafe {
                        gemm(
                            s.o,
                            p,
                            s.c,
                            (out[n * s.o * p..].as_mut_ptr(), p as isize, 1),
                            Mat {
                                ptr: w.as_ptr(),
                                rs: s.c as isize,
                                cs: 1,
                            },
                            Mat {
                                ptr: x[n * in_img..].as_ptr(),
                                rs: p as isize,
                                cs: 1,
                            },
                        )
                    };
                }
            }
        }
        return out;
    }
    let mut cols = vec![0f32; k * p];
    for n in 0..s.n {
        let img = &x[n * in_img..(n + 1) * in_img];
        for g in 0..s.groups {
            im2col(img, s, g, &mut cols);
            let wg = &w[g * og * k..(g + 1) * og * k];
            match s.layout {
                Layout::Nchw => {
                    // wg [og, k] · cols [k, p] → out[n, g*og.., p]
                    let dst = &mut out[(n * s.o + g * og) * p..];
                    // SAFETY: dst holds og*p, wg og*k and cols k*p elements.
                    unsafe {
                        gemm(
                            og,
                            p,
                            k,
                            (dst.as_mut_ptr(), p as isize, 1),
                            Mat {
                                ptr: wg.as_ptr(),
                                rs: k as isize,
                                cs: 1,
                            },
                            Mat {
                                ptr: cols.as_ptr(),
                                rs: p as isize,
                                cs: 1,
                            },
                        )
                    };
                }
                Layout::Nhwc => {
                    // cols [p, k] · wgᵀ [k, og] → out[n, p, g*og..] (row stride o)
                    let dst = &mut out[n * p * s.o + g * og..];
                    // SAFETY: the last element written is (p-1)*o + og-1
                    // past dst's start, inside out; cols holds p*k, wg og*k.
                    unsafe {
                        gemm(
                            p,
                            og,
                            k,
                            (dst.as_mut_ptr(), s.o as isize, 1),
                            Mat {
                                ptr: cols.as_ptr(),
                                rs: k as isize,
                                cs: 1,
                            },
                            Mat {
                                ptr: wg.as_ptr(),
                                rs: 1,
                                cs: k as isize,
                            },
                        )
                    };
                }
            }
        }
    }
    out
}

/// The patches of group `g` of one image as a matrix: `[k, p]` with rows
/// `(ci, ky, kx)` for NCHW, `[p, k]` with columns `(ky, kx, ci)` for NHWC
/// (matching each layout's weight), zeros where a patch reads padding.
fn im2col(img: &[f32], s: &Conv2d, g: usize, cols: &mut [f32]) {
    let cg = s.c / s.groups;
    let p = s.oh * s.ow;
    let [_, sc, sh, sw] = s.layout.strides(s.c, s.h, s.w);
    let source = |ci: usize, ky: usize, kx: usize, oy: usize, ox: usize| -> f32 {
        let iy = (oy * s.stride[0] + ky * s.dilation[0]) as isize - s.padding[0] as isize;
        let ix = (ox * s.stride[1] + kx * s.dilation[1]) as isize - s.padding[1] as isize;
        if iy < 0 || ix < 0 || iy as usize >= s.h || ix as usize >= s.w {
            0.0
        } else {
            img[(g * cg + ci) * sc + iy as usize * sh + ix as usize * sw]
        }
    };
    match s.layout {
        Layout::Nchw => {
            let fill = |r: usize, row: &mut [f32]| {
                let (ci, rest) = (r / (s.kh * s.kw), r % (s.kh * s.kw));
                let (ky, kx) = (rest / s.kw, rest % s.kw);
                for (j, v) in row.iter_mut().enumerate() {
                    *v = source(ci, ky, kx, j / s.ow, j % s.ow);
                }
            };
            if cols.len() >= PAR_THRESHOLD {
                cols.par_chunks_mut(p)
                    .enumerate()
                    .for_each(|(r, row)| fill(r, row));
            } else {
                cols.chunks_mut(p)
                    .enumerate()
                    .for_each(|(r, row)| fill(r, row));
            }
        }
        Layout::Nhwc => {
            let k = cg * s.kh * s.kw;
            let fill = |pix: usize, row: &mut [f32]| {
                let (oy, ox) = (pix / s.ow, pix % s.ow);
                for ky in 0..s.kh {
                    for kx in 0..s.kw {
                        let base = (ky * s.kw + kx) * cg;
                        for ci in 0..cg {
                            row[base + ci] = source(ci, ky, kx, oy, ox);
                        }
                    }
                }
            };
            if cols.len() >= PAR_THRESHOLD {
                cols.par_chunks_mut(k)
                    .enumerate()
                    .for_each(|(r, row)| fill(r, row));
            } else {
                cols.chunks_mut(k)
                    .enumerate()
                    .for_each(|(r, row)| fill(r, row));
            }
        }
    }
}

/// `out = act(out + bias[channel] + residual)` in place; `channels` is the
/// output's channel count, `spatial` its pixels per image.
pub fn epilogue(
    out: &mut [f32],
    layout: Layout,
    channels: usize,
    spatial: usize,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Activation,
) {
    if bias.is_none() && residual.is_none() && act == Activation::None {
        return;
    }
    let channel = |i: usize| match layout {
        Layout::Nchw => (i / spatial) % channels,
        Layout::Nhwc => i % channels,
    };
    let run = |start: usize, chunk: &mut [f32]| {
        for (j, v) in chunk.iter_mut().enumerate() {
            let i = start + j;
            let mut y = *v;
            if let Some(b) = bias {
                y += b[channel(i)];
            }
            if let Some(r) = residual {
                y += r[i];
            }
            *v = act.apply(y);
        }
    };
    const CHUNK: usize = 1 << 14;
    if out.len() >= PAR_THRESHOLD {
        out.par_chunks_mut(CHUNK)
            .enumerate()
            .for_each(|(c, chunk)| run(c * CHUNK, chunk));
    } else {
        run(0, out);
    }
}

/// The transposed convolution (NCHW, no bias).
pub fn conv_transpose2d(x: &[f32], w: &[f32], s: &ConvTranspose2d) -> Vec<f32> {
    let (cig, cog) = (s.c / s.groups, s.o / s.groups);
    let pin = s.h * s.w;
    let kk = s.kh * s.kw;
    let rows = cog * kk;
    let mut out = vec![0f32; s.n * s.o * s.oh * s.ow];
    if out.is_empty() || pin == 0 {
        return out;
    }
    let mut cols = vec![0f32; rows * pin];
    for n in 0..s.n {
        for g in 0..s.groups {
            // cols [cog*kk, pin] = wgᵀ [cog*kk, cig] · x[n, g] [cig, pin];
            // wg is stored [cig, cog*kk].
            let wg = &w[g * cig * rows..(g + 1) * cig * rows];
            let xg = &x[(n * s.c + g * cig) * pin..];
            // SAFETY: cols holds rows*pin, wg cig*rows and xg at least
            // cig*pin elements.
            unsafe {
                gemm(
                    rows,
                    pin,
                    cig,
                    (cols.as_mut_ptr(), pin as isize, 1),
                    Mat {
                        ptr: wg.as_ptr(),
                        rs: 1,
                        cs: rows as isize,
                    },
                    Mat {
                        ptr: xg.as_ptr(),
                        rs: pin as isize,
                        cs: 1,
                    },
                )
            };
            let plane = s.oh * s.ow;
            let dst = &mut out[(n * s.o + g * cog) * plane..(n * s.o + (g + 1) * cog) * plane];
            // col2im as a gather: each output pixel sums the columns that
            // land on it, so channels can run in parallel without races.
            let gather = |co: usize, out_plane: &mut [f32]| {
                for oy in 0..s.oh {
                    for ox in 0..s.ow {
                        let mut acc = 0f32;
                        for ky in 0..s.kh {
                            let ty = (oy + s.padding[0]) as isize - (ky * s.dilation[0]) as isize;
                            if ty < 0 || !(ty as usize).is_multiple_of(s.stride[0]) {
                                continue;
                            }
                            let iy = ty as usize / s.stride[0];
                            if iy >= s.h {
                                continue;
                            }
                            for kx in 0..s.kw {
                                let tx =
                                    (ox + s.padding[1]) as isize - (kx * s.dilation[1]) as isize;
                                if tx < 0 || !(tx as usize).is_multiple_of(s.stride[1]) {
                                    continue;
                                }
                                let ix = tx as usize / s.stride[1];
                                if ix >= s.w {
                                    continue;
                                }
                                acc += cols[(co * kk + ky * s.kw + kx) * pin + iy * s.w + ix];
                            }
                        }
                        out_plane[oy * s.ow + ox] = acc;
                    }
                }
            };
            if dst.len() >= PAR_THRESHOLD {
                dst.par_chunks_mut(plane)
                    .enumerate()
                    .for_each(|(co, pl)| gather(co, pl));
            } else {
                dst.chunks_mut(plane)
                    .enumerate()
                    .for_each(|(co, pl)| gather(co, pl));
            }
        }
    }
    out
}
