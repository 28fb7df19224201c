//! `gpu-bench`: measures the tensor API from inside a guest, the way a
//! handler sees it. Two modes:
//!
//! - `{"mode": "gemm", "n": 4096, "dtype": "bf16", "iters": 20}`: square
//!   matmuls on device 0; returns TFLOP/s timed with the guest's monotonic
//!   clock (each timing ends with a read-back, so queued GPU work is done).
//! - `{"mode": "group", "n": 4096, "dtype": "bf16", "iters": 10, "copy_mib":
//!   1024}`: the same GEMM on every device of the worker's slice (a group of
//!   GPUs), then a tensor moved from device 0 to every other device; returns
//!   per-device TFLOP/s, copy GB/s, and a checksum showing the moved data
//!   arrived intact.
//! - `{"mode": "upload", "n": 8192}`: one n×n f32 tensor uploaded from guest
//!   memory (`from-bytes`) and read back; returns the upload GB/s.
//! - `{"mode": "decode", "dtype": "bf16", "iters": 32, "decoder": {...}}`:
//!   `iters` greedy decode steps of a Llama-shaped model (Llama-3.2-1B's
//!   shape unless `decoder` says otherwise: `layers`, `hidden`, `heads`,
//!   `kv_heads`, `intermediate`, `vocab`, `context`, and `model`, a model
//!   whose weight must be refused as a write target), eagerly and as
//!   replays of a recorded graph (see decode.rs).

mod decode;

use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmpod_sdk::{DType, Tensor, TensorError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default = "default_mode")]
    mode: String,
    #[serde(default = "default_n")]
    n: u32,
    #[serde(default = "default_dtype")]
    dtype: String,
    #[serde(default = "default_iters")]
    iters: u32,
    #[serde(default = "default_copy_mib")]
    copy_mib: u32,
    #[serde(default)]
    decoder: decode::Shape,
}

fn default_mode() -> String {
    "gemm".into()
}
fn default_n() -> u32 {
    4096
}
fn default_dtype() -> String {
    "bf16".into()
}
fn default_iters() -> u32 {
    20
}
fn default_copy_mib() -> u32 {
    256
}

#[derive(Serialize)]
struct Gemm {
    device: u32,
    device_name: String,
    n: u32,
    dtype: String,
    iters: u32,
    seconds: f64,
    tflops: f64,
}

#[derive(Serialize)]
struct Copy {
    from: u32,
    to: u32,
    bytes: u64,
    seconds: f64,
    gb_per_s: f64,
    checksum_matches: bool,
}

#[derive(Serialize)]
struct Upload {
    bytes: u64,
    seconds: f64,
    gb_per_s: f64,
}

#[derive(Serialize)]
struct Output {
    devices: Vec<String>,
    gemm: Vec<Gemm>,
    copies: Vec<Copy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upload: Option<Upload>,
    #[serde(skip_serializing_if = "Option::is_none")]
    decode: Option<decode::Decode>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BenchError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error(transparent)]
    Model(#[from] wasmpod_sdk::ModelError),
}

pub(crate) fn parse_dtype(name: &str) -> Result<DType, BenchError> {
    match name {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::Bf16),
        other => Err(BenchError::Input(format!(
            "dtype must be f32, f16 or bf16, not {other:?}"
        ))),
    }
}

/// Deterministic values in [-1, 1) so the GEMM does real work (tensor cores
/// draw less power on zeros, which would flatter the number).
pub(crate) fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Waits for everything queued on `t`'s device by reading one element back.
fn sync(t: &Tensor) -> Result<(), TensorError> {
    let flat = t.reshape(&[-1])?;
    flat.slice(0, 0, 1)?.cast(DType::F32)?.to_vec_f32()?;
    Ok(())
}

fn square(n: u32, dtype: DType, device: u32) -> Result<Tensor, TensorError> {
    let values = pseudo_random((n as usize) * (n as usize), n + device);
    let t = Tensor::from_f32(&[n, n], &values)?.cast(dtype)?;
    if device == 0 {
        Ok(t)
    } else {
        t.to_device(device)
    }
}

fn gemm(n: u32, dtype_name: &str, iters: u32, device: u32) -> Result<Gemm, BenchError> {
    let dtype = parse_dtype(dtype_name)?;
    let a = square(n, dtype, device)?;
    let b = square(n, dtype, device)?;
    // Warm-up: kernel selection, workspace allocation.
    sync(&a.matmul(&b)?)?;
    let started = Instant::now();
    let mut last = None;
    for _ in 0..iters {
        last = Some(a.matmul(&b)?);
    }
    if let Some(c) = &last {
        sync(c)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let flops = 2.0 * (n as f64).powi(3) * iters as f64;
    let device_name = wasmpod_sdk::devices()
        .get(device as usize)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    Ok(Gemm {
        device,
        device_name,
        n,
        dtype: dtype_name.to_string(),
        iters,
        seconds,
        tflops: flops / seconds / 1e12,
    })
}

fn copy(mib: u32, to: u32) -> Result<Copy, BenchError> {
    let len = (mib as usize) << 18; // f32 elements in `mib` MiB
    let values = pseudo_random(len, 7);
    let source = Tensor::from_f32(&[len as u32], &values)?;
    let want = source.sum(0, false)?.to_vec_f32()?[0];
    sync(&source.to_device(to)?)?; // warm-up: peer mapping, staging buffers
    let started = Instant::now();
    let moved = source.to_device(to)?;
    sync(&moved)?;
    let seconds = started.elapsed().as_secs_f64();
    let got = moved.sum(0, false)?.to_vec_f32()?[0];
    let bytes = (len * 4) as u64;
    Ok(Copy {
        from: 0,
        to,
        bytes,
        seconds,
        gb_per_s: bytes as f64 / seconds / 1e9,
        checksum_matches: got == want,
    })
}

fn upload(n: u32) -> Result<Upload, BenchError> {
    let values = pseudo_random((n as usize) * (n as usize), 3);
    let started = Instant::now();
    let t = Tensor::from_f32(&[n, n], &values)?;
    sync(&t)?;
    let seconds = started.elapsed().as_secs_f64();
    let last = t.reshape(&[-1])?.slice(0, n * n - 1, n * n)?.to_vec_f32()?[0];
    if last != values[values.len() - 1] {
        return Err(BenchError::Input(format!(
            "the uploaded tensor's last element is {last}, not {}",
            values[values.len() - 1]
        )));
    }
    let bytes = (values.len() * 4) as u64;
    Ok(Upload {
        bytes,
        seconds,
        gb_per_s: bytes as f64 / seconds / 1e9,
    })
}

fn handle(input: Input) -> Result<Output, BenchError> {
    if input.n == 0 || input.iters == 0 {
        return Err(BenchError::Input("n and iters must be positive".into()));
    }
    let devices: Vec<String> = wasmpod_sdk::devices().into_iter().map(|d| d.name).collect();
    let mut out = Output {
        devices: devices.clone(),
        gemm: Vec::new(),
        copies: Vec::new(),
        upload: None,
        decode: None,
    };
    match input.mode.as_str() {
        "gemm" => out.gemm.push(gemm(input.n, &input.dtype, input.iters, 0)?),
        "group" => {
            for device in 0..devices.len() as u32 {
                out.gemm
                    .push(gemm(input.n, &input.dtype, input.iters, device)?);
            }
            for to in 1..devices.len() as u32 {
                out.copies.push(copy(input.copy_mib, to)?);
            }
        }
        "upload" => out.upload = Some(upload(input.n)?),
        "decode" => out.decode = Some(decode::decode(&input.decoder, &input.dtype, input.iters)?),
        other => {
            return Err(BenchError::Input(format!(
                "mode must be \"gemm\", \"group\", \"upload\" or \"decode\", not {other:?}"
            )));
        }
    }
    Ok(out)
}

wasmpod_sdk::handler!(handle);
