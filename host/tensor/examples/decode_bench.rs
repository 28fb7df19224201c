//! Decode-step microbenchmark of the decoder ops on a GPU: one step of a
//! Llama-3.2-1B-shaped model (16 layers, hidden 2048, 32 query / 8 KV
//! heads of 64, intermediate 8192, vocab 128256, tied embeddings, bf16,
//! random weights) through the `Device` API, run eagerly and replayed as a
//! recorded graph (a CUDA graph), beside the HBM bound measured in the same
//! run and, when given its JSON, the same step in PyTorch (static cache,
//! CUDA graph: decode_bench_torch.py).
//!
//! ```text
//! python3 host/tensor/examples/decode_bench_torch.py > torch_decode.json
//! cargo run --release -p wasmpod-tensor --example decode_bench -- --torch torch_decode.json
//! ```
//!
//! Also printed: each op of the step timed alone inside a graph (GPU time,
//! no host overhead), GEMV against cuBLAS for every linear shape of the
//! step, the host cost of an eager op, and the one-off kernel compile time.
//! Weights are uploaded by a second backend (a model store's stream), as in
//! a worker, so eager steps pay the cross-stream ordering real ones do.
//! Without a GPU it prints "skipped: no CUDA device".

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use cudarc::driver::{CudaEvent, CudaStream, result, sys};
use rayon::prelude::*;
use wasmpod_tensor::cuda::{self, CudaBackend};
use wasmpod_tensor::{
    AttentionOptions, Capture, DType, Device, MemoryAccount, RopeConfig, RopeLayout, RopeScaling,
    Sampling, Tensor,
};

const LAYERS: usize = 16;
const HIDDEN: usize = 2048;
const HEADS: usize = 32;
const KV_HEADS: usize = 8;
const HEAD_DIM: usize = 64;
const INTER: usize = 8192;
const VOCAB: usize = 128256;
const EPS: f32 = 1e-5;

const ROPE: RopeConfig = RopeConfig {
    theta: 500000.0,
    rotary_dim: 0,
    layout: RopeLayout::Half,
    scaling: RopeScaling::Llama3 {
        factor: 32.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 8192,
    },
};

const GREEDY: Sampling = Sampling {
    temperature: 0.0,
    top_k: 0,
    top_p: 1.0,
    seed: 0,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// bf16 values uniform in about [-0.02, 0.02] (random mantissa, fixed
/// small exponent), made in parallel: 2.3 GiB of weights in a second.
fn random_bf16(n: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; n * 2];
    out.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, chunk)| {
            let mut s = (seed ^ (c as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1;
            for pair in chunk.chunks_mut(2) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                // sign, exponent 2^-6 .. 2^-8 (biased 121 .. 119), 7 random mantissa bits
                let bits = ((s >> 63) << 15) as u16
                    | ((0x79 - (s >> 40) % 3) << 7) as u16
                    | (s >> 20) as u16 & 0x7F;
                pair.copy_from_slice(&bits.to_le_bytes());
            }
        });
    out
}

fn timing_event(stream: &CudaStream) -> Result<CudaEvent> {
    Ok(stream.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT))?)
}

/// Median GPU milliseconds per call of `body` (`iters` calls between two
/// events, `reps` repetitions).
fn gpu_ms(
    stream: &Arc<CudaStream>,
    reps: usize,
    iters: usize,
    mut body: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..2 {
        body()?;
    }
    stream.synchronize()?;
    let mut times = Vec::new();
    for _ in 0..reps {
        let start = timing_event(stream)?;
        for _ in 0..iters {
            body()?;
        }
        let end = timing_event(stream)?;
        end.synchronize()?;
        times.push(start.elapsed_ms(&end)? as f64 / iters as f64);
    }
    Ok(median(times))
}

/// Records `body` `n` times into a graph and returns the median GPU time of
/// one `body` inside it: the op's own cost, without host overhead.
fn in_graph_ms(
    stream: &Arc<CudaStream>,
    n: usize,
    mut body: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let mut capture = Some(Capture::new());
    let recorded: Result<()> = Capture::scope(&mut capture, || (0..n).try_for_each(|_| body()));
    recorded?;
    let graph = capture.take().expect("put back").finish()?;
    Ok(gpu_ms(stream, 5, 3, || Ok(graph.replay()?))? / n as f64)
}

struct Layer {
    norm1: Tensor,
    wq: Tensor,
    wk: Tensor,
    wv: Tensor,
    wo: Tensor,
    norm2: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    kc: Tensor,
    vc: Tensor,
}

struct Model {
    embed: Tensor,
    norm: Tensor,
    layers: Vec<Layer>,
    weight_bytes: usize,
}

/// The model's weights on `store` (read-only, like a model store's), the
/// caches on `dev`, filled with random keys/values up to `context`.
fn build(store: &Device, dev: &Device, capacity: usize, context: usize) -> Result<Model> {
    let mut seed = 1u64;
    let mut bytes = 0usize;
    let mut weight = |shape: &[usize]| -> Result<Tensor> {
        seed += 1;
        let n: usize = shape.iter().product();
        bytes += n * 2;
        Ok(store
            .upload(DType::BF16, shape, &random_bf16(n, seed))?
            .into_read_only())
    };
    let ones = |n: usize| -> Result<Tensor> {
        let one = half::bf16::from_f32(1.0).to_le_bytes();
        Ok(store
            .upload(DType::BF16, &[n], &one.repeat(n))?
            .into_read_only())
    };
    let embed = weight(&[VOCAB, HIDDEN])?;
    let mut layers = Vec::new();
    for l in 0..LAYERS {
        let cache = |s: u64| -> Result<Tensor> {
            let t = dev.zeros(DType::BF16, &[1, capacity, KV_HEADS, HEAD_DIM])?;
            let fill = dev.upload(
                DType::BF16,
                &[1, context, KV_HEADS, HEAD_DIM],
                &random_bf16(context * KV_HEADS * HEAD_DIM, s),
            )?;
            dev.write(&t, &fill, 1, 0, None)?;
            Ok(t)
        };
        layers.push(Layer {
            norm1: ones(HIDDEN)?,
            wq: weight(&[HEADS * HEAD_DIM, HIDDEN])?,
            wk: weight(&[KV_HEADS * HEAD_DIM, HIDDEN])?,
            wv: weight(&[KV_HEADS * HEAD_DIM, HIDDEN])?,
            wo: weight(&[HIDDEN, HEADS * HEAD_DIM])?,
            norm2: ones(HIDDEN)?,
            gate: weight(&[INTER, HIDDEN])?,
            up: weight(&[INTER, HIDDEN])?,
            down: weight(&[HIDDEN, INTER])?,
            kc: cache(100 + 2 * l as u64)?,
            vc: cache(101 + 2 * l as u64)?,
        });
    }
    let norm = ones(HIDDEN)?;
    bytes += (2 * LAYERS + 1) * HIDDEN * 2;
    Ok(Model {
        embed,
        norm,
        layers,
        weight_bytes: bytes,
    })
}

/// One decode step: reads `token` [1, 1] and `pos` [1], writes the next
/// greedy token into `token` and advances `pos`. Returns the logits.
fn step(d: &Device, m: &Model, token: &Tensor, pos: &Tensor, one: &Tensor) -> Result<Tensor> {
    let opts = AttentionOptions {
        causal: true,
        ..Default::default()
    };
    let mut x = d.gather(&m.embed, token)?; // [1, 1, 2048]
    for l in &m.layers {
        let h = d.rms_norm(&x, Some(&l.norm1), EPS)?;
        let qkv = d.linear_many(&h, &[&l.wq, &l.wk, &l.wv], &[])?;
        let q = d.reshape(&qkv[0], &[1, 1, HEADS as i64, HEAD_DIM as i64])?;
        let k = d.reshape(&qkv[1], &[1, 1, KV_HEADS as i64, HEAD_DIM as i64])?;
        let v = d.reshape(&qkv[2], &[1, 1, KV_HEADS as i64, HEAD_DIM as i64])?;
        let a = d.attention_cached(&q, &k, &v, &l.kc, &l.vc, pos, Some(&ROPE), &opts)?;
        let a = d.reshape(&a, &[1, 1, HIDDEN as i64])?;
        x = d.linear(&a, &l.wo, None, Some(&x))?;
        let h = d.rms_norm(&x, Some(&l.norm2), EPS)?;
        let gu = d.linear_many(&h, &[&l.gate, &l.up], &[])?;
        let act = d.silu_mul(&gu[0], &gu[1])?;
        x = d.linear(&act, &l.down, None, Some(&x))?;
    }
    let x = d.rms_norm(&x, Some(&m.norm), EPS)?;
    let logits = d.reshape(&d.linear(&x, &m.embed, None, None)?, &[1, VOCAB as i64])?;
    let id = d.sample(&logits, &GREEDY, pos)?;
    d.write(token, &d.reshape(&id, &[1, 1])?, 0, 0, None)?;
    let next = d.add(pos, one)?;
    d.write(pos, &next, 0, 0, None)?;
    Ok(logits)
}

struct Report {
    lines: Vec<String>,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    fn row(&mut self, key: &str, label: String, value: f64) {
        println!("{label}");
        self.lines.push(label);
        self.json.insert(key.into(), value.into());
    }
}

fn main() -> Result<()> {
    if !cuda::available() {
        println!("skipped: no CUDA device");
        return Ok(());
    }
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let steps: usize = arg("--steps").map_or(Ok(256), |s| s.parse())?;
    let context: usize = arg("--context").map_or(Ok(512), |s| s.parse())?;
    let torch: Option<serde_json::Value> = match arg("--torch") {
        Some(path) => std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.lines().rev().find_map(|l| serde_json::from_str(l).ok())),
        None => None,
    };
    let capacity = context + steps + 8;
    let backend = Arc::new(CudaBackend::new(
        0,
        MemoryAccount::unlimited("decode-bench"),
    )?);
    let store_backend = Arc::new(CudaBackend::new(
        0,
        MemoryAccount::unlimited("model store"),
    )?);
    let dev = Device::new(backend.clone());
    let store = Device::new(store_backend.clone());
    let stream = backend.stream().clone();
    let mut report = Report {
        lines: Vec::new(),
        json: serde_json::Map::new(),
    };
    println!(
        "== decode step of a Llama-3.2-1B shape on {} (context {context}, {steps} steps)",
        backend.device_name()
    );

    // HBM bound: device-to-device copy of 1 GiB (read + write counted).
    let gib = 1usize << 30;
    let (src, dst) = (dev.zeros(DType::U8, &[gib])?, dev.zeros(DType::U8, &[gib])?);
    let (ps, pd) = (ptr(&src), ptr(&dst));
    let copy_ms = gpu_ms(&stream, 5, 5, || {
        // SAFETY: both buffers hold `gib` bytes of this context, alive
        // until the end of main; the copy is ordered on their stream.
        unsafe { result::memcpy_dtod_async(pd, ps, gib, stream.cu_stream()) }?;
        Ok(())
    })?;
    drop((src, dst));
    let d2d = 2.0 * gib as f64 / (copy_ms / 1e3) / 1e9;

    let started = Instant::now();
    let m = build(&store, &dev, capacity, context)?;
    store_backend.synchronize()?;
    let bound_ms = m.weight_bytes as f64 / (d2d * 1e9) * 1e3;
    report.row(
        "d2d_gb_per_s",
        format!("device-to-device copy: {d2d:.0} GB/s"),
        d2d,
    );
    report.row(
        "bound_ms",
        format!(
            "weights {:.2} GiB per token -> HBM bound {bound_ms:.3} ms/token ({:.0} tokens/s)  [built in {:.1} s]",
            m.weight_bytes as f64 / (1u64 << 30) as f64,
            1e3 / bound_ms,
            started.elapsed().as_secs_f64()
        ),
        bound_ms,
    );

    let token = dev.upload_i64(&[1, 1], &[1])?;
    let pos = dev.upload_i64(&[1], &[context as i64])?;
    let one = dev.upload_i64(&[1], &[1])?;
    let reset = |p: i64| -> Result<()> {
        dev.write(&pos, &dev.upload_i64(&[1], &[p])?, 0, 0, None)?;
        Ok(())
    };

    // The first decoder op compiles the decoder kernels (once per process).
    let compile_started = Instant::now();
    step(&dev, &m, &token, &pos, &one)?;
    backend.synchronize()?;
    let first = compile_started.elapsed();
    report.row(
        "first_step_ms",
        format!(
            "first step {:.0} ms, of which compiling and loading decoder kernels {:.0} ms (once per process)",
            first.as_secs_f64() * 1e3,
            cuda::decoder_compile_time().as_secs_f64() * 1e3
        ),
        first.as_secs_f64() * 1e3,
    );

    // Eager steps.
    let time_loop = |run: &mut dyn FnMut() -> Result<()>| -> Result<(f64, Duration)> {
        let mut per = Vec::new();
        let mut host = Duration::ZERO;
        for _ in 0..3 {
            reset(context as i64)?;
            backend.synchronize()?;
            let t = Instant::now();
            for _ in 0..steps {
                run()?;
            }
            host += t.elapsed();
            backend.synchronize()?;
            per.push(t.elapsed().as_secs_f64() * 1e3 / steps as f64);
        }
        Ok((median(per), host / (3 * steps as u32)))
    };
    let (eager_ms, eager_host) = time_loop(&mut || step(&dev, &m, &token, &pos, &one).map(|_| ()))?;
    report.row(
        "eager_ms",
        format!(
            "eager step: {eager_ms:.3} ms/token ({:.0} tokens/s), host issue {:.3} ms",
            1e3 / eager_ms,
            eager_host.as_secs_f64() * 1e3
        ),
        eager_ms,
    );

    // Recorded once, replayed per token.
    reset(context as i64)?;
    let record_started = Instant::now();
    let mut capture = Some(Capture::new());
    let logits = Capture::scope(&mut capture, || step(&dev, &m, &token, &pos, &one))?;
    let capture = capture.take().expect("put back");
    let ops = capture.len();
    let graph = capture.finish()?;
    let record_ms = record_started.elapsed().as_secs_f64() * 1e3;
    let (graph_ms, replay_host) = time_loop(&mut || Ok(graph.replay()?))?;
    report.row(
        "graph_ms",
        format!(
            "graph step: {graph_ms:.3} ms/token ({:.0} tokens/s, {:.0} % of the bound), {ops} ops, replay call {:.1} us, recorded + built in {record_ms:.0} ms",
            1e3 / graph_ms,
            100.0 * bound_ms / graph_ms,
            replay_host.as_secs_f64() * 1e6
        ),
        graph_ms,
    );
    // Replays and eager steps compute the same thing.
    reset(context as i64)?;
    dev.write(&token, &dev.upload_i64(&[1, 1], &[1])?, 0, 0, None)?;
    graph.replay()?;
    let replayed = dev.download(&logits)?;
    reset(context as i64)?;
    dev.write(&token, &dev.upload_i64(&[1, 1], &[1])?, 0, 0, None)?;
    let eager_logits = step(&dev, &m, &token, &pos, &one)?;
    let same = dev.download(&eager_logits)? == replayed;
    println!("graph replay equals the eager step bit for bit: {same}");
    report.json.insert("graph_equals_eager".into(), same.into());
    drop(graph);

    if let Some(t) = &torch {
        let (te, tg) = (
            t["eager_ms"].as_f64().unwrap_or(f64::NAN),
            t["graph_ms"].as_f64().unwrap_or(f64::NAN),
        );
        report.row(
            "torch_graph_ms",
            format!(
                "PyTorch {} (static cache, bf16): eager {te:.3} ms/token, CUDA graph {tg:.3} ms/token ({:.0} tokens/s); its D2D {:.0} GB/s",
                t["torch"].as_str().unwrap_or("?"),
                1e3 / tg,
                t["d2d_gb_per_s"].as_f64().unwrap_or(f64::NAN)
            ),
            tg,
        );
        report.row(
            "graph_vs_torch",
            format!(
                "wasmpod graph vs PyTorch graph: {:.2}x the tokens/s",
                tg / graph_ms
            ),
            tg / graph_ms,
        );
    }

    // Each op alone, inside a graph (GPU time only), at this context.
    println!("== per-op GPU time (inside a graph, 20 copies each), context {context}");
    reset(context as i64)?;
    let l = &m.layers[0];
    let x = dev.upload(DType::BF16, &[1, 1, HIDDEN], &random_bf16(HIDDEN, 7))?;
    let act = dev.upload(DType::BF16, &[1, 1, INTER], &random_bf16(INTER, 8))?;
    let q = dev.upload(
        DType::BF16,
        &[1, 1, HEADS, HEAD_DIM],
        &random_bf16(HIDDEN, 9),
    )?;
    let kv = dev.upload(
        DType::BF16,
        &[1, 1, KV_HEADS, HEAD_DIM],
        &random_bf16(KV_HEADS * HEAD_DIM, 10),
    )?;
    let logits_in = dev.upload(DType::BF16, &[1, VOCAB], &random_bf16(VOCAB, 11))?;
    let next_token = dev.upload_i64(&[1, 1], &[3])?;
    let opts = AttentionOptions {
        causal: true,
        ..Default::default()
    };
    let top_p = Sampling {
        temperature: 0.8,
        top_k: 0,
        top_p: 0.9,
        seed: 5,
    };
    type Body<'a> = Box<dyn FnMut() -> Result<()> + 'a>;
    let ops: Vec<(&str, usize, Body)> = vec![
        (
            "rms-norm",
            2 * LAYERS + 1,
            Box::new(|| {
                dev.rms_norm(&x, Some(&l.norm1), EPS)?;
                Ok(())
            }),
        ),
        (
            "linear-many q/k/v",
            LAYERS,
            Box::new(|| {
                dev.linear_many(&x, &[&l.wq, &l.wk, &l.wv], &[])?;
                Ok(())
            }),
        ),
        (
            "attention-cached (rope, append, attend)",
            LAYERS,
            Box::new(|| {
                dev.attention_cached(&q, &kv, &kv, &l.kc, &l.vc, &pos, Some(&ROPE), &opts)?;
                Ok(())
            }),
        ),
        (
            "linear o + residual",
            LAYERS,
            Box::new(|| {
                dev.linear(&x, &l.wo, None, Some(&x))?;
                Ok(())
            }),
        ),
        (
            "linear-many gate/up",
            LAYERS,
            Box::new(|| {
                dev.linear_many(&x, &[&l.gate, &l.up], &[])?;
                Ok(())
            }),
        ),
        (
            "silu-mul",
            LAYERS,
            Box::new(|| {
                dev.silu_mul(&act, &act)?;
                Ok(())
            }),
        ),
        (
            "linear down + residual",
            LAYERS,
            Box::new(|| {
                dev.linear(&act, &l.down, None, Some(&x))?;
                Ok(())
            }),
        ),
        (
            "lm head (linear)",
            1,
            Box::new(|| {
                dev.linear(&x, &m.embed, None, None)?;
                Ok(())
            }),
        ),
        (
            "sample greedy",
            1,
            Box::new(|| {
                dev.sample(&logits_in, &GREEDY, &pos)?;
                Ok(())
            }),
        ),
        (
            "sample T 0.8 top-p 0.9",
            0,
            Box::new(|| {
                dev.sample(&logits_in, &top_p, &pos)?;
                Ok(())
            }),
        ),
        (
            "gather (embedding)",
            1,
            Box::new(|| {
                dev.gather(&m.embed, &token)?;
                Ok(())
            }),
        ),
        (
            "write (token, position)",
            2,
            Box::new(|| {
                dev.write(&token, &next_token, 0, 0, None)?;
                Ok(())
            }),
        ),
    ];
    let mut total = 0.0;
    for (name, per_step, mut body) in ops {
        let us = in_graph_ms(&stream, 20, &mut body)? * 1e3;
        total += us * per_step as f64;
        let key = format!("op_us_{}", name.split(' ').next().unwrap_or(name));
        report.row(
            &key,
            format!(
                "  {name:<42} {us:8.1} us  x{per_step:<3} = {:8.1} us/step",
                us * per_step as f64
            ),
            us,
        );
    }
    report.row(
        "ops_total_us",
        format!(
            "  sum over a step: {total:.0} us (graph step {:.0} us)",
            graph_ms * 1e3
        ),
        total,
    );

    // GEMV against cuBLAS, each shape alone inside a graph.
    println!("== linear at one row: GEMV kernel vs cuBLAS (inside a graph)");
    let shapes: Vec<(&str, Vec<&Tensor>, &Tensor)> = vec![
        ("q/k/v 2048 -> 2048+512+512", vec![&l.wq, &l.wk, &l.wv], &x),
        ("o 2048 -> 2048", vec![&l.wo], &x),
        ("gate/up 2048 -> 2x8192", vec![&l.gate, &l.up], &x),
        ("down 8192 -> 2048", vec![&l.down], &act),
        ("lm head 2048 -> 128256", vec![&m.embed], &x),
    ];
    for (name, ws, input) in shapes {
        let bytes: usize = ws.iter().map(|w| w.numel() * 2).sum();
        let mut run = || -> Result<()> {
            dev.linear_many(input, &ws, &[])?;
            Ok(())
        };
        backend.set_gemv_max_rows(4);
        let gemv = in_graph_ms(&stream, 20, &mut run)?;
        backend.set_gemv_max_rows(0);
        let blas = in_graph_ms(&stream, 20, &mut run)?;
        backend.set_gemv_max_rows(4);
        let gb = |ms: f64| bytes as f64 / (ms / 1e3) / 1e9;
        let key = format!(
            "gemv_vs_cublas_{}",
            name.split(' ').next().unwrap_or(name).replace('/', "_")
        );
        report.row(
            &key,
            format!(
                "  {name:<28} GEMV {:7.1} us ({:5.0} GB/s)   cuBLAS {:7.1} us ({:5.0} GB/s)   cuBLAS/GEMV time {:.2}",
                gemv * 1e3,
                gb(gemv),
                blas * 1e3,
                gb(blas),
                blas / gemv
            ),
            blas / gemv,
        );
    }

    // Host cost of one eager op (a tiny op, so the GPU is never the limit).
    let small = dev.zeros(DType::F32, &[16])?;
    backend.synchronize()?;
    let t = Instant::now();
    for _ in 0..2000 {
        dev.scale(&small, 1.0, 0.0)?;
    }
    let host_us = t.elapsed().as_secs_f64() * 1e6 / 2000.0;
    backend.synchronize()?;
    report.row(
        "eager_op_host_us",
        format!("host cost of an eager op (scale of 16 floats): {host_us:.1} us"),
        host_us,
    );

    if let Some(path) = arg("--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&report.json)?)
            .with_context(|| path.clone())?;
    }
    Ok(())
}

fn ptr(t: &Tensor) -> u64 {
    t.storage()
        .as_any()
        .downcast_ref::<wasmpod_tensor::cuda::CudaStorage>()
        .expect("a CUDA tensor")
        .device_ptr()
}
