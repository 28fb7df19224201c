//! The /v1 admin API: handler versions and endpoints. Every route needs an
//! admin key.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::ApiState;
use super::auth::Caller;
use super::body::{declared_length, read_json};
use super::doc::Rejected;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::validate::{self, ApiQuery, DigestPath, EndpointPath};
use crate::serve::{WorkerCounts, WorkerDetail};
use crate::store::{
    EndpointConfig, EndpointKind, EndpointRecord, HandlerRecord, JobCounts, JobStatus, now_ms,
};

/// A handler version with the endpoints that use it.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerView {
    #[serde(flatten)]
    pub handler: HandlerRecord,
    pub endpoints: Vec<String>,
}

/// Answer of a handler upload.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadedHandler {
    #[serde(flatten)]
    pub handler: HandlerRecord,
    /// False when this exact component was uploaded before.
    pub created: bool,
}

/// An endpoint with its settings and live state.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointView {
    pub id: String,
    pub name: String,
    /// sha256 of the handler version it runs.
    pub handler: String,
    /// Bumped on every update.
    pub generation: i64,
    pub created_at: i64,
    pub updated_at: i64,
    #[serde(flatten)]
    pub config: EndpointConfig,
    /// Base of its RunPod-compatible job API.
    pub url: String,
    pub workers: WorkerCounts,
    /// Every worker with its state and slice.
    pub worker_details: Vec<WorkerDetail>,
    pub jobs: JobCounts,
    /// Why workers last failed to start, if they did.
    pub last_error: Option<String>,
    /// What will keep its jobs from running as asked: `gpus` entries this
    /// host has no device for (empty when every entry can be placed).
    pub warnings: Vec<String>,
}

/// Answer of GET /v1/handlers.
#[derive(Debug, Serialize, ToSchema)]
pub struct HandlerList {
    pub handlers: Vec<HandlerView>,
}

/// Answer of GET /v1/endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointList {
    pub endpoints: Vec<EndpointView>,
}

/// Answer of DELETE /v1/handlers/{digest}.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedHandler {
    pub digest: String,
    pub deleted: bool,
}

/// Answer of DELETE /v1/endpoints/{endpoint_id}.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedEndpoint {
    pub id: String,
    pub deleted: bool,
}

/// Create an endpoint: `handler` plus any [`EndpointConfig`] fields (the
/// document lists them flat, as they are sent).
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // the body is read field by field; this is its schema
pub struct CreateEndpoint {
    /// Optional id: 1-64 lowercase letters, digits or '-', not starting
    /// with '-'; generated if absent.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$", max_length = 64)]
    pub id: Option<String>,
    /// A label; the id if absent.
    pub name: Option<String>,
    /// sha256 of an uploaded handler version (as POST /v1/handlers returns it).
    #[schema(pattern = "^(sha256:)?[0-9a-fA-F]{64}$")]
    pub handler: String,
    #[serde(flatten)]
    pub config: EndpointConfig,
}

/// Change an endpoint: any of `name`, `handler` and the [`EndpointConfig`]
/// fields; the others keep their values.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)] // the body is read field by field; this is its schema
pub struct UpdateEndpoint {
    /// The endpoint's id, if given, must be the one in the path (ids do
    /// not change).
    pub id: Option<String>,
    pub name: Option<String>,
    /// A new handler version: a hot swap.
    #[schema(pattern = "^(sha256:)?[0-9a-fA-F]{64}$")]
    pub handler: Option<String>,
    #[serde(flatten)]
    pub config: EndpointConfig,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Cancel queued and running jobs instead of refusing.
    pub force: Option<bool>,
}

async fn endpoint_view(state: &ApiState, e: EndpointRecord) -> ApiResult<EndpointView> {
    let jobs = state.app.job_counts(&e.id).await?;
    Ok(EndpointView {
        url: format!("/v2/{}", e.id),
        workers: state.app.worker_counts(&e.id),
        worker_details: state.app.worker_details(&e.id),
        last_error: state.app.last_worker_error(&e.id),
        warnings: state
            .app
            .check_devices(&e.config)
            .unwrap_or_else(|m| vec![m]),
        jobs,
        id: e.id,
        name: e.name,
        handler: e.handler,
        generation: e.generation,
        created_at: e.created_at,
        updated_at: e.updated_at,
        config: e.config,
    })
}

async fn require_handler(state: &ApiState, digest: &str) -> ApiResult<String> {
    let digest = validate::digest(digest.trim())?;
    if state.app.handler(&digest).await?.is_none() {
        return Err(ApiError::bad_request(format!(
            "no handler version {digest}; upload the .wasm with POST /v1/handlers first"
        )));
    }
    Ok(digest)
}

/// An endpoint's type must fit its handler's world: a queue endpoint runs
/// jobs on a handler, a load balancer serves HTTP with an http-handler.
async fn check_world(state: &ApiState, handler: &str, config: &EndpointConfig) -> ApiResult<()> {
    let Some(record) = state.app.handler(handler).await? else {
        return Ok(());
    };
    let wanted = config.kind.world();
    if record.world == wanted {
        return Ok(());
    }
    Err(ApiError::bad_request(match config.kind {
        EndpointKind::Queue => format!(
            "handler {handler} is an HTTP handler (world {}); serve it from an endpoint with \"type\": \"load_balancer\", or give this queue endpoint a handler of world handler",
            record.world
        ),
        EndpointKind::LoadBalancer => format!(
            "handler {handler} is a queue handler (world {}); a \"load_balancer\" endpoint needs an HTTP handler (world http-handler), or make this endpoint \"type\": \"queue\"",
            record.world
        ),
    }))
}

fn config_from(state: &ApiState, fields: Map<String, Value>) -> ApiResult<EndpointConfig> {
    let config: EndpointConfig = serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::bad_request(format!("endpoint settings: {e}")))?;
    config.validate().map_err(ApiError::bad_request)?;
    state
        .app
        .check_endpoint(&config)
        .map_err(ApiError::bad_request)?;
    Ok(config)
}

/// Upload a handler component: the raw `.wasm` bytes as the body. It is
/// stored by sha256, validated against world `wasmpod:serverless/handler`
/// and precompiled.
#[utoipa::path(post, path = "/v1/handlers", tag = "handlers",
    request_body(description = "The component's bytes (any content type but a form)",
        content((Vec<u8> = "application/wasm"), (Vec<u8> = "application/octet-stream"))),
    responses(
        (status = 201, description = "Stored (new)", body = UploadedHandler),
        (status = 200, description = "Already stored", body = UploadedHandler),
        (status = 400, description = "Not a valid handler component, or empty", body = ErrorBody),
        (status = 413, description = "Over --max-handler-size", body = ErrorBody),
        (status = 415, description = "A form instead of the raw bytes", body = ErrorBody),
        Rejected),
    security(("api_key" = [])))]
pub async fn upload_handler(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<UploadedHandler>)> {
    caller.require_admin()?;
    if let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        && (ct.starts_with("multipart/") || ct.starts_with("application/x-www-form-urlencoded"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the .wasm file's raw bytes as the body (Content-Type: application/wasm), not a form; e.g. curl --data-binary @handler.wasm",
        ));
    }
    let limit = state.app.handlers.max_bytes();
    if let Some(len) = declared_length(&headers)
        && len > limit
    {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the handler is {len} bytes, over the limit of {limit} bytes"),
        ));
    }
    let (handler, created) = state.app.handlers.upload(body.into_data_stream()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(UploadedHandler { handler, created })))
}

/// List handler versions.
#[utoipa::path(get, path = "/v1/handlers", tag = "handlers",
    responses((status = 200, body = HandlerList), Rejected),
    security(("api_key" = [])))]
pub async fn list_handlers(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<HandlerList>> {
    caller.require_admin()?;
    let mut out = Vec::new();
    for h in state.app.list_handlers().await? {
        let endpoints = state.app.endpoints_using(&h.digest).await?;
        out.push(HandlerView {
            handler: h,
            endpoints,
        });
    }
    Ok(Json(HandlerList { handlers: out }))
}

/// One handler version.
#[utoipa::path(get, path = "/v1/handlers/{digest}", tag = "handlers",
    params(("digest" = String, Path, description = "The handler's sha256")),
    responses((status = 200, body = HandlerView), (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn get_handler(
    State(state): State<ApiState>,
    caller: Caller,
    DigestPath { digest }: DigestPath,
) -> ApiResult<Json<HandlerView>> {
    caller.require_admin()?;
    let handler = state.app.handler(&digest).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no handler version {digest:?}; list them with GET /v1/handlers"
        ))
    })?;
    let endpoints = state.app.endpoints_using(&digest).await?;
    Ok(Json(HandlerView { handler, endpoints }))
}

/// Delete a handler version no endpoint uses.
#[utoipa::path(delete, path = "/v1/handlers/{digest}", tag = "handlers",
    params(("digest" = String, Path, description = "The handler's sha256")),
    responses((status = 200, body = DeletedHandler), (status = 404, body = ErrorBody),
        (status = 409, description = "An endpoint uses it", body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn delete_handler(
    State(state): State<ApiState>,
    caller: Caller,
    DigestPath { digest }: DigestPath,
) -> ApiResult<Json<DeletedHandler>> {
    caller.require_admin()?;
    let users = state.app.endpoints_using(&digest).await?;
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "handler {digest} is used by endpoint(s) {users:?}; point them at another version or delete them first"
        )));
    }
    if !state.app.handlers.delete(&digest).await? {
        return Err(ApiError::not_found(format!(
            "no handler version {digest:?}"
        )));
    }
    Ok(Json(DeletedHandler {
        digest,
        deleted: true,
    }))
}

/// Create an endpoint.
#[utoipa::path(post, path = "/v1/endpoints", tag = "endpoints",
    request_body = CreateEndpoint,
    responses((status = 201, body = EndpointView),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn create_endpoint(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    caller.require_admin()?;
    let example = r#"{"handler": "<sha256 from POST /v1/handlers>", "max_workers": 2}"#;
    let Value::Object(mut fields) = read_json::<Value>(&headers, body, example).await? else {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object such as {example}"
        )));
    };
    let handler = match fields.remove("handler") {
        Some(Value::String(h)) => require_handler(&state, &h).await?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "handler must be a sha256 string, got {other}"
            )));
        }
        None => {
            return Err(ApiError::bad_request(format!(
                "\"handler\" is missing; give the digest of an uploaded handler: {example}"
            )));
        }
    };
    let id = match fields.remove("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().simple().to_string()[..14].to_string(),
        Some(Value::String(id)) => validate::endpoint_id(&id)?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "id must be a string, got {other}"
            )));
        }
    };
    let name = match fields.remove("name") {
        None | Some(Value::Null) => id.clone(),
        Some(Value::String(n)) => n,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "name must be a string, got {other}"
            )));
        }
    };
    let config = config_from(&state, fields)?;
    check_world(&state, &handler, &config).await?;
    let now = now_ms();
    let record = EndpointRecord {
        id,
        name,
        handler,
        config,
        generation: 1,
        created_at: now,
        updated_at: now,
    };
    state.app.create_endpoint(record.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(endpoint_view(&state, record).await?),
    ))
}

/// List endpoints.
#[utoipa::path(get, path = "/v1/endpoints", tag = "endpoints",
    responses((status = 200, body = EndpointList), Rejected),
    security(("api_key" = [])))]
pub async fn list_endpoints(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<EndpointList>> {
    caller.require_admin()?;
    let mut out = Vec::new();
    for e in state.app.list_endpoints().await? {
        out.push(endpoint_view(&state, e).await?);
    }
    Ok(Json(EndpointList { endpoints: out }))
}

fn endpoint_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "no endpoint {id:?}; list endpoints with GET /v1/endpoints"
    ))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn get_endpoint(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint: id }: EndpointPath,
) -> ApiResult<Json<EndpointView>> {
    caller.require_admin()?;
    let e = state
        .app
        .endpoint(&id)
        .await?
        .ok_or_else(|| endpoint_not_found(&id))?;
    Ok(Json(endpoint_view(&state, e).await?))
}

/// Change some of an endpoint's settings. A new `handler` is a hot swap:
/// running jobs finish on the old version, new ones run on the new one.
#[utoipa::path(patch, path = "/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path)),
    request_body = UpdateEndpoint,
    responses((status = 200, body = EndpointView), (status = 404, body = ErrorBody),
        (status = 413, description = "Body over 1 MiB", body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn update_endpoint(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint: id }: EndpointPath,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<EndpointView>> {
    caller.require_admin()?;
    let example = r#"{"handler": "<sha256>", "max_workers": 4}"#;
    let Value::Object(mut changes) = read_json::<Value>(&headers, body, example).await? else {
        return Err(ApiError::bad_request(format!(
            "the body must be a JSON object of the settings to change, such as {example}"
        )));
    };
    let mut record = state
        .app
        .endpoint(&id)
        .await?
        .ok_or_else(|| endpoint_not_found(&id))?;
    if let Some(v) = changes.remove("id")
        && v != Value::String(id.clone())
    {
        return Err(ApiError::bad_request(
            "an endpoint's id cannot change; create a new endpoint instead",
        ));
    }
    match changes.remove("handler") {
        None => {}
        Some(Value::String(h)) => record.handler = require_handler(&state, &h).await?,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "handler must be a sha256 string, got {other}"
            )));
        }
    }
    match changes.remove("name") {
        None => {}
        Some(Value::String(n)) => record.name = n,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "name must be a string, got {other}"
            )));
        }
    }
    let Value::Object(mut fields) =
        serde_json::to_value(&record.config).map_err(|e| ApiError::internal(e.to_string()))?
    else {
        return Err(ApiError::internal("endpoint config is not an object"));
    };
    for (k, v) in changes {
        fields.insert(k, v);
    }
    record.config = config_from(&state, fields)?;
    check_world(&state, &record.handler, &record.config).await?;
    let updated = state
        .app
        .update_endpoint(&record)
        .await?
        .ok_or_else(|| endpoint_not_found(&id))?;
    Ok(Json(endpoint_view(&state, updated).await?))
}

/// Delete an endpoint. Refused (409) while it has queued or running jobs,
/// unless `?force=true`, which cancels them.
#[utoipa::path(delete, path = "/v1/endpoints/{endpoint_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path), DeleteQuery),
    responses((status = 200, body = DeletedEndpoint), (status = 404, body = ErrorBody),
        (status = 409, description = "It still has jobs", body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn delete_endpoint(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint: id }: EndpointPath,
    ApiQuery(q): ApiQuery<DeleteQuery>,
) -> ApiResult<Json<DeletedEndpoint>> {
    caller.require_admin()?;
    if state.app.endpoint(&id).await?.is_none() {
        return Err(endpoint_not_found(&id));
    }
    let counts = state.app.job_counts(&id).await?;
    let busy = counts.in_queue + counts.in_progress;
    if busy > 0 && !q.force.unwrap_or(false) {
        return Err(ApiError::conflict(format!(
            "endpoint {id:?} has {} queued and {} running job(s); purge the queue (POST /v2/{id}/purge-queue) and let them finish, or delete with ?force=true to cancel them",
            counts.in_queue, counts.in_progress
        )));
    }
    if busy > 0 {
        state.app.purge_queue(&id).await?;
        for job in state.app.job_ids(&id, JobStatus::InProgress).await? {
            state.app.cancel(&id, &job).await?;
        }
    }
    // Workers finish (or, cancelled, abandon) what they hold and stop.
    state.app.delete_endpoint(&id).await?;
    state.keys.clear();
    Ok(Json(DeletedEndpoint { id, deleted: true }))
}
