//! The host's handle on one executor process: spawn it pinned to its slice,
//! send requests, route events back to the waiting jobs, and fail them all
//! at once if the process dies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Notify, mpsc, oneshot};

use super::http::HttpLink;
use super::protocol::{Event, ParkReport, Request, SliceSpec, WorkerSpec, WorkerStarted};
use super::sandbox::SandboxPolicy;
use crate::runtime::{JobError, JobSink, LogLevel};

/// Why an executor could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecutorError {
    #[error("could not start the executor for slice {slice}: {message}")]
    Spawn { slice: String, message: String },
    #[error("the executor for slice {0} died")]
    Died(String),
    #[error("worker failed to start: {0}")]
    WorkerFailed(String),
}

/// How a job ended on the executor (its handler's output or error).
pub type JobReply = Result<String, JobError>;

/// Where a job's end is reported: one waiting call, or a worker's channel
/// of `(job id, reply)` shared by all its jobs.
enum Done {
    Once(oneshot::Sender<JobReply>),
    Channel(mpsc::UnboundedSender<(String, JobReply)>),
}

struct PendingJob {
    sink: Arc<dyn JobSink>,
    done: Done,
}

/// One job to start on an executor.
pub struct JobRun<'a> {
    pub job: &'a str,
    pub input: &'a str,
    pub timeout: Duration,
    pub sink: Arc<dyn JobSink>,
}

type StopReply = (Option<ParkReport>, Option<String>);

#[derive(Default)]
struct Routes {
    workers: HashMap<String, oneshot::Sender<Result<WorkerStarted, String>>>,
    stops: HashMap<String, oneshot::Sender<StopReply>>,
    jobs: HashMap<String, PendingJob>,
    /// Where a worker's log calls and output outside jobs go.
    worker_logs: HashMap<String, Arc<dyn JobSink>>,
}

impl Routes {
    /// The sink of a line from `job`, else from `worker` outside a job.
    fn log_sink(&self, job: &Option<String>, worker: &Option<String>) -> Option<&Arc<dyn JobSink>> {
        match job {
            Some(j) => self.jobs.get(j).map(|p| &p.sink),
            None => worker.as_ref().and_then(|w| self.worker_logs.get(w)),
        }
    }
}

/// An endpoint's worker parked on this executor (FlashBoot).
#[derive(Debug, Clone)]
pub struct ParkedWorker {
    /// The handler version whose instances are parked.
    pub handler: String,
    pub report: ParkReport,
}

/// The death of an executor process, awaitable without holding it.
pub struct Death {
    alive: Arc<AtomicBool>,
    exited: Arc<Notify>,
}

impl Death {
    pub async fn wait(&self) {
        loop {
            let notified = self.exited.notified();
            if !self.alive.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// A running executor process.
pub struct ExecutorProcess {
    slice: SliceSpec,
    /// What it was started allowed to touch.
    sandbox: SandboxPolicy,
    pid: u32,
    stdin: tokio::sync::Mutex<ChildStdin>,
    routes: Arc<Mutex<Routes>>,
    alive: Arc<AtomicBool>,
    exited: Arc<Notify>,
    child: Mutex<Option<Child>>,
    /// What the process holds parked, by endpoint (gone with the process).
    parked: Mutex<HashMap<String, ParkedWorker>>,
    /// The HTTP link for HTTP handlers' requests.
    http: HttpLink,
}

impl ExecutorProcess {
    /// Start `exe executor` for `slice`, sandboxed by `sandbox` (its cache
    /// is writable besides), and wait until it is ready.
    pub async fn spawn(
        exe: &Path,
        slice: SliceSpec,
        cache_dir: Option<PathBuf>,
        page_budget: u64,
        sandbox: SandboxPolicy,
        max_instances: Option<u32>,
    ) -> Result<Arc<Self>, ExecutorError> {
        let spawn_err = |message: String| ExecutorError::Spawn {
            slice: slice.id.clone(),
            message,
        };
        let socket = super::http::socket_path();
        let mut cmd = Command::new(exe);
        cmd.arg("executor")
            .arg("--http-socket")
            .arg(&socket)
            .arg("--slice")
            .arg(serde_json::to_string(&slice).expect("slice serializes"))
            .arg("--page-budget")
            .arg(page_budget.to_string())
            .args(sandbox.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(dir) = &cache_dir {
            cmd.arg("--cache-dir").arg(dir);
            // The CUDA driver's JIT cache, where the sandbox lets it write.
            cmd.env("CUDA_CACHE_PATH", dir.join("cuda"));
        }
        if let Some(n) = max_instances {
            cmd.arg("--max-instances").arg(n.to_string());
        }
        // The executor runs untrusted guests: it gets none of the host's
        // secrets (a guest escaping its sandbox must not find the admin key
        // or the database URL in its process's environment).
        for secret in ["WASMPOD_ADMIN_KEY", "WASMPOD_DATABASE_URL"] {
            cmd.env_remove(secret);
        }
        match &slice.cuda_visible_devices {
            Some(v) => cmd.env("CUDA_VISIBLE_DEVICES", v),
            // A CPU or simulated slice must not touch a GPU.
            None => cmd.env("CUDA_VISIBLE_DEVICES", ""),
        };
        let mut child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();

        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        let pid = match ready {
            Ok(Ok(Some(line))) => match serde_json::from_str::<Event>(&line) {
                Ok(Event::Ready { pid }) => pid,
                other => return Err(spawn_err(format!("unexpected first message {other:?}"))),
            },
            Ok(Ok(None)) => return Err(spawn_err("it exited before becoming ready".into())),
            Ok(Err(e)) => return Err(spawn_err(e.to_string())),
            Err(_) => return Err(spawn_err("not ready within 60 s".into())),
        };

        let http = HttpLink::connect(&socket)
            .await
            .map_err(|e| spawn_err(format!("connecting to its HTTP link: {e}")))?;
        let routes: Arc<Mutex<Routes>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let exited = Arc::new(Notify::new());
        let this = Arc::new(Self {
            slice: slice.clone(),
            sandbox,
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            routes: Arc::clone(&routes),
            alive: Arc::clone(&alive),
            exited: Arc::clone(&exited),
            child: Mutex::new(Some(child)),
            parked: Mutex::default(),
            http,
        });
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<Event>(&line) {
                    Ok(event) => route(&routes, event),
                    Err(e) => {
                        tracing::error!(slice = %slice.id, "unreadable executor event {line:?}: {e}")
                    }
                }
            }
            // stdout closed: the process is gone. Fail everything waiting.
            let mut r = routes.lock().expect("routes lock");
            alive.store(false, Ordering::SeqCst);
            for (_, w) in r.workers.drain() {
                let _ = w.send(Err(format!("the executor for slice {} died", slice.id)));
            }
            r.stops.clear();
            r.worker_logs.clear();
            r.jobs.clear(); // dropping the senders wakes the waiters with Died
            exited.notify_waiters();
        });
        Ok(this)
    }

    pub fn slice(&self) -> &SliceSpec {
        &self.slice
    }

    pub fn sandbox(&self) -> &SandboxPolicy {
        &self.sandbox
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The HTTP link to the process (load-balancing endpoints' requests).
    pub fn http(&self) -> &HttpLink {
        &self.http
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Resolves when the process has died.
    pub async fn died(&self) {
        self.death().wait().await
    }

    /// What [`Self::died`] waits on, for a watcher that must not keep the
    /// process alive (it is killed when its last handle is dropped).
    pub fn death(&self) -> Death {
        Death {
            alive: Arc::clone(&self.alive),
            exited: Arc::clone(&self.exited),
        }
    }

    async fn send(&self, request: &Request) -> Result<(), ExecutorError> {
        let mut line = serde_json::to_vec(request).expect("requests serialize");
        line.push(b'\n');
        self.write_all(&line).await
    }

    async fn write_all(&self, bytes: &[u8]) -> Result<(), ExecutorError> {
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(bytes)
            .await
            .map_err(|_| ExecutorError::Died(self.slice.id.clone()))?;
        stdin
            .flush()
            .await
            .map_err(|_| ExecutorError::Died(self.slice.id.clone()))
    }

    /// Start a worker of `endpoint` and wait for its instances to be ready
    /// (`init` run, or restored). It takes over the endpoint's parked
    /// instances if their handler and settings are the same.
    pub async fn start_worker(
        &self,
        worker: &str,
        endpoint: &str,
        wasm_path: &Path,
        digest: &str,
        spec: WorkerSpec,
    ) -> Result<WorkerStarted, ExecutorError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self.routes.lock().expect("routes lock");
            if !self.is_alive() {
                return Err(ExecutorError::Died(self.slice.id.clone()));
            }
            routes.workers.insert(worker.to_string(), tx);
        }
        let sent = self
            .send(&Request::StartWorker {
                worker: worker.to_string(),
                endpoint: endpoint.to_string(),
                wasm_path: wasm_path.to_path_buf(),
                digest: digest.to_string(),
                spec,
            })
            .await;
        if let Err(e) = sent {
            self.routes
                .lock()
                .expect("routes lock")
                .workers
                .remove(worker);
            return Err(e);
        }
        // Whatever was parked for the endpoint is taken or discarded now.
        self.parked.lock().expect("parked lock").remove(endpoint);
        match rx.await {
            Ok(Ok(started)) => Ok(started),
            Ok(Err(e)) => Err(ExecutorError::WorkerFailed(e)),
            Err(_) => Err(ExecutorError::Died(self.slice.id.clone())),
        }
    }

    /// Send `worker`'s log calls and output outside jobs (its `init`, and
    /// between jobs) to `sink`; None stops that (the worker ended).
    pub fn set_worker_log(&self, worker: &str, sink: Option<Arc<dyn JobSink>>) {
        let mut routes = self.routes.lock().expect("routes lock");
        match sink {
            Some(s) => {
                routes.worker_logs.insert(worker.to_string(), s);
            }
            None => {
                routes.worker_logs.remove(worker);
            }
        }
    }

    /// Run a job on `worker`; progress, chunks and logs go to `sink` as they
    /// arrive. `Err` means the executor died: the job did not finish.
    pub async fn run_job(
        &self,
        worker: &str,
        job: &str,
        input: &str,
        timeout: Duration,
        sink: Arc<dyn JobSink>,
    ) -> Result<JobReply, ExecutorError> {
        let (tx, rx) = oneshot::channel();
        {
            // Checked under the routes lock: once the reader has drained the
            // routes of a dead process, nothing inserted later would ever be
            // answered (and its sink never dropped).
            let mut routes = self.routes.lock().expect("routes lock");
            if !self.is_alive() {
                return Err(ExecutorError::Died(self.slice.id.clone()));
            }
            routes.jobs.insert(
                job.to_string(),
                PendingJob {
                    sink,
                    done: Done::Once(tx),
                },
            );
        }
        let sent = self
            .send(&Request::RunJob {
                worker: worker.to_string(),
                job: job.to_string(),
                input: input.to_string(),
                timeout_ms: timeout.as_millis() as u64,
            })
            .await;
        if let Err(e) = sent {
            self.routes.lock().expect("routes lock").jobs.remove(job);
            return Err(e);
        }
        rx.await
            .map_err(|_| ExecutorError::Died(self.slice.id.clone()))
    }

    /// Start jobs on `worker` without waiting for them: all their requests
    /// go in one write, and each job's end arrives on `done` as `(job id,
    /// reply)`. `Err` means the executor is dead and none of them started;
    /// one that dies later drops them (the caller watches [`Self::died`]).
    pub async fn start_jobs(
        &self,
        worker: &str,
        runs: Vec<JobRun<'_>>,
        done: &mpsc::UnboundedSender<(String, JobReply)>,
    ) -> Result<(), ExecutorError> {
        let mut lines = Vec::new();
        {
            let mut routes = self.routes.lock().expect("routes lock");
            if !self.is_alive() {
                return Err(ExecutorError::Died(self.slice.id.clone()));
            }
            for run in &runs {
                routes.jobs.insert(
                    run.job.to_string(),
                    PendingJob {
                        sink: Arc::clone(&run.sink),
                        done: Done::Channel(done.clone()),
                    },
                );
            }
        }
        for run in &runs {
            let request = Request::RunJob {
                worker: worker.to_string(),
                job: run.job.to_string(),
                input: run.input.to_string(),
                timeout_ms: run.timeout.as_millis() as u64,
            };
            serde_json::to_writer(&mut lines, &request).expect("requests serialize");
            lines.push(b'\n');
        }
        let sent = self.write_all(&lines).await;
        if sent.is_err() {
            let mut routes = self.routes.lock().expect("routes lock");
            for run in &runs {
                routes.jobs.remove(run.job);
            }
        }
        sent
    }

    /// Ask the executor to cancel a running job (it then reports Cancelled).
    pub async fn cancel(&self, job: &str) {
        let _ = self
            .send(&Request::Cancel {
                job: job.to_string(),
            })
            .await;
    }

    /// Stop a worker. With `park` (endpoint id and handler digest of a
    /// FlashBoot worker) its instances are paged out and kept for the
    /// endpoint's next worker; waits until that is done, so the slice's
    /// device memory is free when this returns.
    pub async fn stop_worker(&self, worker: &str, park: Option<(&str, &str)>) {
        let (tx, rx) = oneshot::channel();
        {
            let mut routes = self.routes.lock().expect("routes lock");
            if !self.is_alive() {
                return;
            }
            routes.stops.insert(worker.to_string(), tx);
        }
        let sent = self
            .send(&Request::StopWorker {
                worker: worker.to_string(),
                park: park.is_some(),
            })
            .await;
        if sent.is_err() {
            self.routes
                .lock()
                .expect("routes lock")
                .stops
                .remove(worker);
            return;
        }
        let Ok((report, error)) = rx.await else {
            return; // died
        };
        if let Some(e) = error {
            tracing::warn!(worker, slice = %self.slice.id, "parking the worker's instances failed: {e}");
        }
        if let (Some((endpoint, handler)), Some(report)) = (park, report) {
            tracing::debug!(worker, slice = %self.slice.id, bytes = report.bytes, ms = report.ms, "worker parked");
            self.parked.lock().expect("parked lock").insert(
                endpoint.to_string(),
                ParkedWorker {
                    handler: handler.to_string(),
                    report,
                },
            );
        }
    }

    /// The endpoint's parked worker here, if the process is alive and holds
    /// one.
    pub fn parked(&self, endpoint: &str) -> Option<ParkedWorker> {
        if !self.is_alive() {
            return None;
        }
        self.parked
            .lock()
            .expect("parked lock")
            .get(endpoint)
            .cloned()
    }

    /// Drop the endpoint's parked worker, if this process holds one.
    pub fn release_parked(self: &Arc<Self>, endpoint: &str) {
        if self
            .parked
            .lock()
            .expect("parked lock")
            .remove(endpoint)
            .is_none()
        {
            return;
        }
        let this = Arc::clone(self);
        let endpoint = endpoint.to_string();
        tokio::spawn(async move {
            let _ = this.send(&Request::ReleaseParked { endpoint }).await;
        });
    }

    /// True if the process holds any parked worker.
    pub fn holds_parked(&self) -> bool {
        self.is_alive() && !self.parked.lock().expect("parked lock").is_empty()
    }

    /// Kill the process (tests, shutdown).
    pub fn kill(&self) {
        if let Some(child) = self.child.lock().expect("child lock").as_mut() {
            let _ = child.start_kill();
        }
    }
}

fn route(routes: &Mutex<Routes>, event: Event) {
    let mut r = routes.lock().expect("routes lock");
    match event {
        Event::Ready { .. } => {}
        Event::WorkerReady { worker, started } => {
            if let Some(tx) = r.workers.remove(&worker) {
                let _ = tx.send(Ok(started));
            }
        }
        Event::WorkerStopped {
            worker,
            parked,
            error,
        } => {
            if let Some(tx) = r.stops.remove(&worker) {
                let _ = tx.send((parked, error));
            }
        }
        Event::WorkerFailed { worker, error } => {
            if let Some(tx) = r.workers.remove(&worker) {
                let _ = tx.send(Err(error));
            }
        }
        Event::Progress { job, value } => {
            if let Some(p) = r.jobs.get(&job) {
                p.sink.progress(value);
            }
        }
        Event::Stream { job, chunk } => {
            if let Some(p) = r.jobs.get(&job) {
                p.sink.stream(chunk);
            }
        }
        Event::Log {
            job,
            worker,
            level,
            message,
        } => {
            if let Some(sink) = r.log_sink(&job, &worker) {
                let level = match level.as_str() {
                    "debug" => LogLevel::Debug,
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    _ => LogLevel::Info,
                };
                sink.log(level, &message);
            }
        }
        Event::Output {
            job,
            worker,
            stream,
            line,
        } => {
            if let Some(sink) = r.log_sink(&job, &worker) {
                sink.output(stream, &line);
            }
        }
        Event::JobDone { job, result } => {
            if let Some(p) = r.jobs.remove(&job) {
                match p.done {
                    Done::Once(tx) => {
                        let _ = tx.send(result);
                    }
                    Done::Channel(tx) => {
                        let _ = tx.send((job, result));
                    }
                }
            }
        }
    }
}
