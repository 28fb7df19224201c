//! `bigmodel`: the cold-start benchmark's model handler. `init` opens the
//! model "big" and takes every weight (the shape of a real LLM handler: all
//! weights on the device before the first job); `handle` answers with the
//! weight count, their bytes, and the first values of the first and last
//! weight, read back from the device, so a wrong restore shows in the
//! output.
//!
//! Input: anything. Output: `{"weights": n, "bytes": b, "first": [f32; 4],
//! "last": [f32; 4]}`.

use std::sync::OnceLock;

use serde::Serialize;
use wasmpod_sdk::serde_json::Value;
use wasmpod_sdk::{Model, ModelError, Tensor, TensorError};

#[derive(Debug, thiserror::Error)]
enum BigError {
    #[error("model big: {0}")]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("model big has no weights")]
    Empty,
    #[error("init ran twice")]
    InitTwice,
    #[error("the model is not loaded (init did not run)")]
    NotLoaded,
}

struct Loaded {
    weights: Vec<Tensor>,
    bytes: u64,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();

fn init() -> Result<(), BigError> {
    let model = Model::open("big")?;
    let mut weights = Vec::new();
    let mut bytes = 0u64;
    for info in model.weights() {
        let t = model.weight(&info.name)?;
        let elements: u64 = t.shape().iter().map(|&d| d as u64).product();
        bytes += elements * t.dtype().size_in_bytes() as u64;
        weights.push(t);
    }
    if weights.is_empty() {
        return Err(BigError::Empty);
    }
    LOADED
        .set(Loaded { weights, bytes })
        .map_err(|_| BigError::InitTwice)
}

/// The first four values of `t` (flattened), read back from the device.
fn head(t: &Tensor) -> Result<Vec<f32>, BigError> {
    let flat = t.reshape(&[-1])?;
    let n = flat.shape()[0].min(4);
    Ok(flat.slice(0, 0, n)?.to_vec_f32()?)
}

#[derive(Serialize)]
struct Output {
    weights: usize,
    bytes: u64,
    first: Vec<f32>,
    last: Vec<f32>,
}

fn handle(_input: Value) -> Result<Output, BigError> {
    let loaded = LOADED.get().ok_or(BigError::NotLoaded)?;
    let first = loaded.weights.first().ok_or(BigError::Empty)?;
    let last = loaded.weights.last().ok_or(BigError::Empty)?;
    Ok(Output {
        weights: loaded.weights.len(),
        bytes: loaded.bytes,
        first: head(first)?,
        last: head(last)?,
    })
}

wasmpod_sdk::handler!(handle, init = init);
