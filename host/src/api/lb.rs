//! `/lb/{endpoint}/{path...}`: any method on a load-balancing endpoint goes
//! straight to one of its workers' HTTP handlers (the handler sees
//! `/{path...}`), headers and body streamed both ways. Also reached by a
//! `Host:` name mapped to the endpoint ([`host_routing`]), with the whole
//! path. Needs the endpoint's invoke key or an admin key (not passed on to
//! the handler); bodies over the payload limit are refused 413; no free
//! worker in time is 503 with Retry-After.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::ApiState;
use super::auth::Caller;
use super::doc::{Limited, Rejected};
use super::error::{ApiError, ErrorBody};
use super::ratelimit;
use super::validate::EndpointPath;
use crate::serve::LbError;

/// Where `/lb/{endpoint}` paths start.
pub const PREFIX: &str = "/lb/";

impl From<LbError> for ApiError {
    fn from(e: LbError) -> Self {
        let status = match &e {
            LbError::NotFound(_) => StatusCode::NOT_FOUND,
            LbError::NotLoadBalancer(_) => StatusCode::BAD_REQUEST,
            LbError::Paused(_) | LbError::NoCapacity { .. } => StatusCode::SERVICE_UNAVAILABLE,
            LbError::Executor(_) => StatusCode::BAD_GATEWAY,
            LbError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        };
        let mut error = ApiError::new(status, e.to_string());
        error.retry_after = e.retry_after_s();
        error
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than the {} MB limit of load-balancing endpoints; send large data by reference (a URL) or in pieces",
            limit >> 20
        ),
    )
}

/// Forward one request to a worker of `endpoint`; `path` is what the
/// handler sees.
async fn forward(
    state: &ApiState,
    caller: &Caller,
    endpoint: &str,
    request: Request,
) -> Result<Response, ApiError> {
    caller.require_invoke(endpoint)?;
    let admitted = ratelimit::admit(state, endpoint, ratelimit::Operation::Lb)?;
    let limit = state.app.config.lb_body_limit;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    let (mut parts, body) = request.into_parts();
    // Our API key is for us, not for the handler.
    parts.headers.remove(header::AUTHORIZATION);
    // A body without a length is cut off (an error the handler reads) past
    // the limit.
    let body = http_body_util::Limited::new(body, limit)
        .map_err(Into::into)
        .boxed_unsync();
    let upstream = hyper::Request::from_parts(parts, body);
    let response = state.app.lb_forward(endpoint, upstream).await?;
    // The answer streams on after this returns: it holds its place under
    // the endpoint's concurrency cap until its body ends.
    Ok(ratelimit::hold(
        response.map(Body::new).into_response(),
        admitted,
    ))
}

/// The path after `/lb/{endpoint}` (always starting with `/`), with the
/// query.
fn handler_path(uri: &axum::http::Uri, endpoint: &str) -> String {
    let path = uri.path();
    let rest = path
        .strip_prefix(PREFIX)
        .and_then(|p| p.strip_prefix(endpoint))
        .unwrap_or("");
    let rest = if rest.is_empty() { "/" } else { rest };
    match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    }
}

/// Any method on `/lb/{endpoint_id}/{path}`: the endpoint's HTTP handler
/// answers (its own status, headers and body). The endpoint id is checked
/// like every other route's ([`super::validate`]): malformed is 400,
/// unknown 404.
#[utoipa::path(method(get, post, put, delete, patch, head, options), path = "/lb/{endpoint_id}/{path}", tag = "load-balancing",
    params(("endpoint_id" = String, Path), ("path" = String, Path, description = "What the handler sees as its path")),
    responses(
        (status = 200, description = "The handler's answer (any status it sets)"),
        (status = 400, description = "A malformed endpoint id or path, or a queue endpoint", body = ErrorBody),
        (status = 404, description = "Unknown endpoint", body = ErrorBody),
        (status = 413, description = "Body over the payload limit (30 MB by default)", body = ErrorBody),
        (status = 502, description = "The worker's executor failed", body = ErrorBody),
        (status = 503, description = "No worker could take it in time; see Retry-After", body = ErrorBody),
        (status = 504, description = "Past the request timeout", body = ErrorBody),
        Rejected, Limited),
    security(("api_key" = [])))]
pub async fn lb(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
    mut request: Request,
) -> Response {
    let path = handler_path(request.uri(), &endpoint);
    match path.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => {
            return ApiError::bad_request(format!("the path {path:?} is not a valid URI path"))
                .into_response();
        }
    }
    forward(&state, &caller, &endpoint, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// Middleware: a request whose `Host:` maps to a load-balancing endpoint
/// (its `hostnames`, or `{id}.{--lb-domain}`) goes to that endpoint with
/// its whole path, as `/lb/{id}{path}`; any other request is routed as is.
pub async fn host_routing(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())
        .map(str::to_string);
    if let Some(endpoint) = host.and_then(|h| state.app.lb_endpoint_for_host(&h)) {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let rewritten = format!("{PREFIX}{endpoint}{path_and_query}");
        match rewritten.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => {
                return ApiError::bad_request(format!("the path {path_and_query:?} is not valid"))
                    .into_response();
            }
        }
    }
    next.run(request).await
}
