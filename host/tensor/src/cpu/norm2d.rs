//! Group normalisation on the CPU: statistics of each (image, group) in
//! f64, then the normalised values scaled, shifted and activated.

use rayon::prelude::*;

use crate::image::{GroupNorm, Layout};

pub fn group_norm(x: &[f32], w: Option<&[f32]>, b: Option<&[f32]>, s: &GroupNorm) -> Vec<f32> {
    let cg = s.c / s.groups;
    let sample = s.c * s.spatial;
    let mut out = vec![0f32; x.len()];
    if out.is_empty() {
        return out;
    }
    // Element offsets (within one image) of group g's members.
    let index = |g: usize, j: usize| -> (usize, usize) {
        let (ci, sp) = (j / s.spatial, j % s.spatial);
        let c = g * cg + ci;
        match s.layout {
            Layout::Nchw => (c * s.spatial + sp, c),
            Layout::Nhwc => (sp * s.c + c, c),
        }
    };
    let members = cg * s.spatial;
    let stats: Vec<(f64, f64)> = (0..s.n * s.groups)
        .into_par_iter()
        .map(|ng| {
            let (n, g) = (ng / s.groups, ng % s.groups);
            let img = &x[n * sample..(n + 1) * sample];
            let mean =
                (0..members).map(|j| img[index(g, j).0] as f64).sum::<f64>() / members as f64;
            let var = (0..members)
                .map(|j| (img[index(g, j).0] as f64 - mean).powi(2))
                .sum::<f64>()
                / members as f64;
            (mean, 1.0 / (var + s.eps as f64).sqrt())
        })
        .collect();
    out.par_chunks_mut(sample).enumerate().for_each(|(n, dst)| {
        let img = &x[n * sample..(n + 1) * sample];
        for g in 0..s.groups {
            let (mean, inv) = stats[n * s.groups + g];
            for j in 0..members {
                let (at, c) = index(g, j);
                let mut y = ((img[at] as f64 - mean) * inv) as f32;
                if let Some(w) = w {
                    y *= w[c];
                }
                if let Some(b) = b {
                    y += b[c];
                }
                dst[at] = s.activation.apply(y);
            }
        }
    });
    out
}
