//! Text to token ids and back, with Hugging Face's `tokenizers` crate
//! reading the model's `tokenizer.json` (byte-level BPE for Llama 3, Qwen2;
//! SentencePiece-style BPE for Llama 2 and Mistral), and the incremental
//! decoding a token stream needs: text is released only once it is whole
//! UTF-8 and no later token can change it.

/// Why the tokenizer could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer.json could not be read: {0}")]
    Load(String),
    #[error("tokenizing the prompt failed: {0}")]
    Encode(String),
    #[error("decoding tokens failed: {0}")]
    Decode(String),
}

type Result<T> = std::result::Result<T, TokenizerError>;

/// The model's tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Build from the bytes of `tokenizer.json`.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| TokenizerError::Load(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Token ids of `text`; `special` adds what the tokenizer's
    /// post-processor adds (e.g. Llama's BOS). A rendered chat template
    /// already holds its special tokens as text, so it is encoded without.
    pub fn encode(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode(text, special)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| TokenizerError::Decode(e.to_string()))
    }

    /// The text of one token as the vocabulary spells it (for logprobs).
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id])
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.inner.id_to_token(id))
            .unwrap_or_default()
    }

    /// The id of a token spelled `token` (an added or special token).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Turns generated ids into text deltas as they come, the way Hugging Face
/// TGI does (`decode_token`): decode a short window of recent tokens and
/// release what it adds beyond the previous window, unless it ends in a
/// replacement character (a UTF-8 sequence split across tokens).
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl StreamDecoder {
    /// Add one token; returns the text it completes (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let prefix = tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let text = tokenizer.decode(&self.ids[self.prefix_offset..])?;
        if text.len() > prefix.len() && !text.ends_with('\u{FFFD}') && text.starts_with(&prefix) {
            let delta = text[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(delta)
        } else {
            Ok(String::new())
        }
    }

    /// Text held back at the end (an incomplete character), released as is.
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String> {
        let prefix = tokenizer.decode(&self.ids[self.prefix_offset..self.read_offset])?;
        let text = tokenizer.decode(&self.ids[self.prefix_offset..])?;
        self.prefix_offset = self.ids.len();
        self.read_offset = self.ids.len();
        Ok(text.get(prefix.len()..).unwrap_or_default().to_string())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A byte-level BPE tokenizer.json with the 256 byte tokens, a few
    /// merges and two special tokens, as `tokenizers` writes one.
    pub(crate) fn byte_level_json() -> String {
        // GPT-2's byte-to-unicode map: printable bytes stand for themselves.
        let mut chars = Vec::new();
        let mut n = 0u32;
        for b in 0u32..256 {
            let printable = (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
            let c = if printable {
                char::from_u32(b).unwrap()
            } else {
                n += 1;
                char::from_u32(255 + n).unwrap()
            };
            chars.push(c);
        }
        let mut vocab = serde_json::Map::new();
        for (i, c) in chars.iter().enumerate() {
            vocab.insert(c.to_string(), (i as u32).into());
        }
        let merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("Ġ", "w")];
        for (i, (a, b)) in merges.iter().enumerate() {
            vocab.insert(format!("{a}{b}"), (256 + i as u32).into());
        }
        serde_json::json!({
            "version": "1.0",
            "added_tokens": [
                {"id": 260, "content": "<s>", "special": true, "single_word": false,
                 "lstrip": false, "rstrip": false, "normalized": false},
                {"id": 261, "content": "</s>", "special": true, "single_word": false,
                 "lstrip": false, "rstrip": false, "normalized": false}
            ],
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [260], "tokens": ["<s>"]}}},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                      "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                      "vocab": vocab,
                      "merges": merges.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>()}
        })
        .to_string()
    }

    #[test]
    fn byte_level_bpe_round_trips_any_text() {
        let t = Tokenizer::from_json(byte_level_json().as_bytes()).unwrap();
        let ids = t.encode("hello world", true).unwrap();
        // <s>, "hell", "o", "Ġw", "o", "r", "l", "d"
        assert_eq!(ids[0], 260);
        assert_eq!(ids[1], 258);
        assert_eq!(ids[3], 259);
        assert_eq!(t.decode(&ids).unwrap(), "hello world");
        let text = "naïve 東京 🦀 </s>";
        let ids = t.encode(text, false).unwrap();
        assert!(ids.contains(&261), "the special token is one id: {ids:?}");
        assert_eq!(t.decode(&ids).unwrap(), "naïve 東京 🦀 ");
    }

    #[test]
    fn stream_decoder_releases_whole_characters_only() {
        let t = Tokenizer::from_json(byte_level_json().as_bytes()).unwrap();
        let text = "hi 🦀 ok é";
        let ids = t.encode(text, false).unwrap();
        let mut d = StreamDecoder::default();
        let mut out = String::new();
        for &id in &ids {
            let delta = d.push(&t, id).unwrap();
            assert!(!delta.contains('\u{FFFD}'), "{delta:?}");
            out.push_str(&delta);
        }
        out.push_str(&d.finish(&t).unwrap());
        assert_eq!(out, text);
    }
}
