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
use tokio::sync::{Notify, oneshot};

use super::protocol::{Event, Request, SliceSpec, WorkerSpec};
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

type JobReply = Result<String, JobError>;

struct PendingJob {
    sink: Arc<dyn JobSink>,
    done: oneshot::Sender<JobReply>,
}

#[derive(Default)]
struct Routes {
    workers: HashMap<String, oneshot::Sender<Result<f64, String>>>,
    jobs: HashMap<String, PendingJob>,
}

/// A running executor process.
pub struct ExecutorProcess {
    slice: SliceSpec,
    pid: u32,
    stdin: tokio::sync::Mutex<ChildStdin>,
    routes: Arc<Mutex<Routes>>,
    alive: Arc<AtomicBool>,
    exited: Arc<Notify>,
    child: Mutex<Option<Child>>,
}

impl ExecutorProcess {
    /// Start `exe executor` for `slice` and wait until it is ready.
    pub async fn spawn(
        exe: &Path,
        slice: SliceSpec,
        cache_dir: Option<PathBuf>,
    ) -> Result<Arc<Self>, ExecutorError> {
        let spawn_err = |message: String| ExecutorError::Spawn {
            slice: slice.id.clone(),
            message,
        };
        let mut cmd = Command::new(exe);
        cmd.arg("executor")
            .arg("--slice")
            .arg(serde_json::to_string(&slice).expect("slice serializes"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(dir) = &cache_dir {
            cmd.arg("--cache-dir").arg(dir);
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

        let routes: Arc<Mutex<Routes>> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let exited = Arc::new(Notify::new());
        let this = Arc::new(Self {
            slice: slice.clone(),
            pid,
            stdin: tokio::sync::Mutex::new(stdin),
            routes: Arc::clone(&routes),
            alive: Arc::clone(&alive),
            exited: Arc::clone(&exited),
            child: Mutex::new(Some(child)),
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
            r.jobs.clear(); // dropping the senders wakes the waiters with Died
            exited.notify_waiters();
        });
        Ok(this)
    }

    pub fn slice(&self) -> &SliceSpec {
        &self.slice
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Resolves when the process has died.
    pub async fn died(&self) {
        loop {
            let notified = self.exited.notified();
            if !self.is_alive() {
                return;
            }
            notified.await;
        }
    }

    async fn send(&self, request: &Request) -> Result<(), ExecutorError> {
        let mut line = serde_json::to_vec(request).expect("requests serialize");
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(&line)
            .await
            .map_err(|_| ExecutorError::Died(self.slice.id.clone()))?;
        stdin
            .flush()
            .await
            .map_err(|_| ExecutorError::Died(self.slice.id.clone()))
    }

    /// Start a worker and wait for its instances to finish `init`. Returns
    /// the time init took, in ms.
    pub async fn start_worker(
        &self,
        worker: &str,
        wasm_path: &Path,
        digest: &str,
        spec: WorkerSpec,
    ) -> Result<f64, ExecutorError> {
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
        match rx.await {
            Ok(Ok(ms)) => Ok(ms),
            Ok(Err(e)) => Err(ExecutorError::WorkerFailed(e)),
            Err(_) => Err(ExecutorError::Died(self.slice.id.clone())),
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
            routes
                .jobs
                .insert(job.to_string(), PendingJob { sink, done: tx });
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

    /// Ask the executor to cancel a running job (it then reports Cancelled).
    pub async fn cancel(&self, job: &str) {
        let _ = self
            .send(&Request::Cancel {
                job: job.to_string(),
            })
            .await;
    }

    pub async fn stop_worker(&self, worker: &str) {
        let _ = self
            .send(&Request::StopWorker {
                worker: worker.to_string(),
            })
            .await;
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
        Event::WorkerReady { worker, init_ms } => {
            if let Some(tx) = r.workers.remove(&worker) {
                let _ = tx.send(Ok(init_ms));
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
            level,
            message,
        } => {
            if let Some(p) = r.jobs.get(&job) {
                let level = match level.as_str() {
                    "debug" => LogLevel::Debug,
                    "warn" => LogLevel::Warn,
                    "error" => LogLevel::Error,
                    _ => LogLevel::Info,
                };
                p.sink.log(level, &message);
            }
        }
        Event::JobDone { job, result } => {
            if let Some(p) = r.jobs.remove(&job) {
                let _ = p.done.send(result);
            }
        }
    }
}
