//! The decoder ops and recorded graphs on CUDA against the CPU reference:
//! random inputs (never zeros), the shapes each kernel path takes (GEMV and
//! cuBLAS linears, the decode and tiled attention kernels, every head-dim
//! bucket) and their edges; sampling must give the very same ids. Skipped
//! ("skipped: no CUDA device") without a GPU; `every_case_runs_on_the_
//! reference` keeps the cases honest on the CPU.

mod cross;

use cross::*;
use wasmpod_tensor::{
    AttentionOptions, Capture, DType, Device, RopeConfig, RopeLayout, RopeScaling, Sampling, Tensor,
};

fn rope(layout: RopeLayout, rotary_dim: u32, scaling: RopeScaling) -> RopeConfig {
    RopeConfig {
        theta: 500000.0,
        rotary_dim,
        layout,
        scaling,
    }
}

const LLAMA3: RopeScaling = RopeScaling::Llama3 {
    factor: 32.0,
    low_freq_factor: 1.0,
    high_freq_factor: 4.0,
    original_max_position_embeddings: 8192,
};

fn positions(p0: i64, n: usize) -> Input {
    let v: Vec<f64> = (0..n).map(|i| (p0 + i as i64) as f64).collect();
    values(DType::I64, &[n], &v)
}

/// (q shape, kv shape, causal, valid lengths, window) of an attention case.
type AttnShape = ([usize; 4], [usize; 4], bool, Option<Vec<f64>>, Option<u32>);

fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut c = Vec::new();
    for dt in FLOATS {
        // Linear: GEMV rows 1..4 (vector and scalar loads), cuBLAS above;
        // the 1B model's shapes at one row.
        for (rows, inp, out) in [
            (1usize, 2048usize, 2048usize),
            (1, 2048, 8192),
            (1, 8192, 2048),
            (2, 64, 100),
            (3, 40, 7),
            (4, 5, 9),
            (5, 64, 33),
            (64, 384, 1536),
        ] {
            c.push(case(
                format!("linear {dt} {rows}x{inp} -> {out}"),
                vec![
                    random(rng, dt, &[rows, inp], false),
                    random(rng, dt, &[out, inp], false),
                    random(rng, dt, &[out], false),
                    random(rng, dt, &[rows, out], false),
                ],
                |d, t| {
                    Ok(vec![
                        d.linear(&t[0], &t[1], None, None)?,
                        d.linear(&t[0], &t[1], Some(&t[2]), Some(&t[3]))?,
                    ])
                },
            ));
        }
        for rows in [1usize, 7] {
            c.push(case(
                format!("linear-many {dt} q/k/v {rows} rows"),
                vec![
                    random(rng, dt, &[rows, 256], false),
                    random(rng, dt, &[256, 256], false),
                    random(rng, dt, &[64, 256], false),
                    random(rng, dt, &[64, 256], false),
                    random(rng, dt, &[256], false),
                    random(rng, dt, &[64], false),
                    random(rng, dt, &[64], false),
                ],
                |d, t| d.linear_many(&t[0], &[&t[1], &t[2], &t[3]], &[&t[4], &t[5], &t[6]]),
            ));
        }
        c.push(case(
            format!("silu-mul {dt}"),
            vec![
                random(rng, dt, &[3, 8192], false),
                random(rng, dt, &[3, 8192], false),
            ],
            |d, t| Ok(vec![d.silu_mul(&t[0], &t[1])?]),
        ));
        // Rope: layouts, partial rotary, per-batch positions, llama3.
        for (shape, layout, rd, scaling, per_batch) in [
            ([1usize, 1, 32, 64], RopeLayout::Half, 0u32, LLAMA3, false),
            ([2, 7, 4, 64], RopeLayout::Half, 0, RopeScaling::None, true),
            (
                [1, 5, 3, 16],
                RopeLayout::Interleaved,
                0,
                RopeScaling::Linear(4.0),
                false,
            ),
            (
                [1, 4, 2, 80],
                RopeLayout::Half,
                32,
                RopeScaling::None,
                false,
            ),
        ] {
            let [b, s, _, _] = shape;
            let pos = if per_batch {
                let v: Vec<f64> = (0..b * s).map(|_| (rng.next() % 4000) as f64).collect();
                values(DType::I64, &[b, s], &v)
            } else {
                positions((rng.next() % 3000) as i64, s)
            };
            let cfg = rope(layout, rd, scaling);
            c.push(case(
                format!("rope {dt} {shape:?} {layout:?} rd {rd} {scaling:?}"),
                vec![random(rng, dt, &shape, false), pos],
                move |d, t| Ok(vec![d.rope(&t[0], &t[1], &cfg)?]),
            ));
        }
        // Attention: (q shape, kv shape, causal, valid lengths, window).
        let attn: &[AttnShape] = &[
            // Decode kernel: one query, GQA 4 (R = 4), a long cache.
            (
                [1, 1, 32, 64],
                [1, 700, 8, 64],
                true,
                Some(vec![517.0]),
                None,
            ),
            // R = 1, 2 batches, head-dim 128.
            (
                [2, 1, 4, 128],
                [2, 300, 4, 128],
                true,
                Some(vec![300.0, 1.0]),
                None,
            ),
            // R = 12 (3 queries x group 4), window.
            (
                [1, 3, 8, 64],
                [1, 200, 2, 64],
                true,
                Some(vec![150.0]),
                Some(33),
            ),
            // Head-dim 256 with R = 8: the tiled kernel.
            ([1, 2, 4, 256], [1, 50, 1, 256], true, None, None),
            // Tiled: encoder-like padding, MiniLM's head-dim 32.
            (
                [8, 19, 12, 32],
                [8, 19, 12, 32],
                false,
                Some(vec![19.0, 3.0, 11.0, 1.0, 19.0, 7.0, 0.0, 15.0]),
                None,
            ),
            // Tiled prefill, causal GQA, head-dim 80 (bucket 128).
            ([2, 130, 4, 80], [2, 130, 2, 80], true, None, None),
            ([1, 512, 32, 64], [1, 512, 8, 64], true, None, None),
        ];
        for (qs, ks, causal, valid, window) in attn.iter().cloned() {
            let options = AttentionOptions {
                causal,
                scale: None,
                window,
            };
            let mut inputs = vec![
                random(rng, dt, &qs, false),
                random(rng, dt, &ks, false),
                random(rng, dt, &ks, false),
            ];
            let has_valid = valid.is_some();
            if let Some(v) = valid {
                inputs.push(values(DType::I32, &[v.len()], &v));
            }
            c.push(case(
                format!("attention {dt} {qs:?} over {ks:?} causal {causal} window {window:?}"),
                inputs,
                move |d, t| {
                    Ok(vec![d.attention(
                        &t[0],
                        &t[1],
                        &t[2],
                        &options,
                        has_valid.then(|| &t[3]),
                        None,
                    )?])
                },
            ));
        }
        c.push(case(
            format!("attention {dt} key mask"),
            vec![
                random(rng, dt, &[3, 10, 2, 32], false),
                random(rng, dt, &[3, 10, 2, 32], false),
                random(rng, dt, &[3, 10, 2, 32], false),
                values(
                    DType::U8,
                    &[3, 10],
                    &(0..30)
                        .map(|i| ((i * 7) % 3 != 0) as u8 as f64)
                        .collect::<Vec<_>>(),
                ),
                values(
                    DType::F32,
                    &[3, 10],
                    &(0..30)
                        .map(|i| if i % 4 == 0 { 0.0 } else { 1.0 })
                        .collect::<Vec<_>>(),
                ),
            ],
            |d, t| {
                let o = AttentionOptions::default();
                Ok(vec![
                    d.attention(&t[0], &t[1], &t[2], &o, None, Some(&t[3]))?,
                    d.attention(&t[0], &t[1], &t[2], &o, None, Some(&t[4]))?,
                ])
            },
        ));
        // attention-cached: decode (one launch) and prefill paths; the
        // outputs include both caches, so the writes are compared too.
        for (b, s, hq, hkv, hd, cap, p0, with_rope) in [
            (
                1usize, 1usize, 32usize, 8usize, 64usize, 768usize, 511i64, true,
            ),
            (2, 1, 4, 4, 128, 128, 127, true),
            (1, 2, 8, 2, 64, 300, 64, false),
            (1, 64, 32, 8, 64, 200, 0, true),
            (2, 17, 4, 2, 32, 40, 20, true),
        ] {
            let cfg = rope(RopeLayout::Half, 0, LLAMA3);
            c.push(case(
                format!("attention-cached {dt} b{b} s{s} {hq}/{hkv} d{hd} cap {cap} at {p0} rope {with_rope}"),
                vec![
                    random(rng, dt, &[b, s, hq, hd], false),
                    random(rng, dt, &[b, s, hkv, hd], false),
                    random(rng, dt, &[b, s, hkv, hd], false),
                    random(rng, dt, &[b, cap, hkv, hd], false),
                    random(rng, dt, &[b, cap, hkv, hd], false),
                    positions(p0, s),
                ],
                move |d, t| {
                    let opts = AttentionOptions {
                        causal: true,
                        ..Default::default()
                    };
                    let out = d.attention_cached(
                        &t[0],
                        &t[1],
                        &t[2],
                        &t[3],
                        &t[4],
                        &t[5],
                        with_rope.then_some(&cfg),
                        &opts,
                    )?;
                    Ok(vec![out, t[3].clone(), t[4].clone()])
                },
            ));
        }
    }
    for dt in ALL {
        c.push(case(
            format!("write {dt} along each axis"),
            vec![
                random(rng, dt, &[3, 6, 4], false),
                random(rng, dt, &[3, 2, 4], false),
                random(rng, dt, &[1, 6, 4], false),
                values(DType::I32, &[1], &[3.0]),
            ],
            |d, t| {
                d.write(&t[0], &t[1], 1, 1, Some(&t[3]))?;
                d.write(&t[0], &t[2], 0, 2, None)?;
                Ok(vec![t[0].clone()])
            },
        ));
    }
    // Sampling: the same ids on both backends.
    for dt in FLOATS {
        for (rows, vocab) in [(4usize, 1000usize), (1, 128256)] {
            for (temperature, top_k, top_p) in [
                (0.0f32, 0u32, 1.0f32),
                (1.0, 0, 1.0),
                (0.7, 40, 1.0),
                (1.0, 0, 0.9),
                (0.8, 50, 0.5),
                (1.3, 1000, 0.95),
            ] {
                let p = Sampling {
                    temperature,
                    top_k,
                    top_p,
                    seed: rng.next(),
                };
                let counter = (rng.next() % 10000) as f64;
                c.push(case(
                    format!("sample {dt} [{rows}, {vocab}] T {temperature} k {top_k} p {top_p}"),
                    vec![
                        random(rng, dt, &[rows, vocab], false),
                        values(DType::I64, &[1], &[counter]),
                    ],
                    move |d, t| Ok(vec![d.sample(&t[0], &p, &t[1])?]),
                ));
            }
        }
    }
    c.push(case(
        "sample bf16 ties",
        vec![values(
            DType::BF16,
            &[2, 9],
            &[
                1.0, 3.0, 3.0, 3.0, 0.0, 3.0, -1.0, 2.0, 3.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                0.5, 0.5,
            ],
        )],
        |d, t| {
            let c = d.upload_i64(&[1], &[3])?;
            let mut out = Vec::new();
            for (k, p) in [(0, 1.0), (2, 1.0), (3, 0.5), (0, 0.3)] {
                let s = Sampling {
                    temperature: 1.0,
                    top_k: k,
                    top_p: p,
                    seed: 5,
                };
                out.push(d.sample(&t[0], &s, &c)?);
            }
            Ok(out)
        },
    ));
    // A decode-like step recorded and replayed three times: on CUDA a CUDA
    // graph with GEMVs, a cuBLAS GEMM, the fused cached attention and the
    // sampler; the position and token advance on the device. f32, so the
    // sampled ids (fed back as the next token) cannot flip on rounding.
    c.push(case(
        "graph decode step f32",
        step_weights(rng, DType::F32),
        |d, t| graph_step(d, t, DType::F32, true),
    ));
    c
}

/// Weights of the toy decoder [`graph_step`] runs.
fn step_weights(rng: &mut Rng, dt: DType) -> Vec<Input> {
    vec![
        random(rng, dt, &[50, 64], false),  // embedding
        random(rng, dt, &[128, 64], false), // q
        random(rng, dt, &[32, 64], false),  // k
        random(rng, dt, &[32, 64], false),  // v
        random(rng, dt, &[64, 128], false), // o
        random(rng, dt, &[50, 64], false),  // lm head
        random(rng, dt, &[8, 64], false),   // an 8-row input (cuBLAS path)
    ]
}

/// One step of a toy decoder (4 query / 1 kv heads of 32), recorded and
/// replayed three times (`recorded`), or run four times eagerly; returns
/// the logits, ids, caches, token and position after the last step.
fn graph_step(d: &Device, t: &[Tensor], dt: DType, recorded: bool) -> OpResult {
    let token = d.upload_i64(&[1, 1], &[7])?;
    let pos = d.upload_i64(&[1], &[0])?;
    let one = d.upload_i64(&[1], &[1])?;
    let kc = d.zeros(dt, &[1, 16, 1, 32])?;
    let vc = d.zeros(dt, &[1, 16, 1, 32])?;
    let cfg = rope(RopeLayout::Half, 0, RopeScaling::None);
    let opts = AttentionOptions {
        causal: true,
        ..Default::default()
    };
    let sampling = Sampling {
        temperature: 0.9,
        top_k: 10,
        top_p: 0.95,
        seed: 11,
    };
    let step = || -> OpResult {
        let x = d.gather(&t[0], &token)?; // [1, 1, 64]
        let qkv = d.linear_many(&x, &[&t[1], &t[2], &t[3]], &[])?;
        let q = d.reshape(&qkv[0], &[1, 1, 4, 32])?;
        let k = d.reshape(&qkv[1], &[1, 1, 1, 32])?;
        let v = d.reshape(&qkv[2], &[1, 1, 1, 32])?;
        let a = d.attention_cached(&q, &k, &v, &kc, &vc, &pos, Some(&cfg), &opts)?;
        let a = d.reshape(&a, &[1, 1, 128])?;
        let h = d.linear(&a, &t[4], None, Some(&x))?;
        let h = d.rms_norm(&h, None, 1e-6)?;
        let logits = d.reshape(&d.linear(&h, &t[5], None, None)?, &[1, 50])?;
        let wide = d.linear(&t[6], &t[1], None, None)?; // [8, 128] via GEMM
        let id = d.sample(&logits, &sampling, &pos)?;
        d.write(&token, &d.reshape(&id, &[1, 1])?, 0, 0, None)?;
        let next = d.add(&pos, &one)?;
        d.write(&pos, &next, 0, 0, None)?;
        Ok(vec![logits, id, wide])
    };
    let mut out = if recorded {
        let mut capture = Some(Capture::new());
        let outputs = Capture::scope(&mut capture, step)?;
        let graph = capture.take().expect("put back").finish()?;
        for _ in 0..3 {
            graph.replay()?;
        }
        outputs
    } else {
        for _ in 0..3 {
            step()?;
        }
        step()?
    };
    out.extend([kc.clone(), vc.clone(), token.clone(), pos.clone()]);
    Ok(out)
}

#[test]
fn every_decoder_op_matches_the_cpu_reference() {
    let Some((dev, account)) = cuda_device(u64::MAX) else {
        return;
    };
    let seed = std::env::var("WASMPOD_CONFORMANCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("seed {seed} (WASMPOD_CONFORMANCE_SEED={seed} replays it)");
    let reference = cpu_device();
    // WASMPOD_CASES=rope,sample runs only the cases whose names start so
    // (a kernel that faults the context fails every later case: this
    // isolates families).
    let only: Vec<String> = std::env::var("WASMPOD_CASES")
        .map(|v| v.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let cases: Vec<Case> = cases(&mut Rng(seed))
        .into_iter()
        .filter(|c| only.is_empty() || only.iter().any(|p| c.name.starts_with(p.as_str())))
        .collect();
    let mut failures = Vec::new();
    for c in &cases {
        if let Outcome::Fail(why) = run_case(&reference, &dev, c) {
            println!("FAIL {}: {why}", c.name);
            failures.push(c.name.clone());
        }
    }
    println!(
        "cuda decoder conformance: {} passed, {} failed (of {} cases)",
        cases.len() - failures.len(),
        failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "failed: {failures:?}");
    assert_eq!(
        account.used(),
        0,
        "graphs and tensors dropped, nothing stays charged"
    );
}

#[test]
fn every_case_runs_on_the_reference() {
    let reference = cpu_device();
    let cases = cases(&mut Rng(13));
    for c in &cases {
        let inputs: Vec<Tensor> = c
            .inputs
            .iter()
            .map(|i| reference.upload(i.dtype, &i.shape, &i.bytes).unwrap())
            .collect();
        let out = (c.op)(&reference, &inputs);
        assert!(out.is_ok(), "{}: {:?}", c.name, out.map(|_| ()));
    }
    println!("{} decoder cases run on the CPU reference", cases.len());
}

/// A CUDA graph's replay computes what the same ops compute eagerly, bit
/// for bit (same kernels, same inputs), in bf16 with sampling.
#[test]
fn graph_replay_equals_eager_on_cuda() {
    let Some((dev, account)) = cuda_device(u64::MAX) else {
        return;
    };
    let mut rng = Rng(31);
    let weights: Vec<Tensor> = step_weights(&mut rng, DType::BF16)
        .iter()
        .map(|i| dev.upload(i.dtype, &i.shape, &i.bytes).unwrap())
        .collect();
    let replayed = graph_step(&dev, &weights, DType::BF16, true).unwrap();
    let eager = graph_step(&dev, &weights, DType::BF16, false).unwrap();
    for (i, (r, e)) in replayed.iter().zip(&eager).enumerate() {
        if i == 2 {
            // The GEMM may pick another cuBLAS algorithm under capture.
            compare(&dev, std::slice::from_ref(e), &dev, std::slice::from_ref(r)).unwrap();
        } else {
            assert_eq!(
                dev.download(r).unwrap(),
                dev.download(e).unwrap(),
                "output {i}"
            );
        }
    }
    drop((replayed, eager, weights));
    assert_eq!(account.used(), 0);
}

/// GEMV and cuBLAS give the same linear (the switch the benchmark uses).
#[test]
fn gemv_and_cublas_agree() {
    if !wasmpod_tensor::cuda::available() {
        println!("skipped: no CUDA device");
        return;
    }
    let backend = std::sync::Arc::new(
        wasmpod_tensor::cuda::CudaBackend::new(0, wasmpod_tensor::MemoryAccount::unlimited("gemv"))
            .unwrap(),
    );
    let dev = Device::new(backend.clone());
    let mut rng = Rng(21);
    for rows in [1usize, 3] {
        let x = random(&mut rng, DType::BF16, &[rows, 2048], false);
        let w = random(&mut rng, DType::BF16, &[3000, 2048], false);
        let (x, w) = (
            dev.upload(x.dtype, &x.shape, &x.bytes).unwrap(),
            dev.upload(w.dtype, &w.shape, &w.bytes).unwrap(),
        );
        let gemv = dev.linear(&x, &w, None, None).unwrap();
        backend.set_gemv_max_rows(0);
        let blas = dev.linear(&x, &w, None, None).unwrap();
        backend.set_gemv_max_rows(4);
        compare(&dev, &[blas], &dev, &[gemv]).unwrap();
    }
}
