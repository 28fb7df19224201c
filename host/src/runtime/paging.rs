//! FlashBoot layer 3 for one instance: page its tensors off the device when
//! its worker scales to zero, and back before its next job.
//!
//! The instance (its wasm heap and handle table) stays as it is; only the
//! device memory behind its tensor handles goes. Tensors the guest computed
//! are copied to a [`PageStore`] (pinned host RAM on a GPU, disk past the
//! budget); model weights are only let go of, since the model store pages
//! those itself and hands them back shared. Each paged entry keeps its dtype
//! and shape on a placeholder without device memory, so nothing but
//! [`Instance::page_in`] can observe the difference (and `handle` calls it).
//! Recorded graphs are dropped (their replay then fails with a request to
//! record again).

use std::any::Any;
use std::sync::Arc;

use wasmpod_tensor::{PageError, PageStore, Storage, Tensor};

use super::host::graph::GraphEntry;
use super::host::tensor::TensorEntry;
use super::instance::Instance;
use crate::gpu::{ModelError, PagingStats};

/// Why paging an instance failed.
#[derive(Debug, thiserror::Error)]
pub enum PagingError {
    #[error("paging tensors: {0}")]
    Page(#[from] PageError),
    #[error("re-acquiring a model weight: {0}")]
    Model(#[from] ModelError),
    #[error(
        "the instance holds a model weight but has no model store; page it in with the configuration it was created with"
    )]
    NoModelStore,
}

/// Stands in for a paged-out tensor's storage: no device memory, only the
/// size the tensor's shape implies.
struct PagedOutStorage {
    len: usize,
}

impl Storage for PagedOutStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len_bytes(&self) -> usize {
        self.len
    }
}

fn placeholder(t: &Tensor) -> Tensor {
    let len = t.numel() * t.dtype().size();
    Tensor::new(
        t.dtype(),
        t.shape().to_vec(),
        Arc::new(PagedOutStorage { len }),
    )
}

impl Instance {
    /// Pages this instance's tensors out to `pages` and frees their device
    /// memory (weights too, once the model store has paged them). Idempotent.
    pub fn page_out(&mut self, pages: &Arc<PageStore>) -> Result<PagingStats, PagingError> {
        if self.paged_out {
            return Ok(PagingStats::default());
        }
        let mut stats = PagingStats::default();
        let mut failed: Option<PagingError> = None;
        let state = self.store.data_mut();
        let devices = Arc::clone(&state.tensor.devices);
        // Recorded graphs hold the device buffers being paged out; they go
        // (a replay then asks the guest to record again), as does an open
        // capture.
        state.tensor.capture = None;
        for entry in state.table.iter_mut() {
            if let Some(graph) = entry.downcast_mut::<GraphEntry>() {
                graph.0 = None;
                continue;
            }
            let Some(entry) = entry.downcast_mut::<TensorEntry>() else {
                continue;
            };
            if entry.paged.is_some() {
                continue; // paged by an earlier attempt that failed later on
            }
            let stand_in = placeholder(&entry.tensor);
            let tensor = std::mem::replace(&mut entry.tensor, stand_in);
            if entry.origin.is_none() {
                let device = devices
                    .device(entry.device)
                    .expect("tensor entries hold valid device indices");
                let paged = match pages.page_out_owned(device, tensor) {
                    Ok(p) => p,
                    Err(e) => {
                        failed = Some(e.into());
                        break;
                    }
                };
                stats.tensors += 1;
                stats.bytes += paged.len_bytes() as u64;
                entry.paged = Some(paged);
            }
        }
        if let Some(e) = failed {
            // That entry is a placeholder now and its bytes are gone: the
            // instance cannot run jobs any more.
            self.mark_lost();
            return Err(e);
        }
        self.paged_out = true;
        Ok(stats)
    }

    /// Brings every paged tensor back onto its device: one bulk copy each
    /// from the page store, weights through the model store.
    pub fn page_in(&mut self) -> Result<PagingStats, PagingError> {
        if !self.paged_out {
            return Ok(PagingStats::default());
        }
        let mut stats = PagingStats::default();
        let state = self.store.data_mut();
        let devices = Arc::clone(&state.tensor.devices);
        let models = state.model.store.clone();
        let outcome = (|| {
            for entry in state.table.iter_mut() {
                let Some(entry) = entry.downcast_mut::<TensorEntry>() else {
                    continue;
                };
                let device = devices
                    .device(entry.device)
                    .expect("tensor entries hold valid device indices");
                let restored = if let Some(paged) = entry.paged.take() {
                    paged.page_in_owned(device)?
                } else if let Some(origin) = &entry.origin {
                    let store = models.as_ref().ok_or(PagingError::NoModelStore)?;
                    let model = store.open(&origin.model)?;
                    store.weight(&model, &origin.weight)?
                } else {
                    continue;
                };
                stats.tensors += 1;
                stats.bytes += (restored.numel() * restored.dtype().size()) as u64;
                entry.tensor = restored;
            }
            Ok::<(), PagingError>(())
        })();
        if let Err(e) = outcome {
            // A paged copy that failed to come back is gone with its entry.
            self.mark_lost();
            return Err(e);
        }
        self.paged_out = false;
        Ok(stats)
    }

    /// True while the instance's tensors are paged out.
    pub fn is_paged_out(&self) -> bool {
        self.paged_out
    }
}
