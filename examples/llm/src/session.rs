//! One instance's generation state on the device: its KV cache, the token
//! and position tensors a decode step reads, and the decode step recorded
//! as a graph (a CUDA graph on a GPU) so each further token is one replay
//! instead of a couple of hundred host calls.
//!
//! The cache is made in `init`, so a FlashBoot snapshot holds it and a
//! parked worker pages it out and back like any tensor; a graph is not
//! kept across parking (the host refuses its replay), so it is recorded
//! again when that happens. The sampling parameters are part of the
//! recording; a request with others records anew.

use wasmpod_sdk::{DType, Graph, Sampling, Tensor, TensorError};

use crate::decoder::{Decoder, DecoderError, KvCache};

type Result<T> = std::result::Result<T, DecoderError>;

/// Tokens a new instance's KV cache holds (the handler grows it for a
/// longer request, up to the model's context).
pub const INITIAL_CAPACITY: usize = 4096;
/// A grown cache is a multiple of this many tokens.
const GROW_STEP: usize = 1024;

/// The decode step as recorded, with the tensors a replay refreshes.
struct Recorded {
    params: Sampling,
    graph: Graph,
    logits: Tensor,
    next: Tensor,
}

pub struct Session {
    cache: KvCache,
    /// i64 `[1]`: the token a decode step embeds.
    token: Tensor,
    /// i64 `[1]`: its position (also the sampler's counter).
    position: Tensor,
    recorded: Option<Recorded>,
}

fn same_params(a: &Sampling, b: &Sampling) -> bool {
    a.temperature.to_bits() == b.temperature.to_bits()
        && a.top_k == b.top_k
        && a.top_p.to_bits() == b.top_p.to_bits()
        && a.seed == b.seed
}

fn tensor_error(e: DecoderError) -> TensorError {
    match e {
        DecoderError::Tensor(t) => t,
        other => TensorError::InvalidArgument(other.to_string()),
    }
}

impl Session {
    pub fn new(decoder: &Decoder, capacity: usize) -> Result<Self> {
        Ok(Self {
            cache: decoder.new_cache(capacity)?,
            token: Tensor::zeros(DType::I64, &[1])?,
            position: Tensor::zeros(DType::I64, &[1])?,
            recorded: None,
        })
    }

    pub fn capacity(&self) -> usize {
        self.cache.capacity()
    }

    /// Make room for `tokens` tokens (at most the model's context).
    pub fn reserve(&mut self, decoder: &Decoder, tokens: usize) -> Result<()> {
        if tokens <= self.cache.capacity() {
            return Ok(());
        }
        let capacity = tokens
            .div_ceil(GROW_STEP)
            .saturating_mul(GROW_STEP)
            .min(decoder.config().context_length())
            .max(tokens);
        // The old cache (and the graph recorded on it) go first, so both
        // never hold device memory at once.
        self.recorded = None;
        self.cache = KvCache::empty();
        self.cache = decoder.new_cache(capacity)?;
        Ok(())
    }

    /// Run the prompt from position 0; returns the logits after it and the
    /// first token chosen (i64 `[1]`), which the next `step` embeds.
    pub fn prefill(
        &mut self,
        decoder: &Decoder,
        prompt: &[u32],
        params: &Sampling,
    ) -> Result<(Tensor, Tensor)> {
        let n = prompt.len();
        let ids: Vec<i64> = prompt.iter().map(|&i| i64::from(i)).collect();
        let positions: Vec<i64> = (0..n as i64).collect();
        let ids = Tensor::from_i64(&[n as u32], &ids)?;
        let positions = Tensor::from_i64(&[n as u32], &positions)?;
        let logits = decoder.forward(&ids, &positions, n, &self.cache)?;
        let counter = Tensor::from_i64(&[1], &[n as i64 - 1])?;
        let next = logits.sample(params, &counter)?;
        self.token.write(&next, 0, 0, None)?;
        Ok((logits, next))
    }

    /// One decode step: the token chosen last (by `prefill` or the
    /// previous step) at `position`; returns the logits after it and the
    /// next token chosen, tensors a later step overwrites.
    pub fn step(
        &mut self,
        decoder: &Decoder,
        position: usize,
        params: &Sampling,
    ) -> Result<(&Tensor, &Tensor)> {
        self.position
            .write(&Tensor::from_i64(&[1], &[position as i64])?, 0, 0, None)?;
        let replayed = match &self.recorded {
            Some(r) if same_params(&r.params, params) => match r.graph.replay() {
                Ok(()) => true,
                // Recorded before the worker was parked: record again.
                Err(TensorError::InvalidArgument(_)) => false,
                Err(e) => return Err(e.into()),
            },
            _ => false,
        };
        if !replayed {
            self.recorded = None;
            let (token, position, cache) = (&self.token, &self.position, &self.cache);
            let (graph, (logits, next)) = wasmpod_sdk::capture(|| {
                let logits = decoder
                    .forward(token, position, 1, cache)
                    .map_err(tensor_error)?;
                let next = logits.sample(params, position)?;
                Ok((logits, next))
            })?;
            self.recorded = Some(Recorded {
                params: *params,
                graph,
                logits,
                next,
            });
        }
        let r = self.recorded.as_ref().expect("recorded above");
        self.token.write(&r.next, 0, 0, None)?;
        Ok((&r.logits, &r.next))
    }
}
