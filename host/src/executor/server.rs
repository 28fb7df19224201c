//! The executor process: reads [`Request`]s from stdin, runs workers'
//! instances on its slice, writes [`Event`]s to stdout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use super::protocol::{Event, Request, SliceSpec, WorkerSpec};
use crate::gpu::{ModelStore, WorkerDevices};
use crate::runtime::{
    CancelSignal, Handler, Instance, InstanceConfig, JobError, JobSink, LogLevel, Runtime,
    RuntimeConfig,
};
use wasmpod_tensor::Device;

/// Errors that stop the executor.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("executor i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// One worker: its handler, config, and idle instances.
struct Worker {
    handler: Handler,
    config: InstanceConfig,
    idle: Vec<Instance>,
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
}

/// Forwards a job's reports to the host as events.
struct EventSink {
    job: String,
    events: mpsc::UnboundedSender<Event>,
}

impl JobSink for EventSink {
    fn progress(&self, value: serde_json::Value) {
        let _ = self.events.send(Event::Progress {
            job: self.job.clone(),
            value,
        });
    }
    fn stream(&self, chunk: serde_json::Value) {
        let _ = self.events.send(Event::Stream {
            job: self.job.clone(),
            chunk,
        });
    }
    fn log(&self, level: LogLevel, message: &str) {
        let level = format!("{level:?}").to_lowercase();
        let _ = self.events.send(Event::Log {
            job: self.job.clone(),
            level,
            message: message.to_string(),
        });
    }
}

/// Serve `slice` until stdin closes (the host went away or stopped us).
pub async fn serve(
    slice: SliceSpec,
    cache_dir: Option<std::path::PathBuf>,
) -> Result<(), ServeError> {
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir,
        ..Default::default()
    })?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(event) = rx.recv().await {
            let mut line = serde_json::to_vec(&event).expect("events serialize");
            line.push(b'\n');
            if stdout.write_all(&line).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let exec = Arc::new(Executor {
        slice,
        runtime,
        models: Mutex::default(),
        model_device: OnceLock::new(),
        workers: Mutex::default(),
        running: Mutex::default(),
        events: tx.clone(),
    });
    let _ = tx.send(Event::Ready {
        pid: std::process::id(),
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
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
                wasm_path,
                digest,
                spec,
            } => {
                tokio::spawn(
                    async move { exec.start_worker(worker, wasm_path, digest, spec).await },
                );
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
            Request::StopWorker { worker } => {
                exec.workers.lock().expect("workers lock").remove(&worker);
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
    /// The slice's model store for `dir`.
    fn model_store(&self, dir: &Path) -> Result<Arc<ModelStore>, String> {
        let device = self
            .model_device
            .get_or_init(|| {
                // Same process, same CUDA context as the workers' devices:
                // their ops read these tensors directly.
                let devices = if self.slice.cuda {
                    WorkerDevices::cuda(u64::MAX)
                        .map_err(|e| format!("slice {}: {e}", self.slice.id))?
                } else {
                    WorkerDevices::cpu(u64::MAX)
                };
                Ok(devices.primary().clone())
            })
            .clone()?;
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
        wasm_path: std::path::PathBuf,
        digest: String,
        spec: WorkerSpec,
    ) {
        let started = Instant::now();
        let result = async {
            let wasm = tokio::fs::read(&wasm_path)
                .await
                .map_err(|e| format!("reading handler {}: {e}", wasm_path.display()))?;
            let handler = self.runtime.load(&wasm).map_err(|e| e.to_string())?;
            if handler.digest() != digest {
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
                init_timeout: Duration::from_secs(600),
            };
            let mut idle = Vec::new();
            for _ in 0..spec.concurrency.max(1) {
                idle.push(
                    handler
                        .instantiate(&config)
                        .await
                        .map_err(|e| e.to_string())?,
                );
            }
            Ok(Worker {
                handler,
                config,
                idle,
            })
        }
        .await;
        let event = match result {
            Ok(w) => {
                self.workers
                    .lock()
                    .expect("workers lock")
                    .insert(worker.clone(), Arc::new(tokio::sync::Mutex::new(w)));
                Event::WorkerReady {
                    worker,
                    init_ms: started.elapsed().as_secs_f64() * 1e3,
                }
            }
            Err(error) => Event::WorkerFailed { worker, error },
        };
        let _ = self.events.send(event);
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
        let (instance, handler, config) = {
            let mut w = slot.lock().await;
            (w.idle.pop(), w.handler.clone(), w.config.clone())
        };
        let mut instance = match instance {
            Some(i) => i,
            // More jobs than instances (or a lost one not yet replaced):
            // make another; the host bounds concurrency.
            None => handler
                .instantiate(&config)
                .await
                .map_err(|e| JobError::Trap(e.to_string()))?,
        };
        let cancel = CancelSignal::new();
        self.running
            .lock()
            .expect("running lock")
            .insert(job.to_string(), cancel.clone());
        let sink = Arc::new(EventSink {
            job: job.to_string(),
            events: self.events.clone(),
        });
        let result = instance.handle(job, input, sink, cancel, timeout).await;
        if instance.is_lost() {
            // Replace the lost instance now so the next job starts warm.
            if let Ok(fresh) = handler.instantiate(&config).await {
                slot.lock().await.idle.push(fresh);
            }
        } else {
            slot.lock().await.idle.push(instance);
        }
        result
    }
}
