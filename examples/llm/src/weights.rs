//! The decoder's weights by their Hugging Face names, fetched from the
//! model store (shared, read-only tensors on the worker's device) and
//! checked against `config.json`: shapes, one dtype for all, and, for a
//! sharded checkpoint, every weight its `model.safetensors.index.json`
//! lists present.

use std::collections::BTreeSet;

use wasmpod_sdk::{DType, Model, ModelError, Tensor};

/// Why the weights cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WeightError {
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("weight {name} has shape {actual:?}; config.json implies {expected:?}")]
    Shape {
        name: String,
        expected: Vec<u32>,
        actual: Vec<u32>,
    },
    #[error(
        "weight {name} is {actual:?} but the model's other weights are {expected:?}; convert the checkpoint to one dtype"
    )]
    Dtype {
        name: String,
        expected: DType,
        actual: DType,
    },
    #[error("weight {0} is {1:?}; weights must be f32, f16 or bf16")]
    NotFloat(String, DType),
    #[error(
        "model.safetensors.index.json lists {missing} weight(s) the model's safetensors files lack, e.g. {example}; a shard is missing"
    )]
    MissingShard { missing: usize, example: String },
    #[error("model.safetensors.index.json is not valid: {0}")]
    Index(String),
}

type Result<T> = std::result::Result<T, WeightError>;

/// Fetches weights of one model, all of one float dtype.
pub struct Weights<'m> {
    model: &'m Model,
    names: BTreeSet<String>,
    dtype: DType,
}

impl<'m> Weights<'m> {
    /// Check the model's files: a sharded checkpoint's index against the
    /// weights present, and find the dtype from the embedding table.
    pub fn open(model: &'m Model) -> Result<Self> {
        let infos = model.weights();
        let names: BTreeSet<String> = infos.iter().map(|w| w.name.clone()).collect();
        if model
            .files()
            .iter()
            .any(|f| f == "model.safetensors.index.json")
        {
            let index: serde_json::Value =
                serde_json::from_str(&model.read_to_string("model.safetensors.index.json")?)
                    .map_err(|e| WeightError::Index(e.to_string()))?;
            let map = index
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| WeightError::Index("it has no \"weight_map\" object".into()))?;
            let missing: Vec<&String> = map.keys().filter(|k| !names.contains(*k)).collect();
            if let Some(first) = missing.first() {
                return Err(WeightError::MissingShard {
                    missing: missing.len(),
                    example: format!("{first} (in {})", map[first.as_str()]),
                });
            }
        }
        let embed = "model.embed_tokens.weight";
        let dtype = infos
            .iter()
            .find(|w| w.name == embed)
            .map(|w| w.dtype)
            .ok_or_else(|| {
                ModelError::NotFound(format!(
                    "the model has no weight {embed}; is it a Hugging Face Llama/Mistral/Qwen2 checkpoint?"
                ))
            })?;
        if !matches!(dtype, DType::F32 | DType::F16 | DType::Bf16) {
            return Err(WeightError::NotFloat(embed.into(), dtype));
        }
        Ok(Self {
            model,
            names,
            dtype,
        })
    }

    /// The dtype every weight has, which activations are computed in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// The weight `name`, which must have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let tensor = self.model.weight(name)?;
        let expected: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
        let actual = tensor.shape();
        if actual != expected {
            return Err(WeightError::Shape {
                name: name.into(),
                expected,
                actual,
            });
        }
        let dtype = tensor.dtype();
        if dtype != self.dtype {
            return Err(WeightError::Dtype {
                name: name.into(),
                expected: self.dtype,
                actual: dtype,
            });
        }
        Ok(tensor)
    }

    /// `name` if `present`, else nothing (optional biases).
    pub fn optional(&self, name: &str, shape: &[usize], present: bool) -> Result<Option<Tensor>> {
        if present {
            self.get(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}
