//! The job side: load the model once in `init`, then turn each job's
//! sentences into embeddings, batching sentences of similar length.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use wasmpod_sdk::{Model, ModelError};

use crate::config::{self, ConfigError, EncoderConfig};
use crate::encoder::{Encoder, EncoderError};
use crate::tokenizer::{Tokenizer, TokenizerError, TokenizerOptions};

/// The model's directory name in the endpoint's model store.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

/// Most sentences encoded together in one forward pass.
const MAX_BATCH: usize = 64;
/// Most padded tokens (batch × longest) in one forward pass: bounds the
/// activations' memory (the fused attention keeps no score matrix).
const MAX_BATCH_TOKENS: usize = 64 * 256;
/// What a forward pass costs beyond its tokens, in tokens' worth of work:
/// on a GPU a pass is ~60 host calls, about as long as computing a
/// thousand tokens; on the CPU the tokens dominate.
const PASS_COST_GPU: usize = 1024;
const PASS_COST_CPU: usize = 8;

/// Why the handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("model {MODEL_NAME}: {0}")]
    Model(#[from] ModelError),
    #[error("model {MODEL_NAME}: {0}")]
    Config(#[from] ConfigError),
    #[error("model {MODEL_NAME}: {0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    Encoder(#[from] EncoderError),
    #[error(
        "the input needs either \"sentences\": [\"...\", ...] or \"sentence\": \"...\", not {0}"
    )]
    Input(&'static str),
    #[error("the handler was not initialised (init did not run or failed)")]
    NotInitialised,
    #[error("cancelled after {done} of {total} sentences")]
    Cancelled { done: usize, total: usize },
}

/// A job's input: `{"sentences": [...]}` or `{"sentence": "..."}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    sentences: Option<Vec<String>>,
    sentence: Option<String>,
}

impl Input {
    fn into_sentences(self) -> Result<Vec<String>, HandlerError> {
        match (self.sentences, self.sentence) {
            (Some(many), None) => Ok(many),
            (None, Some(one)) => Ok(vec![one]),
            (Some(_), Some(_)) => Err(HandlerError::Input("both")),
            (None, None) => Err(HandlerError::Input("neither")),
        }
    }
}

/// A job's output.
#[derive(Debug, Serialize)]
pub struct Output {
    /// One unit-length vector per sentence, in input order.
    embeddings: Vec<Vec<f32>>,
    /// Length of each vector.
    dim: usize,
    /// Tokens each sentence was encoded as, `[CLS]` and `[SEP]` included,
    /// after truncation to the model's maximum sequence length.
    tokens: Vec<usize>,
}

/// Everything `init` prepares for the jobs.
struct Embedder {
    tokenizer: Tokenizer,
    encoder: Encoder,
    max_seq_length: usize,
    /// [`batches`]' fixed cost of a forward pass on this worker's device.
    pass_cost: usize,
}

thread_local! {
    // The guest is single-threaded, and resource handles are not `Sync`, so
    // the loaded model lives in a thread-local rather than a static.
    static EMBEDDER: RefCell<Option<Embedder>> = const { RefCell::new(None) };
}

/// Open the model, build the tokenizer and fetch the weights.
pub fn init() -> Result<(), HandlerError> {
    let model = Model::open(MODEL_NAME)?;
    let files = model.files();
    let optional = |path: &str| -> Result<Option<String>, ModelError> {
        if files.iter().any(|f| f == path) {
            model.read_to_string(path).map(Some)
        } else {
            Ok(None)
        }
    };

    let encoder_config = EncoderConfig::parse(&model.read_to_string("config.json")?)?;
    if let Some(pooling) = optional("1_Pooling/config.json")? {
        config::check_mean_pooling(&pooling, &encoder_config)?;
    }
    let max_seq_length = config::max_seq_length(
        optional("sentence_bert_config.json")?.as_deref(),
        &encoder_config,
    )?;
    let options = match optional("tokenizer_config.json")? {
        Some(json) => config::tokenizer_options(&json)?,
        None => TokenizerOptions::default(),
    };
    let tokenizer = Tokenizer::new(&model.read_to_string("vocab.txt")?, options)?;
    let encoder = Encoder::load(&model, encoder_config)?;
    let on_gpu = wasmpod_sdk::devices()
        .first()
        .is_some_and(|d| d.kind == wasmpod_sdk::DeviceKind::Cuda);
    let pass_cost = if on_gpu { PASS_COST_GPU } else { PASS_COST_CPU };

    EMBEDDER.with(|cell| {
        *cell.borrow_mut() = Some(Embedder {
            tokenizer,
            encoder,
            max_seq_length,
            pass_cost,
        })
    });
    Ok(())
}

/// Embed the job's sentences.
pub fn handle(input: Input) -> Result<Output, HandlerError> {
    let sentences = input.into_sentences()?;
    EMBEDDER.with(|cell| {
        let embedder = cell.borrow();
        let embedder = embedder.as_ref().ok_or(HandlerError::NotInitialised)?;
        embedder.embed(&sentences)
    })
}

impl Embedder {
    fn embed(&self, sentences: &[String]) -> Result<Output, HandlerError> {
        let ids: Vec<Vec<i64>> = sentences
            .iter()
            .map(|s| self.tokenizer.encode(s, self.max_seq_length).ids)
            .collect();

        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        let total = sentences.len();
        let mut embeddings = vec![Vec::new(); total];
        let mut done = 0;
        let batches = batches(&lengths, self.pass_cost);
        for batch in &batches {
            if wasmpod_sdk::cancelled() {
                return Err(HandlerError::Cancelled { done, total });
            }
            let sequences: Vec<Vec<i64>> = batch.iter().map(|&i| ids[i].clone()).collect();
            let vectors = self.encoder.embed(&sequences, self.tokenizer.pad_id())?;
            for (&i, vector) in batch.iter().zip(vectors) {
                embeddings[i] = vector;
            }
            done += batch.len();
            if batches.len() > 1 {
                // Progress is informative only; a refused update must not
                // fail the job.
                let _ =
                    wasmpod_sdk::progress(&serde_json::json!({ "embedded": done, "total": total }));
            }
        }
        Ok(Output {
            embeddings,
            dim: self.encoder.dim(),
            tokens: ids.iter().map(Vec::len).collect(),
        })
    }
}

/// Group sentences (by index) into forward passes, longest first: the
/// split of the length-sorted sentences into consecutive batches that
/// minimises the estimated work, `pass_cost` per pass plus the padded tokens
/// (batch × longest) of each, within `MAX_BATCH` sentences and
/// `MAX_BATCH_TOKENS` per pass (dynamic programming over the sorted order).
fn batches(lengths: &[usize], pass_cost: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
    let n = order.len();
    // best[i]: least cost of the first i sorted sentences, and where its
    // last batch starts.
    let mut best: Vec<(usize, usize)> = vec![(0, 0); n + 1];
    for i in 1..=n {
        best[i] = (usize::MAX, i - 1);
        for j in i.saturating_sub(MAX_BATCH)..i {
            let (size, longest) = (i - j, lengths[order[j]]);
            if size > 1 && size * longest > MAX_BATCH_TOKENS {
                continue;
            }
            let cost = best[j].0 + pass_cost + size * longest;
            if cost < best[i].0 {
                best[i] = (cost, j);
            }
        }
    }
    let mut batches = Vec::new();
    let mut i = n;
    while i > 0 {
        let j = best[i].1;
        batches.push(order[j..i].to_vec());
        i = j;
    }
    batches.reverse();
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Vec<String>, String> {
        let input: Input = serde_json::from_str(json).map_err(|e| e.to_string())?;
        input.into_sentences().map_err(|e| e.to_string())
    }

    #[test]
    fn input_takes_one_sentence_or_many() {
        assert_eq!(parse(r#"{"sentence": "hi"}"#).unwrap(), ["hi"]);
        assert_eq!(parse(r#"{"sentences": ["a", "b"]}"#).unwrap(), ["a", "b"]);
        assert!(parse(r#"{"sentences": []}"#).unwrap().is_empty());
    }

    #[test]
    fn batches_trade_padding_for_fewer_passes() {
        let lengths = [12, 256, 3, 143, 43, 2, 21, 34];
        // Cheap passes (CPU): nearly every length on its own.
        assert_eq!(
            batches(&lengths, PASS_COST_CPU),
            [
                vec![1],
                vec![3],
                vec![4],
                vec![7],
                vec![6],
                vec![0],
                vec![2, 5]
            ]
        );
        // Costly passes (GPU): the long ones together, the short ones together.
        assert_eq!(
            batches(&lengths, PASS_COST_GPU),
            [vec![1, 3], vec![4, 7, 6, 0, 2, 5]]
        );
        let many = vec![10; 70];
        let sizes: Vec<usize> = batches(&many, PASS_COST_GPU).iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 70);
        assert!(sizes.iter().all(|&s| s <= MAX_BATCH), "{sizes:?}");
        assert_eq!(sizes.len(), 2);
        assert!(batches(&[], PASS_COST_GPU).is_empty());
    }

    #[test]
    fn bad_input_says_what_is_expected() {
        assert!(
            parse(r#"{"sentence": "a", "sentences": ["b"]}"#)
                .unwrap_err()
                .contains("not both")
        );
        assert!(parse("{}").unwrap_err().contains("not neither"));
        assert!(
            parse(r#"{"text": "a"}"#)
                .unwrap_err()
                .contains("unknown field `text`")
        );
        assert!(parse(r#"{"sentences": [1]}"#).is_err());
    }
}
