//! A request's sampling parameters, checked, and turned into the device
//! sampler's (`tensor.sample`: temperature 0 is greedy; otherwise
//! temperature, top-k, top-p and a Philox stream keyed by the seed and the
//! token's position, so a seeded request repeats exactly on any backend).

use wasmpod_sdk::Sampling;

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

    /// The device sampler's parameters; without a seed, one from the
    /// host's random source.
    pub fn with_seed(&self, seed: Option<u64>) -> Sampling {
        let seed = seed.unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            // WASI's random source; a fixed seed only if it fails.
            let _ = getrandom::fill(&mut bytes);
            u64::from_le_bytes(bytes)
        });
        Sampling {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_seed_is_kept_and_a_missing_one_drawn() {
        let p = SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
        };
        assert_eq!(p.with_seed(Some(7)).seed, 7);
        assert_ne!(p.with_seed(None).seed, p.with_seed(None).seed);
    }
}
