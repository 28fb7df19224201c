//! Scaled-dot-product attention in f32, one query row at a time (rayon
//! over rows): the reference the CUDA kernels are compared against.
//!
//! Both ops reduce to [`attend`]: each query has an absolute position and
//! an end (one past its last visible key); keys before `position - window
//! plus 1` and keys the mask zeroes are skipped; a query that sees no key
//! gets zeros.

use rayon::prelude::*;

use crate::decoder::AttentionPlan;

/// Shapes of one attention: queries `[batch, q_len, q_heads, head_dim]`,
/// keys and values `[batch, kv_len, kv_heads, head_dim]`.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub batch: usize,
    pub q_len: usize,
    pub q_heads: usize,
    pub kv_len: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// What query `i` of batch entry `b` may see.
#[derive(Debug, Clone, Copy)]
pub struct Visible {
    /// Its position (causal and window masks are relative to it).
    pub position: i64,
    /// One past the last key it may attend to (already within kv_len).
    pub end: usize,
}

/// Attention of every query; `visible(b, i)` bounds its keys, `mask[b *
/// kv_len + j] == false` hides key j of entry b.
pub fn attend(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dims: Dims,
    plan: &AttentionPlan,
    visible: impl Fn(usize, usize) -> Visible + Sync,
    mask: Option<&[bool]>,
) -> Vec<f32> {
    let Dims {
        q_len,
        q_heads,
        kv_len,
        kv_heads,
        head_dim: d,
        ..
    } = dims;
    let group = q_heads / kv_heads;
    let mut out = vec![0f32; q.len()];
    if d == 0 {
        return out;
    }
    out.par_chunks_mut(d).enumerate().for_each(|(row, o)| {
        let h = row % q_heads;
        let i = (row / q_heads) % q_len;
        let b = row / (q_heads * q_len);
        let kvh = h / group;
        let see = visible(b, i);
        let first = if plan.window == u32::MAX {
            0
        } else {
            (see.position - plan.window as i64 + 1).max(0) as usize
        };
        let qr = &q[row * d..(row + 1) * d];
        let key = |j: usize| ((b * kv_len + j) * kv_heads + kvh) * d;
        let mut scores = Vec::with_capacity(see.end.saturating_sub(first));
        let mut max = f32::NEG_INFINITY;
        for j in first..see.end {
            if mask.is_some_and(|m| !m[b * kv_len + j]) {
                continue;
            }
            let kr = &k[key(j)..key(j) + d];
            let s = plan.scale * qr.iter().zip(kr).map(|(a, b)| a * b).sum::<f32>();
            max = max.max(s);
            scores.push((j, s));
        }
        if scores.is_empty() {
            return;
        }
        let mut total = 0f32;
        for (j, s) in scores {
            let p = (s - max).exp();
            total += p;
            let vr = &v[key(j)..key(j) + d];
            for (acc, x) in o.iter_mut().zip(vr) {
                *acc += p * x;
            }
        }
        for acc in o.iter_mut() {
            *acc /= total;
        }
    });
    out
}

/// What a query of plain `attention` sees: `valid` keys, and with
/// `causal` only those up to its position `valid - q_len + i`.
pub fn plain_visible(valid: usize, q_len: usize, i: usize, causal: bool) -> Visible {
    let position = valid as i64 - q_len as i64 + i as i64;
    let end = if causal {
        (position + 1).clamp(0, valid as i64) as usize
    } else {
        valid
    };
    Visible { position, end }
}

/// What a query of `attention-cached` at `position` sees, with `last` the
/// batch entry's last position and `capacity` the cache's.
pub fn cached_visible(position: i64, last: i64, capacity: usize, causal: bool) -> Visible {
    let upto = if causal { position } else { last };
    Visible {
        position,
        end: (upto + 1).clamp(0, capacity as i64) as usize,
    }
}
