//! `wasmpod serve`'s engine room: the [`App`] that ties the store, the
//! runtime, handler and model storage, the per-endpoint worker pools, the
//! webhook sender and the retention sweeper together. The HTTP layer
//! ([`crate::api`]) calls it; it knows nothing of HTTP.

pub mod batches;
pub mod events;
pub mod handlers;
pub mod housekeeping;
pub mod keys;
pub mod lb;
pub mod meter;
pub mod models;
pub mod pool;
pub mod rejections;
pub mod slices;
pub mod upload;
pub mod webhook;
pub mod worker;
pub mod worker_state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::gpu::Inventory;
use crate::gpu::inventory::InventoryError;
use crate::runtime::{Runtime, RuntimeConfig, RuntimeError, SnapshotStore};
use crate::store::{
    CancelOutcome, EndpointRecord, NewJob, RetryOutcome, Store, StoreError, now_ms,
};
pub use batches::{BatchError, BatchLimits, BatchPage};
pub use events::JobEvents;
pub use handlers::{HandlerError, HandlerRepo};
pub use keys::Bootstrap;
pub use lb::{LbBody, LbError, RequestCounts};
pub use meter::Meter;
pub use models::{ModelRepo, ModelRepoError};
pub use pool::{Pools, Retention, WorkerContext, WorkerCounts, WorkerDetail};
pub use slices::{ExecutorLaunch, InventoryView, Slices};
pub use worker_state::{Boot, LastBoot};

/// Settings of a serving host.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// State directory: database, handlers, models, compiled-code cache.
    pub home: PathBuf,
    /// Database URL; default `sqlite://<home>/wasmpod.db`.
    pub database_url: Option<String>,
    pub retention: Retention,
    /// How long `/runsync` waits by default before answering IN_QUEUE or
    /// IN_PROGRESS (RunPod: 90 s); `?wait=` may ask for up to `runsync_max_wait`.
    pub runsync_wait: Duration,
    pub runsync_max_wait: Duration,
    /// Webhook tries in all (RunPod: 1 + 2 retries).
    pub webhook_attempts: u32,
    /// Wait before the first webhook retry; doubled for each later one.
    pub webhook_backoff: Duration,
    pub webhook_timeout: Duration,
    pub max_handler_bytes: u64,
    pub max_model_file_bytes: u64,
    /// Body limits of `/run` and `/runsync` (RunPod: 10 MB and 20 MB).
    pub run_body_limit: usize,
    pub runsync_body_limit: usize,
    /// Default ttl of a job (RunPod: 24 h).
    pub default_ttl: Duration,
    /// How often idle workers look at the queue without being woken.
    pub poll: Duration,
    /// The admin key from the environment (WASMPOD_ADMIN_KEY), if set.
    pub admin_key: Option<String>,
    /// A simulated inventory (TOML) instead of NVML's.
    pub inventory: Option<PathBuf>,
    /// The `wasmpod` binary executors run from; default: this process's.
    pub executor_exe: Option<PathBuf>,
    /// Serve `/metrics` without an API key.
    pub metrics_public: bool,
    /// How long a slice's executor is kept with no worker on it.
    pub executor_idle: Duration,
    /// The same for an executor holding parked FlashBoot workers: their
    /// state goes with it (the snapshots on disk stay).
    pub flashboot_keep: Duration,
    /// Host memory per executor for parked workers' tensors and weights
    /// (pinned on a GPU); past it they spill to disk under the cache.
    pub flashboot_ram: u64,
    /// Load-balancing endpoints: how long a request waits for a worker
    /// (a start from zero, or a busy pool) before it is answered 503.
    pub lb_start_wait: Duration,
    /// Load-balancing endpoints: the largest request body (RunPod: 30 MB).
    pub lb_body_limit: usize,
    /// Load-balancing endpoints: `Host: {id}.{lb_domain}` routes to
    /// endpoint `id` with the whole path (RunPod's
    /// `https://{id}.api.runpod.ai/...`).
    pub lb_domain: Option<String>,
    /// Apply RunPod's rate-limit table to operations an endpoint sets no
    /// limit for.
    pub rate_limits: bool,
    /// Batch jobs' limits and retention.
    pub batch: BatchLimits,
}

impl ServeConfig {
    /// RunPod's defaults, state under `home`.
    pub fn new(home: PathBuf) -> Self {
        Self {
            home,
            database_url: None,
            retention: Retention {
                run: Duration::from_secs(30 * 60),
                runsync: Duration::from_secs(60),
            },
            runsync_wait: Duration::from_secs(90),
            runsync_max_wait: Duration::from_secs(300),
            webhook_attempts: 3,
            webhook_backoff: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
            max_handler_bytes: 512 << 20,
            max_model_file_bytes: 64 << 30,
            run_body_limit: 10 << 20,
            runsync_body_limit: 20 << 20,
            default_ttl: Duration::from_secs(24 * 3600),
            poll: Duration::from_millis(500),
            admin_key: None,
            inventory: None,
            executor_exe: None,
            metrics_public: false,
            executor_idle: Duration::from_secs(300),
            flashboot_keep: Duration::from_secs(3600),
            flashboot_ram: 16 << 30,
            lb_start_wait: Duration::from_secs(60),
            lb_body_limit: 30 << 20,
            lb_domain: None,
            rate_limits: true,
            batch: BatchLimits::default(),
        }
    }
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error("finding the wasmpod binary to run executors from: {0}")]
    Executable(std::io::Error),
    #[error("preparing {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The serving host. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

pub struct AppInner {
    pub config: ServeConfig,
    pub store: Store,
    pub handlers: Arc<HandlerRepo>,
    pub models: ModelRepo,
    pub pools: Pools,
    /// Requests refused past a rate limit, by endpoint and operation.
    rejections: rejections::Rejections,
    /// Set on shutdown: background loops stop.
    shutdown: Arc<Notify>,
}

impl std::ops::Deref for App {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.inner
    }
}

impl App {
    /// Open the store, recover jobs a previous process left running, make
    /// sure an admin key exists, and start every endpoint's pool and the
    /// background loops.
    pub async fn start(config: ServeConfig) -> Result<(App, Bootstrap), ServeError> {
        // reqwest is built without a default TLS provider; pick ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        for dir in ["handlers", "models/tree", "models/blobs", "cache"] {
            let path = config.home.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| ServeError::Io { path, source })?;
        }
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", config.home.join("wasmpod.db").display()));
        let store = Store::open(&url).await?;
        let runtime = Runtime::new(&RuntimeConfig {
            cache_dir: Some(config.home.join("cache")),
            ..Default::default()
        })?;
        let handlers = Arc::new(HandlerRepo::new(
            config.home.join("handlers"),
            runtime,
            // Where the executors keep FlashBoot snapshots (their cache).
            SnapshotStore::new(config.home.join("cache").join("snapshots")),
            store.clone(),
            config.max_handler_bytes,
        ));
        let models = ModelRepo::new(
            config.home.join("models"),
            store.clone(),
            config.max_model_file_bytes,
        );
        let host_id = uuid::Uuid::new_v4().simple().to_string();
        let (requeued, failed) = store
            .recover_orphans(&host_id, now_ms(), config.retention.run.as_millis() as i64)
            .await?;
        if !requeued.is_empty() || !failed.is_empty() {
            tracing::warn!(
                requeued = requeued.len(),
                failed = failed.len(),
                "recovered jobs a previous host process left running"
            );
        }
        let bootstrap = keys::bootstrap(&store, config.admin_key.as_deref()).await?;
        let inventory = Inventory::discover(config.inventory.as_deref())?;
        if let Some(note) = &inventory.note {
            tracing::info!("device inventory: {note}");
        }
        let exe = match &config.executor_exe {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(ServeError::Executable)?,
        };
        let meter = Arc::new(Meter::default());
        let slices = Arc::new(Slices::new(
            inventory,
            ExecutorLaunch {
                exe,
                cache_dir: config.home.join("cache"),
                page_budget: config.flashboot_ram,
            },
            Arc::clone(&meter),
        ));
        let ctx = Arc::new(WorkerContext {
            store: store.clone(),
            handlers: Arc::clone(&handlers),
            events: Arc::new(JobEvents::default()),
            running: Default::default(),
            webhooks: Notify::new(),
            host_id,
            retention: config.retention,
            model_tree: models.tree_dir(),
            poll: config.poll,
            slices: Arc::clone(&slices),
            meter: Arc::clone(&meter),
        });
        let pools = Pools::new(Arc::clone(&ctx));
        let app = App {
            inner: Arc::new(AppInner {
                config,
                store,
                handlers,
                models,
                pools,
                rejections: Default::default(),
                shutdown: Arc::new(Notify::new()),
            }),
        };
        for id in failed {
            app.ctx().events.finished(&id);
        }
        for endpoint in app.store.list_endpoints().await? {
            app.pools.apply(endpoint);
        }
        tokio::spawn(housekeeping::run(app.clone(), Arc::clone(&app.shutdown)));
        tokio::spawn(webhook::run(app.clone(), Arc::clone(&app.shutdown)));
        tokio::spawn(meter::run(
            meter,
            slices,
            app.store.clone(),
            (app.config.executor_idle, app.config.flashboot_keep),
            Arc::clone(&app.shutdown),
        ));
        Ok((app, bootstrap))
    }

    pub fn ctx(&self) -> &Arc<WorkerContext> {
        self.pools.context()
    }

    /// Stop taking work: pools finish their jobs, background loops end.
    pub async fn shutdown(&self) {
        self.shutdown.notify_waiters();
        self.pools.stop_all().await;
        // Workers released their slices: meter their last seconds.
        self.ctx().slices.accrue();
        self.ctx().meter.flush(&self.store).await;
        self.ctx().slices.stop_all();
    }

    /// Queue a job and wake the endpoint's workers.
    pub async fn submit(&self, job: &NewJob) -> Result<(), StoreError> {
        self.store.enqueue(job, now_ms()).await?;
        self.pools.wake(&job.endpoint_id);
        Ok(())
    }

    pub async fn cancel(
        &self,
        endpoint_id: &str,
        job_id: &str,
    ) -> Result<CancelOutcome, StoreError> {
        let outcome = self
            .store
            .cancel(
                endpoint_id,
                job_id,
                now_ms(),
                self.config.retention.run.as_millis() as i64,
            )
            .await?;
        if let CancelOutcome::Cancelled { was_running } = outcome {
            if was_running {
                self.ctx().running.cancel(job_id);
            }
            self.ctx().events.finished(job_id);
            self.ctx().webhooks.notify_one();
        }
        Ok(outcome)
    }

    pub async fn retry(&self, endpoint_id: &str, job_id: &str) -> Result<RetryOutcome, StoreError> {
        let outcome = self.store.retry(endpoint_id, job_id, now_ms()).await?;
        if matches!(outcome, RetryOutcome::Requeued) {
            self.pools.wake(endpoint_id);
        }
        Ok(outcome)
    }

    /// Cancel every queued job of an endpoint; returns how many.
    pub async fn purge_queue(&self, endpoint_id: &str) -> Result<usize, StoreError> {
        let ids = self
            .store
            .purge_queue(
                endpoint_id,
                "removed from the queue by purge-queue before it started",
                now_ms(),
                self.config.retention.run.as_millis() as i64,
            )
            .await?;
        for id in &ids {
            self.ctx().events.finished(id);
        }
        if !ids.is_empty() {
            self.ctx().webhooks.notify_one();
        }
        Ok(ids.len())
    }

    /// A new or updated endpoint: (re)configure its pool.
    pub fn endpoint_changed(&self, endpoint: EndpointRecord) {
        self.pools.apply(endpoint);
    }

    /// Stop an endpoint's workers (they finish their jobs) before deleting it.
    pub async fn stop_endpoint(&self, endpoint_id: &str) {
        self.pools.stop(endpoint_id).await;
        self.rejections.forget(endpoint_id);
    }

    /// A request to `endpoint_id`'s `operation` was refused past its rate
    /// limit.
    pub fn rate_limited(&self, endpoint_id: &str, operation: &'static str) {
        self.rejections.count(endpoint_id, operation);
    }

    /// Requests refused past a rate limit, by operation.
    pub fn rate_limited_counts(
        &self,
        endpoint_id: &str,
    ) -> std::collections::BTreeMap<String, u64> {
        self.rejections.of(endpoint_id)
    }

    /// Every endpoint's refused requests: (endpoint, operation, count).
    pub fn rate_limited_all(&self) -> Vec<(String, &'static str, u64)> {
        self.rejections.all()
    }

    pub fn worker_counts(&self, endpoint_id: &str) -> WorkerCounts {
        let mut counts = self
            .pools
            .shared(endpoint_id)
            .map(|s| s.counts())
            .unwrap_or_default();
        if let Some(endpoint) = self.pools.endpoint(endpoint_id) {
            if endpoint.config.flashboot {
                counts.snapshotted = self
                    .pools
                    .context()
                    .slices
                    .parked_count(endpoint_id, &endpoint.handler);
            }
            counts.cold = (endpoint.config.max_workers as usize)
                .saturating_sub(counts.warm + counts.initializing + counts.snapshotted);
        }
        counts
    }

    /// How the endpoint's latest worker started.
    pub fn last_boot(&self, endpoint_id: &str) -> Option<LastBoot> {
        self.pools.shared(endpoint_id).and_then(|s| s.last_boot())
    }

    pub fn worker_details(&self, endpoint_id: &str) -> Vec<WorkerDetail> {
        self.pools
            .shared(endpoint_id)
            .map(|s| s.details())
            .unwrap_or_default()
    }

    pub fn last_worker_error(&self, endpoint_id: &str) -> Option<String> {
        self.pools.shared(endpoint_id).and_then(|s| s.last_error())
    }
}
