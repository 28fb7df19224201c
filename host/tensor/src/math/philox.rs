//! Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1,
//! 2, 3", SC 2011), the counter-based generator behind `random-uniform` and
//! `random-normal`: element `i` of a tensor drawn with `seed` depends only
//! on `(seed, i)`, so every backend (and any thread layout) produces the
//! same tensor. The CUDA kernels in `cuda/image.cu` implement the same
//! function; this one is the reference.
//!
//! Element `i` uses output word `i % 4` of the block with counter
//! `[i / 4 (low, high), 0, 0]` and key `[seed (low, high)]`. Uniforms take
//! the top 24 bits (`[0, 1)`, exact in f32) and are scaled with one fused
//! multiply-add; normals pair words (0, 1) and (2, 3) of a block through the
//! Box–Muller transform in f64.

use super::Distribution;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

fn mul_hi_lo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The Philox-4x32 block function with ten rounds.
pub fn philox4x32_10(mut c: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let (mut k0, mut k1) = (key[0], key[1]);
    for round in 0..10 {
        let (hi0, lo0) = mul_hi_lo(M0, c[0]);
        let (hi1, lo1) = mul_hi_lo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0];
        if round < 9 {
            k0 = k0.wrapping_add(W0);
            k1 = k1.wrapping_add(W1);
        }
    }
    c
}

/// The four words of block `block` for `seed`.
pub fn block(seed: u64, block: u64) -> [u32; 4] {
    philox4x32_10(
        [block as u32, (block >> 32) as u32, 0, 0],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// A word as a uniform in `[0, 1)`.
pub fn unit(word: u32) -> f32 {
    (word >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// Element `i` of a tensor drawn from `dist` with `seed`.
pub fn sample(seed: u64, i: u64, dist: Distribution) -> f32 {
    let words = block(seed, i / 4);
    let lane = (i % 4) as usize;
    match dist {
        Distribution::Uniform { low, high } => (high - low).mul_add(unit(words[lane]), low),
        Distribution::Normal { mean, std } => {
            let pair = lane & !1;
            // (0, 1]: log never sees 0.
            let u1 = ((words[pair] >> 8) as f64 + 1.0) * (1.0 / 16_777_216.0);
            let u2 = (words[pair + 1] >> 8) as f64 * (1.0 / 16_777_216.0);
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = 2.0 * std::f64::consts::PI * u2;
            let z = if lane & 1 == 0 {
                r * theta.cos()
            } else {
                r * theta.sin()
            };
            std.mul_add(z as f32, mean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_vectors() {
        // Random123's kat_vectors for philox4x32_10.
        assert_eq!(
            philox4x32_10([0, 0, 0, 0], [0, 0]),
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
    fn samples_have_the_right_moments() {
        let n = 40_000u64;
        let normal = Distribution::Normal {
            mean: 1.0,
            std: 2.0,
        };
        let xs: Vec<f64> = (0..n).map(|i| sample(7, i, normal) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert!((var.sqrt() - 2.0).abs() < 0.05, "{var}");
        let uniform = Distribution::Uniform {
            low: -1.0,
            high: 3.0,
        };
        let us: Vec<f32> = (0..n).map(|i| sample(7, i, uniform)).collect();
        assert!(us.iter().all(|&u| (-1.0..3.0).contains(&u)));
        let mean = us.iter().map(|&u| u as f64).sum::<f64>() / n as f64;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert_ne!(sample(7, 0, uniform), sample(8, 0, uniform));
    }
}
