//! One request's generation loop: prefill the prompt, then one token at a
//! time until an end token, a stop string, `max_tokens` or the context
//! limit; every token is streamed as a chunk, progress is reported, and a
//! cancelled job stops between tokens. Timings are the guest's monotonic
//! clock around the device work (each step ends with the chosen token read
//! back, so the device is done).

use std::time::Instant;

use serde::Serialize;
use wasmpod_sdk::Tensor;

use crate::decoder::{Decoder, DecoderError};
use crate::sampling::SamplingParams;
use crate::session::Session;
use crate::stop::StopText;
use crate::tokenizer::{StreamDecoder, Tokenizer, TokenizerError};

/// Why generation stopped early with an error.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{0}")]
    Decoder(#[from] DecoderError),
    #[error("{0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("tensor op: {0}")]
    Tensor(#[from] wasmpod_sdk::TensorError),
    #[error("cancelled after {0} generated tokens")]
    Cancelled(usize),
}

/// What a request asks of the loop.
pub struct Request {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub ignore_eos: bool,
    /// How many most likely alternatives to report per token (None: no
    /// log-probabilities at all).
    pub logprobs: Option<u32>,
}

/// A token with its log-probability under the model (before temperature).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TokenLogprob {
    pub id: u32,
    pub text: String,
    pub logprob: f32,
}

/// One generated token's log-probability and the most likely alternatives.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepLogprobs {
    #[serde(flatten)]
    pub token: TokenLogprob,
    pub top: Vec<TokenLogprob>,
}

/// The stream chunk sent for every generated token.
#[derive(Debug, Serialize)]
pub struct Chunk<'a> {
    /// Text this token completed (empty while a character or a possible
    /// stop string is incomplete).
    pub text: &'a str,
    /// The token (none on the last chunk of held-back text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<u32>,
    /// 0-based index of the token among the generated ones.
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<&'a StepLogprobs>,
}

#[derive(Debug, Serialize)]
struct Progress {
    prompt_tokens: usize,
    completion_tokens: usize,
    max_tokens: usize,
}

/// Why generation ended, in OpenAI's terms.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end token or a stop string.
    Stop,
    /// `max_tokens` or the model's context.
    Length,
}

#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    /// From the start of the prompt's forward pass to the first token
    /// chosen.
    pub prefill_ms: f64,
    pub prefill_tokens_per_s: f64,
    /// From the first token to the last.
    pub decode_ms: f64,
    /// Tokens after the first, per second of `decode_ms`.
    pub decode_tokens_per_s: f64,
}

/// What the loop produced.
#[derive(Debug, Serialize)]
pub struct Generation {
    pub text: String,
    pub finish_reason: FinishReason,
    pub token_ids: Vec<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<StepLogprobs>>,
    pub usage: Usage,
    pub timings: Timings,
}

/// Log-probabilities of `chosen` and of the `n` most likely tokens.
fn logprobs(
    logits: &Tensor,
    chosen: u32,
    n: u32,
    tokenizer: &Tokenizer,
) -> Result<StepLogprobs, GenerateError> {
    let probs = logits.softmax(-1)?;
    let (values, ids) = probs.top_k(n.max(1))?;
    let values = values.to_vec_f32()?;
    let ids = ids.to_vec_i64()?;
    let entry = |id: u32, p: f32| TokenLogprob {
        id,
        text: tokenizer.token_text(id),
        logprob: p.max(f32::MIN_POSITIVE).ln(),
    };
    let top: Vec<TokenLogprob> = ids
        .iter()
        .zip(&values)
        .take(n as usize)
        .map(|(&i, &p)| entry(i as u32, p))
        .collect();
    let p = match ids.iter().position(|&i| i as u32 == chosen) {
        Some(at) => values[at],
        None => probs
            .slice(-1, chosen, chosen + 1)?
            .to_vec_f32()?
            .first()
            .copied()
            .unwrap_or(0.0),
    };
    Ok(StepLogprobs {
        token: entry(chosen, p),
        top,
    })
}

/// Run `request` on `decoder` in the instance's `session`.
pub fn generate(
    decoder: &Decoder,
    tokenizer: &Tokenizer,
    session: &mut Session,
    request: &Request,
) -> Result<Generation, GenerateError> {
    let config = decoder.config();
    let params = request.sampling.with_seed(request.seed);
    let mut stop = StopText::new(request.stop.clone());
    let mut stream = StreamDecoder::default();
    let mut text = String::new();
    let mut token_ids = Vec::new();
    let mut all_logprobs = request.logprobs.map(|_| Vec::new());
    let prompt_tokens = request.prompt.len();
    let progress = |done: usize| {
        // Progress is informative only; a refused update must not fail
        // the job.
        let _ = wasmpod_sdk::progress(&Progress {
            prompt_tokens,
            completion_tokens: done,
            max_tokens: request.max_tokens,
        });
    };

    session.reserve(decoder, prompt_tokens + request.max_tokens)?;
    let started = Instant::now();
    let (first_logits, first_next) = session.prefill(decoder, &request.prompt, &params)?;
    let (mut logits, mut next) = (&first_logits, &first_next);
    let mut first_token_at = None;
    let mut finish_reason = FinishReason::Length;
    let mut stopped_by_text = false;
    while token_ids.len() < request.max_tokens {
        if wasmpod_sdk::cancelled() {
            return Err(GenerateError::Cancelled(token_ids.len()));
        }
        let id = next.to_vec_i64()?[0] as u32;
        if first_token_at.is_none() {
            first_token_at = Some(Instant::now());
            progress(0);
        }
        let step_logprobs = match request.logprobs {
            Some(n) => Some(logprobs(logits, id, n, tokenizer)?),
            None => None,
        };
        if !request.ignore_eos && config.eos_token_ids.contains(&id) {
            finish_reason = FinishReason::Stop;
            break;
        }
        token_ids.push(id);
        let delta = stream.push(tokenizer, id)?;
        let released = stop.push(&delta);
        text.push_str(&released.text);
        let _ = wasmpod_sdk::stream(&Chunk {
            text: &released.text,
            token: Some(id),
            index: token_ids.len() - 1,
            logprobs: step_logprobs.as_ref(),
        });
        if let (Some(all), Some(step)) = (all_logprobs.as_mut(), step_logprobs) {
            all.push(step);
        }
        if released.stopped {
            finish_reason = FinishReason::Stop;
            stopped_by_text = true;
            break;
        }
        if token_ids.len().is_multiple_of(16) {
            progress(token_ids.len());
        }
        if token_ids.len() >= request.max_tokens {
            break;
        }
        (logits, next) = session.step(decoder, prompt_tokens + token_ids.len() - 1, &params)?;
    }
    let ended = Instant::now();
    if !stopped_by_text {
        // Text held back at the end (an incomplete character, a possible
        // stop string) goes out in one last chunk without a token.
        let rest = stop.push(&stream.finish(tokenizer)?);
        let mut tail = rest.text;
        if rest.stopped {
            finish_reason = FinishReason::Stop;
        } else {
            tail.push_str(&stop.finish());
        }
        if !tail.is_empty() {
            text.push_str(&tail);
            let _ = wasmpod_sdk::stream(&Chunk {
                text: &tail,
                token: None,
                index: token_ids.len(),
                logprobs: None,
            });
        }
    }
    progress(token_ids.len());

    let first = first_token_at.unwrap_or(ended);
    let prefill = first.duration_since(started).as_secs_f64();
    let decode = ended.duration_since(first).as_secs_f64();
    let decoded = token_ids.len().saturating_sub(1);
    let completion_tokens = token_ids.len();
    Ok(Generation {
        text,
        finish_reason,
        token_ids,
        logprobs: all_logprobs,
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        },
        timings: Timings {
            prefill_ms: prefill * 1e3,
            prefill_tokens_per_s: rate(prompt_tokens, prefill),
            decode_ms: decode * 1e3,
            decode_tokens_per_s: rate(decoded, decode),
        },
    })
}

fn rate(tokens: usize, secs: f64) -> f64 {
    if secs > 0.0 {
        tokens as f64 / secs
    } else {
        0.0
    }
}
