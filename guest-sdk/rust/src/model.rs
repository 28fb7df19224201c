//! [`Model`]: safetensors weights and auxiliary files (tokenizer, config)
//! from the endpoint's model store, and [`ModelError`], why a call failed.

use crate::bindings::wasmpod::serverless::model as wit;
use crate::{Tensor, TensorError};

/// Name, dtype and shape of one weight, as listed by [`Model::weights`].
pub use wit::WeightInfo;

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// No model, weight or file by that name; the host's message lists what
    /// exists.
    #[error("not found: {0}")]
    NotFound(String),
    /// The model's files are not valid safetensors or are unreadable.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// Loading a weight onto the device failed (e.g. the memory quota).
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// [`Model::read_to_string`] found a file that is not UTF-8 text.
    #[error("{path} is not UTF-8 text: {reason}")]
    NotText {
        /// The file, relative to the model directory.
        path: String,
        /// Where the decoding failed.
        reason: String,
    },
}

impl From<wit::ModelError> for ModelError {
    fn from(error: wit::ModelError) -> Self {
        match error {
            wit::ModelError::NotFound(m) => Self::NotFound(m),
            wit::ModelError::Invalid(m) => Self::Invalid(m),
            wit::ModelError::Tensor(e) => Self::Tensor(e.into()),
        }
    }
}

/// An opened model: a directory of `*.safetensors` files (one or several
/// shards) plus auxiliary files.
///
/// The host loads each weight once per device and shares it read-only
/// between instances, so opening a model and fetching its weights is cheap
/// after the first worker did it. Do it in the handler's `init`.
#[derive(Debug)]
pub struct Model(wit::Model);

impl Model {
    /// Open the model called `name` in the endpoint's model directory.
    pub fn open(name: &str) -> Result<Self, ModelError> {
        wit::Model::open(name).map(Model).map_err(ModelError::from)
    }

    /// Names of the models available to this endpoint.
    pub fn list() -> Vec<String> {
        wit::list_models()
    }

    /// The model's name.
    pub fn name(&self) -> String {
        self.0.name()
    }

    /// Name, dtype and shape of every weight across the model's safetensors
    /// files, sorted by name.
    pub fn weights(&self) -> Vec<WeightInfo> {
        self.0.weights()
    }

    /// One weight, e.g. `"fc1.weight"`, as a shared read-only tensor on the
    /// worker's device.
    pub fn weight(&self, name: &str) -> Result<Tensor, ModelError> {
        self.0.weight(name).map(Tensor).map_err(ModelError::from)
    }

    /// Names of the auxiliary (non-safetensors) files, relative to the model
    /// directory.
    pub fn files(&self) -> Vec<String> {
        self.0.files()
    }

    /// The bytes of an auxiliary file, e.g. `"vocab.txt"`.
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, ModelError> {
        self.0.read_file(path).map_err(ModelError::from)
    }

    /// An auxiliary file as UTF-8 text, e.g. `"config.json"`.
    pub fn read_to_string(&self, path: &str) -> Result<String, ModelError> {
        let bytes = self.read_file(path)?;
        String::from_utf8(bytes).map_err(|e| ModelError::NotText {
            path: path.to_string(),
            reason: e.utf8_error().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::wasmpod::serverless::tensor::TensorError as WitTensorError;

    #[test]
    fn host_errors_keep_their_kind_and_message() {
        let e = ModelError::from(wit::ModelError::NotFound(
            "no weight \"x\"; have: [y]".into(),
        ));
        assert_eq!(e.to_string(), "not found: no weight \"x\"; have: [y]");
        let e = ModelError::from(wit::ModelError::Tensor(WitTensorError::QuotaExceeded(
            "need 4 GiB".into(),
        )));
        assert_eq!(
            e,
            ModelError::Tensor(TensorError::QuotaExceeded("need 4 GiB".into()))
        );
        assert_eq!(e.to_string(), "quota exceeded: need 4 GiB");
    }
}
