//! The executor process: reads [`Request`]s from stdin, runs workers'
//! instances on its slice, writes [`Event`]s to stdout.
//!
//! With FlashBoot on, a worker's instances start from the snapshot taken
//! after `init` ([`FlashBoot`]), and when the worker stops they are parked:
//! their tensors and the slice's model weights are paged out to host memory
//! (pinned on a GPU, spilling to disk past the page budget) and kept for
//! the endpoint's next worker on this slice, which pages them back in bulk
//! instead of instantiating and re-reading safetensors.
//!
//! A worker of an HTTP handler serves requests that arrive on the executor's
//! HTTP link ([`super::http`]), one per instance at a time, instead of jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::protocol::{Event, ParkReport, Request, SliceSpec, WorkerSpec, WorkerStarted};
use crate::gpu::{ModelStore, WorkerDevices};
use crate::runtime::{
    BootLayer, CancelSignal, FlashBoot, Handler, Instance, InstanceConfig, JobError, JobSink,
    LogLevel, OutputStream, Runtime, RuntimeConfig, SnapshotStore,
};
use wasmpod_tensor::{Device, PageStore};

/// Errors that stop the executor.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("executor i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// How a worker makes instances.
#[derive(Clone)]
enum Starter {
    Plain(Handler),
    /// Through the snapshot store; `wasm` is the handler as uploaded.
    FlashBoot(Arc<Vec<u8>>),
}

/// One worker: its handler, config, and idle instances.
struct Worker {
    endpoint: String,
    digest: String,
    spec: WorkerSpec,
    starter: Starter,
    config: InstanceConfig,
    idle: Vec<Instance>,
}

/// A stopped FlashBoot worker's instances, paged out, waiting for the
/// endpoint's next worker with the same handler and settings.
struct Parked {
    digest: String,
    spec: WorkerSpec,
    /// The worker's starter (holding the handler it checked), so a restore
    /// neither reads nor hashes the handler file again.
    starter: Starter,
    /// The stopped worker's config: the restored instances hold its
    /// devices and tensor account, so the next worker takes it over whole.
    config: InstanceConfig,
    instances: Vec<Instance>,
}

struct Executor {
    slice: SliceSpec,
    runtime: Runtime,
    /// The slice's model cache: one store per models directory, its weights
    /// uploaded once to the slice's first device and shared read-only by
    /// every worker the slice serves, now and later (so a new worker on a
    /// warm executor does not reload them). They are charged to the slice's
    /// own account, not to one worker's quota, as they are not one
    /// worker's.
    models: Mutex<HashMap<PathBuf, Arc<ModelStore>>>,
    model_device: OnceLock<Result<Device, String>>,
    workers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Worker>>>>,
    running: Mutex<HashMap<String, CancelSignal>>,
    events: mpsc::UnboundedSender<Event>,
    flashboot: FlashBoot,
    /// Host memory (and spill files) for parked tensors and weights.
    pages: Arc<PageStore>,
    /// Parked instances by endpoint: one set per endpoint, replaced when
    /// the endpoint parks again, dropped when a worker of other settings
    /// or another handler version starts.
    parked: Mutex<HashMap<String, Parked>>,
}

/// Forwards a job's reports to the host as events; without a job, a
/// worker's log calls and output (its instances' sink outside jobs).
struct EventSink {
    job: Option<String>,
    worker: String,
    events: mpsc::UnboundedSender<Event>,
}

impl EventSink {
    fn worker(worker: &str, events: &mpsc::UnboundedSender<Event>) -> Arc<dyn JobSink> {
        Arc::new(Self {
            job: None,
            worker: worker.to_string(),
            events: events.clone(),
        })
    }
}

impl JobSink for EventSink {
    fn progress(&self, value: serde_json::Value) {
        if let Some(job) = &self.job {
            let _ = self.events.send(Event::Progress {
                job: job.clone(),
                value,
            });
        }
    }
    fn stream(&self, chunk: serde_json::Value) {
        if let Some(job) = &self.job {
            let _ = self.events.send(Event::Stream {
                job: job.clone(),
                chunk,
            });
        }
    }
    fn log(&self, level: LogLevel, message: &str) {
        let level = format!("{level:?}").to_lowercase();
        let _ = self.events.send(Event::Log {
            job: self.job.clone(),
            worker: Some(self.worker.clone()),
            level,
            message: message.to_string(),
        });
    }
    fn output(&self, stream: OutputStream, line: &str) {
        let _ = self.events.send(Event::Output {
            job: self.job.clone(),
            worker: Some(self.worker.clone()),
            stream,
            line: line.to_string(),
        });
    }
}

/// The slice's first device, on the slice's own account (for the model
/// cache). On a GPU slice this creates the CUDA context (hundreds of ms,
/// and the driver's files opened): `wasmpod executor` does it before its
/// sandbox closes and before it waits for work, so the next worker's cold
/// start does not pay it.
pub fn slice_device(slice: &SliceSpec) -> Result<Device, String> {
    // Same process, same CUDA context as the workers' devices: their ops
    // read these tensors directly.
    let devices = if slice.cuda {
        WorkerDevices::cuda(u64::MAX).map_err(|e| format!("slice {}: {e}", slice.id))?
    } else {
        WorkerDevices::cpu(u64::MAX)
    };
    Ok(devices.primary().clone())
}

type Input = Box<dyn AsyncRead + Unpin + Send>;
type Output = Box<dyn AsyncWrite + Unpin + Send>;

/// Our stdin and stdout. The host connects both to pipes: those are read
/// and written through the reactor (non-blocking, epoll), because tokio's
/// own stdin and stdout hand every read and write to a blocking thread and
/// back, two thread switches per message, measured as the executor's
/// largest cost under load. Anything else (a terminal, a file) falls back
/// to tokio's.
fn stdio() -> (Input, Output) {
    use std::os::fd::AsFd;
    use tokio::net::unix::pipe;
    let dup = |fd: std::os::fd::BorrowedFd<'_>| fd.try_clone_to_owned().map(std::fs::File::from);
    let input: Input = match dup(std::io::stdin().as_fd()).and_then(pipe::Receiver::from_file) {
        Ok(rx) => Box::new(rx),
        Err(_) => Box::new(tokio::io::stdin()),
    };
    let output: Output = match dup(std::io::stdout().as_fd()).and_then(pipe::Sender::from_file) {
        Ok(tx) => Box::new(tx),
        Err(_) => Box::new(tokio::io::stdout()),
    };
    (input, output)
}

/// Serve `slice` until stdin closes (the host went away or stopped us).
/// `device` is [`slice_device`]'s result when the caller made it already.
/// Parked state may hold up to `page_budget` bytes of host memory; the
/// rest spills under the cache directory. `http_listener` is the HTTP
/// link's socket ([`super::http::bind`]), bound before the sandbox closed.
pub async fn serve(
    slice: SliceSpec,
    device: Option<Result<Device, String>>,
    cache_dir: Option<std::path::PathBuf>,
    page_budget: u64,
    max_instances: Option<u32>,
    http_listener: Option<std::os::unix::net::UnixListener>,
) -> Result<(), ServeError> {
    let state_dir = cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("wasmpod-executor"));
    // Spill files of a previous process for this slice died with it.
    let spill_dir = state_dir.join("paging").join(&slice.id);
    let _ = std::fs::remove_dir_all(&spill_dir);
    let mut config = RuntimeConfig {
        cache_dir,
        ..Default::default()
    };
    if let Some(n) = max_instances {
        config.limits.max_instances = n;
    }
    let runtime = Runtime::new(&config)?;
    let flashboot = FlashBoot::new(
        runtime.clone(),
        SnapshotStore::new(state_dir.join("snapshots")),
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let (stdin, mut stdout) = stdio();
    let writer = tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(event) = rx.recv().await {
            // Everything that is ready goes in one write: under load, many
            // jobs' ends cost one system call and one wake-up of the host.
            buf.clear();
            let mut next = Some(event);
            while let Some(event) = next.take() {
                serde_json::to_writer(&mut buf, &event).expect("events serialize");
                buf.push(b'\n');
                if buf.len() < 1 << 20 {
                    next = rx.try_recv().ok();
                }
            }
            if stdout.write_all(&buf).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let exec = Arc::new(Executor {
        slice,
        runtime,
        models: Mutex::default(),
        model_device: device.map(OnceLock::from).unwrap_or_default(),
        workers: Mutex::default(),
        running: Mutex::default(),
        events: tx.clone(),
        flashboot,
        pages: PageStore::new(page_budget, spill_dir),
        parked: Mutex::default(),
    });
    if exec.slice.cuda
        && let Err(e) = exec.slice_device()
    {
        tracing::error!("executor: {e}");
    }
    if let Some(listener) = http_listener {
        let exec = Arc::clone(&exec);
        super::http::listen(listener, move |req| {
            let exec = Arc::clone(&exec);
            async move { exec.serve_request(req).await }
        })?;
    }
    let _ = tx.send(Event::Ready {
        pid: std::process::id(),
    });

    let mut lines = BufReader::new(stdin).lines();
    while let Some(line) = lines.next_line().await? {
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("executor: unreadable request {line:?}: {e}");
                continue;
            }
        };
        let exec = Arc::clone(&exec);
        match request {
            Request::StartWorker {
                worker,
                endpoint,
                wasm_path,
                digest,
                spec,
            } => {
                tokio::spawn(async move {
                    exec.start_worker(worker, endpoint, wasm_path, digest, spec)
                        .await
                });
            }
            Request::RunJob {
                worker,
                job,
                input,
                timeout_ms,
            } => {
                tokio::spawn(async move {
                    exec.run_job(worker, job, input, Duration::from_millis(timeout_ms))
                        .await
                });
            }
            Request::Cancel { job } => {
                if let Some(c) = exec.running.lock().expect("running lock").get(&job) {
                    c.cancel();
                }
            }
            Request::StopWorker { worker, park } => {
                tokio::spawn(async move { exec.stop_worker(worker, park).await });
            }
            Request::ReleaseParked { endpoint } => {
                if let Some(p) = exec.parked.lock().expect("parked lock").remove(&endpoint) {
                    p.release();
                }
            }
        }
    }
    // stdin closed: the host is gone or stopped us. Cancel what still runs
    // rather than finish work nobody will read, and exit soon either way
    // (a GPU process lingering would hold the slice's memory).
    for cancel in exec.running.lock().expect("running lock").values() {
        cancel.cancel();
    }
    drop(exec);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer).await;
    Ok(())
}

impl Executor {
    /// The slice's first device, on the slice's own account (for the model
    /// cache).
    fn slice_device(&self) -> Result<Device, String> {
        self.model_device
            .get_or_init(|| slice_device(&self.slice))
            .clone()
    }

    /// The slice's model store for `dir`.
    fn model_store(&self, dir: &Path) -> Result<Arc<ModelStore>, String> {
        let device = self.slice_device()?;
        Ok(Arc::clone(
            self.models
                .lock()
                .expect("models lock")
                .entry(dir.to_path_buf())
                .or_insert_with(|| ModelStore::new(dir, device)),
        ))
    }

    fn devices(&self, quota: u64) -> Result<Arc<WorkerDevices>, String> {
        if self.slice.cuda {
            // CUDA_VISIBLE_DEVICES pins this process to the slice, so every
            // device CUDA shows is one of the slice's; the guest sees the
            // slice's inventory names (uuid, MIG profile) for them.
            let cuda =
                WorkerDevices::cuda(quota).map_err(|e| format!("slice {}: {e}", self.slice.id))?;
            if cuda.len() != self.slice.devices.len() {
                return Err(format!(
                    "slice {} declares {} GPUs but CUDA shows {} (CUDA_VISIBLE_DEVICES={:?})",
                    self.slice.id,
                    self.slice.devices.len(),
                    cuda.len(),
                    self.slice.cuda_visible_devices
                ));
            }
            let devices = (0..cuda.len())
                .map(|i| {
                    let device = cuda.device(i).expect("index in range").clone();
                    (self.slice.devices[i].clone(), device)
                })
                .collect();
            return Ok(WorkerDevices::new(devices, Arc::clone(cuda.account())));
        }
        // Simulated and CPU slices compute on the CPU backend; the guest
        // still sees the slice's declared devices.
        let cpu = WorkerDevices::cpu(quota);
        let devices = self
            .slice
            .devices
            .iter()
            .map(|info| (info.clone(), cpu.primary().clone()))
            .collect();
        Ok(WorkerDevices::new(devices, Arc::clone(cpu.account())))
    }

    async fn start_worker(
        &self,
        worker: String,
        endpoint: String,
        wasm_path: std::path::PathBuf,
        digest: String,
        spec: WorkerSpec,
    ) {
        let started = Instant::now();
        let result = self
            .start_instances(&worker, &endpoint, &wasm_path, &digest, &spec)
            .await;
        let event = match result {
            Ok((w, boot, note)) => {
                self.workers
                    .lock()
                    .expect("workers lock")
                    .insert(worker.clone(), Arc::new(tokio::sync::Mutex::new(w)));
                Event::WorkerReady {
                    worker,
                    started: WorkerStarted {
                        init_ms: started.elapsed().as_secs_f64() * 1e3,
                        boot,
                        note,
                    },
                }
            }
            Err(error) => Event::WorkerFailed { worker, error },
        };
        let _ = self.events.send(event);
    }

    /// The worker's instances, by the fastest way its settings allow:
    /// the endpoint's parked instances paged back in, else FlashBoot (a
    /// snapshot taken after `init`), else load + instantiate + `init`.
    async fn start_instances(
        &self,
        worker_id: &str,
        endpoint: &str,
        wasm_path: &Path,
        digest: &str,
        spec: &WorkerSpec,
    ) -> Result<(Worker, BootLayer, Option<String>), String> {
        let parked = self.parked.lock().expect("parked lock").remove(endpoint);
        let parked = match parked {
            Some(p) if p.digest == digest && &p.spec == spec && spec.flashboot => Some(p),
            // Another handler version or other settings: never restored.
            Some(stale) => {
                stale.release();
                None
            }
            None => None,
        };
        let restored = parked.and_then(|p| {
            self.unpark(p)
                .inspect_err(|e| {
                    tracing::warn!(endpoint, "parked instances lost, starting anew: {e}")
                })
                .ok()
        });
        let log_sink = EventSink::worker(worker_id, &self.events);
        let (starter, config, mut idle, mut first) = match restored {
            Some((starter, mut config, mut idle)) => {
                // The parked instances now log as this worker.
                config.log_sink = Some(Arc::clone(&log_sink));
                for instance in &mut idle {
                    instance.set_log_sink(Some(Arc::clone(&log_sink)));
                }
                (starter, config, idle, Some((BootLayer::VramRestored, None)))
            }
            None => {
                let (starter, mut config) = self.prepare(wasm_path, digest, spec).await?;
                config.log_sink = Some(log_sink);
                (starter, config, Vec::new(), None)
            }
        };
        let mut worker = Worker {
            endpoint: endpoint.to_string(),
            digest: digest.to_string(),
            spec: spec.clone(),
            starter,
            config,
            idle: Vec::new(),
        };
        // Up to `concurrency` instances (a restore may bring fewer).
        let maker = worker.maker();
        while idle.len() < spec.concurrency.max(1) as usize {
            let (instance, boot, note) = maker.make(self).await?;
            first.get_or_insert((boot, note));
            idle.push(instance);
        }
        worker.idle = idle;
        let (boot, note) = first.expect("at least one instance");
        Ok((worker, boot, note))
    }

    /// A new worker's starter and config: the handler file checked against
    /// its digest, the slice's devices on the worker's quota, its models.
    async fn prepare(
        &self,
        wasm_path: &Path,
        digest: &str,
        spec: &WorkerSpec,
    ) -> Result<(Starter, InstanceConfig), String> {
        let wasm = tokio::fs::read(wasm_path)
            .await
            .map_err(|e| format!("reading handler {}: {e}", wasm_path.display()))?;
        if crate::runtime::digest(&wasm) != digest {
            return Err(format!(
                "handler file {} does not have digest {digest}",
                wasm_path.display()
            ));
        }
        let devices = self.devices(spec.tensor_quota)?;
        let models = match &spec.models_dir {
            Some(dir) => Some(self.model_store(dir)?),
            None => None,
        };
        let config = InstanceConfig {
            devices,
            models,
            memory_limit: spec.memory_limit as usize,
            env: spec.env.clone(),
            echo_output: false,
            log_sink: None,
            init_timeout: Duration::from_secs(600),
        };
        let starter = if spec.flashboot {
            Starter::FlashBoot(Arc::new(wasm))
        } else {
            Starter::Plain(self.runtime.load(&wasm).map_err(|e| e.to_string())?)
        };
        Ok((starter, config))
    }

    /// Pages a parked worker's instances back in: the slice's weights in
    /// bulk first, then each instance's own tensors.
    fn unpark(&self, parked: Parked) -> Result<(Starter, InstanceConfig, Vec<Instance>), String> {
        tokio::task::block_in_place(|| {
            if let Some(models) = &parked.config.models {
                models.page_in().map_err(|e| e.to_string())?;
            }
            let mut idle = Vec::new();
            for mut instance in parked.instances {
                instance.page_in().map_err(|e| e.to_string())?;
                idle.push(instance);
            }
            Ok((parked.starter, parked.config, idle))
        })
    }

    /// Stop a worker; with `park`, keep its instances paged out for the
    /// endpoint's next worker.
    async fn stop_worker(&self, worker: String, park: bool) {
        let removed = self.workers.lock().expect("workers lock").remove(&worker);
        let mut parked = None;
        let mut error = None;
        if let Some(slot) = removed
            && park
        {
            let w = slot.lock().await;
            if w.spec.flashboot && !w.idle.is_empty() {
                drop(w);
                // Lanes have ended, so the worker's instances are all idle
                // and this is the last handle on it.
                match Arc::try_unwrap(slot) {
                    Ok(w) => match self.park(w.into_inner()) {
                        Ok(report) => parked = Some(report),
                        Err(e) => error = Some(e),
                    },
                    Err(_) => error = Some("the worker still runs jobs; not parked".into()),
                }
            }
        }
        let _ = self.events.send(Event::WorkerStopped {
            worker,
            parked,
            error,
        });
    }

    fn park(&self, mut w: Worker) -> Result<ParkReport, String> {
        let started = Instant::now();
        let mut report = ParkReport::default();
        tokio::task::block_in_place(|| {
            for instance in &mut w.idle {
                let stats = instance.page_out(&self.pages).map_err(|e| e.to_string())?;
                report.tensors += stats.tensors;
                report.bytes += stats.bytes;
            }
            // The weights are the slice's, shared with other workers of the
            // same models directory: page them out only when none runs.
            let shared = w.spec.models_dir.as_ref().is_some_and(|dir| {
                self.workers
                    .lock()
                    .expect("workers lock")
                    .values()
                    .any(|other| {
                        other
                            .try_lock()
                            .map(|o| o.spec.models_dir.as_ref() == Some(dir))
                            .unwrap_or(true)
                    })
            });
            if let (Some(models), false) = (&w.config.models, shared) {
                let stats = models.page_out(&self.pages).map_err(|e| e.to_string())?;
                report.tensors += stats.tensors;
                report.bytes += stats.bytes;
            }
            Ok::<(), String>(())
        })?;
        report.instances = w.idle.len();
        report.ms = started.elapsed().as_secs_f64() * 1e3;
        let parked = Parked {
            digest: w.digest,
            spec: w.spec,
            starter: w.starter,
            config: w.config,
            instances: w.idle,
        };
        let replaced = self
            .parked
            .lock()
            .expect("parked lock")
            .insert(w.endpoint, parked);
        if let Some(old) = replaced {
            old.release();
        }
        Ok(report)
    }

    async fn run_job(&self, worker: String, job: String, input: String, timeout: Duration) {
        let result = self.run_job_inner(&worker, &job, &input, timeout).await;
        self.running.lock().expect("running lock").remove(&job);
        let _ = self.events.send(Event::JobDone { job, result });
    }

    async fn run_job_inner(
        &self,
        worker: &str,
        job: &str,
        input: &str,
        timeout: Duration,
    ) -> Result<String, JobError> {
        let slot = self
            .workers
            .lock()
            .expect("workers lock")
            .get(worker)
            .cloned();
        let Some(slot) = slot else {
            return Err(JobError::Trap(format!(
                "worker {worker} is not running on this executor"
            )));
        };
        let (instance, maker) = {
            let mut w = slot.lock().await;
            (w.idle.pop(), w.maker())
        };
        let mut instance = match instance {
            Some(i) => i,
            // More jobs than instances (or a lost one not yet replaced):
            // make another; the host bounds concurrency.
            None => maker.make(self).await.map_err(JobError::Trap)?.0,
        };
        let cancel = CancelSignal::new();
        self.running
            .lock()
            .expect("running lock")
            .insert(job.to_string(), cancel.clone());
        let sink = Arc::new(EventSink {
            job: Some(job.to_string()),
            worker: worker.to_string(),
            events: self.events.clone(),
        });
        let result = instance.handle(job, input, sink, cancel, timeout).await;
        if instance.is_lost() {
            // Replace the lost instance now so the next job starts warm.
            if let Ok((fresh, ..)) = maker.make(self).await {
                slot.lock().await.idle.push(fresh);
            }
        } else {
            slot.lock().await.idle.push(instance);
        }
        result
    }
}

impl Executor {
    /// Serve one request of an HTTP handler's worker on one of its idle
    /// instances (a new one if all are busy: the host bounds how many run
    /// at once). The answer comes back as soon as the handler sets it; the
    /// instance goes back to the worker when the handler returns, or a
    /// fresh one replaces it if it was lost (trap, timeout).
    async fn serve_request(
        self: Arc<Self>,
        mut req: hyper::Request<hyper::body::Incoming>,
    ) -> hyper::Response<crate::runtime::HttpBody> {
        use super::http::{REQUEST_HEADER, TIMEOUT_HEADER, WORKER_HEADER};
        use hyper::StatusCode;
        let headers = req.headers_mut();
        let text = |v: Option<hyper::header::HeaderValue>| {
            v.and_then(|v| v.to_str().ok().map(str::to_string))
        };
        let worker = text(headers.remove(WORKER_HEADER)).unwrap_or_default();
        let id = text(headers.remove(REQUEST_HEADER)).unwrap_or_default();
        let timeout = text(headers.remove(TIMEOUT_HEADER))
            .and_then(|t| t.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(crate::runtime::DEFAULT_TIMEOUT);
        let slot = self
            .workers
            .lock()
            .expect("workers lock")
            .get(&worker)
            .cloned();
        let Some(slot) = slot else {
            return crate::runtime::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-worker",
                &format!("worker {worker} is not running on this executor"),
            );
        };
        let (instance, maker) = {
            let mut w = slot.lock().await;
            (w.idle.pop(), w.maker())
        };
        let instance = match instance {
            Some(i) => i,
            None => match maker.make(&self).await {
                Ok((i, ..)) => i,
                Err(e) => {
                    return crate::runtime::error_response(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "start-failed",
                        &format!("starting another instance failed: {e}"),
                    );
                }
            },
        };
        let (response, done) = crate::runtime::respond(instance, id, req, timeout).await;
        tokio::spawn(async move {
            let Ok((instance, _)) = done.await else {
                return;
            };
            if instance.is_lost() {
                // Replace it now so the next request starts warm.
                if let Ok((fresh, ..)) = maker.make(&self).await {
                    slot.lock().await.idle.push(fresh);
                }
            } else {
                slot.lock().await.idle.push(instance);
            }
        });
        response
    }
}

impl Parked {
    /// Frees the parked state off the async threads: unpinning gigabytes of
    /// host memory takes a while.
    fn release(self) {
        tokio::task::spawn_blocking(move || drop(self));
    }
}

/// What makes one more instance of a worker (cloned out of its lock).
struct Maker {
    starter: Starter,
    config: InstanceConfig,
}

impl Maker {
    async fn make(&self, exec: &Executor) -> Result<(Instance, BootLayer, Option<String>), String> {
        match &self.starter {
            Starter::Plain(handler) => {
                let boot = match handler.source() {
                    crate::runtime::LoadSource::Compiled => BootLayer::Cold,
                    crate::runtime::LoadSource::Cached => BootLayer::CodeCached,
                };
                let instance = handler
                    .instantiate(&self.config)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((instance, boot, None))
            }
            Starter::FlashBoot(wasm) => {
                let (instance, report) = exec
                    .flashboot
                    .start(wasm, &self.config)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((instance, report.layer, report.note))
            }
        }
    }
}

impl Worker {
    fn maker(&self) -> Maker {
        Maker {
            starter: self.starter.clone(),
            config: self.config.clone(),
        }
    }
}
