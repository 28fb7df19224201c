//! The RunPod v2 job API of every endpoint: `/v2/{endpoint}/run`,
//! `/runsync`, `/status/{job}`, `/stream/{job}`, `/cancel/{job}`,
//! `/retry/{job}`, `/purge-queue` and `/health`, with RunPod's field names,
//! statuses and HTTP codes.

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::Caller;
use super::body::{parse_json, read_limited};
use super::doc::{Limited, Rejected};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::ratelimit::{Admitted, Operation, admit};
use super::validate::{ApiQuery, EndpointPath, JobPath};
use crate::serve::{LastBoot, RequestCounts, SyncAnswer, WorkerCounts, WorkerDetail};
use crate::store::{
    CancelOutcome, EndpointKind, JobCounts, JobStatus, MAX_DURATION_MS, NewJob, RetryOutcome,
};
use crate::wire::{JobStatusBody, final_status, job_status};

/// A job submission. Other fields are ignored (RunPod's clients send
/// some wasmpod has no use for).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // the body is read field by field; this is its schema
pub struct RunRequest {
    /// The handler's input (any JSON value but null).
    pub input: Value,
    /// http(s) URL POSTed the status object when the job finishes. Only
    /// public addresses unless the operator allows others
    /// (`--webhook-allow`); a refused one shows in /status `webhook`.
    #[schema(max_length = 2048)]
    pub webhook: Option<String>,
    pub policy: Option<Policy>,
}

/// Per-job execution policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // read field by field; this is its schema
pub struct Policy {
    /// Milliseconds the job may run (default: the endpoint's execution_timeout_ms).
    #[schema(minimum = 1000, maximum = 604800000)]
    pub execution_timeout: Option<u64>,
    /// Milliseconds the job may wait in the queue before it is TIMED_OUT (default 24 h).
    #[schema(minimum = 1000, maximum = 604800000)]
    pub ttl: Option<u64>,
    /// Run after every normal-priority job of the queue.
    pub low_priority: Option<bool>,
}

/// Answer of /run (and of /runsync when the job is not done in time).
/// Nothing else: so that a full status object is not one of these too
/// (`deny_unknown_fields` documents `additionalProperties: false`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobIdStatus {
    pub id: String,
    pub status: JobStatus,
}

/// Answer of /runsync: the final status object, or the job's id and
/// status when it did not finish within the wait.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RunSyncAnswer {
    Finished(JobStatusBody),
    Pending(JobIdStatus),
}

/// Answer of /stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamBody {
    pub id: String,
    pub status: JobStatus,
    /// Chunks produced since the last /stream read, each handed out once.
    pub stream: Vec<StreamChunk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StreamChunk {
    /// One chunk the handler streamed (any JSON value).
    pub output: Value,
}

/// Answer of /purge-queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurgeBody {
    pub removed: usize,
    /// Always "completed".
    pub status: String,
}

/// Answer of /health: RunPod's `jobs` and `workers`, plus each worker's
/// state and slice and the queue's delay.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthBody {
    pub jobs: JobCounts,
    pub workers: WorkerCounts,
    /// Every worker: state (initializing, idle, running, throttled,
    /// outdated, unhealthy), slice, jobs running, and why it is unhealthy
    /// or throttled.
    pub worker_details: Vec<WorkerDetail>,
    /// Milliseconds the oldest queued job has waited (0 with an empty queue).
    pub queue_delay_ms: i64,
    /// How the endpoint's latest worker started (FlashBoot layer and time).
    pub last_boot: Option<LastBoot>,
    /// Requests refused past a rate limit, by operation ("run", "lb", ...).
    pub rate_limited: std::collections::BTreeMap<String, u64>,
    /// A load-balancing endpoint's requests: served, failed, rejected (503),
    /// in flight, waiting for a worker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<RequestCounts>,
    /// Why its jobs may not run: `gpus` entries this host has no device
    /// for (empty when every entry can be placed).
    pub warnings: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Milliseconds /runsync waits for the job before answering with its
    /// id (capped by the host's --runsync-max-wait).
    #[param(value_type = Option<u64>)]
    pub wait: Option<String>,
}

const EXAMPLE: &str = r#"{"input": {"prompt": "hello"}}"#;

/// The longest webhook URL accepted.
const MAX_WEBHOOK_LEN: usize = 2048;

fn not_found_endpoint(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {id:?}; list endpoints with GET /v1/endpoints"
    ))
}

fn not_found_job(state: &ApiState, endpoint: &str, job: &str) -> ApiError {
    let r = &state.app.config.retention;
    ApiError::not_found(format!(
        "no job {job:?} on endpoint {endpoint:?}; results are kept {} s after a /run job finishes and {} s after a /runsync one",
        r.run.as_secs(),
        r.runsync.as_secs()
    ))
}

/// Check the key may invoke `endpoint` and that it exists.
fn authorize(state: &ApiState, caller: &Caller, endpoint: &str) -> ApiResult<()> {
    caller.require_invoke(endpoint)?;
    if state.app.pools.shared(endpoint).is_none() {
        return Err(not_found_endpoint(endpoint));
    }
    Ok(())
}

/// [`authorize`] for a job operation, which a load-balancing endpoint does
/// not have; then the operation's rate limit.
pub(super) fn admit_job_op(
    state: &ApiState,
    caller: &Caller,
    endpoint: &str,
    op: Operation,
) -> ApiResult<Admitted> {
    authorize(state, caller, endpoint)?;
    let load_balancer = state
        .app
        .pools
        .inspect(endpoint, |e| e.config.kind == EndpointKind::LoadBalancer)
        .unwrap_or(false);
    if load_balancer {
        return Err(ApiError::bad_request(format!(
            "endpoint {endpoint:?} is a load balancer: it has no job queue; send your HTTP requests to /lb/{endpoint}/<path>"
        )));
    }
    admit(state, endpoint, op)
}

fn positive_ms(policy: &serde_json::Map<String, Value>, key: &str) -> ApiResult<Option<i64>> {
    match policy.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(ms) if (1000..=MAX_DURATION_MS).contains(&ms) => Ok(Some(ms as i64)),
            _ => Err(ApiError::bad_request(format!(
                "policy.{key} must be a whole number of milliseconds between 1000 and {MAX_DURATION_MS} (7 days), got {v}"
            ))),
        },
    }
}

/// A submission as read: the input is kept as the client's JSON text (it
/// is stored and handed to the handler as it is, never re-encoded); the
/// other fields are checked below with errors that say what to send.
#[derive(Deserialize)]
struct Submission<'a> {
    #[serde(borrow)]
    input: Option<&'a serde_json::value::RawValue>,
    #[serde(default)]
    webhook: Value,
    #[serde(default)]
    policy: Value,
}

/// Validate a submission body and turn it into a job.
fn new_job(state: &ApiState, endpoint: &str, bytes: &[u8], sync: bool) -> ApiResult<NewJob> {
    let trimmed = bytes.trim_ascii_start();
    if !trimmed.is_empty() && trimmed[0] != b'{' {
        // Valid JSON of another shape, or not JSON at all.
        let _: Value = parse_json(bytes, EXAMPLE)?;
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object such as {EXAMPLE}"
        )));
    }
    let body: Submission<'_> = parse_json(bytes, EXAMPLE)?;
    let input = match body.input {
        None => {
            return Err(ApiError::bad_request(format!(
                "the request body has no \"input\"; put the handler's input under it: {EXAMPLE}"
            )));
        }
        Some(raw) if raw.get() == "null" => {
            return Err(ApiError::bad_request(format!(
                "\"input\" is null; give the handler's input, e.g. {EXAMPLE}"
            )));
        }
        Some(raw) => raw.get().to_string(),
    };
    let webhook = match &body.webhook {
        Value::Null => None,
        Value::String(url) => {
            if url.len() > MAX_WEBHOOK_LEN {
                return Err(ApiError::bad_request(format!(
                    "webhook is {} bytes long; a webhook URL may be at most {MAX_WEBHOOK_LEN}",
                    url.len()
                )));
            }
            state
                .app
                .egress
                .check_url(url)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some(url.clone())
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "webhook must be a URL string, got {other}"
            )));
        }
    };
    let (execution_timeout_ms, ttl_ms, low_priority) = match &body.policy {
        Value::Null => (None, None, false),
        Value::Object(p) => {
            let low = match p.get("lowPriority") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "policy.lowPriority must be true or false, got {other}"
                    )));
                }
            };
            (
                positive_ms(p, "executionTimeout")?,
                positive_ms(p, "ttl")?,
                low,
            )
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "policy must be an object such as {{\"executionTimeout\": 60000, \"ttl\": 3600000}}, got {other}"
            )));
        }
    };
    // Time-ordered (UUIDv7): consecutive jobs land next to each other in
    // the id index, so a group commit touches a page or two of it instead
    // of one random page per job.
    let id = uuid::Uuid::now_v7().to_string();
    Ok(NewJob {
        id: if sync { format!("sync-{id}") } else { id },
        endpoint_id: endpoint.to_string(),
        input,
        webhook,
        execution_timeout_ms,
        ttl_ms: ttl_ms.unwrap_or(state.app.config.default_ttl.as_millis() as i64),
        low_priority,
        sync,
        accepted_at: None,
        handed_at: None,
    })
}

/// Queue a job.
#[utoipa::path(post, path = "/v2/{endpoint_id}/run", tag = "jobs",
    params(("endpoint_id" = String, Path)),
    request_body = RunRequest,
    responses(
        (status = 200, description = "Queued", body = JobIdStatus),
        (status = 404, description = "Unknown endpoint", body = ErrorBody),
        (status = 413, description = "Body over 10 MB", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn run(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<JobIdStatus>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Run)?;
    let bytes = read_limited(&headers, body, state.app.config.run_body_limit, "/run").await?;
    let job = new_job(&state, &endpoint, &bytes, false)?;
    let id = job.id.clone();
    state.app.submit(job).await?;
    Ok(Json(JobIdStatus {
        id,
        status: JobStatus::InQueue,
    }))
}

/// Run a job and wait for it (`?wait=` ms, default 90 s); if it is not done
/// in time the answer is its id and status (IN_QUEUE or IN_PROGRESS), and
/// the client polls /status.
#[utoipa::path(post, path = "/v2/{endpoint_id}/runsync", tag = "jobs",
    params(("endpoint_id" = String, Path), WaitQuery),
    request_body = RunRequest,
    responses(
        (status = 200, description = "The job's final status object, or its id and status when it is not done in time", body = RunSyncAnswer),
        (status = 404, description = "Unknown endpoint", body = ErrorBody),
        (status = 413, description = "Body over 20 MB", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn runsync(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
    ApiQuery(query): ApiQuery<WaitQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RunSyncAnswer>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Runsync)?;
    let config = &state.app.config;
    let wait = match query.wait.as_deref() {
        None => config.runsync_wait,
        Some(w) => match w.parse::<u64>() {
            Ok(ms) => Duration::from_millis(ms).min(config.runsync_max_wait),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "wait={w:?} is not a number of milliseconds; use e.g. ?wait=30000 (at most {})",
                    config.runsync_max_wait.as_millis()
                )));
            }
        },
    };
    let bytes = read_limited(&headers, body, config.runsync_body_limit, "/runsync").await?;
    let job = new_job(&state, &endpoint, &bytes, true)?;
    let id = job.id.clone();
    Ok(Json(match state.app.run_sync(job, wait).await? {
        SyncAnswer::Finished(job) => RunSyncAnswer::Finished(final_status(&job)),
        SyncAnswer::Pending(status) => RunSyncAnswer::Pending(JobIdStatus { id, status }),
    }))
}

/// A job's status (and output once COMPLETED).
#[utoipa::path(method(get, post), path = "/v2/{endpoint_id}/status/{job_id}", tag = "jobs",
    params(("endpoint_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, body = JobStatusBody),
        (status = 404, description = "Unknown endpoint or job (or purged after retention)", body = ErrorBody),
        Rejected, Limited),
    security(("api_key" = [])))]
pub async fn status(
    State(state): State<ApiState>,
    caller: Caller,
    JobPath { endpoint, job }: JobPath,
) -> ApiResult<Json<JobStatusBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Status)?;
    let record = state
        .app
        .job(&endpoint, &job)
        .await?
        .ok_or_else(|| not_found_job(&state, &endpoint, &job))?;
    Ok(Json(job_status(&record)))
}

/// Stream chunks produced since the last read; keep reading until a final
/// status comes with an empty `stream`.
#[utoipa::path(method(get, post), path = "/v2/{endpoint_id}/stream/{job_id}", tag = "jobs",
    params(("endpoint_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, body = StreamBody),
        (status = 404, description = "Unknown endpoint or job", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn stream(
    State(state): State<ApiState>,
    caller: Caller,
    JobPath { endpoint, job }: JobPath,
) -> ApiResult<Json<StreamBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Status)?;
    // Status first: a job is final only after all its chunks are stored,
    // so a final status read here guarantees the chunks below are the last.
    let record = state
        .app
        .job(&endpoint, &job)
        .await?
        .ok_or_else(|| not_found_job(&state, &endpoint, &job))?;
    let chunks = state.app.take_stream(&job).await?;
    Ok(Json(StreamBody {
        id: record.id,
        status: record.status,
        stream: chunks
            .iter()
            .map(|c| StreamChunk {
                output: serde_json::from_str(c).unwrap_or(Value::String(c.clone())),
            })
            .collect(),
        error: record.error,
    }))
}

/// Cancel a queued or running job. A job that already finished keeps its
/// status, which the answer shows.
#[utoipa::path(post, path = "/v2/{endpoint_id}/cancel/{job_id}", tag = "jobs",
    params(("endpoint_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, body = JobIdStatus),
        (status = 404, description = "Unknown endpoint or job", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    JobPath { endpoint, job }: JobPath,
) -> ApiResult<Json<JobIdStatus>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Cancel)?;
    let status = match state.app.cancel(&endpoint, &job).await? {
        CancelOutcome::Cancelled { .. } => JobStatus::Cancelled,
        CancelOutcome::AlreadyFinal(s) => s,
        CancelOutcome::NotFound => return Err(not_found_job(&state, &endpoint, &job)),
    };
    Ok(Json(JobIdStatus { id: job, status }))
}

/// Re-queue a FAILED or TIMED_OUT job (its `retries` goes up by one).
#[utoipa::path(post, path = "/v2/{endpoint_id}/retry/{job_id}", tag = "jobs",
    params(("endpoint_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, body = JobIdStatus),
        (status = 404, description = "Unknown endpoint or job", body = ErrorBody),
        (status = 409, description = "The job is not FAILED or TIMED_OUT", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn retry(
    State(state): State<ApiState>,
    caller: Caller,
    JobPath { endpoint, job }: JobPath,
) -> ApiResult<Json<JobIdStatus>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Retry)?;
    match state.app.retry(&endpoint, &job).await? {
        RetryOutcome::Requeued => Ok(Json(JobIdStatus {
            id: job,
            status: JobStatus::InQueue,
        })),
        RetryOutcome::NotRetryable(s) => Err(ApiError::conflict(format!(
            "job {job:?} is {}; only FAILED or TIMED_OUT jobs can be retried",
            s.as_str()
        ))),
        RetryOutcome::NotFound => Err(not_found_job(&state, &endpoint, &job)),
    }
}

/// Remove every queued (not yet running) job; they end CANCELLED.
#[utoipa::path(post, path = "/v2/{endpoint_id}/purge-queue", tag = "jobs",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = PurgeBody),
        (status = 404, description = "Unknown endpoint", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn purge_queue(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
) -> ApiResult<Json<PurgeBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::PurgeQueue)?;
    let removed = state.app.purge_queue(&endpoint).await?;
    Ok(Json(PurgeBody {
        removed,
        status: "completed".into(),
    }))
}

/// Job counts (of retained jobs) and worker states.
#[utoipa::path(get, path = "/v2/{endpoint_id}/health", tag = "jobs",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = HealthBody),
        (status = 404, description = "Unknown endpoint", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn health(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
) -> ApiResult<Json<HealthBody>> {
    authorize(&state, &caller, &endpoint)?;
    let _admitted = admit(&state, &endpoint, Operation::Health)?;
    let jobs = state.app.job_counts(&endpoint).await?;
    let queue_delay_ms = state.app.queue_delay_ms(&endpoint).await?;
    Ok(Json(HealthBody {
        jobs,
        workers: state.app.worker_counts(&endpoint),
        worker_details: state.app.worker_details(&endpoint),
        queue_delay_ms,
        last_boot: state.app.last_boot(&endpoint),
        rate_limited: state.app.rate_limited_counts(&endpoint),
        requests: state.app.lb_counts(&endpoint),
        warnings: state.app.device_warnings(&endpoint),
    }))
}
