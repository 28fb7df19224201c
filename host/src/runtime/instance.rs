//! Compiled handlers and their instances: validation against one of the two
//! worlds (`handler` for jobs, `http-handler` for HTTP requests),
//! instantiation through `InstancePre`, and running one job or serving one
//! HTTP request under a timeout, a memory cap and a cancel signal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

use super::bindings::{self, HandlerPre};
use super::cache::LoadSource;
use super::host::device::DeviceCtx;
use super::host::job::JobCtx;
use super::host::model::ModelCtx;
use super::host::tensor::TensorCtx;
use super::http::{HttpExports, HttpPre};
use super::job::{CancelSignal, CurrentJob, JobSink, OutputStream};
use super::limits::InstanceLimits;
use super::output::GuestOutput;
use super::state::WorkerState;
use super::{Runtime, RuntimeError};
use crate::gpu::{ModelStore, WorkerDevices};

/// A validated, compiled handler component, ready to instantiate.
#[derive(Clone)]
pub struct Handler {
    inner: Arc<HandlerInner>,
}

struct HandlerInner {
    runtime: Runtime,
    digest: String,
    pre: Pre,
    source: LoadSource,
    load_time: Duration,
}

/// Which world a handler component is of, so which endpoints can run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum World {
    /// `wasmpod:serverless/handler`: jobs (queue endpoints).
    Handler,
    /// `wasmpod:serverless/http-handler` (or a plain `wasi:http/proxy`
    /// component): HTTP requests (load-balancing endpoints).
    HttpHandler,
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            World::Handler => "handler",
            World::HttpHandler => "http-handler",
        })
    }
}

/// The checked exports of a component, by world.
enum Pre {
    Job(HandlerPre<WorkerState>),
    Http(HttpPre),
}

/// A live instance's exports, by world.
pub(crate) enum Exports {
    Job(bindings::Handler),
    Http(HttpExports),
}

/// What an instance gets: its devices, models, memory cap and environment.
#[derive(Clone)]
pub struct InstanceConfig {
    pub devices: Arc<WorkerDevices>,
    pub models: Option<Arc<ModelStore>>,
    /// Cap on the instance's linear memory.
    pub memory_limit: usize,
    /// Environment variables the guest sees (none by default).
    pub env: Vec<(String, String)>,
    /// Copy guest stdout/stderr to the host's stderr.
    pub echo_output: bool,
    /// Where the guest's log calls and output go outside a job (in `init`,
    /// between jobs): the worker's log. None: log calls go to tracing.
    pub log_sink: Option<Arc<dyn JobSink>>,
    /// Limit on `init`.
    pub init_timeout: Duration,
}

impl InstanceConfig {
    /// A CPU worker with the given memory cap and tensor quota.
    pub fn cpu(memory_limit: usize, tensor_quota: u64, models: Option<Arc<ModelStore>>) -> Self {
        Self {
            devices: WorkerDevices::cpu(tensor_quota),
            models,
            memory_limit,
            env: Vec::new(),
            echo_output: false,
            log_sink: None,
            init_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a job did not produce an output.
#[derive(Debug, Clone, PartialEq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum JobError {
    /// The handler returned an error; the instance is fine.
    #[error("{0}")]
    Handler(String),
    /// The handler returned text that is not JSON; the instance is fine.
    #[error("the handler returned invalid JSON: {0}")]
    InvalidOutput(String),
    /// The guest trapped (panic, unreachable, stack overflow...).
    #[error("the handler crashed: {0}")]
    Trap(String),
    /// The guest tried to grow its memory past its cap.
    #[error(
        "the handler exceeded its memory limit of {limit_mib} MiB (it asked for {requested_mib} MiB); use less memory or raise the endpoint's memory limit"
    )]
    MemoryLimit {
        limit_mib: usize,
        requested_mib: usize,
    },
    /// The job ran past its execution timeout.
    #[error("the job exceeded its execution timeout of {0:?}")]
    Timeout(Duration),
    /// The job was cancelled while running.
    #[error("the job was cancelled")]
    Cancelled,
    /// The instance was lost to an earlier failure and must be replaced.
    #[error("the instance is unusable after an earlier failure")]
    InstanceLost,
}

impl JobError {
    /// True when the instance must be discarded (wasmtime does not allow
    /// re-entering an instance after a trap or an abandoned call).
    pub fn instance_lost(&self) -> bool {
        !matches!(self, JobError::Handler(_) | JobError::InvalidOutput(_))
    }
}

impl Handler {
    pub(super) fn new(
        runtime: Runtime,
        digest: String,
        component: Component,
        source: LoadSource,
        load_time: Duration,
    ) -> Result<Self, RuntimeError> {
        let instance_pre = runtime.linker().instantiate_pre(&component).map_err(|e| {
            RuntimeError::Invalid(format!(
                "the component imports something wasmpod does not provide ({e:#}); handlers may import wasmpod:serverless/* and wasi:cli, wasi:clocks, wasi:io, wasi:random, wasi:filesystem, wasi:sockets at 0.2, and HTTP handlers wasi:http/types (not wasi:http/outgoing-handler)"
            ))
        })?;
        let pre = match HandlerPre::new(instance_pre.clone()) {
            Ok(pre) => Pre::Job(pre),
            Err(job_err) => Pre::Http(HttpPre::new(instance_pre).map_err(|http_err| {
                RuntimeError::Invalid(format!(
                    "the component is neither of world wasmpod:serverless/handler@0.1.0 ({job_err:#}) nor of world http-handler ({http_err:#}); a queue handler exports `init: func() -> result<_, string>` and `handle: func(job: job-request) -> result<json, string>`, an HTTP handler exports `init` and wasi:http/incoming-handler@0.2"
                ))
            })?),
        };
        Ok(Self {
            inner: Arc::new(HandlerInner {
                runtime,
                digest,
                pre,
                source,
                load_time,
            }),
        })
    }

    /// The world the component is of.
    pub fn world(&self) -> World {
        match self.inner.pre {
            Pre::Job(_) => World::Handler,
            Pre::Http(_) => World::HttpHandler,
        }
    }

    /// sha256 of the component bytes.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }

    /// Whether the component was compiled now or loaded from the cache.
    pub fn source(&self) -> LoadSource {
        self.inner.source
    }

    /// Time spent compiling or loading it.
    pub fn load_time(&self) -> Duration {
        self.inner.load_time
    }

    /// Create an instance without calling `init` (for measuring).
    pub async fn instantiate_uninit(
        &self,
        config: &InstanceConfig,
    ) -> Result<Instance, RuntimeError> {
        Ok(self.instantiate_raw(config).await?.0)
    }

    /// A fresh store for `config`: WASI context, limits, devices, models.
    fn new_store(&self, config: &InstanceConfig) -> Store<WorkerState> {
        let output = GuestOutput::new(config.echo_output);
        output.set_sink(config.log_sink.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.stream(OutputStream::Stdout))
            .stderr(output.stream(OutputStream::Stderr));
        for (k, v) in &config.env {
            wasi.env(k, v);
        }
        let state = WorkerState {
            wasi: wasi.build(),
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: super::state::NoOutgoingHttp,
            table: ResourceTable::new(),
            limits: InstanceLimits::new(config.memory_limit),
            log: Default::default(),
            output,
            tensor: TensorCtx::new(Arc::clone(&config.devices)),
            model: ModelCtx::new(config.models.clone()),
            job: JobCtx {
                current: None,
                idle_sink: config.log_sink.clone(),
            },
            device: DeviceCtx {
                devices: Arc::clone(&config.devices),
            },
        };
        let mut store = Store::new(self.inner.runtime.engine(), state);
        store.limiter(|s| &mut s.limits);
        // wasmtime caps what one host call may copy out of the guest (128 MiB
        // by default) against hosts that allocate for a hostile guest. A
        // tensor upload is such a copy and can be larger; it can never exceed
        // the guest's linear memory, so the memory cap is the bound.
        store.set_hostcall_fuel(config.memory_limit.max(128 << 20));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
        store
    }

    /// Create an instance without calling `init`, with wasmtime's handle on
    /// the component instance (FlashBoot calls its extra exports).
    pub(crate) async fn instantiate_raw(
        &self,
        config: &InstanceConfig,
    ) -> Result<(Instance, wasmtime::component::Instance), RuntimeError> {
        let mut store = self.new_store(config);
        let instance_pre = match &self.inner.pre {
            Pre::Job(pre) => pre.instance_pre(),
            Pre::Http(pre) => pre.instance_pre(),
        };
        let raw = instance_pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| RuntimeError::Instantiate(format!("{e:#}")))?;
        let bindings = match &self.inner.pre {
            Pre::Job(_) => bindings::Handler::new(&mut store, &raw).map(Exports::Job),
            Pre::Http(pre) => pre.exports(&mut store, &raw).map(Exports::Http),
        }
        .map_err(|e| RuntimeError::Instantiate(format!("{e:#}")))?;
        let bindings = Arc::new(bindings);
        Ok((
            Instance {
                store,
                bindings,
                lost: false,
                paged_out: false,
            },
            raw,
        ))
    }

    /// Create an instance and run its `init`.
    pub async fn instantiate(&self, config: &InstanceConfig) -> Result<Instance, RuntimeError> {
        let mut instance = self.instantiate_uninit(config).await?;
        instance.run_init(config.init_timeout).await?;
        Ok(instance)
    }
}

/// A live instance of a handler: reusable across jobs until a job fails in a
/// way that loses it ([`JobError::instance_lost`]).
pub struct Instance {
    pub(crate) store: Store<WorkerState>,
    /// Shared so a call can hold them while it borrows the store.
    bindings: Arc<Exports>,
    pub(super) lost: bool,
    /// Its tensors are in a page store (FlashBoot layer 3); `handle` pages
    /// them back in first.
    pub(crate) paged_out: bool,
}

impl Instance {
    /// Run the guest's `init` under `timeout`.
    pub(crate) async fn run_init(&mut self, timeout: Duration) -> Result<(), RuntimeError> {
        let bindings = Arc::clone(&self.bindings);
        let init = async {
            match &*bindings {
                Exports::Job(b) => b.call_init(&mut self.store).await,
                Exports::Http(b) => b.call_init(&mut self.store).await,
            }
        };
        let outcome = tokio::time::timeout(timeout, init).await;
        match outcome {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(msg))) => Err(RuntimeError::Init(msg)),
            Ok(Err(trap)) => Err(RuntimeError::Init(self.describe_trap(&trap).to_string())),
            Err(_) => Err(RuntimeError::Init(format!(
                "init did not finish within {timeout:?}"
            ))),
        }
    }

    /// Run one job. `input` is the job's input as JSON text.
    pub async fn handle(
        &mut self,
        id: &str,
        input: &str,
        sink: Arc<dyn JobSink>,
        cancel: CancelSignal,
        timeout: Duration,
    ) -> Result<String, JobError> {
        let exports = Arc::clone(&self.bindings);
        let Exports::Job(bindings) = &*exports else {
            return Err(JobError::Handler(
                "this is an HTTP handler (world http-handler): it serves requests on a load-balancing endpoint, not jobs".into(),
            ));
        };
        if self.lost {
            return Err(JobError::InstanceLost);
        }
        if cancel.is_cancelled() {
            return Err(JobError::Cancelled);
        }
        if self.paged_out
            && let Err(e) = self.page_in()
        {
            self.lost = true;
            return Err(JobError::Trap(format!(
                "paging the instance's tensors back in failed: {e}"
            )));
        }
        {
            let data = self.store.data_mut();
            data.output.clear();
            data.output.set_sink(Some(Arc::clone(&sink)));
            data.limits.memory_refused = None;
            data.job.current = Some(CurrentJob {
                id: id.to_string(),
                sink,
                cancel: cancel.clone(),
            });
        }
        let request = bindings::types::JobRequest {
            id: id.to_string(),
            input: input.to_string(),
        };
        let started = Instant::now();
        let outcome = {
            let call = bindings.call_handle(&mut self.store, &request);
            tokio::select! {
                r = call => Some(r),
                _ = tokio::time::sleep(timeout) => None,
                _ = cancel.cancelled() => None,
            }
        };
        {
            let data = self.store.data_mut();
            data.job.current = None;
            data.output.set_sink(data.job.idle_sink.clone());
        }
        let result = match outcome {
            Some(Ok(Ok(output))) => match serde_json::from_str::<serde::de::IgnoredAny>(&output) {
                Ok(_) => Ok(output),
                Err(e) => Err(JobError::InvalidOutput(e.to_string())),
            },
            Some(Ok(Err(message))) => Err(JobError::Handler(message)),
            Some(Err(trap)) => Err(self.describe_trap(&trap)),
            None if cancel.is_cancelled() => Err(JobError::Cancelled),
            None => Err(JobError::Timeout(
                timeout.max(started.elapsed().min(timeout)),
            )),
        };
        if let Err(e) = &result {
            self.lost |= e.instance_lost();
        }
        result
    }

    /// Page its tensors back in if they were paged out; an instance whose
    /// tensors cannot come back is lost.
    pub(crate) fn ensure_paged_in(&mut self) -> Result<(), String> {
        if self.paged_out
            && let Err(e) = self.page_in()
        {
            self.lost = true;
            return Err(format!("paging the instance's tensors back in failed: {e}"));
        }
        Ok(())
    }

    /// The instance's exports.
    pub(crate) fn exports(&self) -> Arc<Exports> {
        Arc::clone(&self.bindings)
    }

    /// Send the guest's log calls and output outside jobs to `sink` from
    /// now on (a parked instance taken over by another worker).
    pub fn set_log_sink(&mut self, sink: Option<Arc<dyn JobSink>>) {
        let data = self.store.data_mut();
        data.output.set_sink(sink.clone());
        data.job.idle_sink = sink;
    }

    /// Marks the instance unusable (its state was lost outside a job).
    pub(crate) fn mark_lost(&mut self) {
        self.lost = true;
    }

    /// True once the instance must be replaced.
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// Bytes of tensor memory this instance's worker holds.
    pub fn tensor_bytes(&self) -> u64 {
        self.store.data().tensor.devices.account().used()
    }

    pub(crate) fn describe_trap(&mut self, trap: &wasmtime::Error) -> JobError {
        let data = self.store.data();
        if let Some(requested) = data.limits.memory_refused {
            return JobError::MemoryLimit {
                limit_mib: data.limits.memory_limit() >> 20,
                requested_mib: requested.div_ceil(1 << 20),
            };
        }
        let reason = match trap.downcast_ref::<wasmtime::Trap>() {
            Some(code) => code.to_string(),
            // A host function that failed: its own message is the root
            // cause; the outer layers are wasmtime's backtrace context.
            None => trap.root_cause().to_string(),
        };
        let tail = data.output.tail();
        let said: Vec<&str> = tail
            .lines()
            .filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
            .collect();
        let said = said.join("\n");
        let said = said.trim();
        if said.is_empty() {
            JobError::Trap(reason)
        } else {
            JobError::Trap(format!("{reason}; guest output: {said}"))
        }
    }
}
