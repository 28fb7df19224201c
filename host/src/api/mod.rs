//! The HTTP API of `wasmpod serve` (axum): the RunPod-compatible v2 job API
//! of every endpoint ([`jobs`]), its batch jobs ([`batches`]) and its
//! OpenAI-compatible routes ([`openai`]), the v1 admin API ([`admin`], [`models`], [`keys`],
//! [`fleet`]: inventory and usage; [`history`]: jobs lists and detail;
//! [`logs`]; [`stats`]: latency percentiles), Prometheus metrics
//! ([`metrics`]), the dashboard at `/` ([`dashboard`]), API-key auth
//! ([`auth`]), path and query checks ([`validate`]), request bodies
//! ([`body`]), load-balancing endpoints' `/lb/{endpoint}/...` ([`lb`]),
//! rate limits ([`ratelimit`]) and the OpenAPI document at `/openapi.json`
//! ([`doc`]). Every error is a JSON `{"error": ...}` ([`error`]).

pub mod admin;
pub mod auth;
pub mod batches;
pub mod body;
pub mod dashboard;
pub mod doc;
pub mod error;
pub mod fleet;
pub mod history;
pub mod jobs;
pub mod keys;
pub mod lb;
pub mod logs;
pub mod metrics;
pub mod models;
pub mod openai;
pub mod params;
pub mod ratelimit;
pub mod stats;
pub mod validate;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{any, get, post, put};
use utoipa::OpenApi;

use crate::serve::App;
use error::ApiError;

/// What every handler gets.
#[derive(Clone)]
pub struct ApiState {
    pub app: App,
    pub keys: Arc<auth::KeyCache>,
    pub limits: Arc<ratelimit::RateLimits>,
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(doc::ApiDoc::openapi())
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {method} {}; the routes are listed in /openapi.json",
        uri.path()
    ))
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} does not take {method}; see /openapi.json for its methods",
            uri.path()
        ),
    )
}

/// The whole HTTP API over `app`.
pub fn router(app: App) -> Router {
    let state = ApiState {
        limits: Arc::new(ratelimit::RateLimits::new(app.config.rate_limits)),
        app,
        keys: Arc::new(auth::KeyCache::default()),
    };
    let v2 = Router::new()
        .route("/{endpoint_id}/run", post(jobs::run))
        .route("/{endpoint_id}/runsync", post(jobs::runsync))
        .route(
            "/{endpoint_id}/status/{job_id}",
            get(jobs::status).post(jobs::status),
        )
        .route(
            "/{endpoint_id}/stream/{job_id}",
            get(jobs::stream).post(jobs::stream),
        )
        .route("/{endpoint_id}/cancel/{job_id}", post(jobs::cancel))
        .route("/{endpoint_id}/retry/{job_id}", post(jobs::retry))
        .route("/{endpoint_id}/purge-queue", post(jobs::purge_queue))
        .route("/{endpoint_id}/health", get(jobs::health))
        .route(
            "/{endpoint_id}/batch",
            post(batches::create).get(batches::list),
        )
        .route("/{endpoint_id}/batch/{batch_id}", get(batches::get))
        .route(
            "/{endpoint_id}/batch/{batch_id}/requests",
            post(batches::add_requests).get(batches::requests),
        )
        .route(
            "/{endpoint_id}/batch/{batch_id}/requests/{request_id}",
            axum::routing::delete(batches::remove_request).put(batches::update_request),
        )
        .route(
            "/{endpoint_id}/batch/{batch_id}/finalize",
            post(batches::finalize),
        )
        .route(
            "/{endpoint_id}/batch/{batch_id}/cancel",
            post(batches::cancel),
        )
        .route(
            "/{endpoint_id}/openai/v1/chat/completions",
            post(openai::chat_completions),
        )
        .route(
            "/{endpoint_id}/openai/v1/completions",
            post(openai::completions),
        )
        .route("/{endpoint_id}/openai/v1/models", get(openai::models));
    let v1 = Router::new()
        .route(
            "/handlers",
            post(admin::upload_handler).get(admin::list_handlers),
        )
        .route(
            "/handlers/{digest}",
            get(admin::get_handler).delete(admin::delete_handler),
        )
        .route(
            "/endpoints",
            post(admin::create_endpoint).get(admin::list_endpoints),
        )
        .route(
            "/endpoints/{endpoint_id}",
            get(admin::get_endpoint)
                .patch(admin::update_endpoint)
                .delete(admin::delete_endpoint),
        )
        .route("/endpoints/{endpoint_id}/jobs", get(history::list_jobs))
        .route(
            "/endpoints/{endpoint_id}/jobs/{job_id}",
            get(history::get_job),
        )
        .route("/endpoints/{endpoint_id}/logs", get(logs::logs))
        .route(
            "/endpoints/{endpoint_id}/metrics",
            get(stats::endpoint_stats),
        )
        .route("/metrics", get(stats::all_stats))
        .route("/models", get(models::list_models))
        .route(
            "/models/{model}",
            get(models::get_model).delete(models::delete_model),
        )
        .route("/models/{model}/files/{*path}", put(models::upload_file))
        .route("/keys", post(keys::create_key).get(keys::list_keys))
        .route("/keys/{key_id}", axum::routing::delete(keys::revoke_key))
        .route("/inventory", get(fleet::inventory))
        .route("/hosts", get(fleet::hosts))
        .route("/usage", get(fleet::usage));
    let api = Router::new()
        .nest("/v2", v2)
        .nest("/v1", v1)
        .route("/lb/{endpoint_id}", any(lb::lb))
        .route("/lb/{endpoint_id}/{*path}", any(lb::lb))
        .route("/openapi.json", get(openapi_json))
        .route("/metrics", get(metrics::metrics))
        .route("/ping", get(|| async { "pong" }))
        .merge(dashboard::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        // Bodies are read (and limited) by the handlers themselves, streamed;
        // what one leaves unread is drained before its answer goes out.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(body::drain_unread))
        .with_state(state.clone());
    // Host: routing rewrites the path before the routes above see it.
    Router::new()
        .fallback_service(api)
        .layer(axum::middleware::from_fn_with_state(
            state,
            lb::host_routing,
        ))
}
