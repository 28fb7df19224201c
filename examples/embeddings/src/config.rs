//! The model directory's JSON settings: the encoder's shape
//! (`config.json`), the tokenizer's options (`tokenizer_config.json`), the
//! sequence limit (`sentence_bert_config.json`) and the pooling
//! (`1_Pooling/config.json`), checked for what this handler can run.

use serde::Deserialize;

use crate::tokenizer::{SpecialTokens, TokenizerOptions};

/// Why the model's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file is not the JSON it should be.
    #[error("{file} is not valid: {source}")]
    Json {
        file: &'static str,
        source: serde_json::Error,
    },
    /// The settings describe a model this handler does not implement.
    #[error("{file}: {message}")]
    Unsupported { file: &'static str, message: String },
}

/// Shape of a BERT encoder, from `config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EncoderConfig {
    pub hidden_size: usize,
    pub num_attention_heads: usize,
    pub num_hidden_layers: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f32,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
    #[serde(default)]
    pub model_type: Option<String>,
}

fn default_type_vocab_size() -> usize {
    2
}
fn default_layer_norm_eps() -> f32 {
    1e-12
}
fn default_hidden_act() -> String {
    "gelu".into()
}
fn default_position_embedding_type() -> String {
    "absolute".into()
}

impl EncoderConfig {
    /// Parse and check `config.json`.
    pub fn parse(json: &str) -> Result<Self, ConfigError> {
        const FILE: &str = "config.json";
        let config: Self = serde_json::from_str(json)
            .map_err(|source| ConfigError::Json { file: FILE, source })?;
        let unsupported = |message: String| {
            Err(ConfigError::Unsupported {
                file: FILE,
                message,
            })
        };
        if let Some(kind) = &config.model_type
            && kind != "bert"
        {
            return unsupported(format!("model_type {kind:?} is not a BERT encoder"));
        }
        if config.hidden_act != "gelu" {
            return unsupported(format!(
                "hidden_act {:?}: only exact \"gelu\" is implemented",
                config.hidden_act
            ));
        }
        if config.position_embedding_type != "absolute" {
            return unsupported(format!(
                "position_embedding_type {:?}: only \"absolute\" is implemented",
                config.position_embedding_type
            ));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return unsupported(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            ));
        }
        Ok(config)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

#[derive(Deserialize)]
struct RawTokenizerConfig {
    #[serde(default = "yes")]
    do_lower_case: bool,
    #[serde(default)]
    strip_accents: Option<bool>,
    #[serde(default = "yes")]
    tokenize_chinese_chars: bool,
    #[serde(default)]
    do_basic_tokenize: Option<bool>,
    cls_token: Option<TokenSpelling>,
    sep_token: Option<TokenSpelling>,
    unk_token: Option<TokenSpelling>,
    pad_token: Option<TokenSpelling>,
    mask_token: Option<TokenSpelling>,
}

fn yes() -> bool {
    true
}

/// A special token is written either as a string or as an `AddedToken`
/// object with a `content` field.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenSpelling {
    Plain(String),
    Added { content: String },
}

impl TokenSpelling {
    fn or_default(spelling: Option<Self>, default: String) -> String {
        match spelling {
            Some(Self::Plain(s)) | Some(Self::Added { content: s }) => s,
            None => default,
        }
    }
}

/// Parse `tokenizer_config.json` into tokenizer options.
pub fn tokenizer_options(json: &str) -> Result<TokenizerOptions, ConfigError> {
    const FILE: &str = "tokenizer_config.json";
    let raw: RawTokenizerConfig =
        serde_json::from_str(json).map_err(|source| ConfigError::Json { file: FILE, source })?;
    if raw.do_basic_tokenize == Some(false) {
        return Err(ConfigError::Unsupported {
            file: FILE,
            message: "do_basic_tokenize false is not implemented".into(),
        });
    }
    let d = SpecialTokens::default();
    Ok(TokenizerOptions {
        lower_case: raw.do_lower_case,
        strip_accents: raw.strip_accents,
        split_chinese_chars: raw.tokenize_chinese_chars,
        special: SpecialTokens {
            cls: TokenSpelling::or_default(raw.cls_token, d.cls),
            sep: TokenSpelling::or_default(raw.sep_token, d.sep),
            unk: TokenSpelling::or_default(raw.unk_token, d.unk),
            pad: TokenSpelling::or_default(raw.pad_token, d.pad),
            mask: TokenSpelling::or_default(raw.mask_token, d.mask),
        },
    })
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

/// The longest token sequence the model sees: sentence-transformers'
/// `max_seq_length` when the model has `sentence_bert_config.json`, else the
/// encoder's position limit; never more than that limit.
pub fn max_seq_length(
    sentence_bert_config: Option<&str>,
    encoder: &EncoderConfig,
) -> Result<usize, ConfigError> {
    const FILE: &str = "sentence_bert_config.json";
    let limit = encoder.max_position_embeddings;
    let Some(json) = sentence_bert_config else {
        return Ok(limit);
    };
    let config: SentenceBertConfig =
        serde_json::from_str(json).map_err(|source| ConfigError::Json { file: FILE, source })?;
    if config.max_seq_length < 2 {
        return Err(ConfigError::Unsupported {
            file: FILE,
            message: format!(
                "max_seq_length {} leaves no room for [CLS] and [SEP]",
                config.max_seq_length
            ),
        });
    }
    Ok(config.max_seq_length.min(limit))
}

#[derive(Deserialize)]
struct PoolingConfig {
    word_embedding_dimension: usize,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// Check the pooling module's settings (`1_Pooling/config.json`): this
/// handler does mean pooling of the encoder's hidden states only.
pub fn check_mean_pooling(json: &str, encoder: &EncoderConfig) -> Result<(), ConfigError> {
    const FILE: &str = "1_Pooling/config.json";
    let pooling: PoolingConfig =
        serde_json::from_str(json).map_err(|source| ConfigError::Json { file: FILE, source })?;
    let unsupported = |message: String| {
        Err(ConfigError::Unsupported {
            file: FILE,
            message,
        })
    };
    if pooling.word_embedding_dimension != encoder.hidden_size {
        return unsupported(format!(
            "word_embedding_dimension {} differs from the encoder's hidden_size {}",
            pooling.word_embedding_dimension, encoder.hidden_size
        ));
    }
    if !pooling.pooling_mode_mean_tokens
        || pooling.pooling_mode_cls_token
        || pooling.pooling_mode_max_tokens
        || pooling.pooling_mode_mean_sqrt_len_tokens
    {
        return unsupported(
            "only mean pooling (pooling_mode_mean_tokens alone) is implemented".into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM_CONFIG: &str = r#"{"architectures": ["BertModel"], "hidden_act": "gelu",
        "hidden_size": 384, "intermediate_size": 1536, "layer_norm_eps": 1e-12,
        "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 6, "type_vocab_size": 2, "vocab_size": 30522,
        "position_embedding_type": "absolute"}"#;

    #[test]
    fn parses_minilm_config() {
        let c = EncoderConfig::parse(MINILM_CONFIG).unwrap();
        assert_eq!(
            (c.hidden_size, c.head_dim(), c.num_hidden_layers),
            (384, 32, 6)
        );
        assert_eq!(c.layer_norm_eps, 1e-12);
    }

    #[test]
    fn rejects_other_activations_and_bad_heads() {
        let relu = MINILM_CONFIG.replace("\"gelu\"", "\"relu\"");
        assert!(
            EncoderConfig::parse(&relu)
                .unwrap_err()
                .to_string()
                .contains("relu")
        );
        let heads =
            MINILM_CONFIG.replace("\"num_attention_heads\": 12", "\"num_attention_heads\": 5");
        assert!(EncoderConfig::parse(&heads).is_err());
        assert!(
            EncoderConfig::parse("{")
                .unwrap_err()
                .to_string()
                .contains("config.json")
        );
    }

    #[test]
    fn tokenizer_options_follow_the_file() {
        let o = tokenizer_options(
            r#"{"do_lower_case": false, "strip_accents": null, "unk_token": {"content": "<unk>"}}"#,
        )
        .unwrap();
        assert!(!o.lower_case);
        assert_eq!(o.strip_accents, None);
        assert_eq!(o.special.unk, "<unk>");
        assert_eq!(o.special.cls, "[CLS]");
    }

    #[test]
    fn max_seq_length_is_capped_by_positions() {
        let c = EncoderConfig::parse(MINILM_CONFIG).unwrap();
        assert_eq!(
            max_seq_length(Some(r#"{"max_seq_length": 256}"#), &c).unwrap(),
            256
        );
        assert_eq!(
            max_seq_length(Some(r#"{"max_seq_length": 4096}"#), &c).unwrap(),
            512
        );
        assert_eq!(max_seq_length(None, &c).unwrap(), 512);
    }

    #[test]
    fn only_mean_pooling_is_accepted() {
        let c = EncoderConfig::parse(MINILM_CONFIG).unwrap();
        let mean = r#"{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true}"#;
        assert!(check_mean_pooling(mean, &c).is_ok());
        let cls = r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true}"#;
        assert!(check_mean_pooling(cls, &c).is_err());
    }
}
