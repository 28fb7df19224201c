//! The sampler's exact algorithm, the one every backend implements (the
//! CPU backend calls [`sample_row`]; the CUDA kernel in `decoder.cu`
//! mirrors it step for step), so the same logits, parameters and counter
//! give the same token on every backend.
//!
//! For one row of logits `x` (vocab `V`):
//!
//! 1. Tokens are ranked by [`order_key`] of their logit, larger first, ties
//!    by lower id (NaN ranks last). Temperature 0, or a top logit that is
//!    not finite, returns the first-ranked id (greedy).
//! 2. Each token gets an integer weight `w = floor(exp((x - max) / T) ·
//!    2^40)` computed in f64 (the top token weighs exactly 2^40). Integer
//!    weights make every later sum exact and order-independent, so the GPU's
//!    parallel sums equal the CPU's sequential ones.
//! 3. Top-k keeps the `k` first-ranked tokens (`0` or `k >= V`: all).
//! 4. Top-p (< 1) keeps, in rank order, the tokens whose rank predecessors
//!    (among the kept) weigh less than `ceil(p · W)`, `W` the kept weight:
//!    the smallest prefix reaching `p` (Hugging Face's and vLLM's rule).
//! 5. With `r` the 64 random bits of Philox4x32-10 (key = seed, counter =
//!    (counter, row)), `target = floor(r · W' / 2^64)` over the final kept
//!    weight `W'`, and the result is the lowest id whose running sum of kept
//!    weights (in id order) exceeds `target`.

use crate::decoder::Sampling;

/// Fixed-point scale of the weights (2^40): 128 Ki tokens of weight at most
/// 2^40 sum to less than 2^57, far from overflowing u64.
pub const WEIGHT_SCALE: f64 = 1_099_511_627_776.0;

/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1,
/// 2, 3", SC'11), as in Random123 and cuRAND.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    const M0: u64 = 0xD251_1F53;
    const M1: u64 = 0xCD9E_8D57;
    const W0: u32 = 0x9E37_79B9;
    const W1: u32 = 0xBB67_AE85;
    let (mut c, mut k) = (counter, key);
    for _ in 0..10 {
        let p0 = M0 * c[0] as u64;
        let p1 = M1 * c[2] as u64;
        let (hi0, lo0) = ((p0 >> 32) as u32, p0 as u32);
        let (hi1, lo1) = ((p1 >> 32) as u32, p1 as u32);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

/// The 64 random bits of row `row` at `counter` under `seed`.
pub fn random_bits(seed: u64, counter: u64, row: u64) -> u64 {
    let out = philox4x32_10(
        [
            counter as u32,
            (counter >> 32) as u32,
            row as u32,
            (row >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    );
    ((out[1] as u64) << 32) | out[0] as u64
}

/// A logit as an unsigned key that orders like the number (NaN lowest).
pub fn order_key(x: f32) -> u32 {
    if x.is_nan() {
        return 0;
    }
    let bits = x.to_bits();
    if bits & 0x8000_0000 != 0 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The fixed-point weight of logit `x` under the row's top logit `max`.
pub fn weight(x: f32, max: f32, temperature: f32) -> u64 {
    if x.is_nan() {
        return 0;
    }
    let e = ((x as f64 - max as f64) / temperature as f64).exp();
    (e * WEIGHT_SCALE) as u64
}

/// `floor(r · total / 2^64)`: a uniform draw in `0..total`.
pub fn scale_draw(r: u64, total: u64) -> u64 {
    ((r as u128 * total as u128) >> 64) as u64
}

/// `ceil(p · total)`, at least 1: the weight top-p must reach.
pub fn top_p_target(p: f32, total: u64) -> u64 {
    ((p as f64 * total as f64).ceil() as u64).max(1)
}

/// Samples one id from `logits` (see the module docs).
pub fn sample_row(logits: &[f32], params: &Sampling, counter: u64, row: u64) -> usize {
    let keys: Vec<u32> = logits.iter().map(|&x| order_key(x)).collect();
    // First-ranked: the largest key, lowest id among equals.
    let best = (0..keys.len())
        .reduce(|a, b| if keys[b] > keys[a] { b } else { a })
        .expect("the front checks vocab >= 1");
    let max = logits[best];
    if params.temperature == 0.0 || !max.is_finite() {
        return best;
    }
    let weights: Vec<u64> = logits
        .iter()
        .map(|&x| weight(x, max, params.temperature))
        .collect();
    let vocab = logits.len();
    let k = match params.top_k as usize {
        0 => vocab,
        k => k.min(vocab),
    };
    let mut kept = vec![true; vocab];
    if k < vocab || params.top_p < 1.0 {
        let mut order: Vec<usize> = (0..vocab).collect();
        order.sort_unstable_by(|&a, &b| keys[b].cmp(&keys[a]).then(a.cmp(&b)));
        for &i in &order[k..] {
            kept[i] = false;
        }
        if params.top_p < 1.0 {
            let total: u64 = order[..k].iter().map(|&i| weights[i]).sum();
            let target = top_p_target(params.top_p, total);
            let mut above = 0u64;
            for &i in &order[..k] {
                if above >= target {
                    kept[i] = false;
                }
                above += weights[i];
            }
        }
    }
    let total: u64 = (0..vocab).filter(|&i| kept[i]).map(|i| weights[i]).sum();
    let target = scale_draw(random_bits(params.seed, counter, row), total);
    let mut running = 0u64;
    for i in 0..vocab {
        if kept[i] {
            running += weights[i];
            if running > target {
                return i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_matches_the_random123_known_answers() {
        assert_eq!(
            philox4x32_10([0; 4], [0; 2]),
            [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]
        );
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344],
                [0xa409_3822, 0x299f_31d0]
            ),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn keys_order_like_the_numbers() {
        let xs = [
            f32::NEG_INFINITY,
            -3.5,
            -0.0,
            0.0,
            1e-30,
            2.0,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]), "{w:?}");
        }
        assert!(order_key(f32::NAN) < order_key(f32::NEG_INFINITY));
    }

    fn params(temperature: f32, top_k: u32, top_p: f32) -> Sampling {
        Sampling {
            temperature,
            top_k,
            top_p,
            seed: 7,
        }
    }

    #[test]
    fn greedy_and_filters() {
        let logits = [0.5, 3.0, 3.0, -1.0, 2.0];
        // Greedy: ties to the lowest id.
        assert_eq!(sample_row(&logits, &params(0.0, 0, 1.0), 0, 0), 1);
        // top-k 1 keeps only the first-ranked token.
        for c in 0..20 {
            assert_eq!(sample_row(&logits, &params(1.0, 1, 1.0), c, 0), 1);
        }
        // top-k 3 never draws the two least likely.
        for c in 0..200 {
            let id = sample_row(&logits, &params(1.0, 3, 1.0), c, 0);
            assert!([1, 2, 4].contains(&id), "{id}");
        }
        // A tiny top-p keeps only the top token.
        for c in 0..20 {
            assert_eq!(sample_row(&logits, &params(1.0, 0, 1e-6), c, 0), 1);
        }
    }

    #[test]
    fn draws_follow_the_distribution_and_repeat_for_a_seed() {
        let logits = [0.0f32, (3.0f32).ln()];
        let n = 4000;
        let ones = (0..n)
            .filter(|&c| sample_row(&logits, &params(1.0, 0, 1.0), c, 0) == 1)
            .count();
        // p(1) = 3/4; 4000 draws have a standard deviation of 27.
        assert!((ones as f64 - 3000.0).abs() < 150.0, "{ones}");
        let a: Vec<usize> = (0..50)
            .map(|c| sample_row(&logits, &params(1.0, 0, 1.0), c, 3))
            .collect();
        let b: Vec<usize> = (0..50)
            .map(|c| sample_row(&logits, &params(1.0, 0, 1.0), c, 3))
            .collect();
        assert_eq!(a, b);
    }
}
