//! Rotary position embeddings on `[batch, seq, heads, head_dim]`, in f32:
//! angle = position · inv_freq (as Hugging Face computes it), each pair of
//! dimensions rotated by it; dimensions past the rotary ones pass through.

use rayon::prelude::*;

use crate::decoder::{RopeLayout, RopePlan};

/// The (first, second) dimension of rotating pair `i` of a head.
pub fn pair(layout: RopeLayout, rotary_dim: usize, i: usize) -> (usize, usize) {
    match layout {
        RopeLayout::Half => (i, i + rotary_dim / 2),
        RopeLayout::Interleaved => (2 * i, 2 * i + 1),
    }
}

/// Rotates one head `x` (head_dim values) in place at `position`.
pub fn rotate_head(x: &mut [f32], position: i64, plan: &RopePlan) {
    let pos = position as f32;
    for (i, &f) in plan.inv_freq.iter().enumerate() {
        let angle = pos * f;
        let (sin, cos) = angle.sin_cos();
        let (a, b) = pair(plan.layout, plan.rotary_dim, i);
        let (xa, xb) = (x[a], x[b]);
        x[a] = xa * cos - xb * sin;
        x[b] = xb * cos + xa * sin;
    }
}

/// The position of token `s` of batch entry `b`: `positions` holds one per
/// token (`[batch, seq]`) or one per sequence index shared by the batch.
pub fn position_of(positions: &[i64], seq: usize, b: usize, s: usize) -> i64 {
    if positions.len() == seq {
        positions[s]
    } else {
        positions[b * seq + s]
    }
}

/// `x` `[batch, seq, heads, head_dim]` rotated at `positions`.
pub fn rope(x: &[f32], shape: [usize; 4], positions: &[i64], plan: &RopePlan) -> Vec<f32> {
    let [_, seq, heads, head_dim] = shape;
    let mut out = x.to_vec();
    let token = heads * head_dim;
    if token == 0 {
        return out;
    }
    out.par_chunks_mut(token)
        .enumerate()
        .for_each(|(t, heads_of_token)| {
            let (b, s) = (t / seq, t % seq);
            let p = position_of(positions, seq, b, s);
            for head in heads_of_token.chunks_mut(head_dim) {
                rotate_head(head, p, plan);
            }
        });
    out
}
