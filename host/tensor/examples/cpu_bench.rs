//! CPU backend benchmark through the `Device` API: f32 GEMM GFLOP/s (square
//! and batched shapes), plus elementwise, softmax and layer-norm throughput.
//!
//! ```text
//! cargo run --release -p wasmpod-tensor --example cpu_bench
//! ```
//!
//! Inputs are random (never zeros); each figure is the median of several
//! timed repetitions after a warm-up call.

use std::time::Instant;

use wasmpod_tensor::{DType, Device, MemoryAccount, Tensor};

/// Deterministic pseudo-random values in [-1, 1).
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn tensor(dev: &Device, shape: &[usize], seed: u64) -> Tensor {
    let values = random(shape.iter().product(), seed);
    dev.upload_f32(shape, &values).expect("upload")
}

/// Median seconds per call of `f` over `reps` timed calls after a warm-up.
fn time(reps: usize, mut f: impl FnMut() -> Tensor) -> f64 {
    std::hint::black_box(f());
    let mut samples: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(f());
            start.elapsed().as_secs_f64()
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let dev = Device::cpu(MemoryAccount::unlimited("bench"));
    println!("threads: {}", rayon::current_num_threads());
    for (a_shape, b_shape) in [
        (vec![512, 512], vec![512, 512]),
        (vec![1024, 1024], vec![1024, 1024]),
        (vec![8, 128, 768], vec![768, 768]),
        (vec![48, 128, 64], vec![48, 64, 128]),
    ] {
        let (a, b) = (tensor(&dev, &a_shape, 1), tensor(&dev, &b_shape, 2));
        let out = dev.matmul(&a, &b).expect("matmul");
        let k = *a_shape.last().unwrap() as f64;
        let flops = 2.0 * k * out.numel() as f64;
        let secs = time(9, || dev.matmul(&a, &b).unwrap());
        println!(
            "matmul {a_shape:?} x {b_shape:?} f32: {:.1} GFLOP/s ({:.3} ms)",
            flops / secs / 1e9,
            secs * 1e3
        );
    }
    let x = tensor(&dev, &[1024, 1024], 3);
    let row = tensor(&dev, &[1024], 4);
    let bytes = (x.numel() * 4 * 3) as f64;
    let secs = time(9, || dev.add(&x, &x).unwrap());
    println!("add same-shape 1024x1024: {:.1} GB/s", bytes / secs / 1e9);
    let secs = time(9, || dev.add(&x, &row).unwrap());
    println!(
        "add row-broadcast 1024x1024: {:.1} GB/s",
        bytes / secs / 1e9
    );
    let secs = time(9, || dev.gelu(&x).unwrap());
    println!("gelu 1024x1024: {:.2} ms", secs * 1e3);
    let secs = time(9, || dev.softmax(&x, -1).unwrap());
    println!("softmax 1024x1024 (last axis): {:.2} ms", secs * 1e3);
    let secs = time(9, || {
        dev.layer_norm(&x, Some(&row), Some(&row), 1e-5).unwrap()
    });
    println!("layer-norm 1024x1024: {:.2} ms", secs * 1e3);
    let h = dev.cast(&x, DType::F16).unwrap();
    let secs = time(9, || dev.matmul(&h, &h).unwrap());
    println!(
        "matmul 1024^3 f16 (converted to f32): {:.1} GFLOP/s",
        2.0 * 1024f64.powi(3) / secs / 1e9
    );
}
