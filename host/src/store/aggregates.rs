//! The store's interfaces, one per aggregate: what a database backend
//! implements. [`super::sqlite::SqliteStore`] implements them all; a
//! Postgres backend (cluster mode) implements the same traits and runs the
//! same test suite (`store/suite.rs`: one `store_suite!` line per backend).
//!
//! The job queue's rules live behind [`JobStore`]: claims are taken by a
//! worker of one host ([`ClaimBy`]: worker, host, handler version), so a
//! shared store can re-queue a dead host's jobs; every transition to a final
//! state returns the [`FinalJob`] the engine room's lifecycle owner
//! announces. Batch forms (`accept`, `claim` with a limit, `finish`) let the
//! engine room commit many jobs in one write.

use std::future::Future;

use super::Result;
use super::batches::*;
use super::logs::{LogFilter, LogLine, NewLogLine};
use super::types::*;

/// Uploaded handler versions (content-addressed components).
pub trait HandlerStore {
    /// Record a handler version of `world` ("handler" or "http-handler");
    /// returns false if it was already there.
    fn put_handler(
        &self,
        digest: &str,
        size: i64,
        world: &str,
    ) -> impl Future<Output = Result<bool>> + Send;
    fn get_handler(
        &self,
        digest: &str,
    ) -> impl Future<Output = Result<Option<HandlerRecord>>> + Send;
    fn list_handlers(&self) -> impl Future<Output = Result<Vec<HandlerRecord>>> + Send;
    /// Endpoints that use a handler version.
    fn endpoints_using(&self, digest: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    fn delete_handler(&self, digest: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Keep the component bytes where every host can fetch them (a shared
    /// store; one host's store keeps them on its disk only: a no-op).
    fn put_handler_bytes(
        &self,
        digest: &str,
        bytes: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;
    /// The component bytes, if the store keeps them.
    fn handler_bytes(&self, digest: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;
}

/// Endpoints and their settings.
pub trait EndpointStore {
    /// Conflict if the id exists.
    fn create_endpoint(&self, e: &EndpointRecord) -> impl Future<Output = Result<()>> + Send;
    fn get_endpoint(&self, id: &str)
    -> impl Future<Output = Result<Option<EndpointRecord>>> + Send;
    fn list_endpoints(&self) -> impl Future<Output = Result<Vec<EndpointRecord>>> + Send;
    /// Replace name, handler and config; bumps the generation.
    fn update_endpoint(
        &self,
        e: &EndpointRecord,
    ) -> impl Future<Output = Result<Option<EndpointRecord>>> + Send;
    /// Delete an endpoint, its jobs and log lines, and revoke its keys.
    fn delete_endpoint(&self, id: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// API keys (only their hashes are stored).
pub trait KeyStore {
    fn insert_key(&self, key: &ApiKeyRecord, hash: &str)
    -> impl Future<Output = Result<()>> + Send;
    /// The live (not revoked) key with this [`KEY_HASH_SCHEME`] hash.
    fn find_key(&self, hash: &str) -> impl Future<Output = Result<Option<ApiKeyRecord>>> + Send;
    /// The key, live or revoked, whose hash under `scheme` is `hash`.
    fn key_with_hash(
        &self,
        hash: &str,
        scheme: &str,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>>> + Send;
    /// Replace a key's stored hash (and prefix) with a [`KEY_HASH_SCHEME`] one.
    fn rehash_key(
        &self,
        id: &str,
        hash: &str,
        prefix: &str,
    ) -> impl Future<Output = Result<()>> + Send;
    fn list_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyRecord>>> + Send;
    fn revoke_key(&self, id: &str) -> impl Future<Output = Result<bool>> + Send;
    fn count_admin_keys(&self) -> impl Future<Output = Result<i64>> + Send;
}

/// Files of the managed model store.
pub trait ModelFileStore {
    fn put_model_file(
        &self,
        model: &str,
        file: &ModelFile,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every model file, by model name.
    fn list_model_files(&self) -> impl Future<Output = Result<Vec<(String, ModelFile)>>> + Send;
    fn delete_model(&self, model: &str) -> impl Future<Output = Result<u64>> + Send;
    /// Whether any model file still refers to a blob.
    fn blob_in_use(&self, sha256: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// The durable job queue.
pub trait JobStore {
    /// One group commit (see [`Batch`]): the hot path's single write.
    fn commit(&self, batch: Batch, now: i64) -> impl Future<Output = Result<BatchOutcome>> + Send;
    /// Store new jobs, all or none: IN_QUEUE, or IN_PROGRESS when the accept
    /// hands the job to a worker (`claim`).
    fn accept(&self, jobs: &[Accept<'_>], now: i64) -> impl Future<Output = Result<()>> + Send;
    fn get_job(
        &self,
        endpoint_id: &str,
        id: &str,
    ) -> impl Future<Output = Result<Option<JobRecord>>> + Send;
    /// An endpoint's retained jobs, newest first, optionally in one state.
    fn list_jobs(
        &self,
        endpoint_id: &str,
        status: Option<JobStatus>,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<JobSummary>>> + Send;
    /// Take up to `limit` runnable jobs of an endpoint (normal priority
    /// first, then in arrival order) for a worker, while `by.handler` is
    /// still the endpoint's handler. Returned in queue order.
    fn claim(
        &self,
        endpoint_id: &str,
        by: &ClaimBy,
        limit: usize,
        now: i64,
    ) -> impl Future<Output = Result<Vec<ClaimedJob>>> + Send;
    /// Give a claimed job back to the queue untouched (no retry counted):
    /// the worker it was handed to had gone before it started.
    fn unclaim(&self, id: &str, worker_id: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Store a running job's latest progress value and stream chunks
    /// `(index, json)` of one attempt, in one write.
    fn report(
        &self,
        id: &str,
        attempt: i64,
        progress: Option<&str>,
        chunks: &[(i64, String)],
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every stream chunk of a job's latest attempt, in order, read or not
    /// (a look that does not consume them, unlike `take_stream`).
    fn stream_chunks(&self, id: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Hand out (once) the chunks not yet read, in order.
    fn take_stream(&self, id: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// Record how claimed jobs ended, each only if its worker still holds
    /// it (a cancel may have finished it first). Returns the jobs that
    /// became final.
    fn finish(
        &self,
        done: &[Finish],
        now: i64,
    ) -> impl Future<Output = Result<Vec<FinalJob>>> + Send;
    /// Cancel a queued or running job.
    fn cancel(
        &self,
        endpoint_id: &str,
        id: &str,
        now: i64,
        retention_ms: i64,
    ) -> impl Future<Output = Result<CancelOutcome>> + Send;
    /// Re-queue a FAILED or TIMED_OUT job (a retry counted).
    fn retry(
        &self,
        endpoint_id: &str,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<RetryOutcome>> + Send;
    /// Cancel every queued job of an endpoint.
    fn purge_queue(
        &self,
        endpoint_id: &str,
        reason: &str,
        now: i64,
        retention_ms: i64,
    ) -> impl Future<Output = Result<Vec<FinalJob>>> + Send;
    /// Jobs of an endpoint waiting in the queue (runnable now).
    fn queue_depth(&self, endpoint_id: &str, now: i64) -> impl Future<Output = Result<i64>> + Send;
    /// Ids of an endpoint's jobs in one state, in queue order.
    fn job_ids(
        &self,
        endpoint_id: &str,
        status: JobStatus,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
    fn job_counts(&self, endpoint_id: &str) -> impl Future<Output = Result<JobCounts>> + Send;
    /// How long the oldest runnable job of an endpoint has waited, in ms.
    fn oldest_queued_ms(
        &self,
        endpoint_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<i64>>> + Send;
    /// Jobs left IN_PROGRESS by another (dead) host: re-queued (a retry
    /// counted) while the endpoint's `max_retries` allows, else FAILED.
    /// Returns the re-queued ids and the failed jobs.
    fn recover_orphans(
        &self,
        host_id: &str,
        now: i64,
        retention_ms: i64,
    ) -> impl Future<Output = Result<(Vec<String>, Vec<FinalJob>)>> + Send;
    /// A job whose worker was lost while it ran: back in the queue with a
    /// retry counted while `max_retries` allows, else FAILED. Only if
    /// `worker_id` still holds it.
    fn requeue_lost(
        &self,
        id: &str,
        worker_id: &str,
        reason: &str,
        now: i64,
        retention_ms: i64,
    ) -> impl Future<Output = Result<LostJobOutcome>> + Send;
    /// Queued jobs whose ttl passed become TIMED_OUT.
    fn expire_ttl(
        &self,
        now: i64,
        retention_ms: i64,
    ) -> impl Future<Output = Result<Vec<FinalJob>>> + Send;
    /// Delete final jobs past their retention (and no webhook pending).
    fn purge_expired(&self, now: i64) -> impl Future<Output = Result<u64>> + Send;
}

/// Batches of requests (RunPod's batch jobs). Every change checks its
/// limits and the batch's state in the transaction that makes it; a
/// refusal changes nothing.
pub trait BatchStore {
    /// A new DRAFT batch with its first requests, unless the endpoint has
    /// `caps.max_active` active batches already or it would hold more than
    /// `caps.max_requests`.
    fn create_batch(
        &self,
        batch: &NewBatch,
        caps: &BatchCaps,
        now: i64,
    ) -> impl Future<Output = Result<std::result::Result<BatchRecord, BatchRefusal>>> + Send;
    /// Append requests to a DRAFT batch (after its others).
    fn add_batch_requests(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        requests: &[BatchRequest],
        caps: &BatchCaps,
        now: i64,
    ) -> impl Future<Output = Result<std::result::Result<BatchRecord, BatchRefusal>>> + Send;
    /// Remove one request from a DRAFT batch.
    fn remove_batch_request(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        request_id: &str,
        caps: &BatchCaps,
        now: i64,
    ) -> impl Future<Output = Result<std::result::Result<BatchRecord, BatchRefusal>>> + Send;
    /// Replace the input of one request of a DRAFT batch.
    fn update_batch_request(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        request: &BatchRequest,
        caps: &BatchCaps,
        now: i64,
    ) -> impl Future<Output = Result<std::result::Result<BatchRecord, BatchRefusal>>> + Send;
    /// Lock a DRAFT batch and queue its requests, in their order, as
    /// low-priority jobs (the endpoint's execution timeout, a ttl of
    /// `ttl_ms`).
    fn finalize_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        ttl_ms: i64,
        now: i64,
    ) -> impl Future<Output = Result<std::result::Result<BatchRecord, BatchRefusal>>> + Send;
    /// Cancel a batch: a draft's requests are dropped, a finalized one's
    /// queued requests become CANCELLED (running ones finish).
    fn cancel_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        retention_ms: i64,
        now: i64,
    ) -> impl Future<Output = Result<std::result::Result<BatchCancelled, BatchRefusal>>> + Send;
    fn get_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
    ) -> impl Future<Output = Result<Option<BatchRecord>>> + Send;
    /// An endpoint's newest `limit` batches, newest first.
    fn list_batches(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<BatchRecord>>> + Send;
    /// `limit` of a batch's requests from `offset`, in the order added,
    /// with the batch as read in the same snapshot.
    fn batch_items(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        offset: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Option<(BatchRecord, Vec<BatchItem>)>>> + Send;
    /// Batches with no request left to run are kept `retention_ms` from
    /// now; batches past their time go, with their jobs. Returns how many
    /// went.
    fn purge_batches(
        &self,
        now: i64,
        retention_ms: i64,
    ) -> impl Future<Output = Result<u64>> + Send;
}

/// Webhook deliveries of final jobs (their state lives with the job).
pub trait WebhookStore {
    /// Final jobs whose webhook is due.
    fn due_webhooks(
        &self,
        now: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<JobRecord>>> + Send;
    /// After an attempt: delivered, or try again at `next_at`, or give up.
    fn webhook_attempted(
        &self,
        id: &str,
        delivered: bool,
        next_at: Option<i64>,
        error: Option<&str>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// The webhook's address is one this host does not send to: never
    /// tried again, `error` says why.
    fn webhook_refused(&self, id: &str, error: &str) -> impl Future<Output = Result<()>> + Send;
    /// When the earliest pending webhook is due, if any.
    fn next_webhook_at(&self) -> impl Future<Output = Result<Option<i64>>> + Send;
}

/// Metered worker time, the billing basis.
pub trait UsageStore {
    fn add_usage(&self, deltas: &[UsageDelta]) -> impl Future<Output = Result<()>> + Send;
    /// Worker time in `[since, until)` per endpoint and slice type.
    fn usage(
        &self,
        endpoint_id: Option<&str>,
        since: i64,
        until: i64,
    ) -> impl Future<Output = Result<Vec<UsageTotal>>> + Send;
}

/// The hosts of a cluster and their heartbeats. A host's heartbeat is the
/// lease on the jobs it claimed ([`JobStore::recover_orphans`] re-queues
/// the jobs of hosts whose heartbeat stopped). A store only one host uses
/// (SQLite) has no one to tell: its heartbeats are no-ops.
pub trait HostStore {
    /// Record that `host_id` (its API at `address`) is alive at `now`.
    fn heartbeat(
        &self,
        host_id: &str,
        address: &str,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;
    /// Every host that has a heartbeat, alive or not at `now`.
    fn list_hosts(&self, now: i64) -> impl Future<Output = Result<Vec<HostRecord>>> + Send;
    /// A host stopping cleanly leaves the cluster.
    fn leave(&self, host_id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Whether other hosts share this store (cluster mode).
    fn shared(&self) -> bool;
}

/// Log lines of handlers and workers, one stream per endpoint. Apart from
/// the queue: a job's lines outlive its row.
pub trait LogStore {
    /// Store `lines` in one write; returns them with their `seq`.
    fn append_logs(
        &self,
        lines: Vec<NewLogLine>,
    ) -> impl Future<Output = Result<Vec<LogLine>>> + Send;
    /// The last `filter.limit` lines matching `filter`, oldest first.
    fn query_logs(&self, filter: &LogFilter) -> impl Future<Output = Result<Vec<LogLine>>> + Send;
    /// Delete lines older than `before`, then all but the newest `keep`
    /// lines; returns how many went.
    fn trim_logs(&self, before: i64, keep: i64) -> impl Future<Output = Result<u64>> + Send;
}
