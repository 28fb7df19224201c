//! The wasmtime side of wasmpod: one [`Runtime`] per process turns handler
//! bytes into a validated, compiled [`Handler`]; a handler makes
//! [`Instance`]s (pooling allocator, `InstancePre`), and an instance runs
//! jobs under a timeout, a memory cap and a cancel signal. [`FlashBoot`]
//! starts instances from snapshots taken after `init` (layer 2) and
//! [`Instance::page_out`] moves their tensors off the device (layer 3).

pub mod bindings;
pub mod cache;
pub mod engine;
pub mod flashboot;
pub mod host;
pub mod http;
pub mod instance;
pub mod job;
pub mod limits;
pub mod output;
pub mod paging;
pub mod snapshot;
pub mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Linker;

pub use cache::{LoadSource, digest};
pub use engine::EngineLimits;
pub use flashboot::{BootLayer, BootReport, FlashBoot};
pub use http::{ERROR_HEADER, HttpBody, HttpResponse, error_response, respond};
pub use instance::{Handler, Instance, InstanceConfig, JobError, World};
pub use job::{CancelSignal, JobSink, LogLevel, NullSink, OutputStream};
pub use paging::PagingError;
pub use snapshot::{SnapshotError, SnapshotStore};
use state::WorkerState;

/// Errors from loading handlers and creating instances.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The engine could not be configured (a host problem, not the user's).
    #[error("wasmtime engine: {0}")]
    Engine(String),
    /// The bytes are not a loadable handler component; the message says why
    /// and how to fix it.
    #[error("invalid handler: {0}")]
    Invalid(String),
    /// The handler's `init` failed or trapped.
    #[error("handler init failed: {0}")]
    Init(String),
    /// Creating an instance failed (e.g. the pool is full).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
}

/// Settings of a [`Runtime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    pub limits: EngineLimits,
}

/// The process-wide engine, linker and compiled-component cache.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<WorkerState>,
    cache: cache::ComponentCache,
}

impl Runtime {
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = engine::build(&config.limits)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        host::add_to_linker(&mut linker).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = cache::ComponentCache::new(&engine, config.cache_dir.as_deref());
        Ok(Self {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Validate and compile (or load from cache) a handler component.
    ///
    /// Fails with [`RuntimeError::Invalid`] when the bytes are not a
    /// component, import something wasmpod does not provide, or do not
    /// export world `wasmpod:serverless/handler`.
    pub fn load(&self, wasm: &[u8]) -> Result<Handler, RuntimeError> {
        let started = Instant::now();
        let digest = cache::digest(wasm);
        let (component, source) =
            self.inner
                .cache
                .load_or_compile(&self.inner.engine, &digest, wasm)?;
        let load_time = started.elapsed();
        Handler::new(self.clone(), digest, component, source, load_time)
    }

    pub(crate) fn linker(&self) -> &Linker<WorkerState> {
        &self.inner.linker
    }
}

/// Default execution timeout for a job (RunPod's default is 600 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
