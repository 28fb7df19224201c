//! Recorded graphs (the tensor interface's `capture-begin`, `capture-end`
//! and `graph` resource): the instance's ops between the two calls are
//! recorded by `wasmpod_tensor::graph` and replayed as one call.
//!
//! A graph holds device buffers of the instance's tensors, so it cannot
//! outlive their paging: parking the instance (FlashBoot) drops every
//! graph's recording, and a later `replay` asks for a new one. Graphs are
//! never part of a snapshot (`flashboot.rs` refuses them).

use wasmpod_tensor::{Capture, Graph, TensorError};
use wasmtime::component::Resource;

use super::fault::TensorFault;
use super::tensor::TensorView;
use crate::runtime::bindings::tensor as wit;

/// A recorded graph in an instance's resource table; `None` once the
/// instance was parked.
pub struct GraphEntry(pub(crate) Option<Graph>);

type TensorResult<T> = Result<T, TensorFault>;

impl TensorView<'_> {
    pub(super) fn begin_capture(&mut self) -> TensorResult<()> {
        if self.ctx.capture.is_some() {
            return Err(TensorError::InvalidArgument(
                "capture-begin: a capture is already open; end it with capture-end first".into(),
            )
            .into());
        }
        self.ctx.capture = Some(Capture::new());
        Ok(())
    }

    pub(super) fn end_capture(&mut self) -> TensorResult<Resource<GraphEntry>> {
        let Some(capture) = self.ctx.capture.take() else {
            return Err(TensorError::InvalidArgument(
                "capture-end without capture-begin: nothing is being recorded".into(),
            )
            .into());
        };
        let graph = capture.finish()?;
        Ok(self.table.push(GraphEntry(Some(graph)))?)
    }
}

impl wit::HostGraph for TensorView<'_> {
    fn replay(&mut self, g: Resource<GraphEntry>) -> TensorResult<()> {
        if self.ctx.capture.is_some() {
            return Err(TensorError::InvalidArgument(
                "replay while a capture is open: end the capture first".into(),
            )
            .into());
        }
        match &self.table.get(&g)?.0 {
            Some(graph) => Ok(graph.replay()?),
            None => Err(TensorError::InvalidArgument(
                "this graph was dropped when the worker was parked (FlashBoot); record it again with capture-begin / capture-end".into(),
            )
            .into()),
        }
    }

    fn drop(&mut self, g: Resource<GraphEntry>) -> wasmtime::Result<()> {
        self.table.delete(g)?;
        Ok(())
    }
}
