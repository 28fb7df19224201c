//! The BERT encoder over host tensors, with sentence-transformers' mean
//! pooling and L2 normalisation: token ids in, unit-length sentence vectors
//! out. Every op runs on the worker's device; only the pooled vectors are
//! read back. Linear layers read Hugging Face's `[out, in]` weights as they
//! are (bias and skip connection fused in), and self-attention is one fused
//! op that skips each sequence's padding.

use wasmpod_sdk::{AttentionOptions, DType, Model, ModelError, Tensor, TensorError};

use crate::config::EncoderConfig;

/// BERT's self-attention: every token sees every real token of its
/// sequence, scaled by 1/sqrt(head_dim).
const BIDIRECTIONAL: AttentionOptions = AttentionOptions {
    causal: false,
    scale: None,
    window: None,
};

/// Why the encoder could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("tensor op: {0}")]
    Tensor(#[from] TensorError),
    /// A weight's shape does not match `config.json`.
    #[error("weight {name} has shape {actual:?}, config.json implies {expected:?}")]
    WeightShape {
        name: String,
        expected: Vec<u32>,
        actual: Vec<u32>,
    },
    /// A token id is outside the embedding table.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenId { id: i64, vocab: usize },
    /// A sequence is longer than the position table.
    #[error("a sequence of {len} tokens exceeds the model's {max} positions")]
    TooLong { len: usize, max: usize },
}

type Result<T> = std::result::Result<T, EncoderError>;

/// Reads weights by their Hugging Face names, whether or not the file
/// prefixes them with `bert.` (as `BertForMaskedLM` checkpoints do).
struct WeightReader<'m> {
    model: &'m Model,
    prefix: &'static str,
}

impl<'m> WeightReader<'m> {
    fn new(model: &'m Model) -> Self {
        let bare = model
            .weights()
            .iter()
            .any(|w| w.name == "embeddings.word_embeddings.weight");
        Self {
            model,
            prefix: if bare { "" } else { "bert." },
        }
    }

    /// The weight `name`, checked against `shape` and converted to f32 (the
    /// dtype of everything the guest uploads).
    fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = format!("{}{name}", self.prefix);
        let tensor = self.model.weight(&full)?;
        let expected: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
        let actual = tensor.shape();
        if actual != expected {
            return Err(EncoderError::WeightShape {
                name: full,
                expected,
                actual,
            });
        }
        Ok(match tensor.dtype() {
            DType::F32 => tensor,
            _ => tensor.cast(DType::F32)?,
        })
    }
}

/// `x · Wᵀ + b`, `W` as PyTorch stores it (`[out, in]`, read in place).
struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(w: &WeightReader, prefix: &str, inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Self {
            weight: w.get(&format!("{prefix}.weight"), &[outputs, inputs])?,
            bias: w.get(&format!("{prefix}.bias"), &[outputs])?,
        })
    }

    /// `x · Wᵀ + b (+ residual)`.
    fn forward(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        Ok(x.linear(&self.weight, Some(&self.bias), residual)?)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(w: &WeightReader, prefix: &str, config: &EncoderConfig) -> Result<Self> {
        let size = [config.hidden_size];
        Ok(Self {
            weight: w.get(&format!("{prefix}.weight"), &size)?,
            bias: w.get(&format!("{prefix}.bias"), &size)?,
            eps: config.layer_norm_eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.layer_norm(Some(&self.weight), Some(&self.bias), self.eps)?)
    }
}

/// One transformer block: self-attention and the GELU feed-forward, each
/// followed by a residual add and LayerNorm (post-norm, as in BERT).
struct Layer {
    /// Query, key and value projections, computed in one call.
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(w: &WeightReader, index: usize, config: &EncoderConfig) -> Result<Self> {
        let p = format!("encoder.layer.{index}");
        let h = config.hidden_size;
        let projection = |name: &str| Linear::load(w, &format!("{p}.attention.self.{name}"), h, h);
        Ok(Self {
            query: projection("query")?,
            key: projection("key")?,
            value: projection("value")?,
            attention_output: Linear::load(w, &format!("{p}.attention.output.dense"), h, h)?,
            attention_norm: LayerNorm::load(w, &format!("{p}.attention.output.LayerNorm"), config)?,
            intermediate: Linear::load(
                w,
                &format!("{p}.intermediate.dense"),
                h,
                config.intermediate_size,
            )?,
            output: Linear::load(w, &format!("{p}.output.dense"), config.intermediate_size, h)?,
            output_norm: LayerNorm::load(w, &format!("{p}.output.LayerNorm"), config)?,
        })
    }

    /// `x`: `[batch, len, hidden]`; `lengths`: each sequence's real
    /// tokens (i32 `[batch]`), the rest padding.
    fn forward(&self, x: &Tensor, lengths: &Tensor, config: &EncoderConfig) -> Result<Tensor> {
        let shape = x.shape();
        let (batch, len) = (i64::from(shape[0]), i64::from(shape[1]));
        let heads = config.num_attention_heads as i64;
        let head_dim = config.head_dim() as i64;

        // [batch, len, hidden] each, viewed as [batch, len, heads, head_dim].
        let projected = x.linear_many(
            &[&self.query.weight, &self.key.weight, &self.value.weight],
            &[&self.query.bias, &self.key.bias, &self.value.bias],
        )?;
        let heads_of = |t: &Tensor| t.reshape(&[batch, len, heads, head_dim]);
        let (query, key, value) = (
            heads_of(&projected[0])?,
            heads_of(&projected[1])?,
            heads_of(&projected[2])?,
        );
        let context = query
            .attention(&key, &value, &BIDIRECTIONAL, Some(lengths), None)?
            .reshape(&[batch, len, heads * head_dim])?;
        let attended = self
            .attention_norm
            .forward(&self.attention_output.forward(&context, Some(x))?)?;

        let inner = self.intermediate.forward(&attended, None)?.gelu()?;
        self.output_norm
            .forward(&self.output.forward(&inner, Some(&attended))?)
    }
}

/// A sentence-embedding BERT: weights on the device plus its configuration.
pub struct Encoder {
    config: EncoderConfig,
    word_embeddings: Tensor,
    /// Position embeddings with the token-type-0 embedding already added
    /// (every token of a single sentence is type 0), `[positions, hidden]`.
    position_and_type: Tensor,
    embeddings_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl Encoder {
    /// Fetch and prepare every weight of the model once.
    pub fn load(model: &Model, config: EncoderConfig) -> Result<Self> {
        let w = WeightReader::new(model);
        let h = config.hidden_size;
        let word_embeddings =
            w.get("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let positions = w.get(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type_0 = w
            .get(
                "embeddings.token_type_embeddings.weight",
                &[config.type_vocab_size, h],
            )?
            .slice(0, 0, 1)?;
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(&w, i, &config))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            position_and_type: positions.add(&token_type_0)?,
            embeddings_norm: LayerNorm::load(&w, "embeddings.LayerNorm", &config)?,
            word_embeddings,
            layers,
            config,
        })
    }

    /// Width of the sentence vectors.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Unit-length mean-pooled embeddings of a batch of token-id sequences
    /// (each already `[CLS] … [SEP]`), one `dim()`-long vector per sequence,
    /// in order. Shorter sequences are padded with `pad_id` and masked out
    /// of attention and pooling.
    pub fn embed(&self, sequences: &[Vec<i64>], pad_id: i64) -> Result<Vec<Vec<f32>>> {
        let Some(len) = sequences.iter().map(Vec::len).max() else {
            return Ok(Vec::new());
        };
        let max = self.config.max_position_embeddings;
        if len > max {
            return Err(EncoderError::TooLong { len, max });
        }
        let vocab = self.config.vocab_size;
        if let Some(&id) = sequences
            .iter()
            .flatten()
            .find(|&&id| !(0..vocab as i64).contains(&id))
        {
            return Err(EncoderError::TokenId { id, vocab });
        }
        let batch = sequences.len();
        let hidden = self.config.hidden_size;

        let mut ids = Vec::with_capacity(batch * len);
        let mut mask = Vec::with_capacity(batch * len);
        for seq in sequences {
            ids.extend(
                seq.iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, len - seq.len())),
            );
            mask.extend((0..len).map(|i| if i < seq.len() { 1.0f32 } else { 0.0 }));
        }
        let (b, l) = (batch as u32, len as u32);
        let real: Vec<i32> = sequences.iter().map(|s| s.len() as i32).collect();
        let lengths = Tensor::from_bytes(DType::I32, &[b], &i32_bytes(&real))?;

        let ids = Tensor::from_i64(&[b, l], &ids)?;
        let embedded = self
            .word_embeddings
            .gather(&ids)?
            .add(&self.position_and_type.slice(0, 0, l)?)?;
        let mut x = self.embeddings_norm.forward(&embedded)?;
        for layer in &self.layers {
            x = layer.forward(&x, &lengths, &self.config)?;
        }

        // Mean over the real tokens of each sequence.
        let mask = Tensor::from_f32(&[b, l, 1], &mask)?;
        let counts: Vec<f32> = sequences.iter().map(|s| s.len() as f32).collect();
        let counts = Tensor::from_f32(&[b, 1], &counts)?;
        let mean = x.mul(&mask)?.sum(1, false)?.div(&counts)?;
        // ‖v‖ = √(d · mean(v²)), so v / ‖v‖ = rms_norm(v) / √d; the tiny eps
        // plays the part of F.normalize's 1e-12 floor on ‖v‖.
        let eps = 1e-24 / hidden as f32;
        let unit = mean
            .rms_norm(None, eps)?
            .scale(1.0 / (hidden as f32).sqrt(), 0.0)?;
        Ok(unit
            .to_vec_f32()?
            .chunks(hidden)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// Little-endian bytes of i32 values (as `from-bytes` takes them).
fn i32_bytes(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
