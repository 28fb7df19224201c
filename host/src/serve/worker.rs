//! One worker: `concurrency` lanes, each with its own instance of the
//! endpoint's handler, claiming jobs from the store and running them. What
//! a handler reports while it runs (progress, stream chunks) is queued by a
//! [`JobSink`] and written by a persister task, all of it before the job's
//! final status, so `/stream` never misses a chunk.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::pool::{PoolShared, WorkerContext, WorkerShared, WorkerSpec, WorkerState};
use crate::gpu::{ModelStore, WorkerDevices};
use crate::runtime::{
    CancelSignal, Handler, Instance, InstanceConfig, JobError, JobSink, LogLevel,
};
use crate::store::{ClaimedJob, JobOutcome, JobStatus, now_ms};

/// Run a worker until it is retired (Ok) or cannot start (Err, with why).
pub async fn run_worker(
    ctx: Arc<WorkerContext>,
    spec: WorkerSpec,
    me: Arc<WorkerShared>,
    pool: Arc<PoolShared>,
) -> Result<(), String> {
    let result = run_lanes(&ctx, &spec, &me, &pool).await;
    if result.is_err() {
        me.set_state(WorkerState::Unhealthy);
    }
    result
}

async fn run_lanes(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    me: &Arc<WorkerShared>,
    pool: &Arc<PoolShared>,
) -> Result<(), String> {
    let handler = ctx
        .handlers
        .get(&spec.handler)
        .await
        .map_err(|e| format!("loading handler {}: {e}", spec.handler))?;
    let devices = WorkerDevices::cpu(spec.tensor_quota_mib << 20);
    let models_dir = spec
        .models_dir
        .clone()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| ctx.model_tree.clone());
    // Weights are shared by the worker's lanes and accounted to the model
    // store's own device, not to one lane's quota.
    let model_device = WorkerDevices::cpu(u64::MAX).primary().clone();
    let mut config = InstanceConfig::cpu(
        (spec.memory_limit_mib << 20) as usize,
        spec.tensor_quota_mib << 20,
        Some(ModelStore::new(models_dir, model_device)),
    );
    config.devices = devices;
    config.env = spec.env.clone();

    let mut instances = Vec::new();
    for _ in 0..spec.concurrency.max(1) {
        let instance = handler
            .instantiate(&config)
            .await
            .map_err(|e| format!("starting an instance of handler {}: {e}", spec.handler))?;
        instances.push(instance);
    }
    me.set_state(WorkerState::Ready);
    tracing::debug!(worker = %me.id, "worker ready");

    let mut lanes = JoinSet::new();
    for instance in instances {
        lanes.spawn(lane(
            Arc::clone(ctx),
            spec.clone(),
            Arc::clone(me),
            Arc::clone(pool),
            handler.clone(),
            config.clone(),
            instance,
        ));
    }
    let mut result = Ok(());
    while let Some(r) = lanes.join_next().await {
        let r = r.unwrap_or_else(|e| Err(format!("a worker lane ended abnormally: {e}")));
        if let Err(e) = r {
            // The other lanes finish what they hold and stop.
            me.retire();
            result = Err(e);
        }
    }
    result
}

async fn lane(
    ctx: Arc<WorkerContext>,
    spec: WorkerSpec,
    me: Arc<WorkerShared>,
    pool: Arc<PoolShared>,
    handler: Handler,
    config: InstanceConfig,
    instance: Instance,
) -> Result<(), String> {
    let mut instance = Some(instance);
    let mut db_backoff = Duration::from_millis(50);
    loop {
        if me.is_retiring() {
            return Ok(());
        }
        let woken = pool.wake.notified();
        let stopped = me.stop.notified();
        tokio::pin!(woken, stopped);
        woken.as_mut().enable();
        stopped.as_mut().enable();
        if me.is_retiring() {
            return Ok(());
        }
        let inst = match instance.as_mut() {
            Some(i) => i,
            None => {
                let fresh = handler.instantiate(&config).await.map_err(|e| {
                    format!("replacing a lost instance of handler {}: {e}", spec.handler)
                })?;
                instance.insert(fresh)
            }
        };
        if pool.is_paused() {
            tokio::select! {
                _ = &mut woken => {}
                _ = &mut stopped => {}
                _ = tokio::time::sleep(ctx.poll) => {}
            }
            continue;
        }
        let claimed = ctx
            .store
            .claim(
                &spec.endpoint_id,
                &me.id,
                &ctx.host_id,
                &spec.handler,
                now_ms(),
            )
            .await;
        match claimed {
            Ok(Some(job)) => {
                db_backoff = Duration::from_millis(50);
                me.job_started();
                let lost = run_job(&ctx, &spec, &me.id, inst, job).await;
                me.job_ended();
                if lost {
                    instance = None;
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = &mut woken => {}
                    _ = &mut stopped => {}
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

/// Run one claimed job to its end and record the outcome. Returns whether
/// the instance was lost.
async fn run_job(
    ctx: &Arc<WorkerContext>,
    spec: &WorkerSpec,
    worker_id: &str,
    instance: &mut Instance,
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
    let result = instance
        .handle(&job.id, &job.input, sink, cancel, timeout)
        .await;
    // The instance dropped its sink when `handle` returned, which closes the
    // channel: the persister ends after writing everything.
    let _ = persister.await;
    ctx.running.remove(&job.id);
    let lost = matches!(&result, Err(e) if e.instance_lost());
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
    lost
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
