//! CUDA graphs built from recorded ops (see crate::graph): the recorded
//! steps are issued once more, under stream capture, into their recorded
//! buffers; a replay is then one `cuGraphLaunch` on the worker's stream.
//!
//! The capture runs on a stream of its own (one per backend, with its own
//! cuBLAS handle and workspace), never on the worker's: the worker's other
//! instances keep queueing work there meanwhile, and that must not end up
//! in the graph. While a graph is built, the thread-local [`BUILDING`]
//! redirects the backend's launches, memsets and GEMMs to the capture
//! stream ([`CudaBackend::queue`], [`CudaBackend::blas_handle`]).

use std::cell::RefCell;
use std::sync::Arc;

use cudarc::cublas::CudaBlas;
use cudarc::cublas::sys as blas_sys;
use cudarc::driver::{CudaStream, result, sys};

use super::backend::CudaBackend;
use super::device::fault;
use crate::graph::{NativeGraph, Step};
use crate::{Result, TensorError};

/// cuBLAS's workspace for captured GEMMs (it may not allocate one while
/// capturing).
const BLAS_WORKSPACE: usize = 32 << 20;

/// What graphs are built with, created on a backend's first capture.
pub(crate) struct GraphTools {
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    _workspace: Workspace,
}

struct Workspace(u64);

impl Drop for Workspace {
    fn drop(&mut self) {
        // SAFETY: allocated with cuMemAlloc in GraphTools::new; the graphs
        // using it synchronise their stream before they are dropped.
        unsafe {
            let _ = result::free_sync(self.0);
        }
    }
}

// SAFETY: the raw workspace pointer and the cuBLAS handle are only used by
// the thread holding the backend's graph_tools lock.
unsafe impl Send for GraphTools {}

thread_local! {
    static BUILDING: RefCell<Option<(Arc<CudaStream>, blas_sys::cublasHandle_t)>> = const { RefCell::new(None) };
}

/// The capture's cuBLAS handle while a graph is built on this thread.
pub(super) fn building_blas() -> Option<blas_sys::cublasHandle_t> {
    BUILDING.with(|b| b.borrow().as_ref().map(|(_, h)| *h))
}

impl GraphTools {
    fn new(backend: &CudaBackend) -> Result<Self> {
        let stream = backend
            .device
            .ctx
            .new_stream()
            .map_err(fault("creating the graph capture stream"))?;
        let blas = CudaBlas::new(Arc::clone(&stream)).map_err(|e| {
            TensorError::DeviceFault(format!("cuda: creating cuBLAS for graphs: {e:?}"))
        })?;
        // SAFETY: a plain allocation of this context, bound above.
        let ptr = unsafe { result::malloc_sync(BLAS_WORKSPACE) }
            .map_err(fault("allocating cuBLAS's graph workspace"))?;
        let workspace = Workspace(ptr);
        // SAFETY: the handle is live and the workspace holds the size given.
        let status = unsafe {
            blas_sys::cublasSetWorkspace_v2(*blas.handle(), ptr as *mut _, BLAS_WORKSPACE)
        };
        if status != blas_sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS {
            return Err(TensorError::DeviceFault(format!(
                "cuda: giving cuBLAS a workspace for graphs: {status:?}"
            )));
        }
        Ok(Self {
            stream,
            blas,
            _workspace: workspace,
        })
    }
}

impl CudaBackend {
    /// The stream ops queue on: the capture stream while this thread builds
    /// a graph, else the worker's.
    pub(super) fn queue(&self) -> Arc<CudaStream> {
        BUILDING
            .with(|b| b.borrow().as_ref().map(|(s, _)| Arc::clone(s)))
            .unwrap_or_else(|| Arc::clone(&self.stream))
    }

    /// Captures `steps` into a CUDA graph.
    pub(super) fn build(&self, steps: &[Step]) -> Result<Box<dyn NativeGraph>> {
        self.bind()?;
        let mut tools = self.graph_tools.lock().unwrap_or_else(|p| p.into_inner());
        if tools.is_none() {
            *tools = Some(GraphTools::new(self)?);
        }
        let tools = tools.as_ref().expect("created above");
        let capture = tools.stream.cu_stream();
        // SAFETY: the capture stream belongs to this context and no other
        // thread uses it (the lock is held).
        unsafe {
            result::stream::begin_capture(
                capture,
                sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL,
            )
        }
        .map_err(fault("beginning a graph capture"))?;
        BUILDING
            .with(|b| *b.borrow_mut() = Some((Arc::clone(&tools.stream), *tools.blas.handle())));
        let issued = steps.iter().try_for_each(|s| s.rerun(self));
        BUILDING.with(|b| *b.borrow_mut() = None);
        // SAFETY: ends the capture begun above (also after a failed step, so
        // the stream leaves capture mode).
        let graph = unsafe { result::stream::end_capture(capture) };
        let graph = match (issued, graph) {
            (Ok(()), Ok(g)) if !g.is_null() => g,
            (Ok(()), Ok(_)) => {
                return Err(TensorError::DeviceFault(
                    "cuda: the graph capture produced no graph".into(),
                ));
            }
            (Err(e), g) => {
                if let Ok(g) = g
                    && !g.is_null()
                {
                    // SAFETY: a graph we own and never instantiated.
                    unsafe {
                        let _ = result::graph::destroy(g);
                    }
                }
                return Err(e);
            }
            (Ok(()), Err(e)) => return Err(fault("ending a graph capture")(e)),
        };
        // SAFETY: `graph` is the valid graph just captured.
        let exec =
            match unsafe { result::graph::instantiate(graph, sys::CUgraphInstantiate_flags(0)) } {
                Ok(exec) => exec,
                Err(e) => {
                    // SAFETY: as above.
                    unsafe {
                        let _ = result::graph::destroy(graph);
                    }
                    return Err(fault("instantiating a graph")(e));
                }
            };
        let native = CudaGraph {
            graph,
            exec,
            stream: Arc::clone(&self.stream),
        };
        // Uploading now keeps that work off the first replay.
        // SAFETY: exec is live; the worker's stream belongs to this context.
        unsafe { result::graph::upload(exec, self.stream.cu_stream()) }
            .map_err(fault("uploading a graph"))?;
        Ok(Box::new(native))
    }
}

/// An instantiated CUDA graph, launched on the worker's stream.
struct CudaGraph {
    graph: sys::CUgraph,
    exec: sys::CUgraphExec,
    stream: Arc<CudaStream>,
}

// SAFETY: a graph belongs to one instance, which launches it from one
// thread at a time; the handles are plain driver objects.
unsafe impl Send for CudaGraph {}
unsafe impl Sync for CudaGraph {}

impl NativeGraph for CudaGraph {
    fn launch(&self) -> Result<()> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(fault("binding the context"))?;
        // SAFETY: exec is live; its nodes use buffers the owning Graph
        // keeps alive.
        unsafe { result::graph::launch(self.exec, self.stream.cu_stream()) }
            .map_err(fault("launching a graph"))
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        let ctx = self.stream.context();
        ctx.record_err(ctx.bind_to_thread());
        // Launches still queued read the graph's buffers, which are freed
        // right after this (crate::graph::Graph drops them next).
        ctx.record_err(self.stream.synchronize());
        // SAFETY: destroyed once, after every launch finished.
        unsafe {
            ctx.record_err(result::graph::exec_destroy(self.exec));
            ctx.record_err(result::graph::destroy(self.graph));
        }
    }
}
