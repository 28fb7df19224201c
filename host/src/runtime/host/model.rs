//! `wasmpod:serverless/model`: models from the endpoint's model store, their
//! weights as shared read-only tensors.

use std::sync::Arc;

use wasmtime::component::Resource;

use super::tensor::{to_wit_dtype, to_wit_error};
use crate::gpu::{ModelError, OpenModel};
use crate::runtime::bindings::model::{self as wit, WeightInfo};
use crate::runtime::state::WorkerState;

/// An opened model in an instance's resource table.
pub struct ModelEntry(pub Arc<OpenModel>);

fn to_wit(e: ModelError) -> wit::ModelError {
    match e {
        ModelError::NotFound(m) => wit::ModelError::NotFound(m),
        ModelError::Invalid(m) => wit::ModelError::Invalid(m),
        ModelError::Tensor(t) => wit::ModelError::Tensor(to_wit_error(t)),
    }
}

const NO_MODELS: &str = "this endpoint has no model directory; configure one (`--models DIR` or the endpoint's models setting)";

impl wit::Host for WorkerState {
    fn list_models(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.models.as_ref().map(|m| m.list()).unwrap_or_default())
    }
}

impl wit::HostModel for WorkerState {
    fn open(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<Resource<ModelEntry>, wit::ModelError>> {
        let Some(store) = &self.models else {
            return Ok(Err(wit::ModelError::NotFound(NO_MODELS.into())));
        };
        match store.open(&name) {
            Ok(m) => Ok(Ok(self.table.push(ModelEntry(m))?)),
            Err(e) => Ok(Err(to_wit(e))),
        }
    }

    fn name(&mut self, m: Resource<ModelEntry>) -> wasmtime::Result<String> {
        Ok(self.table.get(&m)?.0.name().to_string())
    }

    fn weights(&mut self, m: Resource<ModelEntry>) -> wasmtime::Result<Vec<WeightInfo>> {
        Ok(self
            .table
            .get(&m)?
            .0
            .weights()
            .map(|(name, info)| WeightInfo {
                name: name.clone(),
                dtype: to_wit_dtype(info.dtype),
                shape: info.shape.iter().map(|&d| d as u32).collect(),
            })
            .collect())
    }

    fn weight(
        &mut self,
        m: Resource<ModelEntry>,
        name: String,
    ) -> wasmtime::Result<Result<Resource<super::tensor::TensorEntry>, wit::ModelError>> {
        let model = Arc::clone(&self.table.get(&m)?.0);
        let store = Arc::clone(
            self.models
                .as_ref()
                .expect("a model was opened, so a store exists"),
        );
        match store.weight(&model, &name) {
            Ok(t) => {
                let mut entry = super::tensor::TensorEntry::new(t, 0);
                entry.origin = Some(super::tensor::WeightOrigin {
                    model: model.name().to_string(),
                    weight: name,
                });
                Ok(Ok(self.table.push(entry)?))
            }
            Err(e) => Ok(Err(to_wit(e))),
        }
    }

    fn files(&mut self, m: Resource<ModelEntry>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&m)?.0.files().to_vec())
    }

    fn read_file(
        &mut self,
        m: Resource<ModelEntry>,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, wit::ModelError>> {
        Ok(self.table.get(&m)?.0.read_file(&path).map_err(to_wit))
    }

    fn drop(&mut self, m: Resource<ModelEntry>) -> wasmtime::Result<()> {
        self.table.delete(m)?;
        Ok(())
    }
}
