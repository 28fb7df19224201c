//! Choosing the next token from the logits: greedy (`temperature` 0) is an
//! argmax on the device; otherwise temperature, top-k and top-p (nucleus)
//! as `transformers` and vLLM apply them, with a seeded ChaCha8 stream so
//! a seeded request is reproducible. Only the candidates (top-k of them,
//! or the whole distribution without top-k) are read back.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use wasmpod_sdk::{Tensor, TensorError};

/// How to choose tokens, as a request gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// 0 chooses the most likely token (greedy).
    pub temperature: f32,
    /// Keep the smallest set of most likely tokens whose probability adds
    /// up to at least this (1 keeps all).
    pub top_p: f32,
    /// Keep this many most likely tokens (0 keeps all).
    pub top_k: u32,
}

impl SamplingParams {
    pub fn greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    /// Check ranges; the message says what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=100.0).contains(&self.temperature) || self.temperature.is_nan() {
            return Err(format!(
                "temperature must be between 0 and 100 (0 is greedy), got {}",
                self.temperature
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        Ok(())
    }
}

/// A token chosen, with its probability under the (tempered) distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub id: u32,
    pub prob: f32,
}

/// Draws tokens for one request.
pub struct Sampler {
    params: SamplingParams,
    rng: ChaCha8Rng,
}

impl Sampler {
    /// `seed` makes the draws reproducible; without one they come from
    /// the host's random source.
    pub fn new(params: SamplingParams, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(s) => ChaCha8Rng::seed_from_u64(s),
            None => {
                let mut bytes = [0u8; 32];
                // WASI's random source; the zero seed only if it fails.
                let _ = getrandom::fill(&mut bytes);
                ChaCha8Rng::from_seed(bytes)
            }
        };
        Self { params, rng }
    }

    /// The next token from `logits` (`[1, vocab]`).
    pub fn sample(&mut self, logits: &Tensor, vocab: usize) -> Result<u32, TensorError> {
        if self.params.greedy() {
            return Ok(logits.argmax(-1)?.to_vec_i64()?[0] as u32);
        }
        let probs = logits
            .scale(1.0 / self.params.temperature, 0.0)?
            .softmax(-1)?;
        let k = self.params.top_k as usize;
        let mut candidates: Vec<(u32, f32)> = if k > 0 && k < vocab {
            let (values, ids) = probs.top_k(k as u32)?;
            let values = values.to_vec_f32()?;
            let ids = ids.to_vec_i64()?;
            ids.into_iter()
                .zip(values)
                .map(|(i, p)| (i as u32, p))
                .collect()
        } else {
            probs
                .to_vec_f32()?
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i as u32, p))
                .collect()
        };
        let u = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        Ok(pick(&mut candidates, self.params.top_p, u).id)
    }
}

/// Draw from `candidates` (id, probability) after the top-p cut, with `u`
/// uniform in [0, 1).
pub fn pick(candidates: &mut [(u32, f32)], top_p: f32, u: f64) -> Choice {
    candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // The nucleus: tokens until the mass before them reaches top_p (the
    // most likely token always stays).
    let mut mass = 0.0f64;
    let mut keep = 0;
    for &(_, p) in candidates.iter() {
        if keep > 0 && mass >= f64::from(top_p) {
            break;
        }
        mass += f64::from(p);
        keep += 1;
    }
    let kept = &candidates[..keep.max(1)];
    let total: f64 = kept.iter().map(|&(_, p)| f64::from(p)).sum();
    let target = u * total;
    let mut acc = 0.0f64;
    for &(id, p) in kept {
        acc += f64::from(p);
        if target < acc {
            return Choice {
                id,
                prob: (f64::from(p) / total) as f32,
            };
        }
    }
    let (id, p) = kept[kept.len() - 1];
    Choice {
        id,
        prob: (f64::from(p) / total) as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_p_keeps_the_nucleus_and_renormalises() {
        let c = || vec![(0, 0.1), (1, 0.5), (2, 0.3), (3, 0.1)];
        // 0.5 + 0.3 reaches 0.8: tokens 1 and 2 only.
        for i in 0..100 {
            let u = i as f64 / 100.0;
            let choice = pick(&mut c(), 0.8, u);
            assert!(choice.id == 1 || choice.id == 2, "{choice:?}");
            let expected = if u < 0.625 { 1 } else { 2 };
            assert_eq!(choice.id, expected, "u = {u}");
        }
        // A tiny top_p still keeps the most likely token.
        assert_eq!(pick(&mut c(), 0.01, 0.99).id, 1);
        // top_p 1 keeps everything.
        assert_eq!(pick(&mut c(), 1.0, 0.999).id, 3);
    }

    #[test]
    fn seeded_streams_repeat() {
        let params = SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
        };
        let mut a = Sampler::new(params, Some(7));
        let mut b = Sampler::new(params, Some(7));
        assert_eq!(a.rng.next_u64(), b.rng.next_u64());
        let mut c = Sampler::new(params, Some(8));
        assert_ne!(a.rng.next_u64(), c.rng.next_u64());
    }

    #[test]
    fn ranges_are_checked() {
        let ok = SamplingParams {
            temperature: 0.7,
            top_p: 0.9,
            top_k: 40,
        };
        assert!(ok.validate().is_ok());
        let bad = SamplingParams { top_p: 0.0, ..ok };
        assert!(bad.validate().unwrap_err().contains("top_p"));
        let bad = SamplingParams {
            temperature: -1.0,
            ..ok
        };
        assert!(bad.validate().unwrap_err().contains("temperature"));
    }
}
