//! The records the store keeps, independent of the database behind it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A job's state, spelled as RunPod spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    InQueue,
    InProgress,
    Completed,
    Failed,
    Cancelled,
    TimedOut,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::InQueue => "IN_QUEUE",
            JobStatus::InProgress => "IN_PROGRESS",
            JobStatus::Completed => "COMPLETED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
            JobStatus::TimedOut => "TIMED_OUT",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "IN_QUEUE" => JobStatus::InQueue,
            "IN_PROGRESS" => JobStatus::InProgress,
            "COMPLETED" => JobStatus::Completed,
            "FAILED" => JobStatus::Failed,
            "CANCELLED" => JobStatus::Cancelled,
            "TIMED_OUT" => JobStatus::TimedOut,
            _ => return None,
        })
    }

    /// COMPLETED, FAILED, CANCELLED and TIMED_OUT never change again
    /// (except through an explicit retry).
    pub fn is_final(self) -> bool {
        !matches!(self, JobStatus::InQueue | JobStatus::InProgress)
    }
}

/// One job as stored.
#[derive(Debug, Clone)]
pub struct JobRecord {
    pub id: String,
    pub endpoint_id: String,
    pub status: JobStatus,
    pub input: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub progress: Option<String>,
    pub webhook: Option<String>,
    pub execution_timeout_ms: Option<i64>,
    pub ttl_ms: i64,
    pub low_priority: bool,
    pub sync: bool,
    pub retries: i64,
    pub created_at: i64,
    pub queued_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub delay_ms: Option<i64>,
    pub execution_ms: Option<i64>,
    pub expires_at: Option<i64>,
    pub worker_id: Option<String>,
    pub handler: Option<String>,
    /// NULL (no webhook), "pending", "delivered", "failed" (its tries
    /// spent) or "refused" (an address this host does not send to).
    pub webhook_state: Option<String>,
    pub webhook_attempts: i64,
    /// Why the last delivery failed or was refused.
    pub webhook_error: Option<String>,
}

/// A job as listed: its state and times, not its input or output.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobSummary {
    pub id: String,
    pub status: JobStatus,
    /// ms since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    /// ms it waited in the queue before it started.
    pub delay_ms: Option<i64>,
    /// ms it ran.
    pub execution_ms: Option<i64>,
    pub worker_id: Option<String>,
    pub retries: i64,
    pub sync: bool,
    /// Why it failed (in a list, the first 300 characters).
    pub error: Option<String>,
}

impl JobSummary {
    /// The summary of a whole record (its error in full).
    pub fn of(r: &JobRecord) -> Self {
        Self {
            id: r.id.clone(),
            status: r.status,
            created_at: r.created_at,
            started_at: r.started_at,
            completed_at: r.completed_at,
            delay_ms: r.delay_ms,
            execution_ms: r.execution_ms,
            worker_id: r.worker_id.clone(),
            retries: r.retries,
            sync: r.sync,
            error: r.error.clone(),
        }
    }
}

/// What a submission asks for.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: String,
    pub endpoint_id: String,
    pub input: String,
    pub webhook: Option<String>,
    pub execution_timeout_ms: Option<i64>,
    pub ttl_ms: i64,
    pub low_priority: bool,
    pub sync: bool,
    /// When it was accepted (ms), where that was before its write: a
    /// `/runsync` job handed straight to a worker is written when it ends
    /// or has run a while (see `serve::lifecycle`). None: at the write.
    pub accepted_at: Option<i64>,
    /// When it was handed to its worker (ms), where that was after its
    /// accept and before its write: a `/runsync` job that waited in the
    /// host's memory for a worker. None: as of its accept.
    pub handed_at: Option<i64>,
}

/// A job a worker has claimed.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub input: String,
    pub execution_timeout_ms: Option<i64>,
    /// Which attempt this is (0 for the first run): stream chunks are keyed
    /// by it so a re-run does not collide with what an earlier one streamed.
    pub attempt: i64,
    /// Submitted through `/runsync` (shorter retention).
    pub sync: bool,
    /// A batch request or a `policy.lowPriority` job.
    pub low_priority: bool,
}

impl ClaimedJob {
    /// A new job as it is handed straight to a worker at accept.
    pub fn handed(job: NewJob) -> Self {
        ClaimedJob {
            id: job.id,
            input: job.input,
            execution_timeout_ms: job.execution_timeout_ms,
            attempt: 0,
            sync: job.sync,
            low_priority: job.low_priority,
        }
    }
}

/// Who takes a job: a worker of this host running one handler version.
/// Claims carry the host id, so a store shared by several hosts (cluster
/// mode) knows whose jobs to re-queue when a host dies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimBy {
    pub worker_id: String,
    pub host_id: String,
    /// The handler digest the worker runs; a claim through
    /// [`crate::store::JobStore::claim`] only takes jobs while it is still the
    /// endpoint's handler (hot swap).
    pub handler: String,
}

/// One job to accept, optionally handed straight to an idle worker in the
/// same write (it is stored IN_PROGRESS, claimed by that worker).
#[derive(Debug, Clone, Copy)]
pub struct Accept<'a> {
    pub job: &'a NewJob,
    pub claim: Option<&'a ClaimBy>,
}

/// A claim to make in a group commit: up to `limit` queued jobs of an
/// endpoint for one worker.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub endpoint_id: String,
    pub by: ClaimBy,
    pub limit: usize,
    /// Low-priority jobs of the endpoint the claiming host may run at once
    /// (those it runs already count): past it the claim takes normal jobs
    /// only, so batch work never holds every slot a real-time job could
    /// take. `usize::MAX`: no cap.
    pub low_cap: usize,
}

/// One group commit of the queue: accepts (each optionally handed to a
/// worker), then finishes (which may end a job accepted in the same
/// commit), then claims, in one transaction. Claims of one
/// endpoint stop at the first that comes back short (its queue is empty).
#[derive(Debug, Default)]
pub struct Batch {
    pub finishes: Vec<Finish>,
    pub accepts: Vec<(NewJob, Option<ClaimBy>)>,
    pub claims: Vec<ClaimRequest>,
}

/// What a group commit did. A failure of one part (say, the accepts) does
/// not undo the others.
#[derive(Debug)]
pub struct BatchOutcome {
    /// The finishes that made jobs final (their worker still held them).
    pub finished: Result<Vec<FinalJob>, crate::store::StoreError>,
    /// The accepts, given back, and whether they were stored.
    pub accepts: Vec<(NewJob, Option<ClaimBy>)>,
    pub accepted: Result<(), crate::store::StoreError>,
    /// Per claim request, in order: the jobs it took.
    pub claimed: Vec<Vec<ClaimedJob>>,
}

/// How one claimed job ended, as its worker reports it.
#[derive(Debug, Clone)]
pub struct Finish {
    pub id: String,
    pub worker_id: String,
    pub outcome: JobOutcome,
    /// How long the final job is kept (ms).
    pub retention_ms: i64,
}

/// A job as it became final: what the "finished" event carries to its
/// subscribers (`/runsync` waiters, webhooks, metrics). No input: nobody
/// downstream needs it, and it may be large.
#[derive(Debug, Clone)]
pub struct FinalJob {
    pub id: String,
    pub endpoint_id: String,
    pub status: JobStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub delay_ms: Option<i64>,
    pub execution_ms: Option<i64>,
    pub worker_id: Option<String>,
    pub retries: i64,
    /// A webhook delivery is now due.
    pub webhook_pending: bool,
}

impl FinalJob {
    /// The final state of a full record.
    pub fn of(r: &JobRecord) -> Self {
        Self {
            id: r.id.clone(),
            endpoint_id: r.endpoint_id.clone(),
            status: r.status,
            output: r.output.clone(),
            error: r.error.clone(),
            delay_ms: r.delay_ms,
            execution_ms: r.execution_ms,
            worker_id: r.worker_id.clone(),
            retries: r.retries,
            webhook_pending: r.webhook_state.as_deref() == Some("pending"),
        }
    }
}

/// How a claimed job ended.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub status: JobStatus,
    pub output: Option<String>,
    pub error: Option<String>,
}

/// Counts of an endpoint's retained jobs by state.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobCounts {
    pub completed: i64,
    pub failed: i64,
    pub in_progress: i64,
    pub in_queue: i64,
    pub retried: i64,
}

/// What happened to a cancel request.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// It was queued or running and is now CANCELLED; `was_running` says
    /// whether a worker must be told.
    Cancelled {
        was_running: bool,
        job: FinalJob,
    },
    /// It had already finished with this status.
    AlreadyFinal(JobStatus),
    NotFound,
}

/// What happened to a retry request.
#[derive(Debug, Clone)]
pub enum RetryOutcome {
    Requeued,
    /// Only FAILED and TIMED_OUT jobs can be retried.
    NotRetryable(JobStatus),
    NotFound,
}

/// An uploaded handler version.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandlerRecord {
    /// sha256 of the component, hex.
    pub digest: String,
    pub size: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The component's world: "handler" (a queue handler, for endpoints of
    /// type "queue") or "http-handler" (for type "load_balancer").
    pub world: String,
}

/// Endpoint settings. Every field has a default, so a create needs only
/// `handler`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Workers kept warm even with an empty queue.
    pub min_workers: u32,
    /// Upper bound on workers (0 pauses the endpoint: jobs wait in the queue).
    pub max_workers: u32,
    /// Seconds an idle worker above `min_workers` is kept before it stops.
    pub idle_timeout_s: u64,
    /// Default execution timeout of a job, in milliseconds (a job's
    /// `policy.executionTimeout` overrides it).
    pub execution_timeout_ms: u64,
    /// Jobs one worker runs at once (one instance each).
    pub concurrency: u32,
    /// GPU types in order of preference ("H100", "A100", "MIG-1g.10gb",
    /// "cpu"); used for placement by the scheduler.
    pub gpus: Vec<String>,
    pub gpus_per_worker: u32,
    /// Environment variables the handler sees.
    pub env: BTreeMap<String, String>,
    /// Directory of models (one sub-directory per model) the handler may
    /// open; unset means the host's managed model store (`/v1/models`).
    pub models_dir: Option<String>,
    /// FlashBoot: start workers from a snapshot taken after `init`, and
    /// when a worker scales to zero keep its instances with their tensors
    /// and the slice's weights paged out to host memory, so the next cold
    /// start pages them back instead of running `init` and reading
    /// safetensors again. On by default; turn it off for a handler whose
    /// `init` must run on every start (e.g. it reads the clock or fetches
    /// state that goes stale).
    pub flashboot: bool,
    /// How many times a job whose worker was lost (host crash) is re-queued
    /// before it is failed.
    pub max_retries: u32,
    /// Cap on a handler instance's linear memory, MiB.
    pub memory_limit_mib: u64,
    /// Cap on a worker's tensor memory, MiB.
    pub tensor_quota_mib: u64,
    /// When workers are added (RunPod's scaler types): "REQUEST_COUNT", a
    /// worker per `scaler_value` jobs queued or running (0: per
    /// `concurrency` jobs); or "QUEUE_DELAY", one more worker while the
    /// oldest queued job has waited over `scaler_value` seconds (0: 4 s).
    pub scaler_type: ScalerType,
    pub scaler_value: u32,
    /// "queue" (jobs through `/v2/{id}/run`, a handler of world `handler`)
    /// or "load_balancer" (any HTTP request through `/lb/{id}/...` goes
    /// straight to a worker, a handler of world `http-handler`; workers
    /// scale with the requests in flight, `concurrency` per worker).
    #[serde(rename = "type")]
    pub kind: EndpointKind,
    /// Load-balancing endpoints: how long one request may run before it is
    /// answered 504, in milliseconds (RunPod's load balancer: 5.5 min).
    pub request_timeout_ms: u64,
    /// Load-balancing endpoints: DNS names whose requests (by their `Host:`
    /// header) go to this endpoint with their whole path, as
    /// `https://{name}/{path}` instead of `/lb/{id}/{path}`.
    pub hostnames: Vec<String>,
    /// Rate limits by operation ("run", "runsync", "status" (also
    /// `/stream`), "cancel", "retry", "purge-queue", "health", "lb",
    /// "batch" (changing a batch; reading one counts as "status")),
    /// replacing the host's defaults (RunPod's table) for this
    /// endpoint; `{"requests": 0}` lifts an operation's limit.
    pub rate_limits: BTreeMap<String, RateLimit>,
}

/// A rate limit on one operation of an endpoint: `requests` per
/// `window_s` seconds (0: no limit), and at most `concurrent` at once (0:
/// no cap). Past either, requests are answered 429 with Retry-After.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    #[serde(default = "RateLimit::default_window")]
    pub window_s: u32,
    #[serde(default)]
    pub concurrent: u32,
}

impl RateLimit {
    fn default_window() -> u32 {
        10
    }
}

/// The operations a rate limit can name.
pub const RATE_LIMITED_OPERATIONS: [&str; 9] = [
    "run",
    "runsync",
    "status",
    "cancel",
    "retry",
    "purge-queue",
    "health",
    "lb",
    "batch",
];

/// What kind of endpoint this is (RunPod's endpoint types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointKind {
    /// Jobs are queued and claimed by workers (`/v2/{id}/run`, `/runsync`).
    #[default]
    Queue,
    /// Requests go straight to a worker's HTTP handler (`/lb/{id}/...`).
    LoadBalancer,
}

impl EndpointKind {
    /// The handler world an endpoint of this kind runs.
    pub fn world(self) -> &'static str {
        match self {
            EndpointKind::Queue => "handler",
            EndpointKind::LoadBalancer => "http-handler",
        }
    }
}

/// How an endpoint scales up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScalerType {
    RequestCount,
    QueueDelay,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            min_workers: 0,
            max_workers: 3,
            idle_timeout_s: 5,
            execution_timeout_ms: 600_000,
            concurrency: 1,
            gpus: vec!["cpu".to_string()],
            gpus_per_worker: 1,
            env: BTreeMap::new(),
            models_dir: None,
            flashboot: true,
            max_retries: 2,
            memory_limit_mib: 1024,
            tensor_quota_mib: 8192,
            scaler_type: ScalerType::RequestCount,
            scaler_value: 0,
            kind: EndpointKind::Queue,
            request_timeout_ms: 330_000,
            hostnames: Vec::new(),
            rate_limits: BTreeMap::new(),
        }
    }
}

/// The longest execution timeout or ttl accepted (7 days).
pub const MAX_DURATION_MS: u64 = 7 * 24 * 3600 * 1000;

impl EndpointConfig {
    /// Check the settings; the message says which one is wrong and why.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_workers > self.max_workers {
            return Err(format!(
                "min_workers ({}) is larger than max_workers ({}); lower min_workers or raise max_workers",
                self.min_workers, self.max_workers
            ));
        }
        if self.max_workers > 1024 {
            return Err("max_workers must be at most 1024".into());
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err("concurrency must be between 1 and 256 jobs per worker".into());
        }
        if self.execution_timeout_ms < 1000 || self.execution_timeout_ms > MAX_DURATION_MS {
            return Err(format!(
                "execution_timeout_ms must be between 1000 (1 s) and {MAX_DURATION_MS} (7 days)"
            ));
        }
        if self.idle_timeout_s > 7 * 24 * 3600 {
            return Err("idle_timeout_s must be at most 7 days".into());
        }
        if self.gpus.is_empty() {
            return Err("gpus must list at least one device type, e.g. [\"H100\", \"cpu\"]".into());
        }
        if let Some(bad) = self.gpus.iter().find(|g| g.trim().is_empty()) {
            return Err(format!("gpus has an empty entry {bad:?}"));
        }
        if self.gpus_per_worker == 0 || self.gpus_per_worker > 16 {
            return Err("gpus_per_worker must be between 1 and 16".into());
        }
        if let Some(k) = self
            .env
            .keys()
            .find(|k| k.is_empty() || k.contains('=') || k.contains('\0'))
        {
            return Err(format!(
                "env has an invalid variable name {k:?} (non-empty, no '=')"
            ));
        }
        if let Some(dir) = &self.models_dir {
            let path = std::path::Path::new(dir);
            if !path.is_absolute()
                || path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                || dir.contains('\0')
            {
                return Err(format!(
                    "models_dir {dir:?} must be an absolute path on the host, without '..'"
                ));
            }
        }
        if self.memory_limit_mib < 16 || self.memory_limit_mib > 64 * 1024 {
            return Err("memory_limit_mib must be between 16 and 65536".into());
        }
        if self.tensor_quota_mib == 0 {
            return Err("tensor_quota_mib must be at least 1".into());
        }
        if self.request_timeout_ms < 1000 || self.request_timeout_ms > MAX_DURATION_MS {
            return Err(format!(
                "request_timeout_ms must be between 1000 (1 s) and {MAX_DURATION_MS} (7 days)"
            ));
        }
        if let Some(bad) = self.hostnames.iter().find(|h| !is_hostname(h)) {
            return Err(format!(
                "hostnames has {bad:?}, which is not a lowercase DNS name such as \"embed.example.com\""
            ));
        }
        for (op, limit) in &self.rate_limits {
            if !RATE_LIMITED_OPERATIONS.contains(&op.as_str()) {
                return Err(format!(
                    "rate_limits names {op:?}, not an operation; use one of {}",
                    RATE_LIMITED_OPERATIONS.join(", ")
                ));
            }
            if limit.window_s == 0 || limit.window_s > 3600 {
                return Err(format!(
                    "rate_limits.{op}.window_s must be between 1 and 3600 seconds"
                ));
            }
        }
        if self.kind == EndpointKind::LoadBalancer && self.scaler_type == ScalerType::QueueDelay {
            return Err(
                "a load_balancer endpoint has no queue: it scales by requests in flight, so scaler_type must be REQUEST_COUNT".into(),
            );
        }
        if !self.hostnames.is_empty() && self.kind != EndpointKind::LoadBalancer {
            return Err(
                "hostnames route HTTP requests, so they need \"type\": \"load_balancer\"".into(),
            );
        }
        if self.scaler_value > 3600 {
            return Err(
                "scaler_value must be at most 3600 (jobs per worker, or seconds of queue delay)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A lowercase DNS name: dot-separated labels of letters, digits and '-'.
fn is_hostname(h: &str) -> bool {
    h.len() <= 253
        && h.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// An endpoint as stored.
#[derive(Debug, Clone)]
pub struct EndpointRecord {
    pub id: String,
    pub name: String,
    pub handler: String,
    pub config: EndpointConfig,
    /// Bumped on every update; workers of an older generation are outdated.
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an API key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything: /v1 admin routes and every endpoint's /v2 routes.
    Admin,
    /// Only the /v2 routes of one endpoint.
    Invoke { endpoint_id: String },
}

/// How the store's key hashes are made now: HMAC-SHA256 keyed with the
/// install's secret. Rows of older versions say "sha256" (a plain sha256)
/// until they are re-hashed.
pub const KEY_HASH_SCHEME: &str = "hmac-sha256";
/// The scheme of rows written before keys were keyed.
pub const LEGACY_KEY_HASH_SCHEME: &str = "sha256";

/// A stored API key (never the key itself).
#[derive(Debug, Clone)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    /// The first characters of a generated key (`wpk_` and 6 of its 64
    /// random hex digits), to recognise it by; empty for an
    /// operator-chosen key, whose characters are all secret.
    pub prefix: String,
    pub scope: Scope,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// One file of a model in the content-addressed model store.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelFile {
    pub path: String,
    pub sha256: String,
    pub size: i64,
    pub created_at: i64,
}

/// What happened to a job whose worker was lost (its executor died).
#[derive(Debug, Clone)]
pub enum LostJobOutcome {
    /// Back in the queue, one more retry counted.
    Requeued,
    /// Its retries were spent (`max_retries`): FAILED.
    Failed(FinalJob),
    /// The worker no longer held it (cancelled or finished meanwhile).
    NotHeld,
}

/// Worker time to add to the meter: `worker_ms` of `slice_type` workers of
/// an endpoint, in the minute starting at `minute` (ms since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct UsageDelta {
    pub endpoint_id: String,
    pub slice_type: String,
    pub minute: i64,
    pub worker_ms: i64,
}

/// Metered worker time of one endpoint on one slice type.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UsageTotal {
    pub endpoint_id: String,
    pub slice_type: String,
    /// Worker time in seconds (millisecond precision).
    pub worker_seconds: f64,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A host of a cluster, as its heartbeats left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRecord {
    pub id: String,
    /// Where its API listens.
    pub address: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    /// Its heartbeat is fresher than the dead-host time.
    pub alive: bool,
}

/// A wake-up from the other hosts of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wakeup {
    /// A job entered the queue of this endpoint.
    Queued { endpoint_id: String },
    /// A job became final.
    Final {
        endpoint_id: String,
        job_id: String,
        status: JobStatus,
    },
    /// The listener (re)connected: wake-ups may have been missed, so look
    /// at every queue and waiting job again.
    Reconnected,
}
