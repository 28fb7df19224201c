//! The model's `config.json` (and `generation_config.json`) as Hugging Face
//! `transformers` writes them for Llama, Mistral and Qwen2, checked once:
//! what the decoder needs, with the family's defaults, and a clear refusal
//! of settings it does not implement.

use serde::Deserialize;
use serde_json::Value;

/// Why `config.json` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config.json is not valid JSON for a decoder: {0}")]
    Json(#[from] serde_json::Error),
    #[error("config.json: {0}")]
    Unsupported(String),
}

type Result<T> = std::result::Result<T, ConfigError>;

/// The model families this handler runs; they differ only in which
/// projections carry biases and in their defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Llama,
    Mistral,
    Qwen2,
}

/// How rotary frequencies are scaled for contexts longer than training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (every frequency divided by it).
    Linear {
        factor: f32,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: f32,
    },
}

/// Everything the decoder reads from `config.json`.
#[derive(Debug, Clone)]
pub struct LlamaConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on the q, k and v projections (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// A bias on the output projection (Llama's `attention_bias` only).
    pub o_bias: bool,
    /// Biases on gate, up and down (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// Tokens that end generation (config.json's, generation_config.json's).
    pub eos_token_ids: Vec<u32>,
    /// When set, attention only reaches this many tokens back (Mistral
    /// v0.1's `sliding_window`).
    pub sliding_window: Option<usize>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    model_type: Option<String>,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    max_position_embeddings: Option<usize>,
    tie_word_embeddings: Option<bool>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    hidden_act: Option<String>,
    eos_token_id: Option<Value>,
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    partial_rotary_factor: Option<f64>,
}

/// Token ids as config files write them: one number or a list.
fn token_ids(value: Option<&Value>) -> Vec<u32> {
    match value {
        Some(Value::Number(n)) => n.as_u64().map(|n| vec![n as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_u64)
            .map(|n| n as u32)
            .collect(),
        _ => Vec::new(),
    }
}

fn family(raw: &Raw) -> Result<Family> {
    let arch = raw.architectures.first().map(String::as_str);
    let model_type = raw.model_type.as_deref();
    Ok(match (arch, model_type) {
        (Some("LlamaForCausalLM"), _) | (None, Some("llama")) => Family::Llama,
        (Some("MistralForCausalLM"), _) | (None, Some("mistral")) => Family::Mistral,
        (Some("Qwen2ForCausalLM"), _) | (None, Some("qwen2")) => Family::Qwen2,
        _ => {
            return Err(ConfigError::Unsupported(format!(
                "architecture {arch:?} (model_type {model_type:?}) is not one this handler runs; it runs LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM"
            )));
        }
    })
}

fn rope_scaling(value: Option<&Value>) -> Result<RopeScaling> {
    let Some(Value::Object(map)) = value else {
        return Ok(RopeScaling::None);
    };
    let kind = map
        .get("rope_type")
        .or_else(|| map.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let number = |key: &str| -> Result<f32> {
        map.get(key)
            .and_then(Value::as_f64)
            .map(|v| v as f32)
            .ok_or_else(|| {
                ConfigError::Unsupported(format!("rope_scaling of type {kind:?} needs {key:?}"))
            })
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: number("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: number("factor")?,
            low_freq_factor: number("low_freq_factor")?,
            high_freq_factor: number("high_freq_factor")?,
            original_max_position_embeddings: number("original_max_position_embeddings")?,
        },
        other => {
            return Err(ConfigError::Unsupported(format!(
                "rope_scaling type {other:?} is not implemented (only \"default\", \"linear\" and \"llama3\")"
            )));
        }
    })
}

impl LlamaConfig {
    /// Parse `config.json`; `generation` is `generation_config.json` when
    /// the model has one (its `eos_token_id` adds end tokens, as chat
    /// models' end-of-turn tokens are listed there).
    pub fn parse(json: &str, generation: Option<&str>) -> Result<Self> {
        let raw: Raw = serde_json::from_str(json)?;
        let family = family(&raw)?;
        if let Some(act) = raw.hidden_act.as_deref()
            && act != "silu"
        {
            return Err(ConfigError::Unsupported(format!(
                "hidden_act {act:?}: only \"silu\" (SwiGLU) is implemented"
            )));
        }
        if raw.partial_rotary_factor.is_some_and(|f| f != 1.0) {
            return Err(ConfigError::Unsupported(
                "partial_rotary_factor other than 1 is not implemented".into(),
            ));
        }
        let heads = raw.num_attention_heads;
        let kv_heads = raw.num_key_value_heads.unwrap_or(heads);
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(ConfigError::Unsupported(format!(
                "num_attention_heads {heads} must be a positive multiple of num_key_value_heads {kv_heads}"
            )));
        }
        let head_dim = raw.head_dim.unwrap_or(raw.hidden_size / heads);
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(ConfigError::Unsupported(format!(
                "head_dim {head_dim} must be even (rotary embeddings rotate pairs)"
            )));
        }
        let attention_bias = raw.attention_bias.unwrap_or(false);
        let (qkv_bias, o_bias) = match family {
            // Qwen2 always has q/k/v biases and never an output bias.
            Family::Qwen2 => (true, false),
            Family::Llama => (attention_bias, attention_bias),
            Family::Mistral => (false, false),
        };
        let sliding_window = match family {
            Family::Qwen2 if raw.use_sliding_window != Some(true) => None,
            _ => raw.sliding_window,
        };
        let mut eos_token_ids = token_ids(raw.eos_token_id.as_ref());
        if let Some(generation) = generation {
            let generation: Value = serde_json::from_str(generation)?;
            for id in token_ids(generation.get("eos_token_id")) {
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }
        Ok(Self {
            family,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: heads,
            num_key_value_heads: kv_heads,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6) as f32,
            rope_theta: raw.rope_theta.unwrap_or(10_000.0) as f32,
            rope_scaling: rope_scaling(raw.rope_scaling.as_ref())?,
            max_position_embeddings: raw.max_position_embeddings.unwrap_or(2048),
            tie_word_embeddings: raw.tie_word_embeddings.unwrap_or(false),
            qkv_bias,
            o_bias,
            mlp_bias: raw.mlp_bias.unwrap_or(false),
            eos_token_ids,
            sliding_window,
        })
    }

    /// Query heads that share one key/value head.
    pub fn group_size(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// The longest sequence (prompt and generated tokens) the handler runs.
    pub fn context_length(&self) -> usize {
        self.max_position_embeddings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA32_1B: &str = r#"{
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 128256, "hidden_size": 2048, "intermediate_size": 8192,
        "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
        "head_dim": 64, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "max_position_embeddings": 131072, "tie_word_embeddings": true,
        "hidden_act": "silu", "eos_token_id": 128001, "bos_token_id": 128000
    }"#;

    #[test]
    fn reads_a_llama_3_config() {
        let c = LlamaConfig::parse(
            LLAMA32_1B,
            Some(r#"{"eos_token_id": [128001, 128008, 128009]}"#),
        )
        .unwrap();
        assert_eq!(c.family, Family::Llama);
        assert_eq!((c.head_dim, c.group_size()), (64, 4));
        assert!(c.tie_word_embeddings && !c.qkv_bias && !c.o_bias);
        assert_eq!(c.eos_token_ids, [128001, 128008, 128009]);
        assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 32.0));
    }

    #[test]
    fn qwen2_has_qkv_biases_and_no_window_unless_asked() {
        let c = LlamaConfig::parse(
            r#"{"architectures": ["Qwen2ForCausalLM"], "vocab_size": 10, "hidden_size": 8,
                "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                "num_key_value_heads": 1, "sliding_window": 4, "use_sliding_window": false,
                "max_position_embeddings": 64, "tie_word_embeddings": true}"#,
            None,
        )
        .unwrap();
        assert_eq!(c.family, Family::Qwen2);
        assert!(c.qkv_bias && !c.o_bias);
        assert_eq!((c.context_length(), c.sliding_window), (64, None));
    }

    #[test]
    fn unsupported_settings_are_named() {
        let bad = LLAMA32_1B.replace("\"silu\"", "\"gelu\"");
        let err = LlamaConfig::parse(&bad, None).unwrap_err().to_string();
        assert!(err.contains("hidden_act \"gelu\""), "{err}");
        let bad = LLAMA32_1B.replace("\"llama3\"", "\"yarn\"");
        let err = LlamaConfig::parse(&bad, None).unwrap_err().to_string();
        assert!(err.contains("\"yarn\" is not implemented"), "{err}");
        let bad = LLAMA32_1B.replace("LlamaForCausalLM", "GPT2LMHeadModel");
        let err = LlamaConfig::parse(&bad, None).unwrap_err().to_string();
        assert!(err.contains("GPT2LMHeadModel"), "{err}");
    }
}
