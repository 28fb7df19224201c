//! One worker on its slice: it starts its instances on the slice's executor
//! process, then takes up to `concurrency` jobs at a time from the lifecycle
//! owner ([`super::lifecycle::Jobs`]: handed straight over on accept, or
//! claimed from the queue in batches), runs them on the executor (several
//! per write), and hands each end back. What a handler reports while it
//! runs (progress, stream chunks) is queued by a [`JobSink`] and written by
//! a persister task, all of it before the job's final status, so `/stream`
//! never misses a chunk; its log calls and output go to the log service
//! ([`super::logs`]), stored before its final status too, beside the
//! worker's lifecycle events (start, boot layer and time, crash, retire).
//! If the executor dies, the jobs it held go back to the queue (a retry
//! counted) and the worker ends unhealthy. A worker of a load-balancing
//! endpoint serves HTTP requests instead ([`super::lb`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::lifecycle::{Jobs, WorkerLink};
use super::logs::{LogSink, level_of, source_of};
use super::pool::{PoolShared, WorkerContext, WorkerShared, WorkerSpec, WorkerStage};
use super::slices::Lease;
use crate::executor::{
    ExecutorError, ExecutorProcess, JobReply, JobRun, WorkerSpec as ExecutorWorkerSpec,
};
use crate::runtime::{JobError, JobSink, LogLevel, OutputStream};
use crate::store::{ClaimBy, ClaimedJob, Finish, JobOutcome, JobStatus, Level, LogSource};

/// Why a worker ended other than by being retired.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WorkerExit {
    /// It could not start (executor spawn, handler load, `init`).
    #[error("{0}")]
    StartFailed(String),
    /// Its executor died under it.
    #[error("{0}")]
    ExecutorDied(String),
}

/// How long past a job's execution timeout the host waits for the
/// executor's answer before it deems the executor wedged and kills it.
const WEDGED_GRACE: Duration = Duration::from_secs(30);

/// Run a worker on `lease`'s slice until it is retired (Ok) or fails.
pub async fn run_worker(
    ctx: Arc<WorkerContext>,
    spec: WorkerSpec,
    me: Arc<WorkerShared>,
    pool: Arc<PoolShared>,
    lease: Lease,
) -> Result<(), WorkerExit> {
    let started_at = Instant::now();
    let log = |level, message: String| {
        ctx.logs
            .system(&spec.endpoint_id, Some(&me.id), None, level, message)
    };
    log(
        Level::Info,
        format!(
            "worker starting on slice {} ({}) with handler {}",
            lease.slice().spec.id,
            lease.slice().type_name,
            short(&spec.handler)
        ),
    );
    let result = start_and_serve(&ctx, &spec, &me, &pool, &lease, started_at).await;
    match &result {
        Err(e) => log(Level::Error, format!("worker unhealthy: {e}")),
        Ok(parked) => log(
            Level::Info,
            match (me.is_outdated(), parked) {
                (true, _) => "worker stopped: outdated by a new handler version or settings".into(),
                (false, true) => {
                    "worker retired; FlashBoot parked its instances for the endpoint's next worker"
                        .into()
                }
                (false, false) => "worker retired".into(),
            },
        ),
    }
    // Dropping the lease frees the slice (and meters the worker's time).
    drop(lease);
    result.map(|_| ())
}

/// Where the worker's handler reads models: its endpoint's `models_dir`,
/// else the managed store's tree.
fn models_dir(ctx: &WorkerContext, spec: &WorkerSpec) -> std::path::PathBuf {
    spec.models_dir
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ctx.model_tree.clone())
}

/// The first twelve characters of a digest.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min(12)]
}

/// Start the worker's instances and serve jobs until it is retired;
/// Ok(true) when its instances were parked.
async fn start_and_serve(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    me: &Arc<WorkerShared>,
    pool: &Arc<PoolShared>,
    lease: &Lease,
    started_at: Instant,
) -> Result<bool, WorkerExit> {
    let exec = lease
        .slot()
        .get(&models_dir(ctx, spec))
        .await
        .map_err(|e| WorkerExit::StartFailed(e.to_string()))?;
    // The guest's log calls and output in `init` and between jobs.
    let worker_log = ctx.logs.sink(&spec.endpoint_id, &me.id, None);
    exec.set_worker_log(&me.id, Some(Arc::clone(&worker_log) as Arc<dyn JobSink>));
    let served = start_on(ctx, spec, me, pool, &exec, started_at).await;
    exec.set_worker_log(&me.id, None);
    worker_log.finish().await;
    served
}

/// Start the worker on its executor, serve jobs, stop (or park) it.
async fn start_on(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    me: &Arc<WorkerShared>,
    pool: &Arc<PoolShared>,
    exec: &Arc<ExecutorProcess>,
    started_at: Instant,
) -> Result<bool, WorkerExit> {
    let wasm_path = ctx.handlers.path_of(&spec.handler);
    let models_dir = models_dir(ctx, spec);
    let worker_spec = ExecutorWorkerSpec {
        memory_limit: spec.memory_limit_mib << 20,
        tensor_quota: spec.tensor_quota_mib << 20,
        models_dir: Some(models_dir),
        env: spec.env.clone(),
        concurrency: spec.concurrency.max(1),
        flashboot: spec.flashboot,
    };
    match exec
        .start_worker(
            &me.id,
            &spec.endpoint_id,
            &wasm_path,
            &spec.handler,
            worker_spec,
        )
        .await
    {
        Ok(started) => {
            tracing::debug!(worker = %me.id, slice = %exec.slice().id, init_ms = started.init_ms, boot = %started.boot, note = ?started.note, "worker ready");
            let cold_start = started_at.elapsed();
            ctx.meter
                .cold_start(&spec.endpoint_id, cold_start, &started.boot.to_string());
            ctx.logs.system(
                &spec.endpoint_id,
                Some(&me.id),
                None,
                Level::Info,
                format!(
                    "worker ready in {:.0} ms ({}: its instances were ready {:.0} ms after the executor was asked){}",
                    cold_start.as_secs_f64() * 1e3,
                    started.boot,
                    started.init_ms,
                    started
                        .note
                        .as_ref()
                        .map(|n| format!("; {n}"))
                        .unwrap_or_default()
                ),
            );
            pool.set_last_boot(&me.id, &started);
            me.set_boot(started);
        }
        Err(ExecutorError::Died(slice)) => {
            // Counted as a failed start (retried with backoff): a handler
            // whose init crashes its executor must not respawn it in a loop.
            return Err(WorkerExit::StartFailed(format!(
                "the executor for slice {slice} died while handler {} started on it",
                spec.handler
            )));
        }
        Err(e) => {
            return Err(WorkerExit::StartFailed(format!(
                "starting handler {} on slice {}: {e}",
                spec.handler,
                exec.slice().id
            )));
        }
    }
    let result = if spec.load_balancer {
        // Serves HTTP requests (serve/lb.rs) instead of taking jobs; it is
        // ready once the handler's /ping answers 200.
        super::lb::serve_requests(spec, me, pool, exec).await
    } else {
        me.set_stage(WorkerStage::Ready);
        serve_jobs(ctx, spec, me, pool, exec).await
    };
    let mut parked = false;
    if let Err(e) = &result {
        // Shown at once, before the supervisor reaps the worker.
        me.set_error(Some(e.to_string()));
        me.set_stage(WorkerStage::Unhealthy);
    } else if exec.is_alive() {
        // A worker of older settings (hot swap) is not parked: its state
        // would never be restored.
        let park = (spec.flashboot && !me.is_outdated())
            .then_some((spec.endpoint_id.as_str(), spec.handler.as_str()));
        exec.stop_worker(&me.id, park).await;
        parked = park.is_some() && exec.parked(&spec.endpoint_id).is_some();
    }
    result.map(|()| parked)
}

/// A job running on the executor.
struct Running {
    job: ClaimedJob,
    sink: Arc<StoreSink>,
    /// Past this the executor is deemed wedged.
    wedged_at: Instant,
}

/// Take jobs from the lifecycle owner (up to `concurrency` at once), run
/// them on the executor, report their ends, until retired (Ok) or the
/// executor dies (its jobs re-queued).
async fn serve_jobs(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    me: &Arc<WorkerShared>,
    pool: &Arc<PoolShared>,
    exec: &Arc<ExecutorProcess>,
) -> Result<(), WorkerExit> {
    let jobs = &ctx.jobs;
    let (tx, mut incoming) = mpsc::unbounded_channel::<ClaimedJob>();
    let link = Arc::new(WorkerLink {
        endpoint: spec.endpoint_id.clone(),
        claim: ClaimBy {
            worker_id: me.id.clone(),
            host_id: jobs.host_id().to_string(),
            handler: spec.handler.clone(),
        },
        low_cap: spec.low_cap,
        jobs: tx,
    });
    let concurrency = spec.concurrency.max(1) as usize;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(String, JobReply)>();
    let mut running: HashMap<String, Running> = HashMap::new();
    // Whether the lifecycle counts this worker as taking jobs.
    let mut taking = false;
    let mut wedge_check = tokio::time::interval(Duration::from_secs(1));
    wedge_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let died = || {
        WorkerExit::ExecutorDied(format!(
            "the executor for slice {} (pid {}) died",
            exec.slice().id,
            exec.pid()
        ))
    };
    let result = loop {
        let woken = pool.wake.notified();
        let stopped = me.stop.notified();
        tokio::pin!(woken, stopped);
        woken.as_mut().enable();
        stopped.as_mut().enable();
        let want = !me.is_retiring() && !pool.is_paused();
        if want && !taking {
            jobs.ready(&link, concurrency - running.len());
            taking = true;
        } else if !want && taking {
            jobs.gone(&link);
            taking = false;
        }
        if me.is_retiring() && running.is_empty() {
            break Ok(());
        }
        tokio::select! {
            Some(first) = incoming.recv() => {
                let mut batch = vec![first];
                while let Ok(more) = incoming.try_recv() {
                    batch.push(more);
                }
                if !taking {
                    // Handed over just as we stopped taking jobs.
                    for job in batch {
                        jobs.give_back(&spec.endpoint_id, &me.id, &job).await;
                    }
                    continue;
                }
                if !start(ctx, spec, me, exec, batch, &done_tx, &mut running).await {
                    break Err(died());
                }
            }
            Some((id, reply)) = done_rx.recv() => {
                let Some(r) = running.remove(&id) else { continue };
                end(ctx, &link, r, reply).await;
                me.job_ended();
            }
            _ = exec.died() => break Err(died()),
            _ = &mut woken => {}
            _ = &mut stopped => {}
            _ = wedge_check.tick(), if !running.is_empty() => {
                let now = Instant::now();
                if let Some(r) = running.values().find(|r| now >= r.wedged_at) {
                    // The executor enforces the timeout itself; no answer
                    // long after it means the process is stuck. Kill it:
                    // its death re-queues the jobs and restarts it.
                    tracing::error!(job = %r.job.id, slice = %exec.slice().id, "executor did not answer past the job's timeout; killing it");
                    exec.kill();
                }
            }
        }
    };
    if taking {
        jobs.gone(&link);
    }
    // Jobs still handed to us (or running on a dead executor) go back.
    incoming.close();
    while let Ok(job) = incoming.try_recv() {
        jobs.give_back(&spec.endpoint_id, &me.id, &job).await;
    }
    if result.is_err() {
        pool.wake.notify_waiters();
        let reason = format!(
            "the executor running this job (slice {}) died",
            exec.slice().id
        );
        for (_, r) in running.drain() {
            ctx.jobs.running.remove(&r.job.id);
            r.sink.close().await;
            let (level, what) = match jobs.lost(&spec.endpoint_id, &me.id, &r.job, &reason).await {
                Some(true) => (
                    Level::Warn,
                    "the job is back in the queue (a retry counted)",
                ),
                Some(false) => (Level::Error, "its retries are spent: the job failed"),
                None => (Level::Warn, "the job had already ended"),
            };
            ctx.logs.system(
                &spec.endpoint_id,
                Some(&me.id),
                Some(&r.job.id),
                level,
                format!("{reason}; {what}"),
            );
            me.job_ended();
        }
    }
    result
}

/// Start claimed jobs on the executor in one write. False if it is dead
/// (the jobs are then counted as running, and re-queued by the caller).
async fn start(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    me: &Arc<WorkerShared>,
    exec: &Arc<ExecutorProcess>,
    batch: Vec<ClaimedJob>,
    done: &mpsc::UnboundedSender<(String, JobReply)>,
    running: &mut HashMap<String, Running>,
) -> bool {
    let now = Instant::now();
    let mut runs = Vec::with_capacity(batch.len());
    let mut started = Vec::with_capacity(batch.len());
    for job in batch {
        me.job_started();
        let timeout = Duration::from_millis(
            job.execution_timeout_ms
                .map(|ms| ms as u64)
                .unwrap_or(spec.execution_timeout_ms),
        );
        let log = ctx.logs.sink(&spec.endpoint_id, &me.id, Some(&job.id));
        let sink = Arc::new(StoreSink::new(Arc::clone(&ctx.jobs), &job, log));
        ctx.jobs.running.insert(&job.id, exec);
        started.push((
            job,
            Arc::clone(&sink),
            now + timeout + WEDGED_GRACE,
            timeout,
        ));
    }
    for (job, sink, _, timeout) in &started {
        runs.push(JobRun {
            job: &job.id,
            input: &job.input,
            timeout: *timeout,
            sink: Arc::clone(sink) as Arc<dyn JobSink>,
        });
    }
    let ok = exec.start_jobs(&me.id, runs, done).await.is_ok();
    for (job, sink, wedged_at, _) in started {
        running.insert(
            job.id.clone(),
            Running {
                job,
                sink,
                wedged_at,
            },
        );
    }
    ok
}

/// A job's end: its reports and log lines stored first (so `/stream` and
/// the logs never miss a line), then its outcome handed to the lifecycle owner.
async fn end(ctx: &Arc<WorkerContext>, link: &WorkerLink, r: Running, reply: JobReply) {
    ctx.jobs.running.remove(&r.job.id);
    r.sink.close().await;
    let outcome = match reply {
        Ok(output) => JobOutcome {
            status: JobStatus::Completed,
            output: Some(output),
            error: None,
        },
        Err(e @ JobError::Timeout(_)) => JobOutcome {
            status: JobStatus::TimedOut,
            output: None,
            error: Some(e.to_string()),
        },
        Err(JobError::Cancelled) => JobOutcome {
            status: JobStatus::Cancelled,
            output: None,
            error: None,
        },
        Err(e) => JobOutcome {
            status: JobStatus::Failed,
            output: None,
            error: Some(e.to_string()),
        },
    };
    ctx.jobs.finish(
        link,
        Finish {
            id: r.job.id,
            worker_id: link.claim.worker_id.clone(),
            outcome,
            retention_ms: ctx.jobs.retention().for_job_ms(r.job.sync),
        },
    );
}

enum SinkEvent {
    Progress(String),
    Stream(String),
}

/// What a handler reports while a job runs, queued for a persister task
/// that is started on the first report (most jobs report nothing); its log
/// calls and output go to the log service.
struct StoreSink {
    job_id: String,
    attempt: i64,
    jobs: Arc<Jobs>,
    persister: Mutex<Option<Persister>>,
    log: Arc<LogSink>,
}

struct Persister {
    tx: mpsc::UnboundedSender<SinkEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl StoreSink {
    fn new(jobs: Arc<Jobs>, job: &ClaimedJob, log: Arc<LogSink>) -> Self {
        Self {
            job_id: job.id.clone(),
            attempt: job.attempt,
            jobs,
            persister: Mutex::new(None),
            log,
        }
    }

    fn send(&self, event: SinkEvent) {
        let mut p = self.persister.lock().expect("sink lock");
        let p = p.get_or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(persist(
                Arc::clone(&self.jobs),
                self.job_id.clone(),
                self.attempt,
                rx,
            ));
            Persister { tx, task }
        });
        let _ = p.tx.send(event);
    }

    /// The job ended (its last report came before its end on the same
    /// pipe): wait until everything it reported and logged is stored.
    async fn close(&self) {
        let p = self.persister.lock().expect("sink lock").take();
        if let Some(p) = p {
            drop(p.tx);
            let _ = p.task.await;
        }
        self.log.finish().await;
    }
}

impl JobSink for StoreSink {
    fn progress(&self, value: serde_json::Value) {
        self.send(SinkEvent::Progress(value.to_string()));
    }

    fn stream(&self, chunk: serde_json::Value) {
        self.send(SinkEvent::Stream(chunk.to_string()));
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.log.line(LogSource::Log, level_of(level), message);
    }

    fn output(&self, stream: OutputStream, line: &str) {
        self.log.line(source_of(stream), Level::Info, line);
    }
}

/// Write progress and stream chunks in arrival order, batching what
/// arrived meanwhile; stored chunks go to the job's watchers. The job
/// itself is written first if it was not yet (a handed `/runsync` job).
async fn persist(
    jobs: Arc<Jobs>,
    job_id: String,
    attempt: i64,
    mut rx: mpsc::UnboundedReceiver<SinkEvent>,
) {
    if let Err(e) = jobs.persist(&job_id).await {
        tracing::warn!(job = %job_id, "writing a job before its first report: {e}");
    }
    let (store, watchers) = (jobs.store(), &jobs.watchers);
    let mut next_index = 0i64;
    while let Some(first) = rx.recv().await {
        let mut chunks = Vec::new();
        let mut progress = None;
        let mut event = Some(first);
        while let Some(ev) = event.take() {
            match ev {
                SinkEvent::Progress(p) => progress = Some(p),
                SinkEvent::Stream(c) => {
                    chunks.push((next_index, c));
                    next_index += 1;
                }
            }
            if chunks.len() < 512 {
                event = rx.try_recv().ok();
            }
        }
        for attempt_no in 0..10 {
            match store
                .report(&job_id, attempt, progress.as_deref(), &chunks)
                .await
            {
                Ok(()) => {
                    if !chunks.is_empty() {
                        watchers.chunks_stored(&job_id, &chunks);
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(job = %job_id, try = attempt_no, "storing progress and stream chunks: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}
