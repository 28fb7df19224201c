//! The checked front of the decoder ops (issue 18): linear layers with
//! Hugging Face's weight layout, SwiGLU, rotary embeddings, attention (also
//! fused with a KV cache), in-place writes and sampling.
//!
//! As in `device.rs`, every argument is validated here once for all
//! backends; the backend gets a plan it can trust. Parameters both
//! backends must agree on bit for bit (the rotary frequencies, the sampler's
//! fixed-point arithmetic) are computed here or specified in
//! [`crate::sampling`], so the CPU reference and the GPU kernels see the
//! same numbers.

use std::sync::Arc;

use crate::graph;
use crate::{Device, Result, Tensor, TensorError};

/// How rotary embeddings pair the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeLayout {
    /// Dimension i with i + rotary_dim/2 (Hugging Face Llama's
    /// `rotate_half`).
    Half,
    /// Dimension 2i with 2i + 1 (GPT-J).
    Interleaved,
}

/// Hugging Face's `rope_scaling`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// `rope_type: "linear"`: positions divided by the factor.
    Linear(f32),
    /// `rope_type: "llama3"`.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: u32,
    },
}

/// Rotary embedding settings as a `config.json` gives them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    /// `rope_theta`.
    pub theta: f32,
    /// Leading dimensions of each head that rotate; 0 = all.
    pub rotary_dim: u32,
    pub layout: RopeLayout,
    pub scaling: RopeScaling,
}

/// Rotary embeddings ready to apply: the frequencies of each rotating pair.
#[derive(Debug, Clone, PartialEq)]
pub struct RopePlan {
    /// `inv_freq[i]` of pair i (rotary_dim / 2 of them), in f32 as Hugging
    /// Face computes them.
    pub inv_freq: Vec<f32>,
    pub rotary_dim: usize,
    pub layout: RopeLayout,
}

/// Most dimensions per attention head the kernels take.
pub const MAX_HEAD_DIM: usize = 256;

/// Attention options as the guest gives them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AttentionOptions {
    pub causal: bool,
    pub scale: Option<f32>,
    pub window: Option<u32>,
}

/// Attention ready to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionPlan {
    pub causal: bool,
    pub scale: f32,
    /// Keys `window` or more positions before the query are masked
    /// (`u32::MAX`: no window).
    pub window: u32,
}

/// Sampling parameters (see [`crate::sampling`] for the exact algorithm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    pub top_k: u32,
    pub top_p: f32,
    pub seed: u64,
}

impl RopeConfig {
    /// The frequencies for heads of `head_dim`, or why the settings are
    /// unusable.
    pub fn plan(&self, head_dim: usize) -> Result<RopePlan> {
        let rotary_dim = match self.rotary_dim as usize {
            0 => head_dim,
            d => d,
        };
        if rotary_dim % 2 != 0 || rotary_dim > head_dim || rotary_dim > MAX_HEAD_DIM {
            return Err(TensorError::InvalidArgument(format!(
                "rope: rotary-dim {rotary_dim} must be even, at most the head dimension {head_dim} and at most {MAX_HEAD_DIM}"
            )));
        }
        if !(self.theta.is_finite() && self.theta > 0.0) {
            return Err(TensorError::InvalidArgument(format!(
                "rope: theta is {}, it must be a positive number (rope_theta, e.g. 10000 or 500000)",
                self.theta
            )));
        }
        let positive = |what: &str, v: f32| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(TensorError::InvalidArgument(format!(
                    "rope scaling: {what} is {v}, it must be a positive number"
                )))
            }
        };
        // Hugging Face: 1 / base^(arange(0, dim, 2) / dim), in f32.
        let mut inv_freq: Vec<f32> = (0..rotary_dim / 2)
            .map(|i| 1.0 / self.theta.powf((2 * i) as f32 / rotary_dim as f32))
            .collect();
        match self.scaling {
            RopeScaling::None => {}
            RopeScaling::Linear(factor) => {
                positive("factor", factor)?;
                for f in &mut inv_freq {
                    *f /= factor;
                }
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                positive("factor", factor)?;
                positive("low_freq_factor", low_freq_factor)?;
                positive("high_freq_factor", high_freq_factor)?;
                if high_freq_factor <= low_freq_factor || original_max_position_embeddings == 0 {
                    return Err(TensorError::InvalidArgument(format!(
                        "rope scaling llama3: high_freq_factor ({high_freq_factor}) must exceed low_freq_factor ({low_freq_factor}) and original_max_position_embeddings ({original_max_position_embeddings}) be positive"
                    )));
                }
                // transformers' _compute_llama3_parameters, step for step.
                let old = original_max_position_embeddings as f32;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                for f in &mut inv_freq {
                    let wavelen = (2.0 * std::f64::consts::PI) as f32 / *f;
                    let scaled = if wavelen > low_wavelen {
                        *f / factor
                    } else {
                        *f
                    };
                    let smooth =
                        (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                    let smoothed = (1.0 - smooth) * scaled / factor + smooth * scaled;
                    // transformers: ~(wavelen < high) * ~(wavelen > low); the
                    // frequencies are finite, so that is high <= wavelen <= low.
                    let medium = (high_wavelen..=low_wavelen).contains(&wavelen);
                    *f = if medium { smoothed } else { scaled };
                }
            }
        }
        Ok(RopePlan {
            inv_freq,
            rotary_dim,
            layout: self.layout,
        })
    }
}

impl AttentionOptions {
    fn plan(&self, head_dim: usize) -> Result<AttentionPlan> {
        let scale = self.scale.unwrap_or_else(|| 1.0 / (head_dim as f32).sqrt());
        if !scale.is_finite() {
            return Err(TensorError::InvalidArgument(format!(
                "attention: scale is {scale}; give a finite number or none for 1/sqrt(head-dim)"
            )));
        }
        if self.window == Some(0) {
            return Err(TensorError::InvalidArgument(
                "attention: a window of 0 would mask every key; give none for no window".into(),
            ));
        }
        Ok(AttentionPlan {
            causal: self.causal,
            scale,
            window: self.window.unwrap_or(u32::MAX),
        })
    }
}

fn need_float(op: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_float() {
        Ok(())
    } else {
        Err(TensorError::DTypeMismatch(format!(
            "{op} needs a float tensor (f32, f16 or bf16), got {}; cast it first",
            t.dtype()
        )))
    }
}

fn need_int(op: &str, what: &str, t: &Tensor) -> Result<()> {
    if t.dtype().is_int() {
        Ok(())
    } else {
        Err(TensorError::DTypeMismatch(format!(
            "{op}: {what} must be an integer tensor (i32, i64 or u8), got {}; cast it first",
            t.dtype()
        )))
    }
}

fn same_dtype(op: &str, what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dtype() == b.dtype() {
        Ok(())
    } else {
        Err(TensorError::DTypeMismatch(format!(
            "{op}: {what} is {} but the input is {}; cast one so they match",
            b.dtype(),
            a.dtype()
        )))
    }
}

fn writable(op: &str, what: &str, t: &Tensor) -> Result<()> {
    if t.is_read_only() {
        Err(TensorError::InvalidArgument(format!(
            "{op}: {what} is read-only (a model weight, shared by every instance, or a reshape of one); write into a tensor of your own, e.g. one made with zeros"
        )))
    } else {
        Ok(())
    }
}

fn shares_storage(a: &Tensor, b: &Tensor) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a.storage()), Arc::as_ptr(b.storage()))
}

/// `[batch, seq, heads, head_dim]` of a rank-4 tensor.
fn bshd(op: &str, what: &str, t: &Tensor) -> Result<[usize; 4]> {
    match *t.shape() {
        [b, s, h, d] => Ok([b, s, h, d]),
        _ => Err(TensorError::ShapeMismatch(format!(
            "{op}: {what} has shape {:?}; it must be [batch, seq, heads, head-dim] (reshape a projection's [batch, seq, heads * head-dim] output)",
            t.shape()
        ))),
    }
}

/// Positions `[seq]` or `[batch, seq]` (integers).
fn check_positions(op: &str, positions: &Tensor, batch: usize, seq: usize) -> Result<()> {
    need_int(op, "positions", positions)?;
    let fits = positions.shape() == [seq] || positions.shape() == [batch, seq];
    if !fits {
        return Err(TensorError::ShapeMismatch(format!(
            "{op}: positions has shape {:?}; it must be [{seq}] or [{batch}, {seq}] (one position per token)",
            positions.shape()
        )));
    }
    Ok(())
}

fn one_value(op: &str, what: &str, t: &Tensor) -> Result<()> {
    need_int(op, what, t)?;
    if t.numel() != 1 {
        return Err(TensorError::ShapeMismatch(format!(
            "{op}: {what} must hold one integer, it has shape {:?}",
            t.shape()
        )));
    }
    Ok(())
}

impl Device {
    /// `x @ weight^T + bias + residual` for `x [.., in]`, `weight [out,
    /// in]`.
    pub fn linear(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let out = self.linear_plan(
            "linear",
            x,
            &[weight],
            &bias.into_iter().collect::<Vec<_>>(),
        )?;
        let rows = out.rows;
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("checked rank >= 1") = weight.shape()[0];
        if let Some(r) = residual {
            self.holds_or_err(r)?;
            same_dtype("linear", "the residual", x, r)?;
            if r.shape() != shape.as_slice() {
                return Err(TensorError::ShapeMismatch(format!(
                    "linear: the residual has shape {:?} but the result is {shape:?}",
                    r.shape()
                )));
            }
        }
        let flat_x = x.with_shape(vec![rows, out.inputs]);
        let flat_r = residual.map(|r| r.with_shape(vec![rows, weight.shape()[0]]));
        let has_bias = bias.is_some();
        let mut inputs: Vec<&Tensor> = vec![&flat_x, weight];
        inputs.extend(bias);
        inputs.extend(flat_r.as_ref());
        let y = graph::run(self, &inputs, move |b, t| {
            let bias = has_bias.then(|| &t[2]);
            let residual = t.get(if has_bias { 3 } else { 2 });
            b.linear(&t[0], &[(&t[1], bias)], residual)
        })?;
        Ok(y[0].with_shape(shape))
    }

    /// Several linear layers of one input: `x @ weights[i]^T + biases[i]`.
    pub fn linear_many(
        &self,
        x: &Tensor,
        weights: &[&Tensor],
        biases: &[&Tensor],
    ) -> Result<Vec<Tensor>> {
        let plan = self.linear_plan("linear-many", x, weights, biases)?;
        let flat_x = x.with_shape(vec![plan.rows, plan.inputs]);
        let n = weights.len();
        let has_bias = !biases.is_empty();
        let mut inputs: Vec<&Tensor> = vec![&flat_x];
        inputs.extend(weights);
        inputs.extend(biases);
        let outs = graph::run(self, &inputs, move |b, t| {
            let layers: Vec<(&Tensor, Option<&Tensor>)> = (0..n)
                .map(|i| (&t[1 + i], has_bias.then(|| &t[1 + n + i])))
                .collect();
            b.linear(&t[0], &layers, None)
        })?;
        Ok(outs
            .into_iter()
            .zip(weights)
            .map(|(y, w)| {
                let mut shape = x.shape().to_vec();
                *shape.last_mut().expect("checked rank >= 1") = w.shape()[0];
                y.with_shape(shape)
            })
            .collect())
    }

    fn holds_or_err(&self, t: &Tensor) -> Result<()> {
        if self.holds(t) {
            Ok(())
        } else {
            Err(TensorError::InvalidArgument(format!(
                "the tensor is not on device {}; move it with to-device",
                self.name()
            )))
        }
    }

    fn linear_plan(
        &self,
        op: &str,
        x: &Tensor,
        weights: &[&Tensor],
        biases: &[&Tensor],
    ) -> Result<LinearShape> {
        need_float(op, x)?;
        self.holds_or_err(x)?;
        let Some(&inputs) = x.shape().last() else {
            return Err(TensorError::ShapeMismatch(format!(
                "{op} needs an input of rank >= 1, got a scalar"
            )));
        };
        if weights.is_empty() {
            return Err(TensorError::InvalidArgument(format!(
                "{op} needs at least one weight"
            )));
        }
        if !biases.is_empty() && biases.len() != weights.len() {
            return Err(TensorError::InvalidArgument(format!(
                "{op}: {} weights but {} biases; give one bias per weight or none",
                weights.len(),
                biases.len()
            )));
        }
        for (i, w) in weights.iter().enumerate() {
            self.holds_or_err(w)?;
            same_dtype(op, "a weight", x, w)?;
            if w.rank() != 2 || w.shape()[1] != inputs {
                return Err(TensorError::ShapeMismatch(format!(
                    "{op}: weight {i} has shape {:?}; it must be [out, {inputs}] (Hugging Face's [out_features, in_features]) for an input of shape {:?}",
                    w.shape(),
                    x.shape()
                )));
            }
            if let Some(b) = biases.get(i) {
                self.holds_or_err(b)?;
                same_dtype(op, "a bias", x, b)?;
                if b.shape() != [w.shape()[0]] {
                    return Err(TensorError::ShapeMismatch(format!(
                        "{op}: bias {i} has shape {:?}; it must be [{}] (the weight's out_features)",
                        b.shape(),
                        w.shape()[0]
                    )));
                }
            }
        }
        Ok(LinearShape {
            rows: x.numel() / inputs.max(1),
            inputs,
        })
    }

    /// `silu(gate) * up`, elementwise.
    pub fn silu_mul(&self, gate: &Tensor, up: &Tensor) -> Result<Tensor> {
        need_float("silu-mul", gate)?;
        self.holds_or_err(gate)?;
        self.holds_or_err(up)?;
        same_dtype("silu-mul", "up", gate, up)?;
        if gate.shape() != up.shape() {
            return Err(TensorError::ShapeMismatch(format!(
                "silu-mul: gate {:?} and up {:?} must have the same shape",
                gate.shape(),
                up.shape()
            )));
        }
        graph::run1(self, &[gate, up], |b, t| b.silu_mul(&t[0], &t[1]))
    }

    /// Rotary position embeddings of `x` `[batch, seq, heads, head_dim]` at
    /// `positions` (`[seq]` or `[batch, seq]`).
    pub fn rope(&self, x: &Tensor, positions: &Tensor, config: &RopeConfig) -> Result<Tensor> {
        need_float("rope", x)?;
        self.holds_or_err(x)?;
        self.holds_or_err(positions)?;
        let [batch, seq, _, head_dim] = bshd("rope", "the input", x)?;
        check_positions("rope", positions, batch, seq)?;
        let plan = config.plan(head_dim)?;
        graph::run1(self, &[x, positions], move |b, t| {
            b.rope(&t[0], &t[1], &plan)
        })
    }

    /// Scaled-dot-product attention (see the WIT for the semantics).
    pub fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        options: &AttentionOptions,
        valid: Option<&Tensor>,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let op = "attention";
        let [batch, _, _, head_dim] = self.attention_operands(op, q, k, v)?;
        let [_, kv_len, _, _] = bshd(op, "the keys", k)?;
        if let Some(valid) = valid {
            self.holds_or_err(valid)?;
            need_int(op, "valid", valid)?;
            if valid.shape() != [batch] && valid.shape() != [1] {
                return Err(TensorError::ShapeMismatch(format!(
                    "attention: valid has shape {:?}; it must be [{batch}] (one length per batch entry) or [1]",
                    valid.shape()
                )));
            }
        }
        if let Some(mask) = key_mask {
            self.holds_or_err(mask)?;
            if mask.shape() != [batch, kv_len] {
                return Err(TensorError::ShapeMismatch(format!(
                    "attention: key-mask has shape {:?}; it must be [{batch}, {kv_len}] ([batch, kv-len], nonzero = attend)",
                    mask.shape()
                )));
            }
        }
        let plan = options.plan(head_dim)?;
        let has_valid = valid.is_some();
        let mut inputs = vec![q, k, v];
        inputs.extend(valid);
        inputs.extend(key_mask);
        graph::run1(self, &inputs, move |b, t| {
            let valid = has_valid.then(|| &t[3]);
            let mask = t.get(if has_valid { 4 } else { 3 });
            b.attention(&t[0], &t[1], &t[2], &plan, valid, mask)
        })
    }

    /// Checks q/k/v of an attention and returns q's `[batch, seq, heads,
    /// head_dim]`.
    fn attention_operands(
        &self,
        op: &str,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<[usize; 4]> {
        need_float(op, q)?;
        for t in [q, k, v] {
            self.holds_or_err(t)?;
        }
        same_dtype(op, "k", q, k)?;
        same_dtype(op, "v", q, v)?;
        let [batch, _, q_heads, head_dim] = bshd(op, "the queries", q)?;
        let [kb, _, kv_heads, kd] = bshd(op, "the keys", k)?;
        if v.shape() != k.shape() {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: values {:?} must have the keys' shape {:?}",
                v.shape(),
                k.shape()
            )));
        }
        if kb != batch || kd != head_dim {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: queries {:?} and keys {:?} must agree on batch and head-dim",
                q.shape(),
                k.shape()
            )));
        }
        if kv_heads == 0 || q_heads % kv_heads != 0 {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: {q_heads} query heads is not a multiple of {kv_heads} key/value heads"
            )));
        }
        if head_dim == 0 || head_dim > MAX_HEAD_DIM {
            return Err(TensorError::InvalidArgument(format!(
                "{op}: head-dim {head_dim} is outside 1..={MAX_HEAD_DIM}"
            )));
        }
        Ok([batch, q.shape()[1], q_heads, head_dim])
    }

    /// A decoder's attention step over its KV cache (see the WIT).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_cached(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        k_cache: &Tensor,
        v_cache: &Tensor,
        positions: &Tensor,
        rope: Option<&RopeConfig>,
        options: &AttentionOptions,
    ) -> Result<Tensor> {
        let op = "attention-cached";
        let [batch, seq, _, head_dim] = self.attention_operands(op, q, k, v)?;
        let [_, new_len, kv_heads, _] = bshd(op, "the new keys", k)?;
        if new_len != seq {
            return Err(TensorError::ShapeMismatch(format!(
                "{op}: {seq} queries but {new_len} new keys; give one key and value per query token"
            )));
        }
        for (what, cache) in [("k-cache", k_cache), ("v-cache", v_cache)] {
            self.holds_or_err(cache)?;
            same_dtype(op, what, q, cache)?;
            writable(op, what, cache)?;
            let [cb, _, ch, cd] = bshd(op, what, cache)?;
            if cb != batch || ch != kv_heads || cd != head_dim {
                return Err(TensorError::ShapeMismatch(format!(
                    "{op}: {what} has shape {:?}; it must be [{batch}, capacity, {kv_heads}, {head_dim}]",
                    cache.shape()
                )));
            }
            for input in [q, k, v, positions] {
                if shares_storage(cache, input) {
                    return Err(TensorError::InvalidArgument(format!(
                        "{op}: {what} shares its data with an input; give the cache its own tensor"
                    )));
                }
            }
        }
        if k_cache.shape() != v_cache.shape() || shares_storage(k_cache, v_cache) {
            return Err(TensorError::InvalidArgument(format!(
                "{op}: k-cache {:?} and v-cache {:?} must be two tensors of one shape",
                k_cache.shape(),
                v_cache.shape()
            )));
        }
        self.holds_or_err(positions)?;
        check_positions(op, positions, batch, seq)?;
        let capacity = k_cache.shape()[1];
        // Checked here, when the op runs (or is recorded); a replay with
        // other positions skips those outside the cache.
        let values = self.to_i64_vec(positions)?;
        for row in values.chunks(seq.max(1)) {
            let bad = row
                .iter()
                .enumerate()
                .find(|&(i, &p)| p < 0 || p as usize >= capacity || (i > 0 && p != row[i - 1] + 1));
            if let Some((i, p)) = bad {
                return Err(TensorError::InvalidArgument(format!(
                    "{op}: position {p} (token {i}) does not fit: positions must be consecutive (p, p + 1, ...) and lie in 0..{capacity} (the caches' capacity)"
                )));
            }
        }
        let rope = rope.map(|r| r.plan(head_dim)).transpose()?;
        let plan = options.plan(head_dim)?;
        graph::run1(
            self,
            &[q, k, v, k_cache, v_cache, positions],
            move |b, t| {
                b.attention_cached(
                    &t[0],
                    &t[1],
                    &t[2],
                    &t[3],
                    &t[4],
                    &t[5],
                    rope.as_ref(),
                    &plan,
                )
            },
        )
    }

    /// Copies `src` into `target` along `axis` from `start + offset` on, in
    /// place.
    pub fn write(
        &self,
        target: &Tensor,
        src: &Tensor,
        axis: i32,
        start: usize,
        offset: Option<&Tensor>,
    ) -> Result<()> {
        self.holds_or_err(target)?;
        self.holds_or_err(src)?;
        writable("write", "the target", target)?;
        if target.dtype() != src.dtype() {
            return Err(TensorError::DTypeMismatch(format!(
                "write: the source is {} but the target is {}; cast the source first",
                src.dtype(),
                target.dtype()
            )));
        }
        let ax = crate::shape::normalize_axis(axis, target.rank())?;
        let compatible = src.rank() == target.rank()
            && src
                .shape()
                .iter()
                .zip(target.shape())
                .enumerate()
                .all(|(i, (s, t))| i == ax || s == t);
        if !compatible {
            return Err(TensorError::ShapeMismatch(format!(
                "write along axis {axis}: the source {:?} and the target {:?} may differ only along that axis",
                src.shape(),
                target.shape()
            )));
        }
        if shares_storage(target, src) {
            return Err(TensorError::InvalidArgument(
                "write: the source shares its data with the target; write a copy of it".into(),
            ));
        }
        let (len, dim) = (src.shape()[ax], target.shape()[ax]);
        let mut at = start as i64;
        if let Some(off) = offset {
            self.holds_or_err(off)?;
            one_value("write", "offset", off)?;
            at += self.to_i64_vec(off)?[0];
        }
        if at < 0 || at as usize + len > dim {
            return Err(TensorError::InvalidArgument(format!(
                "write: {len} elements at {at} along axis {axis} do not fit the target's {dim}"
            )));
        }
        let mut inputs = vec![target, src];
        inputs.extend(offset);
        graph::run(self, &inputs, move |b, t| {
            b.write(&t[0], &t[1], ax, start, t.get(2))?;
            Ok(Vec::new())
        })?;
        Ok(())
    }

    /// One sampled token id per row of `logits` (see [`crate::sampling`]).
    pub fn sample(&self, logits: &Tensor, params: &Sampling, counter: &Tensor) -> Result<Tensor> {
        need_float("sample", logits)?;
        self.holds_or_err(logits)?;
        self.holds_or_err(counter)?;
        one_value("sample", "counter", counter)?;
        if !matches!(logits.rank(), 1 | 2) || logits.shape().last() == Some(&0) {
            return Err(TensorError::ShapeMismatch(format!(
                "sample: logits have shape {:?}; they must be [vocab] or [batch, vocab] with vocab >= 1",
                logits.shape()
            )));
        }
        if !(params.temperature.is_finite() && params.temperature >= 0.0) {
            return Err(TensorError::InvalidArgument(format!(
                "sample: temperature is {}; it must be >= 0 (0 = greedy)",
                params.temperature
            )));
        }
        if !(params.top_p > 0.0 && params.top_p <= 1.0) {
            return Err(TensorError::InvalidArgument(format!(
                "sample: top-p is {}; it must be in (0, 1] (1 keeps every token)",
                params.top_p
            )));
        }
        let params = *params;
        let rank = logits.rank();
        let out = graph::run1(self, &[logits, counter], move |b, t| {
            let rows = if rank == 1 { 1 } else { t[0].shape()[0] };
            let vocab = *t[0].shape().last().expect("rank >= 1");
            b.sample(&t[0].with_shape(vec![rows, vocab]), &params, &t[1])
        })?;
        Ok(if rank == 1 {
            out.with_shape(Vec::new())
        } else {
            out
        })
    }
}

/// The product shape of a linear layer: `rows` input rows of `inputs`.
struct LinearShape {
    rows: usize,
    inputs: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_frequencies_follow_hugging_face() {
        let cfg = RopeConfig {
            theta: 10000.0,
            rotary_dim: 0,
            layout: RopeLayout::Half,
            scaling: RopeScaling::None,
        };
        let plan = cfg.plan(8).unwrap();
        assert_eq!(plan.rotary_dim, 8);
        assert_eq!(plan.inv_freq.len(), 4);
        assert_eq!(plan.inv_freq[0], 1.0);
        assert!((plan.inv_freq[1] - 0.1).abs() < 1e-7);
        assert!((plan.inv_freq[3] - 0.001).abs() < 1e-9);
        assert!(
            RopeConfig {
                rotary_dim: 3,
                ..cfg
            }
            .plan(8)
            .is_err()
        );
    }

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        // Llama 3.2's settings, head_dim 64.
        let cfg = RopeConfig {
            theta: 500000.0,
            rotary_dim: 0,
            layout: RopeLayout::Half,
            scaling: RopeScaling::Llama3 {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
        };
        let plain = RopeConfig {
            scaling: RopeScaling::None,
            ..cfg
        }
        .plan(64)
        .unwrap();
        let scaled = cfg.plan(64).unwrap();
        // Wavelength below 8192/4: unchanged; above 8192: divided by 32.
        assert_eq!(scaled.inv_freq[0], plain.inv_freq[0]);
        let last = plain.inv_freq.len() - 1;
        assert_eq!(scaled.inv_freq[last], plain.inv_freq[last] / 32.0);
    }
}
