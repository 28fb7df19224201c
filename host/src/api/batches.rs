//! RunPod's batch API on every queue endpoint, `/v2/{endpoint}/batch...`:
//! create (a JSON array of `{"input": ...}` requests, or `{"name",
//! "requests"}`), add requests to a draft, remove one, rename, finalize,
//! list, read one (counts), page its requests' results, cancel.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::Caller;
use super::body::{parse_json, read_limited};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::ratelimit::{Admitted, Operation, admit};
use crate::serve::{BatchError, BatchPage};
use crate::store::{BatchItem, BatchRecord, BatchStatus, JobStatus};

/// A batch and how its requests stand. A finalized batch stays FINALIZED
/// while its requests run: it is done when `requestCompleted +
/// requestFailed + requestCancelled == requestTotal`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchBody {
    pub id: String,
    pub endpoint_id: String,
    pub name: Option<String>,
    pub status: BatchStatus,
    pub request_total: i64,
    pub request_in_queue: i64,
    pub request_in_progress: i64,
    pub request_completed: i64,
    /// FAILED or TIMED_OUT.
    pub request_failed: i64,
    pub request_cancelled: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub finalized_at: Option<i64>,
}

impl From<BatchRecord> for BatchBody {
    fn from(b: BatchRecord) -> Self {
        Self {
            id: b.id,
            endpoint_id: b.endpoint_id,
            name: b.name,
            status: b.status,
            request_total: b.counts.total,
            request_in_queue: b.counts.in_queue,
            request_in_progress: b.counts.in_progress,
            request_completed: b.counts.completed,
            request_failed: b.counts.failed,
            request_cancelled: b.counts.cancelled,
            created_at: b.created_at,
            finalized_at: b.finalized_at,
        }
    }
}

/// One request of a batch in a results page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequestBody {
    pub id: String,
    /// DRAFT before the batch is finalized; then the job's status.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub output: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
}

/// A page of a batch's requests, in the order they were added.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchPageBody {
    pub requests: Vec<BatchRequestBody>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub has_more: bool,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct PageQuery {
    /// Requests to skip (default 0).
    pub offset: Option<i64>,
    /// Requests per page (default 50, at most 1000).
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameBatch {
    pub name: Option<String>,
}

const EXAMPLE: &str = r#"[{"input": {"prompt": "hello"}}, {"input": {"prompt": "world"}}]"#;

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let status = match &e {
            BatchError::NoEndpoint(_) | BatchError::NotFound { .. } | BatchError::NoRequest { .. } => {
                StatusCode::NOT_FOUND
            }
            BatchError::NotQueueEndpoint(_)
            | BatchError::TooManyRequests { .. }
            | BatchError::Empty(_) => StatusCode::BAD_REQUEST,
            BatchError::NotDraft { .. } | BatchError::Over { .. } => StatusCode::CONFLICT,
            BatchError::TooManyActive { .. } | BatchError::QueueFull { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            BatchError::Store(s) => return ApiError::from(s.clone()),
        };
        let mut error = ApiError::new(status, e.to_string());
        if status == StatusCode::TOO_MANY_REQUESTS {
            error.retry_after = Some(60);
        }
        error
    }
}

fn allowed(state: &ApiState, caller: &Caller, endpoint: &str) -> ApiResult<Admitted> {
    caller.require_invoke(endpoint)?;
    admit(state, endpoint, Operation::Batch)
}

/// The inputs of `[{"input": ...}, ...]` (each as JSON text).
fn inputs(requests: &Value) -> ApiResult<Vec<String>> {
    let Value::Array(items) = requests else {
        return Err(ApiError::bad_request(format!(
            "batch requests are a JSON array such as {EXAMPLE}"
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let Value::Object(fields) = item else {
                return Err(ApiError::bad_request(format!(
                    "requests[{i}] must be an object such as {{\"input\": {{...}}}}, got {item}"
                )));
            };
            if let Some(other) = fields.keys().find(|k| *k != "input") {
                return Err(ApiError::bad_request(format!(
                    "requests[{i}] has {other:?}; a batch request takes only \"input\" (the batch runs with the endpoint's settings)"
                )));
            }
            match fields.get("input") {
                None | Some(Value::Null) => Err(ApiError::bad_request(format!(
                    "requests[{i}] has no \"input\"; each request is {{\"input\": {{...}}}}"
                ))),
                Some(v) => Ok(v.to_string()),
            }
        })
        .collect()
}

async fn body_value(state: &ApiState, headers: &HeaderMap, body: Body) -> ApiResult<Value> {
    let bytes = read_limited(headers, body, state.app.config.run_body_limit, "batch calls").await?;
    parse_json(&bytes, EXAMPLE)
}

/// Create a draft batch: the body is an array of requests (empty to add
/// them later), or `{"name": ..., "requests": [...]}`.
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch", tag = "batches",
    params(("endpoint_id" = String, Path)),
    request_body(content = Object, description = "[{\"input\": {...}}, ...] or {\"name\": \"...\", \"requests\": [...]}"),
    responses((status = 200, body = BatchBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 429, description = "Too many active batches, or the rate limit", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    let value = body_value(&state, &headers, body).await?;
    let (name, requests) = match value {
        Value::Object(mut fields) => {
            let name = match fields.remove("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(n)) => Some(n),
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "name must be a string, got {other}"
                    )));
                }
            };
            let requests = fields.remove("requests").unwrap_or(Value::Array(vec![]));
            if let Some(other) = fields.keys().next() {
                return Err(ApiError::bad_request(format!(
                    "a batch takes \"name\" and \"requests\", not {other:?}"
                )));
            }
            (name, requests)
        }
        other => (None, other),
    };
    let inputs = inputs(&requests)?;
    let batch = state
        .app
        .create_batch(&endpoint, name.as_deref(), inputs)
        .await?;
    Ok(Json(batch.into()))
}

/// Append requests to a DRAFT batch: `{"requests": [...]}` (or the array).
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch/{batch_id}/requests", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    request_body(content = Object, description = "{\"requests\": [{\"input\": {...}}, ...]}"),
    responses((status = 200, body = BatchBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Not a draft", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn add_requests(
    State(state): State<ApiState>,
    caller: Caller,
    Path((endpoint, batch)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    let value = body_value(&state, &headers, body).await?;
    let requests = match value {
        Value::Object(mut fields) => fields.remove("requests").ok_or_else(|| {
            ApiError::bad_request(format!("the body has no \"requests\"; send {{\"requests\": {EXAMPLE}}}"))
        })?,
        other => other,
    };
    let inputs = inputs(&requests)?;
    Ok(Json(
        state.app.add_batch_requests(&endpoint, &batch, inputs).await?.into(),
    ))
}

/// Remove one request from a DRAFT batch.
#[utoipa::path(delete, path = "/v2/{endpoint_id}/batch/{batch_id}/requests/{request_id}", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path), ("request_id" = String, Path)),
    responses((status = 200, body = BatchBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_request(
    State(state): State<ApiState>,
    caller: Caller,
    Path((endpoint, batch, request)): Path<(String, String, String)>,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    Ok(Json(
        state
            .app
            .remove_batch_request(&endpoint, &batch, &request)
            .await?
            .into(),
    ))
}

/// Lock a DRAFT batch: its requests join the queue behind real-time jobs.
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch/{batch_id}/finalize", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    responses((status = 200, body = BatchBody), (status = 400, description = "No requests", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Not a draft", body = ErrorBody),
        (status = 429, description = "The endpoint's queue holds too many batch requests", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn finalize(
    State(state): State<ApiState>,
    caller: Caller,
    Path((endpoint, batch)): Path<(String, String)>,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    Ok(Json(state.app.finalize_batch(&endpoint, &batch).await?.into()))
}

/// Rename a batch: `{"name": "..."}`.
#[utoipa::path(put, path = "/v2/{endpoint_id}/batch/{batch_id}", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    request_body = RenameBatch,
    responses((status = 200, body = BatchBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn rename(
    State(state): State<ApiState>,
    caller: Caller,
    Path((endpoint, batch)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    let bytes = read_limited(&headers, body, 1 << 20, "this route").await?;
    let rename: RenameBatch = parse_json(&bytes, r#"{"name": "nightly"}"#)?;
    Ok(Json(
        state
            .app
            .rename_batch(&endpoint, &batch, rename.name.as_deref())
            .await?
            .into(),
    ))
}

/// The endpoint's batches, newest first.
#[utoipa::path(get, path = "/v2/{endpoint_id}/batch", tag = "batches",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = Vec<BatchBody>), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(endpoint): Path<String>,
) -> ApiResult<Json<Value>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    let batches: Vec<BatchBody> = state
        .app
        .list_batches(&endpoint)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "batches": batches })))
}

/// One batch with its request counts.
#[utoipa::path(get, path = "/v2/{endpoint_id}/batch/{batch_id}", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    responses((status = 200, body = BatchBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    Path((endpoint, batch)): Path<(String, String)>,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    Ok(Json(state.app.batch(&endpoint, &batch).await?.into()))
}

/// Cancel a batch: queued requests are cancelled, running ones finish.
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch/{batch_id}/cancel", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    responses((status = 200, body = BatchBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Already cancelled or failed", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    Path((endpoint, batch)): Path<(String, String)>,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    Ok(Json(state.app.cancel_batch(&endpoint, &batch).await?.into()))
}

fn item_body(item: BatchItem) -> BatchRequestBody {
    let json = |text: &str| serde_json::from_str(text).unwrap_or(Value::String(text.into()));
    match item {
        BatchItem::Draft { id, input } => BatchRequestBody {
            id,
            status: "DRAFT".into(),
            input: Some(json(&input)),
            output: None,
            error: None,
            delay_time: None,
            execution_time: None,
            started_at: None,
            completed_at: None,
        },
        BatchItem::Job(job) => BatchRequestBody {
            status: job.status.as_str().into(),
            output: (job.status == JobStatus::Completed)
                .then(|| job.output.as_deref().map(json))
                .flatten(),
            error: job.error.clone(),
            delay_time: job.delay_ms,
            execution_time: job.execution_ms,
            started_at: job.started_at,
            completed_at: job.completed_at,
            input: None,
            id: job.id,
        },
    }
}

/// A page of the batch's requests with their results, in the order they
/// were added: `?offset=0&limit=50` (at most 1000 a page).
#[utoipa::path(get, path = "/v2/{endpoint_id}/batch/{batch_id}/requests", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path), PageQuery),
    responses((status = 200, body = BatchPageBody), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn requests(
    State(state): State<ApiState>,
    caller: Caller,
    Path((endpoint, batch)): Path<(String, String)>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<BatchPageBody>> {
    let _admitted = allowed(&state, &caller, &endpoint)?;
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(50);
    if offset < 0 {
        return Err(ApiError::bad_request("offset must be 0 or more"));
    }
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let BatchPage {
        batch,
        items,
        offset,
        limit,
    } = state.app.batch_page(&endpoint, &batch, offset, limit).await?;
    let total = batch.counts.total;
    Ok(Json(BatchPageBody {
        requests: items.into_iter().map(item_body).collect(),
        total,
        offset,
        limit,
        has_more: offset + limit < total,
    }))
}
