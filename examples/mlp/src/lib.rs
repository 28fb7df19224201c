//! `mlp`: a two-layer perceptron, `softmax(relu(x·W1ᵀ + b1)·W2ᵀ + b2)`, run
//! with host tensor ops. Shows the usual shape of a model handler: `init`
//! opens the model "mlp" (safetensors in PyTorch layout: `fc1.weight`
//! `[hidden, in]`, `fc1.bias` `[hidden]`, `fc2.weight` `[classes, hidden]`,
//! `fc2.bias` `[classes]`), checks it and keeps the weights; `handle` only
//! uploads the batch and runs the forward pass.
//!
//! Input `{"inputs": [[f32; in], ...]}`; output `{"classes": [usize, ...],
//! "probs": [[f32; classes], ...]}`. `make_model.py` writes a model whose
//! answers are known (see README.md).

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use wasmpod_sdk::{Model, ModelError, Tensor, TensorError};

/// Everything that can go wrong, worded for the job's `error`.
#[derive(Debug, thiserror::Error)]
enum MlpError {
    #[error("model mlp: {0}")]
    Model(#[from] ModelError),
    #[error("model mlp: {name} has shape {shape:?}, expected {expected}")]
    WeightShape {
        name: &'static str,
        shape: Vec<u32>,
        expected: String,
    },
    #[error("the model is not loaded (init did not run)")]
    NotLoaded,
    #[error("init ran twice")]
    InitTwice,
    #[error("inputs[{row}] has {got} values; the model takes {expected}")]
    InputWidth {
        row: usize,
        got: usize,
        expected: usize,
    },
    #[error("{0} inputs are more than one batch can hold")]
    TooManyInputs(usize),
    #[error(transparent)]
    Tensor(#[from] TensorError),
    #[error("the host returned the class index {0}")]
    BadClass(i64),
}

/// The model, laid out for the forward pass: weights transposed once here
/// so every job computes `x·W` without a transpose of its own.
struct Mlp {
    fc1_t: Tensor,
    fc1_b: Tensor,
    fc2_t: Tensor,
    fc2_b: Tensor,
    inputs: usize,
    classes: usize,
}

static MLP: OnceLock<Mlp> = OnceLock::new();

fn check_shape(name: &'static str, tensor: &Tensor, expected: &[u32]) -> Result<(), MlpError> {
    let shape = tensor.shape();
    if shape != expected {
        return Err(MlpError::WeightShape {
            name,
            shape,
            expected: format!("{expected:?}"),
        });
    }
    Ok(())
}

fn load(model: &Model) -> Result<Mlp, MlpError> {
    let fc1 = model.weight("fc1.weight")?;
    let fc1_b = model.weight("fc1.bias")?;
    let fc2 = model.weight("fc2.weight")?;
    let fc2_b = model.weight("fc2.bias")?;
    let (hidden, inputs, classes) = match (fc1.shape().as_slice(), fc2.shape().as_slice()) {
        (&[hidden, inputs], &[classes, _]) if hidden > 0 && inputs > 0 && classes > 0 => {
            (hidden, inputs, classes)
        }
        (&[_, _], _) => {
            return Err(MlpError::WeightShape {
                name: "fc2.weight",
                shape: fc2.shape(),
                expected: "[classes, hidden], none of them 0".into(),
            });
        }
        _ => {
            return Err(MlpError::WeightShape {
                name: "fc1.weight",
                shape: fc1.shape(),
                expected: "[hidden, in], none of them 0".into(),
            });
        }
    };
    check_shape("fc1.bias", &fc1_b, &[hidden])?;
    check_shape("fc2.weight", &fc2, &[classes, hidden])?;
    check_shape("fc2.bias", &fc2_b, &[classes])?;
    Ok(Mlp {
        fc1_t: fc1.transpose(0, 1)?,
        fc1_b,
        fc2_t: fc2.transpose(0, 1)?,
        fc2_b,
        inputs: inputs as usize,
        classes: classes as usize,
    })
}

fn init() -> Result<(), MlpError> {
    let mlp = load(&Model::open("mlp")?)?;
    wasmpod_sdk::info!("mlp loaded: {} inputs, {} classes", mlp.inputs, mlp.classes);
    MLP.set(mlp).map_err(|_| MlpError::InitTwice)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    inputs: Vec<Vec<f32>>,
}

#[derive(Serialize, Default)]
struct Output {
    classes: Vec<usize>,
    probs: Vec<Vec<f32>>,
}

fn handle(input: Input) -> Result<Output, MlpError> {
    let mlp = MLP.get().ok_or(MlpError::NotLoaded)?;
    if input.inputs.is_empty() {
        return Ok(Output::default());
    }
    for (row, values) in input.inputs.iter().enumerate() {
        if values.len() != mlp.inputs {
            return Err(MlpError::InputWidth {
                row,
                got: values.len(),
                expected: mlp.inputs,
            });
        }
    }
    let rows = input.inputs.len();
    let rows_u32 = u32::try_from(rows).map_err(|_| MlpError::TooManyInputs(rows))?;
    let x = Tensor::from_f32(&[rows_u32, mlp.inputs as u32], &input.inputs.concat())?;
    let hidden = x.matmul(&mlp.fc1_t)?.add(&mlp.fc1_b)?.relu()?;
    let probs = hidden.matmul(&mlp.fc2_t)?.add(&mlp.fc2_b)?.softmax(-1)?;
    let classes = probs
        .argmax(-1)?
        .to_vec_i64()?
        .into_iter()
        .map(|c| usize::try_from(c).map_err(|_| MlpError::BadClass(c)))
        .collect::<Result<Vec<_>, _>>()?;
    let probs = probs
        .to_vec_f32()?
        .chunks(mlp.classes)
        .map(<[f32]>::to_vec)
        .collect();
    Ok(Output { classes, probs })
}

wasmpod_sdk::handler!(handle, init = init);
