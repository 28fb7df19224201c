//! GPU benchmark of the tensor API: GEMM TFLOP/s through the wasmpod-tensor
//! `Device` API against cuBLAS called directly (and PyTorch, when given its
//! results), and host-to-device bandwidth from pinned and pageable memory.
//!
//! ```text
//! python3 host/tensor/examples/gpu_bench_torch.py > torch.json
//! cargo run --release -p wasmpod-tensor --example gpu_bench -- --torch torch.json
//! ```
//!
//! All GEMM timings use CUDA events around N back-to-back products on one
//! stream after warm-up, median of several repetitions, on random data
//! (never zeros). Without a GPU it prints "skipped: no CUDA device".

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaEvent, CudaStream, result, sys};
use half::{bf16, f16};
use wasmpod_tensor::cuda::{self, CudaBackend};
use wasmpod_tensor::{DType, Device, MemoryAccount};

struct Row {
    name: String,
    value: f64,
    unit: &'static str,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Random bytes of `dtype` values uniform in [-1, 1).
fn random_bytes(dtype: DType, n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let mut out = Vec::with_capacity(n * dtype.size());
    for _ in 0..n {
        let v = next();
        match dtype {
            DType::F32 => out.extend(v.to_le_bytes()),
            DType::BF16 => out.extend(bf16::from_f32(v).to_le_bytes()),
            DType::F16 => out.extend(f16::from_f32(v).to_le_bytes()),
            _ => unreachable!("GEMM dtypes only"),
        }
    }
    out
}

/// An event that records a timestamp (cudarc's default event does not).
fn timing_event(stream: &CudaStream) -> Result<CudaEvent> {
    Ok(stream.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?)
}

/// Work to time: `body` queues one call on `stream`.
struct Contender<'a> {
    stream: Arc<CudaStream>,
    body: Box<dyn FnMut() -> Result<()> + 'a>,
}

/// Median milliseconds per call of each contender, timed with events around
/// `iters` back-to-back calls, repetitions interleaved across contenders so
/// clock and temperature drift hit them alike.
fn time_interleaved(contenders: &mut [Contender], reps: usize, iters: usize) -> Result<Vec<f64>> {
    for c in contenders.iter_mut() {
        for _ in 0..3 {
            (c.body)()?;
        }
        c.stream.synchronize()?;
    }
    let mut per_call = vec![Vec::new(); contenders.len()];
    for _ in 0..reps {
        for (c, times) in contenders.iter_mut().zip(&mut per_call) {
            let start = timing_event(&c.stream)?;
            for _ in 0..iters {
                (c.body)()?;
            }
            let end = timing_event(&c.stream)?;
            end.synchronize()?;
            times.push(start.elapsed_ms(&end)? as f64 / iters as f64);
        }
    }
    Ok(per_call.into_iter().map(median).collect())
}

fn cuda_type(dtype: DType) -> cudarc::cublas::sys::cudaDataType {
    use cudarc::cublas::sys::cudaDataType as T;
    match dtype {
        DType::F32 => T::CUDA_R_32F,
        DType::F16 => T::CUDA_R_16F,
        _ => T::CUDA_R_16BF,
    }
}

fn gemm_rows(
    backend: &Arc<CudaBackend>,
    size: usize,
    dtype: DType,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let device = Device::new(backend.clone());
    let stream = backend.stream();
    let ctx = stream.context().clone();
    let n = size * size;
    let (a_host, b_host) = (random_bytes(dtype, n, 1), random_bytes(dtype, n, 2));
    let a = device.upload(dtype, &[size, size], &a_host)?;
    let b = device.upload(dtype, &[size, size], &b_host)?;
    let flop = 2.0 * (size as f64).powi(3);
    let (reps, iters) = match (dtype, size) {
        (DType::F32, s) if s >= 8192 => (3, 3),
        (DType::F32, _) => (5, 10),
        (_, s) if s >= 8192 => (7, 20),
        _ => (7, 50),
    };

    // (b) cuBLAS directly on raw buffers with a preallocated output, on
    // another stream of the same context.
    ctx.bind_to_thread()?;
    let direct_stream = ctx.new_stream()?;
    let blas = CudaBlas::new(direct_stream.clone())?;
    let bytes = n * dtype.size();
    let s = direct_stream.cu_stream();
    // SAFETY: raw allocations of `bytes` each on direct_stream, filled from
    // host vectors that outlive the synchronize below, freed at the end.
    let (da, db, dc) = unsafe {
        let da = result::malloc_async(s, bytes)?;
        let db = result::malloc_async(s, bytes)?;
        let dc = result::malloc_async(s, bytes)?;
        result::memcpy_htod_async(da, &a_host, s)?;
        result::memcpy_htod_async(db, &b_host, s)?;
        (da, db, dc)
    };
    direct_stream.synchronize()?;
    let ty = cuda_type(dtype);
    let dim = size as i32;
    let (alpha, beta) = (1.0f32, 0.0f32);
    // (a) through the Device API: checks, allocation from the pool, cuBLAS;
    // (b) cuBLAS directly; (c) the memset that zero-filling each GEMM output
    // on allocation would add.
    let mut last = None;
    let handle = *blas.handle();
    let direct = move || -> Result<()> {
        use cudarc::cublas::sys;
        // SAFETY: square row-major buffers of `size`; C^T = B^T A^T as the
        // backend issues it.
        let status = unsafe {
            sys::cublasGemmEx(
                handle,
                sys::cublasOperation_t::CUBLAS_OP_N,
                sys::cublasOperation_t::CUBLAS_OP_N,
                dim,
                dim,
                dim,
                (&alpha as *const f32).cast(),
                db as *const _,
                ty,
                dim,
                da as *const _,
                ty,
                dim,
                (&beta as *const f32).cast(),
                dc as *mut _,
                ty,
                dim,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        };
        if status != sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            bail!("cublasGemmEx: {status:?}");
        }
        Ok(())
    };
    let memset = move || -> Result<()> {
        // SAFETY: dc holds `bytes` bytes on this stream.
        unsafe { result::memset_d8_async(dc, 0, bytes, s) }?;
        Ok(())
    };
    let times = time_interleaved(
        &mut [
            Contender {
                stream: stream.clone(),
                body: Box::new(|| {
                    last = Some(device.matmul(&a, &b)?);
                    Ok(())
                }),
            },
            Contender {
                stream: direct_stream.clone(),
                body: Box::new(direct),
            },
            Contender {
                stream: direct_stream.clone(),
                body: Box::new(memset),
            },
        ],
        reps,
        iters,
    )?;
    let (api_ms, direct_ms, memset_ms) = (times[0], times[1], times[2]);
    // The memset ran last on dc: compute the direct product once more.
    direct()?;
    let api_out = device.to_f32_vec(&last.take().context("at least one product ran")?)?;
    let mut direct_out = vec![0u8; bytes];
    // SAFETY: sizes match; synchronized before use.
    unsafe { result::memcpy_dtoh_async(&mut direct_out, dc, s) }?;
    direct_stream.synchronize()?;
    // SAFETY: allocated above on this stream, freed once.
    unsafe {
        result::free_async(da, s)?;
        result::free_async(db, s)?;
        result::free_async(dc, s)?;
    }
    direct_stream.synchronize()?;
    // cuBLAS may pick different algorithms (split-K, say) for two handles,
    // so compare values, relative to the output's largest magnitude.
    let direct_vals = wasmpod_tensor::cpu::bytes_to_f64(dtype, &direct_out);
    let scale = direct_vals.iter().fold(1f64, |m, v| m.max(v.abs()));
    let worst = api_out
        .iter()
        .zip(&direct_vals)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0f64, f64::max);
    println!(
        "gemm {size}^3 {dtype}: max |Device API - direct cuBLAS| = {:.2e} of the largest |value| {scale:.1}",
        worst / scale
    );

    let tflops = |ms: f64| flop / (ms * 1e-3) / 1e12;
    let key = format!("gemm {size}^3 {dtype}");
    rows.push(Row {
        name: format!("{key} device-api"),
        value: tflops(api_ms),
        unit: "TFLOP/s",
    });
    rows.push(Row {
        name: format!("{key} cublas-direct"),
        value: tflops(direct_ms),
        unit: "TFLOP/s",
    });
    rows.push(Row {
        name: format!("{key} device-api / cublas-direct"),
        value: 100.0 * direct_ms / api_ms,
        unit: "%",
    });
    rows.push(Row {
        name: format!("{key} output memset (zero-on-alloc cost)"),
        value: 100.0 * memset_ms / direct_ms,
        unit: "% of GEMM time",
    });
    Ok(())
}

fn bandwidth_rows(backend: &Arc<CudaBackend>, rows: &mut Vec<Row>) -> Result<()> {
    const BYTES: usize = 1 << 30;
    let stream = backend.stream();
    let ctx = stream.context().clone();
    ctx.bind_to_thread()?;
    let s = stream.cu_stream();
    let pageable: Vec<u8> = random_bytes(DType::F32, BYTES / 4, 3);
    // SAFETY: pinned host memory of BYTES, filled before use.
    let mut pinned = unsafe { ctx.alloc_pinned::<u8>(BYTES) }?;
    pinned.as_mut_slice()?.copy_from_slice(&pageable);
    // SAFETY: a raw device buffer of BYTES on our stream, freed at the end.
    let dst = unsafe { result::malloc_async(s, BYTES) }?;
    let gbps = |ms: f64| BYTES as f64 / (ms * 1e-3) / 1e9;
    let timed = |copy: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        copy()?;
        stream.synchronize()?;
        let mut ms = Vec::new();
        for _ in 0..5 {
            let start = timing_event(stream)?;
            copy()?;
            let end = timing_event(stream)?;
            end.synchronize()?;
            ms.push(start.elapsed_ms(&end)? as f64);
        }
        Ok(median(ms))
    };
    let pinned_src = pinned.as_slice()?;
    // SAFETY: both buffers hold BYTES; pinned_src outlives the copies.
    let pinned_ms = timed(&mut || Ok(unsafe { result::memcpy_htod_async(dst, pinned_src, s) }?))?;
    let pageable_ms = timed(&mut || Ok(unsafe { result::memcpy_htod_async(dst, &pageable, s) }?))?;
    rows.push(Row {
        name: "host-to-device 1 GiB pinned (cuMemcpyHtoDAsync)".into(),
        value: gbps(pinned_ms),
        unit: "GB/s",
    });
    rows.push(Row {
        name: "host-to-device 1 GiB pageable (cuMemcpyHtoDAsync)".into(),
        value: gbps(pageable_ms),
        unit: "GB/s",
    });
    // SAFETY: allocated above on this stream.
    unsafe { result::free_async(dst, s) }?;
    stream.synchronize()?;
    // Device::upload, as a guest's upload or a model load takes it (pageable
    // source, allocation and accounting included), wall clock.
    let device = Device::new(backend.clone());
    let small = &pageable[..64 << 20];
    let mut ms = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let t = device.upload(DType::U8, &[small.len()], small)?;
        backend.synchronize()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        drop(t);
    }
    rows.push(Row {
        name: "Device::upload 64 MiB from pageable memory (pinned staging)".into(),
        value: small.len() as f64 / (median(ms) * 1e-3) / 1e9,
        unit: "GB/s",
    });
    let mut ms = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let t = device.upload(DType::U8, &[BYTES], &pageable)?;
        backend.synchronize()?;
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        drop(t);
    }
    rows.push(Row {
        name: "Device::upload 1 GiB from pageable memory (pinned staging)".into(),
        value: gbps(median(ms)),
        unit: "GB/s",
    });
    Ok(())
}

/// Reads `{"name": value, ...}` lines written by gpu_bench_torch.py.
fn torch_rows(path: &str) -> Result<Vec<(String, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let name = v["name"].as_str().context("name")?.to_string();
        out.push((name, v["value"].as_f64().context("value")?));
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let torch_path = args
        .iter()
        .position(|a| a == "--torch")
        .and_then(|i| args.get(i + 1));
    if !cuda::available() {
        println!("skipped: no CUDA device");
        return Ok(());
    }
    let t0 = Instant::now();
    let backend = Arc::new(CudaBackend::new(0, MemoryAccount::unlimited("bench"))?);
    let first_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let second = CudaBackend::new(0, MemoryAccount::unlimited("bench-2"))?;
    let second_ms = t1.elapsed().as_secs_f64() * 1e3;
    drop(second);
    println!("device: {}", backend.device_name());
    let mut rows = vec![
        Row {
            name: "first backend on the device (context + NVRTC compile + module load)".into(),
            value: first_ms,
            unit: "ms",
        },
        Row {
            name: "next backend on the device (stream + cuBLAS handle)".into(),
            value: second_ms,
            unit: "ms",
        },
    ];
    for size in [4096, 8192] {
        for dtype in [DType::BF16, DType::F32] {
            gemm_rows(&backend, size, dtype, &mut rows)?;
        }
    }
    bandwidth_rows(&backend, &mut rows)?;
    let torch = match torch_path {
        Some(p) => torch_rows(p)?,
        None => Vec::new(),
    };
    println!("\n| measure | wasmpod | unit | PyTorch |");
    println!("|---|---:|---|---:|");
    for r in &rows {
        let peer = torch
            .iter()
            .find(|(n, _)| *n == r.name.replace(" device-api", " torch"))
            .or_else(|| torch.iter().find(|(n, _)| *n == r.name))
            .map_or(String::new(), |(_, v)| format!("{v:.1}"));
        println!("| {} | {:.1} | {} | {peer} |", r.name, r.value, r.unit);
    }
    for (name, value) in &torch {
        if name.contains("host-to-device") {
            println!("| {name} (torch) | | GB/s | {value:.1} |");
        }
    }
    Ok(())
}
