//! The Llama decoder over host tensors: token embeddings, `n` blocks of
//! RMSNorm → grouped-query attention with rotary positions and a KV cache →
//! residual → RMSNorm → SwiGLU → residual, then the final norm and the LM
//! head (tied to the embeddings or not). Every op runs on the worker's
//! device; a step reads back only what sampling needs.
//!
//! Weights stay as the checkpoint has them, `[out, in]`, shared read-only
//! between instances: a projection is `W · xᵀ`, so nothing is transposed
//! or copied per instance.

use wasmpod_sdk::{DType, Tensor, TensorError};

use crate::config::LlamaConfig;
use crate::weights::{WeightError, Weights};

/// Added to the attention scores of future keys so that softmax gives them
/// no weight (exp underflows to exactly 0, in f32, f16 and bf16 alike).
const MASKED: f32 = -1e9;

/// Why the decoder could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("{0}")]
    Weights(#[from] WeightError),
    #[error("tensor op: {0}")]
    Tensor(#[from] TensorError),
}

type Result<T> = std::result::Result<T, DecoderError>;

/// `x · Wᵀ + b` with `W` as stored, `[out, in]`.
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

    /// `x`: `[tokens, in]` → `[tokens, out]`.
    fn forward(&self, x: &Tensor, tokens: usize) -> Result<Tensor> {
        let y = if tokens == 1 {
            // A 1-D rhs is a column: W · x, no transposes.
            self.weight.matmul(&x.reshape(&[-1])?)?.reshape(&[1, -1])?
        } else {
            self.weight.matmul(&x.transpose(0, 1)?)?.transpose(0, 1)?
        };
        Ok(match &self.bias {
            Some(b) => y.add(b)?,
            None => y,
        })
    }
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

/// One block's cached keys and values, `[kv_heads, len, head_dim]` each.
struct LayerCache {
    keys: Tensor,
    values: Tensor,
}

/// The keys and values of every token so far, per block: one instance's
/// conversation state. Each job starts from an empty one.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    len: usize,
}

impl KvCache {
    /// Tokens cached so far (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget everything (a new sequence).
    pub fn clear(&mut self) {
        self.layers.clear();
        self.len = 0;
    }
}

/// Per-step inputs shared by every block: rotary tables and the causal
/// mask for the step's positions.
struct StepInputs {
    tokens: usize,
    cos: Tensor,
    sin: Tensor,
    /// `[group · tokens, past + tokens]`; `None` for one token (it may see
    /// every key).
    mask: Option<Tensor>,
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
    inv_freq: Vec<f32>,
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
            inv_freq: config.inv_freq(),
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

    fn upload(&self, shape: &[u32], data: &[f32]) -> Result<Tensor> {
        let t = Tensor::from_f32(shape, data)?;
        Ok(if self.dtype == DType::F32 {
            t
        } else {
            t.cast(self.dtype)?
        })
    }

    /// cos and sin of every position's angles, `[tokens, head_dim]` in
    /// the rotate-half layout (the half-width table twice, as
    /// `transformers` builds `emb = cat(freqs, freqs)`).
    fn step_inputs(&self, past: usize, tokens: usize) -> Result<StepInputs> {
        let d = self.config.head_dim;
        let mut cos = Vec::with_capacity(tokens * d);
        let mut sin = Vec::with_capacity(tokens * d);
        for t in 0..tokens {
            let pos = (past + t) as f32;
            for _ in 0..2 {
                for &f in &self.inv_freq {
                    let angle = pos * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let shape = [tokens as u32, d as u32];
        let mask = if tokens > 1 {
            let keys = past + tokens;
            let group = self.config.group_size();
            let mut m = Vec::with_capacity(group * tokens * keys);
            for _ in 0..group {
                for t in 0..tokens {
                    m.extend((0..keys).map(|k| if k <= past + t { 0.0 } else { MASKED }));
                }
            }
            Some(self.upload(&[(group * tokens) as u32, keys as u32], &m)?)
        } else {
            None
        };
        Ok(StepInputs {
            tokens,
            cos: self.upload(&shape, &cos)?,
            sin: self.upload(&shape, &sin)?,
            mask,
        })
    }

    /// `x · cos + rotate_half(x) · sin` for `x` `[heads, tokens, head_dim]`.
    fn rope(&self, x: &Tensor, s: &StepInputs) -> Result<Tensor> {
        let d = self.config.head_dim as u32;
        let half = d / 2;
        let rotated = Tensor::concat(
            &[
                &x.slice(-1, half, d)?.scale(-1.0, 0.0)?,
                &x.slice(-1, 0, half)?,
            ],
            -1,
        )?;
        Ok(x.mul(&s.cos)?.add(&rotated.mul(&s.sin)?)?)
    }

    /// `[tokens, heads · head_dim]` → `[heads, tokens, head_dim]`.
    fn heads(&self, x: &Tensor, heads: usize, tokens: usize) -> Result<Tensor> {
        let d = self.config.head_dim as i64;
        Ok(x.reshape(&[tokens as i64, heads as i64, d])?
            .permute(&[1, 0, 2])?)
    }

    fn attention(
        &self,
        block: &Block,
        x: &Tensor,
        s: &StepInputs,
        cache: Option<&LayerCache>,
    ) -> Result<(Tensor, LayerCache)> {
        let c = &self.config;
        let t = s.tokens;
        let (nh, nkv, d) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let q = self.rope(&self.heads(&block.q.forward(x, t)?, nh, t)?, s)?;
        let k = self.rope(&self.heads(&block.k.forward(x, t)?, nkv, t)?, s)?;
        let v = self.heads(&block.v.forward(x, t)?, nkv, t)?;
        let (keys, values) = match cache {
            Some(cache) => (
                Tensor::concat(&[&cache.keys, &k], 1)?,
                Tensor::concat(&[&cache.values, &v], 1)?,
            ),
            None => (k, v),
        };
        // Query heads sharing a key/value head are consecutive (head h reads
        // kv head h / group, as transformers' repeat_kv lays them out): fold
        // them into the rows of one product per kv head.
        let grouped = q.reshape(&[nkv as i64, (c.group_size() * t) as i64, d as i64])?;
        let mut scores = grouped
            .matmul(&keys.transpose(-1, -2)?)?
            .scale(1.0 / (d as f32).sqrt(), 0.0)?;
        if let Some(mask) = &s.mask {
            scores = scores.add(mask)?;
        }
        let context = scores
            .softmax(-1)?
            .matmul(&values)?
            .reshape(&[nh as i64, t as i64, d as i64])?
            .permute(&[1, 0, 2])?
            .reshape(&[t as i64, (nh * d) as i64])?;
        Ok((block.o.forward(&context, t)?, LayerCache { keys, values }))
    }

    fn mlp(&self, block: &Block, x: &Tensor, tokens: usize) -> Result<Tensor> {
        let gate = block.gate.forward(x, tokens)?.silu()?;
        let up = block.up.forward(x, tokens)?;
        block.down.forward(&gate.mul(&up)?, tokens)
    }

    /// Run `ids` (the next tokens of the sequence) through the model,
    /// appending to `cache`; returns the logits after the last one, `[1,
    /// vocab]`.
    pub fn forward(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let tokens = ids.len();
        let s = self.step_inputs(cache.len, tokens)?;
        let ids: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let mut x = self
            .embed
            .gather(&Tensor::from_i64(&[tokens as u32], &ids)?)?;
        let eps = self.config.rms_norm_eps;
        let mut layers = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            let normed = x.rms_norm(Some(&block.input_norm), eps)?;
            let (attended, layer) = self.attention(block, &normed, &s, cache.layers.get(i))?;
            x = x.add(&attended)?;
            let normed = x.rms_norm(Some(&block.post_norm), eps)?;
            x = x.add(&self.mlp(block, &normed, tokens)?)?;
            layers.push(layer);
        }
        cache.layers = layers;
        cache.len += tokens;
        let last = x.slice(0, (tokens - 1) as u32, tokens as u32)?;
        let normed = last.rms_norm(Some(&self.norm), eps)?;
        Ok(self
            .lm_head
            .matmul(&normed.reshape(&[-1])?)?
            .reshape(&[1, -1])?)
    }
}
