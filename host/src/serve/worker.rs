//! One worker on its slice: it starts its instances on the slice's executor
//! process, then runs `concurrency` lanes, each claiming jobs from the store
//! and running them on the executor. What a handler reports while it runs
//! (progress, stream chunks) is queued by a [`JobSink`] and written by a
//! persister task, all of it before the job's final status, so `/stream`
//! never misses a chunk. If the executor dies, the jobs it held go back to
//! the queue (a retry counted) and the worker ends unhealthy. A worker of a
//! load-balancing endpoint serves HTTP requests instead ([`super::lb`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::pool::{PoolShared, WorkerContext, WorkerShared, WorkerSpec, WorkerStage};
use super::slices::Lease;
use crate::executor::{ExecutorError, ExecutorProcess, WorkerSpec as ExecutorWorkerSpec};
use crate::runtime::{CancelSignal, JobError, JobSink, LogLevel};
use crate::store::{ClaimedJob, JobOutcome, JobStatus, LostJobOutcome, now_ms};

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
    let exec = lease
        .slot()
        .get()
        .await
        .map_err(|e| WorkerExit::StartFailed(e.to_string()))?;
    let wasm_path = ctx.handlers.path_of(&spec.handler);
    let models_dir = spec
        .models_dir
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ctx.model_tree.clone());
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
        // Serves HTTP requests (serve/lb.rs) instead of claiming jobs.
        super::lb::serve_requests(&spec, &me, &pool, &exec).await
    } else {
        me.set_stage(WorkerStage::Ready);
        run_lanes(&ctx, &spec, &me, &pool, &exec).await
    };
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
    }
    // Dropping the lease frees the slice (and meters the worker's time).
    drop(lease);
    result
}

/// `concurrency` lanes claiming and running jobs until the worker retires
/// (Ok) or a lane fails (the others finish what they hold).
async fn run_lanes(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    me: &Arc<WorkerShared>,
    pool: &Arc<PoolShared>,
    exec: &Arc<ExecutorProcess>,
) -> Result<(), WorkerExit> {
    let mut lanes = JoinSet::new();
    for _ in 0..spec.concurrency.max(1) {
        lanes.spawn(lane(
            Arc::clone(ctx),
            spec.clone(),
            Arc::clone(me),
            Arc::clone(pool),
            Arc::clone(exec),
        ));
    }
    let mut result = Ok(());
    while let Some(r) = lanes.join_next().await {
        let r = r.unwrap_or_else(|e| {
            Err(WorkerExit::StartFailed(format!(
                "a worker lane ended abnormally: {e}"
            )))
        });
        if let Err(e) = r {
            // The other lanes finish what they hold and stop.
            me.retire();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}

async fn lane(
    ctx: Arc<WorkerContext>,
    spec: WorkerSpec,
    me: Arc<WorkerShared>,
    pool: Arc<PoolShared>,
    exec: Arc<ExecutorProcess>,
) -> Result<(), WorkerExit> {
    let mut db_backoff = Duration::from_millis(50);
    let died = || {
        WorkerExit::ExecutorDied(format!(
            "the executor for slice {} (pid {}) died",
            exec.slice().id,
            exec.pid()
        ))
    };
    loop {
        let woken = pool.wake.notified();
        let stopped = me.stop.notified();
        let exec_died = exec.died();
        tokio::pin!(woken, stopped, exec_died);
        woken.as_mut().enable();
        stopped.as_mut().enable();
        if me.is_retiring() {
            return Ok(());
        }
        if !exec.is_alive() {
            return Err(died());
        }
        if pool.is_paused() {
            tokio::select! {
                _ = &mut woken => {}
                _ = &mut stopped => {}
                _ = &mut exec_died => {}
                _ = tokio::time::sleep(ctx.poll) => {}
            }
            continue;
        }
        // A low-priority lane is taken before claiming (and given back if
        // the job claimed is real-time, or none), so batch work never holds
        // every lane of the pool.
        let low = pool.try_reserve_low();
        let claimed = ctx
            .store
            .claim(
                &spec.endpoint_id,
                &me.id,
                &ctx.host_id,
                &spec.handler,
                now_ms(),
                low,
            )
            .await;
        let holds_low = low && matches!(&claimed, Ok(Some(job)) if job.low_priority);
        if low && !holds_low {
            pool.release_low();
        }
        match claimed {
            Ok(Some(job)) => {
                db_backoff = Duration::from_millis(50);
                me.job_started();
                let lost = run_job(&ctx, &spec, &me.id, &exec, job).await;
                me.job_ended();
                if holds_low {
                    pool.release_low();
                }
                if lost {
                    pool.wake.notify_waiters();
                    return Err(died());
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = &mut woken => {}
                    _ = &mut stopped => {}
                    _ = &mut exec_died => {}
                    _ = tokio::time::sleep(ctx.poll) => {}
                }
            }
            Err(e) => {
                tracing::warn!(worker = %me.id, "claiming a job: {e}");
                tokio::time::sleep(db_backoff).await;
                db_backoff = (db_backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Run one claimed job on the executor to its end and record the outcome.
/// Returns true if the executor died under it (the job was re-queued or,
/// its retries spent, failed).
async fn run_job(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    worker_id: &str,
    exec: &Arc<ExecutorProcess>,
    job: ClaimedJob,
) -> bool {
    let cancel = CancelSignal::new();
    ctx.running.insert(&job.id, cancel.clone());
    let (tx, rx) = mpsc::unbounded_channel();
    let persister = tokio::spawn(persist(ctx.store.clone(), job.id.clone(), job.attempt, rx));
    let timeout = Duration::from_millis(
        job.execution_timeout_ms
            .map(|ms| ms as u64)
            .unwrap_or(spec.execution_timeout_ms),
    );
    let sink: Arc<dyn JobSink> = Arc::new(StoreSink {
        job_id: job.id.clone(),
        tx,
    });
    let reply = {
        let running = exec.run_job(worker_id, &job.id, &job.input, timeout, sink);
        let wedged = tokio::time::sleep(timeout + WEDGED_GRACE);
        tokio::pin!(running, wedged);
        let mut cancel_sent = false;
        loop {
            tokio::select! {
                r = &mut running => break r,
                _ = cancel.cancelled(), if !cancel_sent => {
                    cancel_sent = true;
                    exec.cancel(&job.id).await;
                }
                _ = &mut wedged => {
                    // The executor enforces the timeout itself; no answer
                    // long after it means the process is stuck. Kill it:
                    // its death re-queues the job and restarts it.
                    tracing::error!(job = %job.id, slice = %exec.slice().id, "executor did not answer past the job's timeout; killing it");
                    exec.kill();
                    exec.died().await;
                    break Err(ExecutorError::Died(exec.slice().id.clone()));
                }
            }
        }
    };
    // The executor dropped its copy of the sink when the job ended (or the
    // process died), which closes the channel: the persister ends after
    // writing everything.
    let _ = persister.await;
    ctx.running.remove(&job.id);
    let result = match reply {
        Ok(result) => result,
        Err(_) => {
            requeue_lost(ctx, exec, worker_id, &job).await;
            return true;
        }
    };
    let outcome = match result {
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
    let retention = ctx.retention.for_job_ms(job.sync);
    let mut backoff = Duration::from_millis(50);
    for attempt in 0.. {
        match ctx
            .store
            .finish(&job.id, worker_id, &outcome, now_ms(), retention)
            .await
        {
            Ok(Some(record)) => {
                ctx.meter.job_finished(
                    &record.endpoint_id,
                    record.status.as_str(),
                    record.delay_ms,
                    record.execution_ms,
                );
                ctx.events.finished(&job.id);
                if record.webhook_state.as_deref() == Some("pending") {
                    ctx.webhooks.notify_one();
                }
                break;
            }
            // Cancelled (or otherwise finished) while it ran.
            Ok(None) => break,
            Err(e) if attempt < 20 => {
                tracing::warn!(job = %job.id, "recording the job's result: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                // Left IN_PROGRESS: the next start of the host re-queues it.
                tracing::error!(job = %job.id, "giving up recording the job's result: {e}");
                break;
            }
        }
    }
    false
}

/// The executor died while `job` ran: put it back in the queue (or fail it
/// when its retries are spent). Retried until the store answers, since a
/// job left IN_PROGRESS would only come back at the next host start.
async fn requeue_lost(
    ctx: &Arc<WorkerContext>,
    exec: &ExecutorProcess,
    worker_id: &str,
    job: &ClaimedJob,
) {
    let reason = format!(
        "the executor running this job (slice {}) died",
        exec.slice().id
    );
    let retention = ctx.retention.for_job_ms(job.sync);
    let mut backoff = Duration::from_millis(50);
    for attempt in 0.. {
        match ctx
            .store
            .requeue_lost(&job.id, worker_id, &reason, now_ms(), retention)
            .await
        {
            Ok(LostJobOutcome::Requeued) => {
                tracing::warn!(job = %job.id, "{reason}; re-queued");
                return;
            }
            Ok(LostJobOutcome::Failed) => {
                tracing::warn!(job = %job.id, "{reason}; its retries are spent: failed");
                ctx.events.finished(&job.id);
                ctx.webhooks.notify_one();
                return;
            }
            Ok(LostJobOutcome::NotHeld) => return,
            Err(e) if attempt < 20 => {
                tracing::warn!(job = %job.id, "re-queueing a lost job: {e}; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(job = %job.id, "giving up re-queueing a lost job: {e}");
                return;
            }
        }
    }
}

enum SinkEvent {
    Progress(String),
    Stream(String),
}

/// Queues what the handler reports; [`persist`] writes it.
struct StoreSink {
    job_id: String,
    tx: mpsc::UnboundedSender<SinkEvent>,
}

impl JobSink for StoreSink {
    fn progress(&self, value: serde_json::Value) {
        let _ = self.tx.send(SinkEvent::Progress(value.to_string()));
    }

    fn stream(&self, chunk: serde_json::Value) {
        let _ = self.tx.send(SinkEvent::Stream(chunk.to_string()));
    }

    fn log(&self, level: LogLevel, message: &str) {
        match level {
            LogLevel::Debug => {
                tracing::debug!(target: "wasmpod::guest", job = %self.job_id, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "wasmpod::guest", job = %self.job_id, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "wasmpod::guest", job = %self.job_id, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "wasmpod::guest", job = %self.job_id, "{message}")
            }
        }
    }
}

/// Write progress and stream chunks in arrival order, batching what
/// arrived meanwhile.
async fn persist(
    store: crate::store::Store,
    job_id: String,
    attempt: i64,
    mut rx: mpsc::UnboundedReceiver<SinkEvent>,
) {
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
        for _ in 0..10 {
            match store.append_stream(&job_id, attempt, &chunks).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(job = %job_id, "storing stream chunks: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        if let Some(p) = progress
            && let Err(e) = store.set_progress(&job_id, &p).await
        {
            tracing::warn!(job = %job_id, "storing progress: {e}");
        }
    }
}
