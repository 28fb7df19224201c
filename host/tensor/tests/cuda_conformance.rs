//! Conformance of the CUDA backend: every op of the tensor API, on every
//! dtype it accepts, run on the GPU and on the CPU reference with the same
//! random inputs, compared with per-dtype tolerances; plus the backend's
//! memory, sharing and error contracts. Without a usable GPU each test prints
//! "skipped: no CUDA device" and passes, so CI (no GPU) stays green.
//!
//! Inputs are fresh each run (seed printed; set WASMPOD_CONFORMANCE_SEED to
//! replay one), and the GPU backend fills buffers an op claims to overwrite
//! with NaN bytes first, so an element a kernel forgets shows up.

mod cross;

use cross::*;
use wasmpod_tensor::cuda::{self, CudaBackend};
use wasmpod_tensor::{BinaryOp, DType, MemoryAccount, ReduceOp, Tensor, TensorError, UnaryOp};

fn cases(rng: &mut Rng) -> Vec<Case> {
    let mut c = Vec::new();
    // matmul: plain, odd sizes, vectors, batched, broadcast batch (strided and
    // pointer-array paths), empty inner dimension.
    for dt in FLOATS {
        let shapes: &[(&[usize], &[usize])] = &[
            (&[17, 33], &[33, 9]),
            (&[64, 128], &[128, 96]),
            (&[1, 40], &[40, 1]),
            (&[40], &[40, 7]),
            (&[5, 40], &[40]),
            (&[3, 5, 7], &[3, 7, 4]),
            (&[2, 3, 5, 8], &[8, 6]),
            (&[8, 6], &[4, 6, 5]),
            (&[2, 1, 4, 8], &[3, 8, 5]),
            (&[4, 0], &[0, 3]),
        ];
        for (a, b) in shapes {
            c.push(case(
                format!("matmul {dt} {a:?}x{b:?}"),
                vec![random(rng, dt, a, false), random(rng, dt, b, false)],
                |d, t| one(d.matmul(&t[0], &t[1])),
            ));
        }
    }
    // Elementwise with broadcasting.
    let pairs: &[(&[usize], &[usize])] = &[
        (&[2, 3, 4], &[2, 3, 4]),
        (&[2, 3, 4], &[4]),
        (&[2, 1, 4], &[3, 1]),
        (&[], &[5]),
        (
            &[6, 1, 1, 2, 1, 3, 1, 2, 1, 2],
            &[1, 2, 1, 1, 3, 1, 2, 1, 2, 1],
        ),
        (&[0, 3], &[3]),
    ];
    for dt in ALL {
        for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
            for (a, b) in pairs {
                let nonzero = op == BinaryOp::Div;
                c.push(case(
                    format!("{op:?} {dt} {a:?},{b:?}"),
                    vec![random(rng, dt, a, false), random(rng, dt, b, nonzero)],
                    move |d, t| one(d.binary(op, &t[0], &t[1])),
                ));
            }
        }
    }
    for dt in INTS {
        c.push(case(
            format!("Div {dt} by zero is an error"),
            vec![
                random(rng, dt, &[4], false),
                values(dt, &[4], &[1.0, 0.0, 2.0, 3.0]),
            ],
            |d, t| one(d.binary(BinaryOp::Div, &t[0], &t[1])),
        ));
    }
    c.push(case(
        "Div i64 wraps MIN / -1",
        vec![
            values(DType::I64, &[1], &[i64::MIN as f64]),
            values(DType::I64, &[1], &[-1.0]),
        ],
        |d, t| one(d.binary(BinaryOp::Div, &t[0], &t[1])),
    ));
    for dt in FLOATS {
        for op in [UnaryOp::Relu, UnaryOp::Gelu, UnaryOp::Silu, UnaryOp::Tanh] {
            c.push(case(
                format!("{op:?} {dt}"),
                vec![random(rng, dt, &[3, 1000], false)],
                move |d, t| one(d.unary(op, &t[0])),
            ));
        }
        c.push(case(
            format!("scale {dt}"),
            vec![random(rng, dt, &[7, 13], false)],
            |d, t| one(d.scale(&t[0], 1.5, -0.25)),
        ));
        for (shape, axis) in [
            (&[4, 37][..], -1),
            (&[3, 5, 7][..], 1),
            (&[6, 300][..], 0),
            (&[2, 5000][..], -1),
        ] {
            c.push(case(
                format!("softmax {dt} {shape:?} axis {axis}"),
                vec![random(rng, dt, shape, false)],
                move |d, t| one(d.softmax(&t[0], axis)),
            ));
        }
        for len in [1usize, 24, 384, 4099] {
            let shape = [3, len];
            c.push(case(
                format!("layer-norm {dt} {shape:?} weight+bias"),
                vec![
                    random(rng, dt, &shape, false),
                    random(rng, dt, &[len], false),
                    random(rng, dt, &[len], false),
                ],
                |d, t| one(d.layer_norm(&t[0], Some(&t[1]), Some(&t[2]), 1e-5)),
            ));
            c.push(case(
                format!("layer-norm {dt} {shape:?} plain"),
                vec![random(rng, dt, &shape, false)],
                |d, t| one(d.layer_norm(&t[0], None, None, 1e-5)),
            ));
            c.push(case(
                format!("rms-norm {dt} {shape:?} weight"),
                vec![
                    random(rng, dt, &shape, false),
                    random(rng, dt, &[len], false),
                ],
                |d, t| one(d.rms_norm(&t[0], Some(&t[1]), 1e-6)),
            ));
            c.push(case(
                format!("rms-norm {dt} {shape:?} plain"),
                vec![random(rng, dt, &shape, false)],
                |d, t| one(d.rms_norm(&t[0], None, 1e-6)),
            ));
        }
    }
    // Reductions, argmax, top-k, layout ops, gather, cast: every dtype.
    for dt in ALL {
        let reduces: &[ReduceOp] = if dt.is_float() {
            &[ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max]
        } else {
            &[ReduceOp::Sum, ReduceOp::Max]
        };
        for &op in reduces {
            for (shape, axis) in [
                (&[5, 300][..], -1),
                (&[4, 6, 5][..], 1),
                (&[70, 3][..], 0),
                (&[2, 3000][..], 1),
            ] {
                for keep in [false, true] {
                    c.push(case(
                        format!("{op:?} {dt} {shape:?} axis {axis} keep {keep}"),
                        vec![random(rng, dt, shape, false)],
                        move |d, t| one(d.reduce(op, &t[0], axis, keep)),
                    ));
                }
            }
        }
        for (shape, axis) in [(&[6, 500][..], -1), (&[40, 3][..], 0), (&[3, 4, 5][..], 1)] {
            c.push(case(
                format!("argmax {dt} {shape:?} axis {axis}"),
                vec![random(rng, dt, shape, false)],
                move |d, t| one(d.argmax(&t[0], axis)),
            ));
        }
        for k in [1usize, 3, 50] {
            c.push(case(
                format!("top-k {dt} k {k}"),
                vec![random(rng, dt, &[4, 50], false)],
                move |d, t| d.top_k(&t[0], k).map(|(v, i)| vec![v, i]),
            ));
        }
        c.push(case(
            format!("permute {dt}"),
            vec![random(rng, dt, &[2, 3, 4, 5], false)],
            |d, t| one(d.permute(&t[0], &[3, 1, 0, 2])),
        ));
        c.push(case(
            format!("transpose {dt}"),
            vec![random(rng, dt, &[33, 65], false)],
            |d, t| one(d.transpose(&t[0], 0, 1)),
        ));
        c.push(case(
            format!("slice {dt}"),
            vec![random(rng, dt, &[4, 9, 5], false)],
            |d, t| {
                Ok(vec![
                    d.slice(&t[0], 1, 2, 7)?,
                    d.slice(&t[0], -1, 0, 1)?,
                    d.slice(&t[0], 0, 3, 3)?,
                ])
            },
        ));
        c.push(case(
            format!("concat {dt}"),
            vec![
                random(rng, dt, &[2, 3, 4], false),
                random(rng, dt, &[2, 1, 4], false),
                random(rng, dt, &[2, 5, 4], false),
            ],
            |d, t| {
                Ok(vec![
                    d.concat(&[&t[0], &t[1], &t[2]], 1)?,
                    d.concat(&[&t[0], &t[0]], -1)?,
                ])
            },
        ));
        for idx in [DType::I32, DType::I64, DType::U8] {
            c.push(case(
                format!("gather {dt} by {idx}"),
                vec![
                    random(rng, dt, &[30, 7], false),
                    indices(rng, idx, &[3, 4], 30),
                ],
                |d, t| one(d.gather(&t[0], &t[1])),
            ));
        }
        for to in ALL {
            c.push(case(
                format!("cast {dt} -> {to}"),
                vec![random(rng, dt, &[257], false)],
                move |d, t| one(d.cast(&t[0], to)),
            ));
        }
    }
    let specials = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1e10,
        -1e10,
        300.0,
        -5.7,
        0.5,
        255.9,
        -0.0,
    ];
    for from in FLOATS {
        for to in INTS {
            c.push(case(
                format!("cast {from} -> {to} saturates"),
                vec![values(from, &[10], &specials)],
                move |d, t| one(d.cast(&t[0], to)),
            ));
        }
    }
    c.push(case(
        "argmax f32 NaN rules",
        vec![values(
            DType::F32,
            &[3, 4],
            &[
                f64::NAN,
                5.0,
                1.0,
                2.0,
                1.0,
                f64::NAN,
                3.0,
                3.0,
                2.0,
                2.0,
                f64::NAN,
                1.0,
            ],
        )],
        |d, t| one(d.argmax(&t[0], -1)),
    ));
    c
}

#[test]
fn every_op_matches_the_cpu_reference() {
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
    let cases = cases(&mut Rng(seed));
    let mut failures = Vec::new();
    for c in &cases {
        if let Outcome::Fail(why) = run_case(&reference, &dev, c) {
            println!("FAIL {}: {why}", c.name);
            failures.push(c.name.clone());
        }
    }
    let passed = cases.len() - failures.len();
    println!(
        "cuda conformance: {passed} passed, {} failed (of {} cases)",
        failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "failed: {failures:?}");
    assert_eq!(
        account.used(),
        0,
        "every tensor was dropped, so no bytes stay charged"
    );
}

#[test]
fn construction_fails_cleanly_without_a_device() {
    let account = MemoryAccount::unlimited("probe");
    match CudaBackend::new(cuda::device_count(), account) {
        Err(TensorError::InvalidArgument(_) | TensorError::DeviceFault(_)) => {}
        Err(other) => panic!("unexpected error kind: {other}"),
        Ok(_) => panic!("device {} should not exist", cuda::device_count()),
    }
}

#[test]
fn allocations_are_charged_and_fresh_buffers_are_zero() {
    let Some((dev, account)) = cuda_device(64 << 20) else {
        return;
    };
    let n = 4 << 20;
    let ones = dev.upload(DType::U8, &[n], &vec![0xAB; n]).unwrap();
    assert_eq!(account.used(), n as u64);
    drop(ones);
    assert_eq!(account.used(), 0);
    // The pool hands the same block back: it must not show the old bytes.
    let z = dev.zeros(DType::U8, &[n]).unwrap();
    assert!(dev.download(&z).unwrap().iter().all(|&b| b == 0));
    match dev.zeros(DType::F32, &[1 << 30]) {
        Err(TensorError::QuotaExceeded(_)) => {}
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    assert_eq!(account.used(), n as u64);
}

#[test]
fn workers_share_tensors_across_streams() {
    let Some((owner, _)) = cuda_device(u64::MAX) else {
        return;
    };
    let (worker, _) = cuda_device(u64::MAX).expect("available");
    let reference = cpu_device();
    let mut rng = Rng(7);
    let a = random(&mut rng, DType::BF16, &[256, 512], false);
    let b = random(&mut rng, DType::BF16, &[512, 128], false);
    // Weights uploaded by one backend (a model cache), used by another.
    let wa = owner.upload(a.dtype, &a.shape, &a.bytes).unwrap();
    let wb = owner.upload(b.dtype, &b.shape, &b.bytes).unwrap();
    assert!(worker.backend().owns(&wa));
    let out = worker.matmul(&wa, &wb).unwrap();
    let expect = reference
        .matmul(
            &reference.upload(a.dtype, &a.shape, &a.bytes).unwrap(),
            &reference.upload(b.dtype, &b.shape, &b.bytes).unwrap(),
        )
        .unwrap();
    drop((wa, wb));
    compare(&reference, &[expect], &worker, &[out]).unwrap();
    // A CPU tensor is not the GPU's.
    let cpu_t = reference.zeros(DType::F32, &[2]).unwrap();
    assert!(matches!(
        worker.scale(&cpu_t, 1.0, 0.0),
        Err(TensorError::InvalidArgument(_))
    ));
}

/// Keeps the suite honest on machines without a GPU: every case runs on the
/// CPU, and only the cases meant to fail do.
#[test]
fn every_case_runs_on_the_reference() {
    let reference = cpu_device();
    let cases = cases(&mut Rng(11));
    for c in &cases {
        let inputs: Vec<Tensor> = c
            .inputs
            .iter()
            .map(|i| reference.upload(i.dtype, &i.shape, &i.bytes).unwrap())
            .collect();
        let out = (c.op)(&reference, &inputs);
        assert_eq!(
            out.is_err(),
            c.name.contains("by zero"),
            "{}: {:?}",
            c.name,
            out.map(|_| ())
        );
    }
    println!("{} cases run on the CPU reference", cases.len());
}

#[test]
fn large_uploads_round_trip_through_staging() {
    let Some((dev, _)) = cuda_device(u64::MAX) else {
        return;
    };
    // Past the staging threshold and not a whole number of chunks.
    let n = (100 << 20) + 12345;
    let mut rng = Rng(3);
    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    let t = dev.upload(DType::U8, &[n], &bytes).unwrap();
    let again = dev.upload(DType::U8, &[n], &bytes[..]).unwrap();
    assert!(dev.download(&t).unwrap() == bytes);
    assert!(dev.download(&again).unwrap() == bytes);
}
