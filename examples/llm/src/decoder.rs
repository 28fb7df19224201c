//! The Llama decoder over host tensors: token embeddings, `n` blocks of
//! RMSNorm → grouped-query attention with rotary positions over the KV
//! cache → residual → RMSNorm → SwiGLU → residual, then the final norm and
//! the LM head (tied to the embeddings or not). Every op runs on the
//! worker's device, with the contract's decoder ops: `linear` (the
//! checkpoint's `[out, in]` weights, shared read-only between instances,
//! the residual add fused in), `linear-many` (q/k/v and gate/up in one
//! call), `attention-cached` (rotary embeddings, the KV-cache write in
//! place and causal grouped-query attention in one op) and `silu-mul`.
//!
//! Token ids and positions are device tensors, so a decode step can be
//! recorded once and replayed (see `session`).

use wasmpod_sdk::{
    AttentionOptions, DType, Llama3Scaling, RopeConfig, RopeLayout, RopeScaling, Tensor,
    TensorError,
};

use crate::config::{self, LlamaConfig};
use crate::weights::{WeightError, Weights};

/// Why the decoder could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("{0}")]
    Weights(#[from] WeightError),
    #[error("tensor op: {0}")]
    Tensor(#[from] TensorError),
}

type Result<T> = std::result::Result<T, DecoderError>;

/// A projection: its checkpoint weight `[out, in]` and optional bias.
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn load(w: &Weights, prefix: &str, inputs: usize, outputs: usize, bias: bool) -> Result<Self> {
        Ok(Self {
            weight: w.get(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: w.optional(&format!("{prefix}.bias"), &[outputs], bias)?,
        })
    }

    /// `x · Wᵀ + b + residual`.
    fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        Ok(x.linear(&self.weight, self.bias.as_ref(), residual)?)
    }
}

/// Projections of one input in one call (`linear-many`).
fn project<const N: usize>(x: &Tensor, layers: [&Linear; N]) -> Result<[Tensor; N]> {
    let weights: Vec<&Tensor> = layers.iter().map(|l| &l.weight).collect();
    let biases: Vec<&Tensor> = layers.iter().filter_map(|l| l.bias.as_ref()).collect();
    // All of them have a bias or none does (the families' configs).
    let biases = if biases.len() == N {
        biases
    } else {
        Vec::new()
    };
    let outputs = x.linear_many(&weights, &biases)?;
    let outputs: [Tensor; N] = outputs.try_into().map_err(|_| {
        TensorError::ShapeMismatch(format!("linear-many returned other than {N} results"))
    })?;
    Ok(outputs)
}

/// One decoder block's weights.
struct Block {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

impl Block {
    fn load(w: &Weights, i: usize, c: &LlamaConfig) -> Result<Self> {
        let p = format!("model.layers.{i}");
        let h = c.hidden_size;
        let q_out = c.num_attention_heads * c.head_dim;
        let kv_out = c.num_key_value_heads * c.head_dim;
        let attn = |name: &str, i: usize, o: usize, bias: bool| {
            Linear::load(w, &format!("{p}.self_attn.{name}"), i, o, bias)
        };
        let mlp = |name: &str, i: usize, o: usize| {
            Linear::load(w, &format!("{p}.mlp.{name}"), i, o, c.mlp_bias)
        };
        Ok(Self {
            input_norm: w.get(&format!("{p}.input_layernorm.weight"), &[h])?,
            q: attn("q_proj", h, q_out, c.qkv_bias)?,
            k: attn("k_proj", h, kv_out, c.qkv_bias)?,
            v: attn("v_proj", h, kv_out, c.qkv_bias)?,
            o: attn("o_proj", q_out, h, c.o_bias)?,
            post_norm: w.get(&format!("{p}.post_attention_layernorm.weight"), &[h])?,
            gate: mlp("gate_proj", h, c.intermediate_size)?,
            up: mlp("up_proj", h, c.intermediate_size)?,
            down: mlp("down_proj", c.intermediate_size, h)?,
        })
    }
}

/// One instance's KV cache: per block, keys and values `[1, capacity,
/// kv_heads, head_dim]`, written in place by `attention-cached`.
pub struct KvCache {
    layers: Vec<(Tensor, Tensor)>,
    capacity: usize,
}

impl KvCache {
    /// No cache (a placeholder while a larger one is made).
    pub fn empty() -> Self {
        Self {
            layers: Vec::new(),
            capacity: 0,
        }
    }

    /// Tokens (prompt and generated) the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

/// A loaded decoder.
pub struct Decoder {
    config: LlamaConfig,
    dtype: DType,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    /// `[vocab, hidden]`: the embedding table itself when tied.
    lm_head: Tensor,
    rope: RopeConfig,
    attention: AttentionOptions,
}

fn rope_config(c: &LlamaConfig) -> RopeConfig {
    RopeConfig {
        theta: c.rope_theta,
        rotary_dim: 0,
        layout: RopeLayout::Half,
        scaling: match c.rope_scaling {
            config::RopeScaling::None => RopeScaling::None,
            config::RopeScaling::Linear { factor } => RopeScaling::Linear(factor),
            config::RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => RopeScaling::Llama3(Llama3Scaling {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: original_max_position_embeddings as u32,
            }),
        },
    }
}

impl Decoder {
    /// Fetch every weight once.
    pub fn load(w: &Weights, config: LlamaConfig) -> Result<Self> {
        let (v, h) = (config.vocab_size, config.hidden_size);
        let embed = w.get("model.embed_tokens.weight", &[v, h])?;
        let blocks = (0..config.num_hidden_layers)
            .map(|i| Block::load(w, i, &config))
            .collect::<Result<Vec<_>>>()?;
        let norm = w.get("model.norm.weight", &[h])?;
        // Tied checkpoints usually omit lm_head.weight; some keep a copy.
        let lm_head = if config.tie_word_embeddings || !w.has("lm_head.weight") {
            embed.reshape(&[v as i64, h as i64])?
        } else {
            w.get("lm_head.weight", &[v, h])?
        };
        Ok(Self {
            rope: rope_config(&config),
            attention: AttentionOptions {
                causal: true,
                scale: None,
                window: config.sliding_window.map(|w| w as u32),
            },
            dtype: w.dtype(),
            config,
            embed,
            blocks,
            norm,
            lm_head,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The dtype activations are computed in (the checkpoint's).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// A KV cache for `capacity` tokens.
    pub fn new_cache(&self, capacity: usize) -> Result<KvCache> {
        let c = &self.config;
        let shape = [
            1,
            capacity as u32,
            c.num_key_value_heads as u32,
            c.head_dim as u32,
        ];
        let layers = (0..c.num_hidden_layers)
            .map(|_| {
                Ok((
                    Tensor::zeros(self.dtype, &shape)?,
                    Tensor::zeros(self.dtype, &shape)?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, capacity })
    }

    /// Run `tokens` token ids (`ids`, i64 `[tokens]`) at `positions` (i64
    /// `[tokens]`, consecutive, within the cache) through the model,
    /// writing their keys and values into `cache`; returns the logits after
    /// the last one, `[1, vocab]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        positions: &Tensor,
        tokens: usize,
        cache: &KvCache,
    ) -> Result<Tensor> {
        let c = &self.config;
        let (t, nh, nkv, d) = (
            tokens as i64,
            c.num_attention_heads as i64,
            c.num_key_value_heads as i64,
            c.head_dim as i64,
        );
        let eps = c.rms_norm_eps;
        let mut x = self
            .embed
            .gather(ids)?
            .reshape(&[1, t, c.hidden_size as i64])?;
        for (block, (k_cache, v_cache)) in self.blocks.iter().zip(&cache.layers) {
            let normed = x.rms_norm(Some(&block.input_norm), eps)?;
            let [q, k, v] = project(&normed, [&block.q, &block.k, &block.v])?;
            let attended = q.reshape(&[1, t, nh, d])?.attention_cached(
                &k.reshape(&[1, t, nkv, d])?,
                &v.reshape(&[1, t, nkv, d])?,
                k_cache,
                v_cache,
                positions,
                Some(&self.rope),
                &self.attention,
            )?;
            x = block
                .o
                .forward(&attended.reshape(&[1, t, nh * d])?, Some(&x))?;
            let normed = x.rms_norm(Some(&block.post_norm), eps)?;
            let [gate, up] = project(&normed, [&block.gate, &block.up])?;
            x = block.down.forward(&gate.silu_mul(&up)?, Some(&x))?;
        }
        let last = if tokens > 1 {
            x.slice(1, (tokens - 1) as u32, tokens as u32)?
        } else {
            x
        };
        let normed = last.rms_norm(Some(&self.norm), eps)?;
        Ok(normed
            .linear(&self.lm_head, None, None)?
            .reshape(&[1, c.vocab_size as i64])?)
    }
}
