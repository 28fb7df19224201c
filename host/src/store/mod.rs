//! The serving store: handler versions, endpoints, API keys, model files and
//! the durable job queue. The interfaces a database implements are the
//! per-aggregate traits of [`aggregates`]; [`Store`] is what the engine room
//! holds: it dispatches to a backend, [`sqlite`] (one host, embedded, the
//! default) or [`postgres`] (a cluster of hosts on one database).

pub mod aggregates;
pub mod batches;
pub mod logs;
pub mod postgres;
pub mod sqlite;
#[cfg(test)]
mod suite;
pub mod types;

pub use aggregates::*;
pub use batches::{
    BatchCancelled, BatchCaps, BatchCounts, BatchItem, BatchRecord, BatchRefusal, BatchRequest,
    BatchStatus, NewBatch,
};
pub use logs::{Level, LogFilter, LogLine, LogSource, NewLogLine};
pub use types::*;

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened, migrated or queried.
    #[error("database: {0}")]
    Database(String),
    /// The database cannot be reached (down, restarting, network): nothing
    /// was done; the same request can be sent again.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// A unique key already exists (e.g. an endpoint id).
    #[error("{0}")]
    Conflict(String),
    /// The database URL names a backend this build does not have.
    #[error("{0}")]
    Unsupported(String),
    /// A stored row could not be read back (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.message().to_string());
        }
        match &e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_) => StoreError::Unavailable(e.to_string()),
            // Postgres shutting down or restarting: admin_shutdown,
            // crash_shutdown, cannot_connect_now (class 57P).
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P")) => {
                StoreError::Unavailable(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The database behind a [`Store`].
#[derive(Clone)]
pub enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// The serving store: every aggregate of one backend. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match &$self.backend {
            Backend::Sqlite($s) => $e,
            Backend::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Open (creating and migrating if needed) the database at `url`:
    /// `sqlite:///path/to/db.sqlite` or a plain file path (one host), or
    /// `postgres://user:password@host:port/database` (a cluster: a host
    /// whose heartbeat is older than `dead_after` is dead and its claimed
    /// jobs are re-queued).
    pub async fn open(url: &str, dead_after: std::time::Duration) -> Result<Self> {
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(postgres::PgStore::open(url, dead_after).await?)
        } else {
            Backend::Sqlite(sqlite::SqliteStore::open(url).await?)
        };
        Ok(Self { backend })
    }

    // --- hosts ----------------------------------------------------------

    /// Record that this host is alive (its claims' lease).
    pub async fn heartbeat(&self, host_id: &str, address: &str, now: i64) -> Result<()> {
        dispatch!(self, s => s.heartbeat(host_id, address, now).await)
    }
    pub async fn list_hosts(&self, now: i64) -> Result<Vec<HostRecord>> {
        dispatch!(self, s => s.list_hosts(now).await)
    }
    pub async fn leave(&self, host_id: &str) -> Result<()> {
        dispatch!(self, s => s.leave(host_id).await)
    }
    /// The other hosts' wake-ups (cluster mode); None for a store one host
    /// has to itself.
    pub fn wakeups(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Wakeup>> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(pg) => {
                let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                pg.listen(tx);
                Some(rx)
            }
        }
    }
    /// Start the queue's committer (`serve::lifecycle`) where this
    /// backend's group commits are cheapest: on SQLite, on the writer
    /// thread itself, so a commit is a call, not two thread hops; on
    /// Postgres (async I/O already) on the runtime.
    pub fn spawn_committer(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        match &self.backend {
            Backend::Sqlite(s) => s.host_committer(task),
            Backend::Postgres(_) => drop(tokio::spawn(task)),
        }
    }

    /// Whether other hosts share this store (cluster mode).
    pub fn shared(&self) -> bool {
        dispatch!(self, s => s.shared())
    }

    // --- handlers -------------------------------------------------------

    /// Record a handler version; returns false if it was already there.
    pub async fn put_handler(&self, digest: &str, size: i64, world: &str) -> Result<bool> {
        dispatch!(self, s => s.put_handler(digest, size, world).await)
    }
    pub async fn get_handler(&self, digest: &str) -> Result<Option<HandlerRecord>> {
        dispatch!(self, s => s.get_handler(digest).await)
    }
    pub async fn list_handlers(&self) -> Result<Vec<HandlerRecord>> {
        dispatch!(self, s => s.list_handlers().await)
    }
    /// Endpoints that use a handler version.
    pub async fn endpoints_using(&self, digest: &str) -> Result<Vec<String>> {
        dispatch!(self, s => s.endpoints_using(digest).await)
    }
    pub async fn delete_handler(&self, digest: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_handler(digest).await)
    }
    pub async fn put_handler_bytes(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        dispatch!(self, s => s.put_handler_bytes(digest, bytes).await)
    }
    pub async fn handler_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        dispatch!(self, s => s.handler_bytes(digest).await)
    }

    // --- endpoints ------------------------------------------------------

    pub async fn create_endpoint(&self, e: &EndpointRecord) -> Result<()> {
        dispatch!(self, s => s.create_endpoint(e).await)
    }
    pub async fn get_endpoint(&self, id: &str) -> Result<Option<EndpointRecord>> {
        dispatch!(self, s => s.get_endpoint(id).await)
    }
    pub async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        dispatch!(self, s => s.list_endpoints().await)
    }
    /// Replace name, handler and config; bumps the generation.
    pub async fn update_endpoint(&self, e: &EndpointRecord) -> Result<Option<EndpointRecord>> {
        dispatch!(self, s => s.update_endpoint(e).await)
    }
    /// Delete an endpoint and its jobs.
    pub async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        dispatch!(self, s => s.delete_endpoint(id).await)
    }

    // --- API keys -------------------------------------------------------

    /// Store a key by its hash ([`KEY_HASH_SCHEME`]).
    pub async fn insert_key(&self, key: &ApiKeyRecord, hash: &str) -> Result<()> {
        dispatch!(self, s => s.insert_key(key, hash).await)
    }
    /// The live (not revoked) key with this [`KEY_HASH_SCHEME`] hash.
    pub async fn find_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        dispatch!(self, s => s.find_key(hash).await)
    }
    /// The key, live or revoked, whose hash under `scheme` is `hash`.
    pub async fn key_with_hash(&self, hash: &str, scheme: &str) -> Result<Option<ApiKeyRecord>> {
        dispatch!(self, s => s.key_with_hash(hash, scheme).await)
    }
    /// Replace a key's stored hash (and prefix) with a [`KEY_HASH_SCHEME`] one.
    pub async fn rehash_key(&self, id: &str, hash: &str, prefix: &str) -> Result<()> {
        dispatch!(self, s => s.rehash_key(id, hash, prefix).await)
    }
    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        dispatch!(self, s => s.list_keys().await)
    }
    pub async fn revoke_key(&self, id: &str) -> Result<bool> {
        dispatch!(self, s => s.revoke_key(id).await)
    }
    pub async fn count_admin_keys(&self) -> Result<i64> {
        dispatch!(self, s => s.count_admin_keys().await)
    }

    // --- models ---------------------------------------------------------

    pub async fn put_model_file(&self, model: &str, file: &ModelFile) -> Result<()> {
        dispatch!(self, s => s.put_model_file(model, file).await)
    }
    /// Every model file, by model name.
    pub async fn list_model_files(&self) -> Result<Vec<(String, ModelFile)>> {
        dispatch!(self, s => s.list_model_files().await)
    }
    pub async fn delete_model(&self, model: &str) -> Result<u64> {
        dispatch!(self, s => s.delete_model(model).await)
    }
    /// Whether any model file still refers to a blob.
    pub async fn blob_in_use(&self, sha256: &str) -> Result<bool> {
        dispatch!(self, s => s.blob_in_use(sha256).await)
    }

    // --- jobs -----------------------------------------------------------

    pub async fn commit(&self, batch: Batch, now: i64) -> Result<BatchOutcome> {
        dispatch!(self, s => s.commit(batch, now).await)
    }
    pub async fn accept(&self, jobs: &[Accept<'_>], now: i64) -> Result<()> {
        dispatch!(self, s => s.accept(jobs, now).await)
    }
    pub async fn get_job(&self, endpoint_id: &str, id: &str) -> Result<Option<JobRecord>> {
        dispatch!(self, s => s.get_job(endpoint_id, id).await)
    }
    /// An endpoint's retained jobs, newest first, optionally in one state.
    pub async fn list_jobs(
        &self,
        endpoint_id: &str,
        status: Option<JobStatus>,
        limit: i64,
    ) -> Result<Vec<JobSummary>> {
        dispatch!(self, s => s.list_jobs(endpoint_id, status, limit).await)
    }
    /// Every stream chunk of a job's latest attempt, in order, read or not
    /// (a look that does not consume them, unlike [`Store::take_stream`]).
    pub async fn stream_chunks(&self, id: &str) -> Result<Vec<String>> {
        dispatch!(self, s => s.stream_chunks(id).await)
    }
    pub async fn claim(
        &self,
        endpoint_id: &str,
        by: &ClaimBy,
        limit: usize,
        now: i64,
    ) -> Result<Vec<ClaimedJob>> {
        dispatch!(self, s => s.claim(endpoint_id, by, limit, now).await)
    }
    pub async fn unclaim(&self, id: &str, worker_id: &str) -> Result<bool> {
        dispatch!(self, s => s.unclaim(id, worker_id).await)
    }
    pub async fn report(
        &self,
        id: &str,
        attempt: i64,
        progress: Option<&str>,
        chunks: &[(i64, String)],
    ) -> Result<()> {
        dispatch!(self, s => s.report(id, attempt, progress, chunks).await)
    }
    pub async fn take_stream(&self, id: &str) -> Result<Vec<String>> {
        dispatch!(self, s => s.take_stream(id).await)
    }
    pub async fn finish(&self, done: &[Finish], now: i64) -> Result<Vec<FinalJob>> {
        dispatch!(self, s => s.finish(done, now).await)
    }
    pub async fn cancel(
        &self,
        endpoint_id: &str,
        id: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<CancelOutcome> {
        dispatch!(self, s => s.cancel(endpoint_id, id, now, retention_ms).await)
    }
    pub async fn retry(&self, endpoint_id: &str, id: &str, now: i64) -> Result<RetryOutcome> {
        dispatch!(self, s => s.retry(endpoint_id, id, now).await)
    }
    pub async fn purge_queue(
        &self,
        endpoint_id: &str,
        reason: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<Vec<FinalJob>> {
        dispatch!(self, s => s.purge_queue(endpoint_id, reason, now, retention_ms).await)
    }
    pub async fn queue_depth(&self, endpoint_id: &str, now: i64) -> Result<i64> {
        dispatch!(self, s => s.queue_depth(endpoint_id, now).await)
    }
    pub async fn job_ids(&self, endpoint_id: &str, status: JobStatus) -> Result<Vec<String>> {
        dispatch!(self, s => s.job_ids(endpoint_id, status).await)
    }
    pub async fn job_counts(&self, endpoint_id: &str) -> Result<JobCounts> {
        dispatch!(self, s => s.job_counts(endpoint_id).await)
    }
    pub async fn recover_orphans(
        &self,
        host_id: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<(Vec<String>, Vec<FinalJob>)> {
        dispatch!(self, s => s.recover_orphans(host_id, now, retention_ms).await)
    }
    pub async fn requeue_lost(
        &self,
        id: &str,
        worker_id: &str,
        reason: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<LostJobOutcome> {
        dispatch!(self, s => s.requeue_lost(id, worker_id, reason, now, retention_ms).await)
    }
    pub async fn oldest_queued_ms(&self, endpoint_id: &str, now: i64) -> Result<Option<i64>> {
        dispatch!(self, s => s.oldest_queued_ms(endpoint_id, now).await)
    }
    /// Add metered worker time.
    pub async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()> {
        dispatch!(self, s => s.add_usage(deltas).await)
    }
    /// Metered worker time in `[since, until)` (ms since the epoch; minute
    /// granularity), per endpoint and slice type, optionally of one endpoint.
    pub async fn usage(
        &self,
        endpoint_id: Option<&str>,
        since: i64,
        until: i64,
    ) -> Result<Vec<UsageTotal>> {
        dispatch!(self, s => s.usage(endpoint_id, since, until).await)
    }
    /// Queued jobs whose ttl passed become TIMED_OUT; returns their ids.
    pub async fn expire_ttl(&self, now: i64, retention_ms: i64) -> Result<Vec<FinalJob>> {
        dispatch!(self, s => s.expire_ttl(now, retention_ms).await)
    }
    /// Delete final jobs past their retention (and no webhook pending).
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        dispatch!(self, s => s.purge_expired(now).await)
    }
    /// Final jobs whose webhook is due.
    pub async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<JobRecord>> {
        dispatch!(self, s => s.due_webhooks(now, limit).await)
    }
    /// After an attempt: delivered, or try again at `next_at`, or give up
    /// (`next_at` None).
    pub async fn webhook_attempted(
        &self,
        id: &str,
        delivered: bool,
        next_at: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        dispatch!(self, s => s.webhook_attempted(id, delivered, next_at, error).await)
    }
    /// The webhook's address is one this host does not send to: never
    /// tried again, `error` says why.
    pub async fn webhook_refused(&self, id: &str, error: &str) -> Result<()> {
        dispatch!(self, s => s.webhook_refused(id, error).await)
    }
    /// The time the earliest pending webhook is due, if any.
    pub async fn next_webhook_at(&self) -> Result<Option<i64>> {
        dispatch!(self, s => s.next_webhook_at().await)
    }

    // --- batches --------------------------------------------------------

    pub async fn create_batch(
        &self,
        batch: &NewBatch,
        caps: &BatchCaps,
        now: i64,
    ) -> Result<std::result::Result<BatchRecord, BatchRefusal>> {
        dispatch!(self, s => s.create_batch(batch, caps, now).await)
    }
    pub async fn add_batch_requests(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        requests: &[BatchRequest],
        caps: &BatchCaps,
        now: i64,
    ) -> Result<std::result::Result<BatchRecord, BatchRefusal>> {
        dispatch!(self, s => s.add_batch_requests(endpoint_id, batch_id, requests, caps, now).await)
    }
    pub async fn remove_batch_request(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        request_id: &str,
        caps: &BatchCaps,
        now: i64,
    ) -> Result<std::result::Result<BatchRecord, BatchRefusal>> {
        dispatch!(self, s => s.remove_batch_request(endpoint_id, batch_id, request_id, caps, now).await)
    }
    pub async fn update_batch_request(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        request: &BatchRequest,
        caps: &BatchCaps,
        now: i64,
    ) -> Result<std::result::Result<BatchRecord, BatchRefusal>> {
        dispatch!(self, s => s.update_batch_request(endpoint_id, batch_id, request, caps, now).await)
    }
    pub async fn finalize_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<std::result::Result<BatchRecord, BatchRefusal>> {
        dispatch!(self, s => s.finalize_batch(endpoint_id, batch_id, ttl_ms, now).await)
    }
    pub async fn cancel_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        retention_ms: i64,
        now: i64,
    ) -> Result<std::result::Result<BatchCancelled, BatchRefusal>> {
        dispatch!(self, s => s.cancel_batch(endpoint_id, batch_id, retention_ms, now).await)
    }
    pub async fn get_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
    ) -> Result<Option<BatchRecord>> {
        dispatch!(self, s => s.get_batch(endpoint_id, batch_id).await)
    }
    pub async fn list_batches(&self, endpoint_id: &str, limit: i64) -> Result<Vec<BatchRecord>> {
        dispatch!(self, s => s.list_batches(endpoint_id, limit).await)
    }
    pub async fn batch_items(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Option<(BatchRecord, Vec<BatchItem>)>> {
        dispatch!(self, s => s.batch_items(endpoint_id, batch_id, offset, limit).await)
    }
    pub async fn purge_batches(&self, now: i64, retention_ms: i64) -> Result<u64> {
        dispatch!(self, s => s.purge_batches(now, retention_ms).await)
    }

    // --- logs -----------------------------------------------------------

    /// Store log lines in one write; returns them with their `seq`.
    pub async fn append_logs(&self, lines: Vec<NewLogLine>) -> Result<Vec<LogLine>> {
        dispatch!(self, s => s.append_logs(lines).await)
    }
    /// The last `filter.limit` lines matching `filter`, oldest first.
    pub async fn query_logs(&self, filter: &LogFilter) -> Result<Vec<LogLine>> {
        dispatch!(self, s => s.query_logs(filter).await)
    }
    /// Delete lines older than `before`, then all but the newest `keep`.
    pub async fn trim_logs(&self, before: i64, keep: i64) -> Result<u64> {
        dispatch!(self, s => s.trim_logs(before, keep).await)
    }
}
