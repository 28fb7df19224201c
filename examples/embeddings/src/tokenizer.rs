//! BERT's WordPiece tokenizer in plain Rust, so it runs inside the guest.
//!
//! It reproduces what sentence-transformers actually runs for BERT models,
//! Hugging Face's fast `BertTokenizerFast`: special tokens written literally
//! in the text are kept whole; the rest goes through `BertNormalizer` (clean
//! control characters, space out CJK ideographs, strip accents by NFD, lower
//! case), `BertPreTokenizer` (split on whitespace and punctuation) and
//! greedy longest-match-first WordPiece; then `[CLS] … [SEP]`, truncated to
//! the model's maximum sequence length.

use std::collections::HashMap;

use unicode_general_category::{GeneralCategory, get_general_category};
use unicode_normalization::UnicodeNormalization;

/// Words longer than this many characters become `[UNK]` without WordPiece,
/// as in BERT (`max_input_chars_per_word`).
const MAX_WORD_CHARS: usize = 100;

/// Why a tokenizer could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The vocabulary lacks a token the tokenizer needs.
    #[error("vocab.txt has no {role} token {token:?}")]
    MissingToken { role: &'static str, token: String },
    /// `vocab.txt` is empty.
    #[error("vocab.txt is empty")]
    EmptyVocab,
}

/// How text is normalised before it is split; from `tokenizer_config.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenizerOptions {
    /// `do_lower_case`.
    pub lower_case: bool,
    /// `strip_accents`; `None` follows `lower_case`, as in BERT.
    pub strip_accents: Option<bool>,
    /// `tokenize_chinese_chars`.
    pub split_chinese_chars: bool,
    /// The special tokens' spellings.
    pub special: SpecialTokens,
}

impl Default for TokenizerOptions {
    fn default() -> Self {
        Self {
            lower_case: true,
            strip_accents: None,
            split_chinese_chars: true,
            special: SpecialTokens::default(),
        }
    }
}

/// Spellings of BERT's special tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialTokens {
    pub cls: String,
    pub sep: String,
    pub unk: String,
    pub pad: String,
    pub mask: String,
}

impl Default for SpecialTokens {
    fn default() -> Self {
        Self {
            cls: "[CLS]".into(),
            sep: "[SEP]".into(),
            unk: "[UNK]".into(),
            pad: "[PAD]".into(),
            mask: "[MASK]".into(),
        }
    }
}

/// A WordPiece vocabulary with its normalisation settings.
#[derive(Debug)]
pub struct Tokenizer {
    vocab: HashMap<String, i64>,
    options: TokenizerOptions,
    /// Special tokens as written in text, longest first so that a literal
    /// match prefers the longer spelling, with their ids.
    literal_specials: Vec<(String, i64)>,
    cls: i64,
    sep: i64,
    unk: i64,
    pad: i64,
}

/// Token ids of one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoding {
    /// `[CLS]`, the text's pieces, `[SEP]`.
    pub ids: Vec<i64>,
    /// True when the text had more pieces than fit and the tail was cut.
    pub truncated: bool,
}

impl Tokenizer {
    /// Build from the text of `vocab.txt` (one token per line; the id is the
    /// line number).
    pub fn new(vocab_txt: &str, options: TokenizerOptions) -> Result<Self, TokenizerError> {
        let mut vocab = HashMap::new();
        for (id, token) in vocab_txt.lines().enumerate() {
            // Later duplicates win, as in transformers' `load_vocab`.
            vocab.insert(token.trim_end_matches('\r').to_string(), id as i64);
        }
        if vocab.is_empty() {
            return Err(TokenizerError::EmptyVocab);
        }
        let id = |role: &'static str, token: &str| {
            vocab
                .get(token)
                .copied()
                .ok_or_else(|| TokenizerError::MissingToken {
                    role,
                    token: token.to_string(),
                })
        };
        let s = &options.special;
        let (cls, sep, unk, pad) = (
            id("cls", &s.cls)?,
            id("sep", &s.sep)?,
            id("unk", &s.unk)?,
            id("pad", &s.pad)?,
        );
        let mut literal_specials: Vec<(String, i64)> = [&s.cls, &s.sep, &s.unk, &s.pad, &s.mask]
            .into_iter()
            .filter_map(|t| vocab.get(t).map(|&i| (t.clone(), i)))
            .collect();
        literal_specials.sort_by_key(|(t, _)| std::cmp::Reverse(t.len()));
        Ok(Self {
            vocab,
            options,
            literal_specials,
            cls,
            sep,
            unk,
            pad,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The id used to pad sequences of a batch.
    pub fn pad_id(&self) -> i64 {
        self.pad
    }

    /// `[CLS]`, the text's pieces and `[SEP]`, at most `max_len` ids in all
    /// (`max_len` below 2 still keeps `[CLS]` and `[SEP]`).
    pub fn encode(&self, text: &str, max_len: usize) -> Encoding {
        let mut pieces = Vec::new();
        for segment in self.split_specials(text) {
            match segment {
                Segment::Special(id) => pieces.push(id),
                Segment::Text(text) => {
                    for word in pre_tokenize(&self.normalize(text)) {
                        self.wordpiece(word, &mut pieces);
                    }
                }
            }
        }
        let room = max_len.saturating_sub(2);
        let truncated = pieces.len() > room;
        pieces.truncate(room);
        let mut ids = Vec::with_capacity(pieces.len() + 2);
        ids.push(self.cls);
        ids.extend(pieces);
        ids.push(self.sep);
        Encoding { ids, truncated }
    }

    /// The text's word pieces as strings, without `[CLS]`/`[SEP]` and
    /// without truncation (for inspection and tests).
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let by_id: HashMap<i64, &str> = self.vocab.iter().map(|(t, &i)| (i, t.as_str())).collect();
        let ids = self.encode(text, usize::MAX).ids;
        ids[1..ids.len() - 1]
            .iter()
            .map(|i| by_id[i].to_string())
            .collect()
    }

    /// Cut the text around literal special tokens: fast tokenizers match
    /// them on the raw text, before normalisation.
    fn split_specials<'t>(&self, mut text: &'t str) -> Vec<Segment<'t>> {
        let mut out = Vec::new();
        loop {
            let next = self
                .literal_specials
                .iter()
                .filter_map(|(token, id)| text.find(token.as_str()).map(|at| (at, token, *id)))
                // Earliest match; among equal starts the longest (listed first).
                .min_by_key(|(at, _, _)| *at);
            let Some((at, token, id)) = next else {
                out.push(Segment::Text(text));
                return out;
            };
            out.push(Segment::Text(&text[..at]));
            out.push(Segment::Special(id));
            text = &text[at + token.len()..];
        }
    }

    /// `BertNormalizer`: clean, space out CJK, strip accents, lower-case.
    fn normalize(&self, text: &str) -> String {
        let mut cleaned = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if is_whitespace(c) {
                cleaned.push(' ');
            } else if self.options.split_chinese_chars && is_chinese(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        let strip_accents = self
            .options
            .strip_accents
            .unwrap_or(self.options.lower_case);
        let stripped: String = if strip_accents {
            cleaned
                .nfd()
                .filter(|&c| get_general_category(c) != GeneralCategory::NonspacingMark)
                .collect()
        } else {
            cleaned
        };
        if self.options.lower_case {
            // Character by character, as the fast tokenizer does (no
            // context-dependent final sigma).
            stripped.chars().flat_map(char::to_lowercase).collect()
        } else {
            stripped
        }
    }

    /// Greedy longest-match-first WordPiece of one word; a word with any
    /// piece missing from the vocabulary becomes a single `[UNK]`.
    fn wordpiece(&self, word: &str, out: &mut Vec<i64>) {
        if word.chars().count() > MAX_WORD_CHARS {
            out.push(self.unk);
            return;
        }
        let first = out.len();
        let mut start = 0;
        let mut candidate = String::with_capacity(word.len() + 2);
        while start < word.len() {
            let mut end = word.len();
            let found = loop {
                candidate.clear();
                if start > 0 {
                    candidate.push_str("##");
                }
                candidate.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(&candidate) {
                    break Some(id);
                }
                // Shorten by one character, staying on a char boundary.
                match word[start..end].char_indices().next_back() {
                    Some((last, _)) if last > 0 => end = start + last,
                    _ => break None,
                }
            };
            match found {
                Some(id) => out.push(id),
                None => {
                    out.truncate(first);
                    out.push(self.unk);
                    return;
                }
            }
            start = end;
        }
    }
}

/// A piece of input text: plain text to tokenize, or a literal special token.
enum Segment<'t> {
    Text(&'t str),
    Special(i64),
}

/// `BertPreTokenizer`: split on whitespace (dropped) and punctuation (each
/// mark its own word).
fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut words = Vec::new();
    for chunk in text.split(char::is_whitespace).filter(|w| !w.is_empty()) {
        let mut start = 0;
        for (at, c) in chunk.char_indices() {
            if is_punctuation(c) {
                if start < at {
                    words.push(&chunk[start..at]);
                }
                words.push(&chunk[at..at + c.len_utf8()]);
                start = at + c.len_utf8();
            }
        }
        if start < chunk.len() {
            words.push(&chunk[start..]);
        }
    }
    words
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Unicode "Other" (Cc, Cf, Cs, Co, Cn), except the whitespace controls.
fn is_control(c: char) -> bool {
    if matches!(c, '\t' | '\n' | '\r') {
        return false;
    }
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
    )
}

/// ASCII punctuation (BERT counts `$`, `+`, `^`, `` ` `` … too) or any
/// Unicode "P" category.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            GeneralCategory::ConnectorPunctuation
                | GeneralCategory::DashPunctuation
                | GeneralCategory::OpenPunctuation
                | GeneralCategory::ClosePunctuation
                | GeneralCategory::InitialPunctuation
                | GeneralCategory::FinalPunctuation
                | GeneralCategory::OtherPunctuation
        )
}

/// The CJK Unified Ideographs blocks BERT spaces out (not Hiragana,
/// Katakana or Hangul, which it treats like any other letters).
fn is_chinese(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOCAB: &str = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nrun\n##ning\n\
                         hello\n,\nworld\n!\nnaive\ncafe\n中\n文\nok\n##é\né\na\n##b\n";

    fn tokenizer() -> Tokenizer {
        Tokenizer::new(VOCAB, TokenizerOptions::default()).unwrap()
    }

    #[test]
    fn wordpiece_takes_the_longest_match_first() {
        let t = tokenizer();
        assert_eq!(
            t.tokenize("unaffable running"),
            ["un", "##aff", "##able", "run", "##ning"]
        );
        assert_eq!(t.encode("unaffable", 512).ids, [2, 5, 6, 7, 3]);
    }

    #[test]
    fn a_word_with_an_unknown_piece_is_one_unk() {
        let t = tokenizer();
        assert_eq!(t.tokenize("unxyz hello"), ["[UNK]", "hello"]);
        let long = "a".repeat(MAX_WORD_CHARS + 1);
        assert_eq!(t.tokenize(&long), ["[UNK]"]);
    }

    #[test]
    fn normalizer_lowercases_strips_accents_and_splits_punctuation() {
        let t = tokenizer();
        assert_eq!(t.tokenize("Héllo,WORLD!"), ["hello", ",", "world", "!"]);
        assert_eq!(t.tokenize("  NAÏVE\tcafé\n"), ["naive", "cafe"]);
        // Zero-width space (Cf) is removed, not a separator.
        assert_eq!(t.tokenize("a\u{200b}b"), ["a", "##b"]);
    }

    #[test]
    fn cjk_ideographs_are_words_of_their_own() {
        assert_eq!(tokenizer().tokenize("中文ok"), ["中", "文", "ok"]);
    }

    #[test]
    fn cased_options_keep_case_and_accents() {
        let options = TokenizerOptions {
            lower_case: false,
            ..TokenizerOptions::default()
        };
        let t = Tokenizer::new(VOCAB, options).unwrap();
        assert_eq!(t.tokenize("é Hello"), ["é", "[UNK]"]);
    }

    #[test]
    fn literal_special_tokens_stay_whole() {
        let t = tokenizer();
        assert_eq!(
            t.tokenize("hello [MASK] world[SEP]"),
            ["hello", "[MASK]", "world", "[SEP]"]
        );
        // Lower-case spelling is ordinary text.
        assert_eq!(t.tokenize("[mask]").len(), 3);
    }

    #[test]
    fn truncation_keeps_cls_and_sep() {
        let t = tokenizer();
        let e = t.encode("run run run", 4);
        assert_eq!(e.ids, [2, 8, 8, 3]);
        assert!(e.truncated);
        assert!(!t.encode("run", 4).truncated);
        assert_eq!(t.encode("", 4).ids, [2, 3]);
    }

    #[test]
    fn missing_special_token_is_an_error() {
        let err = Tokenizer::new("[PAD]\nhello\n", TokenizerOptions::default()).unwrap_err();
        assert!(err.to_string().contains("[CLS]"), "{err}");
    }
}
