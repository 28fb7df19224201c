//! `wasmpod serve`'s engine room: the [`App`] that ties the store, the
//! runtime, handler and model storage, the per-endpoint worker pools, the
//! webhook sender and the retention sweeper together. The HTTP layer
//! ([`crate::api`]) calls it; it knows nothing of HTTP.

pub mod batches;
pub mod cluster;
pub mod egress;
pub mod events;
pub mod handlers;
pub mod history;
pub mod home;
pub mod housekeeping;
pub mod keys;
pub mod latency;
pub mod lb;
pub mod lifecycle;
pub mod logs;
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

use crate::executor::SandboxPolicy;
use crate::gpu::Inventory;
use crate::gpu::inventory::InventoryError;
use crate::runtime::{Runtime, RuntimeConfig, RuntimeError, SnapshotStore};
use crate::store::{
    ApiKeyRecord, CancelOutcome, EndpointConfig, EndpointRecord, HandlerRecord, JobCounts,
    JobRecord, JobStatus, NewJob, RetryOutcome, Scope, Store, StoreError, UsageTotal, now_ms,
};
pub use batches::{BatchError, BatchLimits, BatchPage};
pub use events::Watch;
use events::{FinishedListener, WebhookWake};
pub use handlers::{HandlerError, HandlerRepo};
pub use history::JobDetail;
pub use keys::{Bootstrap, KeyError, KeyHasher};
pub use lb::{LbBody, LbError, RequestCounts};
pub use lifecycle::{Jobs, SyncAnswer};
pub use logs::{LogLimits, Logs};
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
    /// Networks webhooks may reach although they are not public
    /// (loopback, private, ...): refused by default.
    pub webhook_allow: Vec<ipnet::IpNet>,
    /// Send no webhooks at all: a job that asks for one is refused (400).
    pub no_webhooks: bool,
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
    /// The admin key from the environment (WASMPOD_ADMIN_KEY), if set.
    pub admin_key: Option<String>,
    /// The secret API keys are hashed with; default `<home>/key.secret`.
    /// Hosts of one cluster must share it.
    pub key_secret: Option<PathBuf>,
    /// A simulated inventory (TOML) instead of NVML's.
    pub inventory: Option<PathBuf>,
    /// The `wasmpod` binary executors run from; default: this process's.
    pub executor_exe: Option<PathBuf>,
    /// Serve `/metrics` without an API key.
    pub metrics_public: bool,
    /// Run executors without their Landlock sandbox (no_new_privs stays).
    pub no_executor_sandbox: bool,
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
    /// How much of the handlers' logs is kept.
    pub log_limits: LogLimits,
    /// Executor processes shared by every endpoint's CPU workers.
    pub cpu_executors: usize,
    /// Cluster mode (a Postgres database URL): a host whose heartbeat is
    /// older than this is dead, and another host re-queues its jobs.
    pub dead_host_after: Duration,
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
            webhook_allow: Vec::new(),
            no_webhooks: false,
            webhook_backoff: Duration::from_secs(10),
            webhook_timeout: Duration::from_secs(10),
            max_handler_bytes: 512 << 20,
            max_model_file_bytes: 64 << 30,
            run_body_limit: 10 << 20,
            runsync_body_limit: 20 << 20,
            default_ttl: Duration::from_secs(24 * 3600),
            cpu_executors: 2,
            dead_host_after: Duration::from_secs(10),
            admin_key: None,
            key_secret: None,
            inventory: None,
            executor_exe: None,
            metrics_public: false,
            no_executor_sandbox: false,
            executor_idle: Duration::from_secs(300),
            flashboot_keep: Duration::from_secs(3600),
            flashboot_ram: 16 << 30,
            lb_start_wait: Duration::from_secs(60),
            lb_body_limit: 30 << 20,
            lb_domain: None,
            rate_limits: true,
            log_limits: LogLimits::default(),
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
    #[error(transparent)]
    Keys(#[from] KeyError),
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
    /// Hashes API keys with the install's secret.
    pub keys: KeyHasher,
    /// Which addresses webhooks may reach.
    pub egress: Arc<egress::EgressPolicy>,
    /// The lifecycle owner of every job of this host.
    pub jobs: Arc<Jobs>,
    /// Woken when a finished job's webhook is due.
    pub(crate) webhook_wake: Arc<WebhookWake>,
    /// Set on shutdown: background loops stop.
    shutdown: Arc<Notify>,
    /// Where the API listens, once bound (the heartbeat tells the cluster).
    address: std::sync::Mutex<String>,
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
        home::prepare(&config.home).map_err(|source| ServeError::Io {
            path: config.home.clone(),
            source,
        })?;
        for dir in ["handlers", "models/tree", "models/blobs", "cache"] {
            let path = config.home.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| ServeError::Io { path, source })?;
        }
        let key_hasher = match &config.key_secret {
            Some(path) => KeyHasher::open_file(path)?,
            None => KeyHasher::open(&config.home)?,
        };
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", config.home.join("wasmpod.db").display()));
        let store = Store::open(&url, config.dead_host_after).await?;
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
        let meter = Arc::new(Meter::default());
        let webhook_wake = Arc::new(WebhookWake::default());
        let jobs = Jobs::start(
            store.clone(),
            host_id.clone(),
            config.retention,
            vec![
                Arc::clone(&meter) as Arc<dyn FinishedListener>,
                Arc::clone(&webhook_wake) as Arc<dyn FinishedListener>,
            ],
        );
        // In a cluster, beat before the first claim: a claim of a host with
        // no heartbeat is an orphan to the others.
        store.heartbeat(&host_id, "", now_ms()).await?;
        let (requeued, failed) = jobs.recover_orphans().await?;
        if requeued > 0 || failed > 0 {
            tracing::warn!(
                requeued,
                failed,
                "recovered jobs a previous host process left running"
            );
        }
        let bootstrap = keys::bootstrap(&store, &key_hasher, config.admin_key.as_deref()).await?;
        let inventory = Inventory::discover(config.inventory.as_deref())?;
        if let Some(note) = &inventory.note {
            tracing::info!("device inventory: {note}");
        }
        let exe = match &config.executor_exe {
            Some(p) => p.clone(),
            None => std::env::current_exe().map_err(ServeError::Executable)?,
        };
        crate::executor::sandbox::describe_for_host(config.no_executor_sandbox);
        let slices = Arc::new(Slices::new(
            inventory,
            ExecutorLaunch {
                exe,
                cache_dir: config.home.join("cache"),
                page_budget: config.flashboot_ram,
                sandbox: SandboxPolicy {
                    disabled: config.no_executor_sandbox,
                    // Handlers and the managed models; the database, the
                    // key secret and the rest of the home stay out of reach.
                    read_only: vec![config.home.join("handlers"), config.home.join("models")],
                    read_write: Vec::new(),
                },
                cpu_executors: config.cpu_executors,
            },
            Arc::clone(&meter),
        ));
        let ctx = Arc::new(WorkerContext {
            logs: Logs::start(store.clone(), config.log_limits),
            store: store.clone(),
            handlers: Arc::clone(&handlers),
            jobs: Arc::clone(&jobs),
            host_id,
            model_tree: models.tree_dir(),
            slices: Arc::clone(&slices),
            meter: Arc::clone(&meter),
        });
        let pools = Pools::new(Arc::clone(&ctx));
        let egress = Arc::new(egress::EgressPolicy {
            allow: config.webhook_allow.clone(),
            disabled: config.no_webhooks,
        });
        let app = App {
            inner: Arc::new(AppInner {
                config,
                store,
                handlers,
                models,
                pools,
                rejections: Default::default(),
                keys: key_hasher,
                egress,
                jobs,
                webhook_wake,
                shutdown: Arc::new(Notify::new()),
                address: std::sync::Mutex::default(),
            }),
        };
        for endpoint in app.store.list_endpoints().await? {
            app.pools.apply(endpoint);
        }
        cluster::start(&app);
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
        if let Err(e) = self.store.leave(self.jobs.host_id()).await {
            tracing::warn!("leaving the cluster: {e}");
        }
    }

    /// Where this host's API listens (told to the cluster's other hosts).
    pub fn set_address(&self, address: String) {
        *self.address.lock().expect("address lock") = address;
    }

    pub fn address(&self) -> String {
        self.address.lock().expect("address lock").clone()
    }

    /// The hosts of the cluster (empty for a host alone on its store).
    pub async fn hosts(&self) -> Result<Vec<crate::store::HostRecord>, StoreError> {
        self.store.list_hosts(now_ms()).await
    }

    /// The live API key a caller presented, if any (a key stored by an
    /// older version is re-hashed on the way).
    pub async fn authenticate(&self, key: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        keys::authenticate(&self.store, &self.keys, key).await
    }

    /// Queue a job (durable when this returns).
    pub async fn submit(&self, job: NewJob) -> Result<(), StoreError> {
        self.jobs.submit(job).await
    }

    /// Queue a job and wait up to `wait` for it to finish (`/runsync`).
    pub async fn run_sync(&self, job: NewJob, wait: Duration) -> Result<SyncAnswer, StoreError> {
        self.jobs.submit_and_wait(job, wait).await
    }

    pub async fn job(
        &self,
        endpoint_id: &str,
        job_id: &str,
    ) -> Result<Option<JobRecord>, StoreError> {
        self.jobs.get(endpoint_id, job_id).await
    }

    /// Queue a job whose stream chunks the caller reads as they are
    /// stored (the OpenAI routes' server-sent events).
    pub async fn submit_watched(&self, job: NewJob) -> Result<Watch, StoreError> {
        self.jobs.submit_watched(job).await
    }

    /// Stream chunks of a job not read yet, each handed out once.
    pub async fn take_stream(&self, job_id: &str) -> Result<Vec<String>, StoreError> {
        self.store.take_stream(job_id).await
    }

    pub async fn cancel(
        &self,
        endpoint_id: &str,
        job_id: &str,
    ) -> Result<CancelOutcome, StoreError> {
        self.jobs.cancel(endpoint_id, job_id).await
    }

    pub async fn retry(&self, endpoint_id: &str, job_id: &str) -> Result<RetryOutcome, StoreError> {
        self.jobs.retry(endpoint_id, job_id).await
    }

    /// Cancel every queued job of an endpoint; returns how many.
    pub async fn purge_queue(&self, endpoint_id: &str) -> Result<usize, StoreError> {
        self.jobs.purge_queue(endpoint_id).await
    }

    /// The endpoint's jobs by state; queued ones include the `/runsync`
    /// jobs waiting in this host's memory for a worker (not stored yet).
    pub async fn job_counts(&self, endpoint_id: &str) -> Result<JobCounts, StoreError> {
        let mut counts = self.store.job_counts(endpoint_id).await?;
        if let Some(pool) = self.pools.shared(endpoint_id) {
            counts.in_queue += pool.waiting.load(std::sync::atomic::Ordering::SeqCst) as i64;
        }
        Ok(counts)
    }

    pub async fn job_ids(
        &self,
        endpoint_id: &str,
        status: JobStatus,
    ) -> Result<Vec<String>, StoreError> {
        self.store.job_ids(endpoint_id, status).await
    }

    pub async fn queue_depth(&self, endpoint_id: &str) -> Result<i64, StoreError> {
        self.store.queue_depth(endpoint_id, now_ms()).await
    }

    /// Milliseconds the oldest queued job has waited (0 with none).
    pub async fn queue_delay_ms(&self, endpoint_id: &str) -> Result<i64, StoreError> {
        Ok(self
            .store
            .oldest_queued_ms(endpoint_id, now_ms())
            .await?
            .unwrap_or(0))
    }

    // --- handlers, endpoints, keys, usage --------------------------------

    pub async fn handler(&self, digest: &str) -> Result<Option<HandlerRecord>, StoreError> {
        self.store.get_handler(digest).await
    }

    pub async fn list_handlers(&self) -> Result<Vec<HandlerRecord>, StoreError> {
        self.store.list_handlers().await
    }

    /// Endpoints that use a handler version.
    pub async fn endpoints_using(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        self.store.endpoints_using(digest).await
    }

    pub async fn endpoint(&self, id: &str) -> Result<Option<EndpointRecord>, StoreError> {
        self.store.get_endpoint(id).await
    }

    pub async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
        self.store.list_endpoints().await
    }

    /// Store a new endpoint and start its pool.
    pub async fn create_endpoint(&self, record: EndpointRecord) -> Result<(), StoreError> {
        self.store.create_endpoint(&record).await?;
        self.pools.apply(record);
        Ok(())
    }

    /// Store an endpoint's new settings and apply them to its pool (a new
    /// handler is a hot swap). None if it does not exist.
    pub async fn update_endpoint(
        &self,
        record: &EndpointRecord,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        let updated = self.store.update_endpoint(record).await?;
        if let Some(e) = &updated {
            self.jobs.handler_changed(&e.id, &e.handler);
            self.pools.apply(e.clone());
        }
        Ok(updated)
    }

    /// Stop an endpoint's workers (they finish their jobs), then delete it
    /// with its jobs and keys.
    pub async fn delete_endpoint(&self, endpoint_id: &str) -> Result<bool, StoreError> {
        self.pools.stop(endpoint_id).await;
        self.rejections.forget(endpoint_id);
        // Its workers' last lines are stored before its lines are deleted.
        self.ctx().logs.flush().await;
        let deleted = self.store.delete_endpoint(endpoint_id).await?;
        self.ctx().meter.latency.forget(endpoint_id);
        Ok(deleted)
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.store.list_keys().await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        self.store.revoke_key(id).await
    }

    /// Create an API key; returns its record and the key (shown once).
    pub async fn create_key(
        &self,
        name: &str,
        scope: Scope,
    ) -> Result<(ApiKeyRecord, String), StoreError> {
        keys::create(&self.store, &self.keys, name, scope).await
    }

    /// Metered worker time in `[since, until)` as stored.
    pub async fn usage(
        &self,
        endpoint_id: Option<&str>,
        since: i64,
        until: i64,
    ) -> Result<Vec<UsageTotal>, StoreError> {
        self.store.usage(endpoint_id, since, until).await
    }

    /// The same, with the meter brought up to this moment first (the
    /// workers running now included).
    pub async fn usage_now(
        &self,
        endpoint_id: Option<&str>,
        since: i64,
        until: i64,
    ) -> Result<Vec<UsageTotal>, StoreError> {
        self.ctx().slices.accrue();
        self.ctx().meter.flush(&self.store).await;
        self.store.usage(endpoint_id, since, until).await
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

    /// Check what an endpoint's settings name on this host: its
    /// `models_dir` (never the home or anything in it, where the database
    /// and key secret are: executors may read the models directory) and
    /// its `gpus` (see [`App::check_devices`]). `Ok` holds warnings.
    pub fn check_endpoint(&self, config: &EndpointConfig) -> Result<Vec<String>, String> {
        if let Some(dir) = &config.models_dir {
            let dir = std::path::Path::new(dir);
            let home = &self.config.home;
            let canonical =
                |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
            let (d, h) = (canonical(dir), canonical(home));
            if h.starts_with(&d) || d.starts_with(&h) {
                return Err(format!(
                    "models_dir {} overlaps wasmpod's home {} (its database and key secret), which executors must not read; upload models with PUT /v1/models/... instead, or use a directory outside the home",
                    dir.display(),
                    home.display()
                ));
            }
        }
        self.check_devices(config)
    }

    /// Check an endpoint's `gpus` against the device types wasmpod knows
    /// and this host's inventory: `Err` names an entry that is no known GPU
    /// model or MIG profile (a typo); `Ok` holds a warning for each known
    /// type this host cannot place (and one more if no entry can be placed,
    /// since its jobs would then wait until their ttl).
    pub fn check_devices(&self, config: &EndpointConfig) -> Result<Vec<String>, String> {
        let inventory = self.ctx().slices.inventory();
        let unknown: Vec<&String> = config
            .gpus
            .iter()
            .filter(|g| crate::gpu::catalog::classify(g, inventory).is_none())
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "gpus names {unknown:?}, which is no GPU model or MIG profile wasmpod knows (check the spelling); use any of: {}",
                crate::gpu::catalog::known_names()
            ));
        }
        let mut warnings = Vec::new();
        let mut nowhere = None;
        let mut placeable = false;
        for wanted in &config.gpus {
            let one = std::slice::from_ref(wanted);
            match crate::scheduler::place(
                inventory,
                one,
                config.gpus_per_worker,
                &Default::default(),
                0,
            ) {
                Err(crate::scheduler::PlacementError::NoMatch { available, .. }) => {
                    warnings.push(format!(
                        "gpus entry {wanted:?} with {} GPU(s) per worker matches no device of this host",
                        config.gpus_per_worker
                    ));
                    nowhere = Some(available);
                }
                _ => placeable = true,
            }
        }
        if let (false, Some(available)) = (placeable, nowhere) {
            warnings.push(format!(
                "no entry of gpus can run on this host, so its jobs wait IN_QUEUE until their ttl; add a device type it has (it has: {available})"
            ));
        }
        Ok(warnings)
    }

    /// The endpoint's [`App::check_devices`] warnings as they stand (an
    /// endpoint stored before a name became unknown gets that as one).
    pub fn device_warnings(&self, endpoint_id: &str) -> Vec<String> {
        match self.pools.endpoint(endpoint_id) {
            Some(e) => self.check_devices(&e.config).unwrap_or_else(|e| vec![e]),
            None => Vec::new(),
        }
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
