//! RunPod's batch API on every endpoint, `/v2/{endpoint}/batch...`: create
//! a draft (`{"name", "requests": [{"input": ...}, ...]}`), add requests to
//! it, remove one, finalize it (its requests queue behind real-time jobs),
//! list an endpoint's batches, read one (its counts), page its requests
//! with their results, cancel it. An invoke key of the endpoint (or an
//! admin key) may do all of it. Rate limits: reading a batch counts as
//! `/status` does (clients poll both); changing one is the `batch`
//! operation.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::body::{parse_json, read_limited};
use super::doc::{Limited, Rejected};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::jobs::admit_job_op;
use super::params::Params;
use super::ratelimit::Operation;
use super::validate::{ApiQuery, BatchPath, BatchRequestPath, EndpointPath};
use crate::serve::{BatchError, BatchPage};
use crate::store::{BatchItem, BatchRecord, BatchStatus};
use crate::wire::json_or_text;

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

/// Answer of the batch list.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchList {
    /// The endpoint's newest 100 batches, newest first.
    pub batches: Vec<BatchBody>,
}

/// One request of a batch in a page.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchRequestBody {
    /// The request's id, which is also its job's: GET
    /// /v2/{endpoint}/status/{id} reads it once the batch is finalized.
    pub id: String,
    /// DRAFT before the batch is finalized; then its job's status.
    pub status: String,
    /// Its input, while the batch is a draft.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub input: Option<Box<RawValue>>,
    /// The handler's output once COMPLETED.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<serde_json::Value>)]
    pub output: Option<Box<RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// ms it waited in the queue.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_time: Option<i64>,
    /// ms it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time: Option<i64>,
    /// The worker that ran it (last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
}

/// A page of a batch's requests, in the order they were added.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchPageBody {
    pub requests: Vec<BatchRequestBody>,
    /// Requests in the batch.
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    /// More requests follow this page: ask for `offset + limit`.
    pub has_more: bool,
}

/// One request to add: the handler's input; the batch runs with the
/// endpoint's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by hand below; this is its schema
pub struct BatchRequestIn {
    /// The handler's input (any JSON value but null).
    pub input: serde_json::Value,
}

/// A new batch: a name and its first requests (both optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by hand below; this is its schema
pub struct CreateBatch {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub requests: Option<Vec<BatchRequestIn>>,
}

/// Requests to append to a draft.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by hand below; this is its schema
pub struct AddRequests {
    pub requests: Vec<BatchRequestIn>,
}

const EXAMPLE: &str = r#"{"name": "nightly", "requests": [{"input": {"prompt": "hello"}}, {"input": {"prompt": "world"}}]}"#;
const ADD_EXAMPLE: &str = r#"{"requests": [{"input": {"prompt": "hello"}}]}"#;
/// The longest batch name.
const MAX_NAME: usize = 200;
/// Requests one page shows at most.
const MAX_PAGE: i64 = 1000;

impl From<BatchError> for ApiError {
    fn from(e: BatchError) -> Self {
        let status = match &e {
            BatchError::NoEndpoint(_)
            | BatchError::NotFound { .. }
            | BatchError::NoRequest { .. } => StatusCode::NOT_FOUND,
            BatchError::TooManyRequests { .. } | BatchError::Empty(_) => StatusCode::BAD_REQUEST,
            BatchError::NotDraft { .. } | BatchError::Over { .. } => StatusCode::CONFLICT,
            BatchError::TooManyActive { .. } => StatusCode::TOO_MANY_REQUESTS,
            BatchError::Store(s) => return ApiError::from(s.clone()),
        };
        let mut error = ApiError::new(status, e.to_string());
        if status == StatusCode::TOO_MANY_REQUESTS {
            // A batch ends in minutes or hours: ask again in a minute.
            error.retry_after = Some(60);
        }
        error
    }
}

/// The fields of a JSON object body, each as the client's JSON text.
fn object<'a>(bytes: &'a [u8], example: &str) -> ApiResult<HashMap<String, &'a RawValue>> {
    let trimmed = bytes.trim_ascii_start();
    if !trimmed.is_empty() && trimmed[0] != b'{' {
        let _: &RawValue = parse_json(bytes, example)?;
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object such as {example}"
        )));
    }
    parse_json(bytes, example)
}

/// The inputs of `[{"input": ...}, ...]`, each as the client's JSON text.
fn inputs(requests: &RawValue, example: &str) -> ApiResult<Vec<String>> {
    let items: Vec<&RawValue> = serde_json::from_str(requests.get()).map_err(|_| {
        ApiError::bad_request(format!(
            "\"requests\" must be an array of {{\"input\": ...}} objects, as in {example}"
        ))
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let fields: HashMap<String, &RawValue> =
                serde_json::from_str(item.get()).map_err(|_| {
                    ApiError::bad_request(format!(
                        "requests[{i}] must be an object such as {{\"input\": {{...}}}}, got {}",
                        shown(item.get())
                    ))
                })?;
            input_of(&fields, &format!("requests[{i}]"))
        })
        .collect()
}

/// The input of one request `{"input": ...}` (`what` names it in errors).
fn input_of(fields: &HashMap<String, &RawValue>, what: &str) -> ApiResult<String> {
    if let Some(other) = fields.keys().find(|k| *k != "input") {
        return Err(ApiError::bad_request(format!(
            "{what} has {other:?}; a batch request takes only \"input\" (the batch runs with the endpoint's settings)"
        )));
    }
    match fields.get("input") {
        None => Err(ApiError::bad_request(format!(
            "{what} has no \"input\"; each request is {{\"input\": {{...}}}}"
        ))),
        Some(v) if v.get() == "null" => Err(ApiError::bad_request(format!(
            "{what}.input is null; give the handler's input, e.g. {{\"input\": {{\"prompt\": \"hello\"}}}}"
        ))),
        Some(v) => Ok(v.get().to_string()),
    }
}

fn shown(v: &str) -> String {
    let cut: String = v.chars().take(80).collect();
    if cut.len() < v.len() {
        format!("{cut}... ({} bytes)", v.len())
    } else {
        cut
    }
}

async fn body(state: &ApiState, headers: &HeaderMap, body: Body) -> ApiResult<Vec<u8>> {
    read_limited(
        headers,
        body,
        state.app.config.run_body_limit,
        "a batch call",
    )
    .await
}

/// Create a DRAFT batch, with requests or empty (add them later with
/// POST .../requests). Nothing runs before /finalize. 429 also when the
/// endpoint has as many active batches as it may (--batch-max-active).
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch", tag = "batches",
    params(("endpoint_id" = String, Path)),
    request_body = CreateBatch,
    responses((status = 200, description = "The new draft", body = BatchBody),
        (status = 404, description = "Unknown endpoint", body = ErrorBody),
        (status = 413, description = "Body over 10 MB", body = ErrorBody),
        Rejected, Limited),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
    headers: HeaderMap,
    raw: Body,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Batch)?;
    let bytes = body(&state, &headers, raw).await?;
    let fields = object(&bytes, EXAMPLE)?;
    if let Some(other) = fields
        .keys()
        .find(|k| !["name", "requests"].contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "a batch takes \"name\" and \"requests\", not {other:?}: {EXAMPLE}"
        )));
    }
    let name = match fields.get("name").map(|v| serde_json::from_str(v.get())) {
        None => None,
        Some(Ok(serde_json::Value::Null)) => None,
        Some(Ok(serde_json::Value::String(n))) if n.chars().count() <= MAX_NAME => Some(n),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "\"name\" must be a string of at most {MAX_NAME} characters"
            )));
        }
    };
    let inputs = match fields.get("requests") {
        None => Vec::new(),
        Some(v) if v.get() == "null" => Vec::new(),
        Some(v) => inputs(v, EXAMPLE)?,
    };
    let batch = state.app.create_batch(&endpoint, name, inputs).await?;
    Ok(Json(batch.into()))
}

/// Append requests to a DRAFT batch.
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch/{batch_id}/requests", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    request_body = AddRequests,
    responses((status = 200, description = "The draft with its new total", body = BatchBody),
        (status = 404, description = "Unknown endpoint or batch", body = ErrorBody),
        (status = 409, description = "The batch is not a draft any more", body = ErrorBody),
        (status = 413, description = "Body over 10 MB", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn add_requests(
    State(state): State<ApiState>,
    caller: Caller,
    BatchPath { endpoint, batch }: BatchPath,
    headers: HeaderMap,
    raw: Body,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Batch)?;
    let bytes = body(&state, &headers, raw).await?;
    let fields = object(&bytes, ADD_EXAMPLE)?;
    if let Some(other) = fields.keys().find(|k| *k != "requests") {
        return Err(ApiError::bad_request(format!(
            "this call takes only \"requests\", not {other:?}: {ADD_EXAMPLE}"
        )));
    }
    let Some(requests) = fields.get("requests") else {
        return Err(ApiError::bad_request(format!(
            "the body has no \"requests\"; send {ADD_EXAMPLE}"
        )));
    };
    let inputs = inputs(requests, ADD_EXAMPLE)?;
    Ok(Json(
        state
            .app
            .add_batch_requests(&endpoint, &batch, inputs)
            .await?
            .into(),
    ))
}

/// Remove one request from a DRAFT batch.
#[utoipa::path(delete, path = "/v2/{endpoint_id}/batch/{batch_id}/requests/{request_id}", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path), ("request_id" = String, Path)),
    responses((status = 200, description = "The draft with its new total", body = BatchBody),
        (status = 404, description = "Unknown endpoint, batch or request", body = ErrorBody),
        (status = 409, description = "The batch is not a draft any more", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn remove_request(
    State(state): State<ApiState>,
    caller: Caller,
    BatchRequestPath {
        endpoint,
        batch,
        request,
    }: BatchRequestPath,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Batch)?;
    Ok(Json(
        state
            .app
            .remove_batch_request(&endpoint, &batch, &request)
            .await?
            .into(),
    ))
}

/// Replace one request's input in a DRAFT batch: `{"input": ...}`.
#[utoipa::path(put, path = "/v2/{endpoint_id}/batch/{batch_id}/requests/{request_id}", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path), ("request_id" = String, Path)),
    request_body = BatchRequestIn,
    responses((status = 200, description = "The draft", body = BatchBody),
        (status = 404, description = "Unknown endpoint, batch or request", body = ErrorBody),
        (status = 409, description = "The batch is not a draft any more", body = ErrorBody),
        (status = 413, description = "Body over 10 MB", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn update_request(
    State(state): State<ApiState>,
    caller: Caller,
    BatchRequestPath {
        endpoint,
        batch,
        request,
    }: BatchRequestPath,
    headers: HeaderMap,
    raw: Body,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Batch)?;
    let bytes = body(&state, &headers, raw).await?;
    let input = input_of(
        &object(&bytes, r#"{"input": {"prompt": "hello"}}"#)?,
        "the request",
    )?;
    Ok(Json(
        state
            .app
            .update_batch_request(&endpoint, &batch, &request, input)
            .await?
            .into(),
    ))
}

/// Lock a DRAFT batch: its requests join the queue, in the order they were
/// added, behind every real-time job.
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch/{batch_id}/finalize", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    responses((status = 200, description = "The batch, FINALIZED", body = BatchBody),
        (status = 404, description = "Unknown endpoint or batch", body = ErrorBody),
        (status = 409, description = "The batch is not a draft any more", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn finalize(
    State(state): State<ApiState>,
    caller: Caller,
    BatchPath { endpoint, batch }: BatchPath,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Batch)?;
    Ok(Json(
        state.app.finalize_batch(&endpoint, &batch).await?.into(),
    ))
}

/// Cancel a batch: queued requests end CANCELLED, running ones finish.
#[utoipa::path(post, path = "/v2/{endpoint_id}/batch/{batch_id}/cancel", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    responses((status = 200, description = "The batch, CANCELLED", body = BatchBody),
        (status = 404, description = "Unknown endpoint or batch", body = ErrorBody),
        (status = 409, description = "Already cancelled", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    BatchPath { endpoint, batch }: BatchPath,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Batch)?;
    Ok(Json(
        state.app.cancel_batch(&endpoint, &batch).await?.into(),
    ))
}

/// The endpoint's newest 100 batches, newest first, with their counts.
#[utoipa::path(get, path = "/v2/{endpoint_id}/batch", tag = "batches",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = BatchList),
        (status = 404, description = "Unknown endpoint", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
) -> ApiResult<Json<BatchList>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Status)?;
    let batches = state.app.list_batches(&endpoint).await?;
    Ok(Json(BatchList {
        batches: batches.into_iter().map(Into::into).collect(),
    }))
}

/// One batch with its request counts.
#[utoipa::path(get, path = "/v2/{endpoint_id}/batch/{batch_id}", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path)),
    responses((status = 200, body = BatchBody),
        (status = 404, description = "Unknown endpoint or batch (or purged after its retention)", body = ErrorBody),
        Rejected, Limited),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<ApiState>,
    caller: Caller,
    BatchPath { endpoint, batch }: BatchPath,
) -> ApiResult<Json<BatchBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Status)?;
    Ok(Json(state.app.batch(&endpoint, &batch).await?.into()))
}

fn item_body(item: BatchItem) -> BatchRequestBody {
    match item {
        BatchItem::Draft(r) => BatchRequestBody {
            id: r.id,
            status: "DRAFT".into(),
            input: Some(json_or_text(&r.input)),
            output: None,
            error: None,
            delay_time: None,
            execution_time: None,
            worker_id: None,
        },
        BatchItem::Job(job) => BatchRequestBody {
            status: job.status.as_str().into(),
            output: job.output.as_deref().map(json_or_text),
            error: job.error,
            delay_time: job.delay_ms,
            execution_time: job.execution_ms,
            worker_id: job.worker_id,
            input: None,
            id: job.id,
        },
    }
}

/// A page of the batch's requests with their results, in the order they
/// were added.
#[utoipa::path(get, path = "/v2/{endpoint_id}/batch/{batch_id}/requests", tag = "batches",
    params(("endpoint_id" = String, Path), ("batch_id" = String, Path),
        ("offset" = Option<u32>, Query, description = "Requests to skip (default 0)"),
        ("limit" = Option<u32>, Query, description = "Requests in the page (default 100, at most 1000)")),
    responses((status = 200, body = BatchPageBody),
        (status = 404, description = "Unknown endpoint or batch", body = ErrorBody), Rejected, Limited),
    security(("api_key" = [])))]
pub async fn requests(
    State(state): State<ApiState>,
    caller: Caller,
    BatchPath { endpoint, batch }: BatchPath,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<BatchPageBody>> {
    let _admitted = admit_job_op(&state, &caller, &endpoint, Operation::Status)?;
    let p = Params::new(q, "a batch's requests", &["offset", "limit"])?;
    let offset = match p.int("offset")? {
        None => 0,
        Some(n) if n >= 0 => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "offset={n} must be 0 or more"
            )));
        }
    };
    let limit = p.count("limit", 100, MAX_PAGE)?;
    let BatchPage { batch, items } = state
        .app
        .batch_page(&endpoint, &batch, offset, limit)
        .await?;
    let total = batch.counts.total;
    Ok(Json(BatchPageBody {
        requests: items.into_iter().map(item_body).collect(),
        total,
        offset,
        limit,
        has_more: offset.saturating_add(limit) < total,
    }))
}
