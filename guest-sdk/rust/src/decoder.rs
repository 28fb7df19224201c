//! The decoder ops (issue 18) as [`Tensor`] methods, and recorded
//! [`Graph`]s: linear layers with Hugging Face's `[out, in]` weights,
//! SwiGLU, rotary embeddings, attention (also fused with a KV cache),
//! in-place writes and sampling on the device.
//!
//! Attention tensors are `[batch, seq, heads, head_dim]`: a projection's
//! `[batch, seq, heads * head_dim]` output reshaped, no permute.
//!
//! See [`capture`] for recording a decode step.

use crate::bindings::wasmpod::serverless::tensor as wit;
use crate::tensor::{Tensor, TensorError};

pub use wit::{AttentionOptions, Llama3Scaling, RopeConfig, RopeLayout, RopeScaling, Sampling};

type Result<T, E = TensorError> = std::result::Result<T, E>;

fn wrap(result: std::result::Result<wit::Tensor, wit::TensorError>) -> Result<Tensor> {
    result.map(Tensor).map_err(TensorError::from)
}

impl Tensor {
    /// `self @ weight^T + bias + residual`: a linear layer with Hugging
    /// Face's `[out, in]` weight (no transposed copy), `self` `[.., in]`,
    /// `bias` `[out]`, `residual` (e.g. the skip connection) `[.., out]`.
    pub fn linear(
        &self,
        weight: &Tensor,
        bias: Option<&Tensor>,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        wrap(
            self.0
                .linear(&weight.0, bias.map(|b| &b.0), residual.map(|r| &r.0)),
        )
    }

    /// Several linear layers of one input in one call (q/k/v, gate/up):
    /// one result per weight; `biases` empty or one per weight.
    pub fn linear_many(&self, weights: &[&Tensor], biases: &[&Tensor]) -> Result<Vec<Tensor>> {
        let w: Vec<&wit::Tensor> = weights.iter().map(|t| &t.0).collect();
        let b: Vec<&wit::Tensor> = biases.iter().map(|t| &t.0).collect();
        self.0
            .linear_many(&w, &b)
            .map(|ts| ts.into_iter().map(Tensor).collect())
            .map_err(TensorError::from)
    }

    /// `silu(self) * up` (SwiGLU, `self` the gate projection).
    pub fn silu_mul(&self, up: &Tensor) -> Result<Tensor> {
        wrap(self.0.silu_mul(&up.0))
    }

    /// Rotary position embeddings of `self` `[batch, seq, heads, head_dim]`
    /// at integer `positions` (`[seq]` or `[batch, seq]`).
    pub fn rope(&self, positions: &Tensor, config: &RopeConfig) -> Result<Tensor> {
        wrap(self.0.rope(&positions.0, *config))
    }

    /// Scaled-dot-product attention of queries `self` `[batch, q_len,
    /// q_heads, head_dim]` over `k`, `v` `[batch, kv_len, kv_heads,
    /// head_dim]` (grouped-query when `q_heads > kv_heads`). `valid`
    /// (`[batch]` or `[1]`) counts the keys that count from the start;
    /// `key_mask` (`[batch, kv_len]`, nonzero = attend) masks keys.
    pub fn attention(
        &self,
        k: &Tensor,
        v: &Tensor,
        options: &AttentionOptions,
        valid: Option<&Tensor>,
        key_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        wrap(self.0.attention(
            &k.0,
            &v.0,
            *options,
            valid.map(|t| &t.0),
            key_mask.map(|t| &t.0),
        ))
    }

    /// A decoder's attention step over its KV cache, fused: rotary
    /// embeddings on the queries `self` and the new keys `k` (when `rope`
    /// is given), `k` and `v` written into `k_cache`/`v_cache` `[batch,
    /// capacity, kv_heads, head_dim]` at the consecutive `positions`, then
    /// causal attention over the cache.
    #[allow(clippy::too_many_arguments)]
    pub fn attention_cached(
        &self,
        k: &Tensor,
        v: &Tensor,
        k_cache: &Tensor,
        v_cache: &Tensor,
        positions: &Tensor,
        rope: Option<&RopeConfig>,
        options: &AttentionOptions,
    ) -> Result<Tensor> {
        wrap(self.0.attention_cached(
            &k.0,
            &v.0,
            &k_cache.0,
            &v_cache.0,
            &positions.0,
            rope.copied(),
            *options,
        ))
    }

    /// Copy `src` into this tensor in place along `axis`, from `start`
    /// plus the value of the one-element integer tensor `offset` (if any).
    /// Model weights cannot be written.
    pub fn write(
        &self,
        src: &Tensor,
        axis: i32,
        start: u32,
        offset: Option<&Tensor>,
    ) -> Result<()> {
        self.0
            .write(&src.0, axis, start, offset.map(|t| &t.0))
            .map_err(TensorError::from)
    }

    /// One token id (i64) per row of logits `self` (`[vocab]` -> `[]`,
    /// `[batch, vocab]` -> `[batch]`), drawn on the device: temperature 0
    /// is greedy; `counter` (one integer, e.g. the position) and the seed
    /// key the Philox generator, so runs repeat exactly.
    pub fn sample(&self, params: &Sampling, counter: &Tensor) -> Result<Tensor> {
        wrap(self.0.sample(*params, &counter.0))
    }
}

/// A recorded sequence of tensor ops, replayed with one call.
pub struct Graph(wit::Graph);

impl Graph {
    /// Run the recorded ops again on the tensors they were recorded with.
    pub fn replay(&self) -> Result<()> {
        self.0.replay().map_err(TensorError::from)
    }
}

/// Start recording this instance's tensor ops (see [`capture`]).
pub fn capture_begin() -> Result<()> {
    wit::capture_begin().map_err(TensorError::from)
}

/// Stop recording; the graph of the ops since [`capture_begin`].
pub fn capture_end() -> Result<Graph> {
    wit::capture_end().map(Graph).map_err(TensorError::from)
}

/// Record the ops `f` runs (they also run now) into a graph; returns the
/// graph and `f`'s result (whose tensors a replay refreshes). The capture
/// is closed even when `f` fails.
///
/// A decode step is a couple of hundred ops; recorded once with
/// [`capture`], it replays with one host call (a CUDA graph on a GPU).
/// Whatever changes between steps (the token, its position) lives in
/// tensors the guest updates in place with [`Tensor::write`] before each
/// [`Graph::replay`]:
///
/// ```no_run
/// # use wasmpod_sdk::{Tensor, DType, AttentionOptions, Sampling};
/// # fn step(_token: &Tensor, _pos: &Tensor) -> Result<Tensor, wasmpod_sdk::TensorError> { todo!() }
/// # fn demo() -> Result<(), wasmpod_sdk::TensorError> {
/// let token = Tensor::zeros(DType::I64, &[1, 1])?;
/// let pos = Tensor::zeros(DType::I64, &[1])?;
/// let (graph, next) = wasmpod_sdk::capture(|| step(&token, &pos))?;
/// for p in 1..10 {
///     token.write(&next.reshape(&[1, 1])?, 0, 0, None)?;
///     pos.write(&Tensor::from_i64(&[1], &[p])?, 0, 0, None)?;
///     graph.replay()?;
///     let id = next.to_vec_i64()?[0];
/// #   let _ = id;
/// }
/// # Ok(()) }
/// ```
pub fn capture<R>(f: impl FnOnce() -> Result<R>) -> Result<(Graph, R)> {
    capture_begin()?;
    let out = f();
    let graph = capture_end();
    let out = out?;
    Ok((graph?, out))
}
