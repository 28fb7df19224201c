//! `wasmpod serve`'s engine room: the [`App`] that ties the store, the
//! runtime, handler and model storage, the per-endpoint worker pools, the
//! webhook sender and the retention sweeper together. The HTTP layer
//! ([`crate::api`]) calls it; it knows nothing of HTTP.

pub mod egress;
pub mod events;
pub mod handlers;
pub mod home;
pub mod housekeeping;
pub mod keys;
pub mod meter;
pub mod models;
pub mod pool;
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
    ApiKeyRecord, CancelOutcome, EndpointConfig, EndpointRecord, NewJob, RetryOutcome, Scope,
    Store, StoreError, now_ms,
};
pub use events::JobEvents;
pub use handlers::{HandlerError, HandlerRepo};
pub use keys::{Bootstrap, KeyError, KeyHasher};
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
            poll: Duration::from_millis(500),
            admin_key: None,
            inventory: None,
            executor_exe: None,
            metrics_public: false,
            no_executor_sandbox: false,
            executor_idle: Duration::from_secs(300),
            flashboot_keep: Duration::from_secs(3600),
            flashboot_ram: 16 << 30,
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
    /// Hashes API keys with the install's secret.
    pub keys: KeyHasher,
    /// Which addresses webhooks may reach.
    pub egress: Arc<egress::EgressPolicy>,
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
        home::prepare(&config.home).map_err(|source| ServeError::Io {
            path: config.home.clone(),
            source,
        })?;
        for dir in ["handlers", "models/tree", "models/blobs", "cache"] {
            let path = config.home.join(dir);
            std::fs::create_dir_all(&path).map_err(|source| ServeError::Io { path, source })?;
        }
        let key_hasher = KeyHasher::open(&config.home)?;
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
        let meter = Arc::new(Meter::default());
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
                keys: key_hasher,
                egress,
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

    /// The live API key a caller presented, if any (a key stored by an
    /// older version is re-hashed on the way).
    pub async fn authenticate(&self, key: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        keys::authenticate(&self.store, &self.keys, key).await
    }

    /// Create an API key; returns its record and the key (shown once).
    pub async fn create_key(
        &self,
        name: &str,
        scope: Scope,
    ) -> Result<(ApiKeyRecord, String), StoreError> {
        keys::create(&self.store, &self.keys, name, scope).await
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
