//! `wasmpod:serverless/model`: models from the endpoint's model store, their
//! weights as shared read-only tensors.

use std::sync::Arc;

use wasmtime::component::{Resource, ResourceTable};

use super::fault::ModelFault;
use super::tensor::{TensorEntry, WeightOrigin, to_wit_dtype, to_wit_error};
use crate::gpu::{ModelError, ModelStore, OpenModel};
use crate::runtime::bindings::model::{self as wit, WeightInfo};

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

/// The model interface's share of an instance's state: the endpoint's model
/// store, if it has one.
pub struct ModelCtx {
    pub(crate) store: Option<Arc<ModelStore>>,
}

impl ModelCtx {
    pub(crate) fn new(store: Option<Arc<ModelStore>>) -> Self {
        Self { store }
    }
}

/// What the model interface's host functions work on: its context and the
/// instance's resource table (weights become tensor entries there).
pub struct ModelView<'a> {
    pub(crate) ctx: &'a ModelCtx,
    pub(crate) table: &'a mut ResourceTable,
}

impl wit::Host for ModelView<'_> {
    fn list_models(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self
            .ctx
            .store
            .as_ref()
            .map(|m| m.list())
            .unwrap_or_default())
    }

    fn convert_model_error(&mut self, err: ModelFault) -> wasmtime::Result<wit::ModelError> {
        match err {
            ModelFault::Model(e) => Ok(to_wit(e)),
            ModelFault::Trap(trap) => Err(trap),
        }
    }
}

impl wit::HostModel for ModelView<'_> {
    fn open(&mut self, name: String) -> Result<Resource<ModelEntry>, ModelFault> {
        let Some(store) = &self.ctx.store else {
            return Err(ModelError::NotFound(NO_MODELS.into()).into());
        };
        let model = store.open(&name)?;
        Ok(self.table.push(ModelEntry(model))?)
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
    ) -> Result<Resource<TensorEntry>, ModelFault> {
        let model = Arc::clone(&self.table.get(&m)?.0);
        let store = self
            .ctx
            .store
            .as_ref()
            .expect("a model was opened, so a store exists");
        let tensor = store.weight(&model, &name)?;
        let mut entry = TensorEntry::new(tensor, 0);
        entry.origin = Some(WeightOrigin {
            model: model.name().to_string(),
            weight: name,
        });
        Ok(self.table.push(entry)?)
    }

    fn files(&mut self, m: Resource<ModelEntry>) -> wasmtime::Result<Vec<String>> {
        Ok(self.table.get(&m)?.0.files().to_vec())
    }

    fn read_file(&mut self, m: Resource<ModelEntry>, path: String) -> Result<Vec<u8>, ModelFault> {
        Ok(self.table.get(&m)?.0.read_file(&path)?)
    }

    fn drop(&mut self, m: Resource<ModelEntry>) -> wasmtime::Result<()> {
        self.table.delete(m)?;
        Ok(())
    }
}
