//! The cross-backend harness of the CUDA suites (cuda_conformance.rs,
//! cuda_decoder.rs): random inputs, cases as closures over a device, and
//! the comparison of a GPU result with the CPU reference's.

#![allow(dead_code)]

use std::sync::Arc;

use half::{bf16, f16};
use wasmpod_tensor::cpu::CpuBackend;
use wasmpod_tensor::cuda::{self, CudaBackend};
use wasmpod_tensor::{DType, Device, MemoryAccount, Tensor, TensorError};

pub type OpResult = Result<Vec<Tensor>, TensorError>;
pub type Op = Box<dyn Fn(&Device, &[Tensor]) -> OpResult>;

pub const FLOATS: [DType; 3] = [DType::F32, DType::F16, DType::BF16];
pub const INTS: [DType; 3] = [DType::I32, DType::I64, DType::U8];
pub const ALL: [DType; 6] = DType::ALL;

/// Largest allowed |gpu - cpu| relative to the output's largest magnitude
/// (at least 1): a few units in the last place of the storage type.
pub fn tolerance(dtype: DType) -> f64 {
    match dtype {
        DType::F32 => 2e-5,
        DType::F16 => 2e-3,
        DType::BF16 => 1.6e-2,
        _ => 0.0,
    }
}

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Host-side input: dtype, shape, little-endian bytes.
#[derive(Clone)]
pub struct Input {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

pub fn encode(dtype: DType, values: &[f64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size());
    for &v in values {
        match dtype {
            DType::F32 => out.extend((v as f32).to_le_bytes()),
            DType::F16 => out.extend(f16::from_f64(v).to_le_bytes()),
            DType::BF16 => out.extend(bf16::from_f64(v).to_le_bytes()),
            DType::I32 => out.extend((v as i32).to_le_bytes()),
            DType::I64 => out.extend((v as i64).to_le_bytes()),
            DType::U8 => out.push(v as u8),
        }
    }
    out
}

pub fn values(dtype: DType, shape: &[usize], values: &[f64]) -> Input {
    assert_eq!(values.len(), shape.iter().product::<usize>());
    Input {
        dtype,
        shape: shape.to_vec(),
        bytes: encode(dtype, values),
    }
}

/// Random values: floats in [-2, 2), signed ints in [-1000, 1000), u8 any;
/// `nonzero` replaces zeros with 1 (divisors).
pub fn random(rng: &mut Rng, dtype: DType, shape: &[usize], nonzero: bool) -> Input {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            let x = match dtype {
                DType::U8 => (rng.next() % 256) as f64,
                d if d.is_int() => (rng.next() % 2000) as f64 - 1000.0,
                _ => rng.unit() * 4.0 - 2.0,
            };
            if nonzero && x == 0.0 { 1.0 } else { x }
        })
        .collect();
    values(dtype, shape, &v)
}

pub fn indices(rng: &mut Rng, dtype: DType, shape: &[usize], rows: usize) -> Input {
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| (rng.next() % rows as u64) as f64).collect();
    values(dtype, shape, &v)
}

pub struct Case {
    pub name: String,
    pub inputs: Vec<Input>,
    pub op: Op,
}

pub fn case(
    name: impl Into<String>,
    inputs: Vec<Input>,
    op: impl Fn(&Device, &[Tensor]) -> OpResult + 'static,
) -> Case {
    Case {
        name: name.into(),
        inputs,
        op: Box::new(op),
    }
}

pub fn one(t: Result<Tensor, TensorError>) -> OpResult {
    t.map(|t| vec![t])
}

pub enum Outcome {
    Pass,
    Fail(String),
}

pub fn compare(
    reference: &Device,
    cpu_out: &[Tensor],
    dev: &Device,
    out: &[Tensor],
) -> Result<(), String> {
    if cpu_out.len() != out.len() {
        return Err(format!(
            "{} outputs, reference has {}",
            out.len(),
            cpu_out.len()
        ));
    }
    for (i, (r, o)) in cpu_out.iter().zip(out).enumerate() {
        if r.dtype() != o.dtype() || r.shape() != o.shape() {
            return Err(format!("output {i}: {o:?}, reference {r:?}"));
        }
        if r.dtype().is_int() {
            let (rv, ov) = (
                reference.to_i64_vec(r).unwrap(),
                dev.to_i64_vec(o).map_err(|e| e.to_string())?,
            );
            if let Some(j) = (0..rv.len()).find(|&j| rv[j] != ov[j]) {
                return Err(format!("output {i}[{j}]: {} vs reference {}", ov[j], rv[j]));
            }
        } else {
            let rv = reference.to_f32_vec(r).unwrap();
            let ov = dev.to_f32_vec(o).map_err(|e| e.to_string())?;
            let scale = rv
                .iter()
                .filter(|v| v.is_finite())
                .fold(1f64, |m, v| m.max(v.abs() as f64));
            let tol = tolerance(r.dtype()) * scale;
            for j in 0..rv.len() {
                let (x, y) = (rv[j] as f64, ov[j] as f64);
                let same = (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= tol;
                if !same {
                    return Err(format!(
                        "output {i}[{j}]: {y} vs reference {x} (tolerance {tol:.2e})"
                    ));
                }
            }
        }
    }
    Ok(())
}

pub fn run_case(reference: &Device, dev: &Device, c: &Case) -> Outcome {
    let upload = |d: &Device| -> Vec<Tensor> {
        c.inputs
            .iter()
            .map(|i| d.upload(i.dtype, &i.shape, &i.bytes).expect("upload"))
            .collect()
    };
    let expected = (c.op)(reference, &upload(reference));
    let got = (c.op)(dev, &upload(dev));
    match (expected, got) {
        (Ok(r), Ok(o)) => match compare(reference, &r, dev, &o) {
            Ok(()) => Outcome::Pass,
            Err(e) => Outcome::Fail(e),
        },
        (Err(r), Err(o)) if std::mem::discriminant(&r) == std::mem::discriminant(&o) => {
            Outcome::Pass
        }
        (r, o) => Outcome::Fail(format!(
            "reference {:?}, got {:?}",
            r.map(|_| "ok"),
            o.map(|_| "ok")
        )),
    }
}

pub fn cuda_device(limit: u64) -> Option<(Device, Arc<MemoryAccount>)> {
    if !cuda::available() {
        println!("skipped: no CUDA device");
        return None;
    }
    let account = MemoryAccount::new("conformance", limit);
    let mut backend =
        CudaBackend::new(0, Arc::clone(&account)).expect("a CUDA device is available");
    backend.set_poison_fresh_buffers(true);
    Some((Device::new(Arc::new(backend)), account))
}

pub fn cpu_device() -> Device {
    Device::new(Arc::new(CpuBackend::new(MemoryAccount::unlimited(
        "reference",
    ))))
}
