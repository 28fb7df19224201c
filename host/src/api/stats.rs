//! Latency as RunPod's console shows it, as JSON: P70, P90 and P98 of
//! delay, execution and cold-start time, cold starts, throughput and a
//! per-step series, over a window (`?window=5m|1h|24h`, default 1h) —
//! `GET /v1/endpoints/{id}/metrics` for one endpoint, `GET /v1/metrics` for
//! all. Admin only. (Prometheus histograms of the same are on /metrics.)

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::doc::Rejected;
use super::error::{ApiResult, ErrorBody};
use super::history::check_endpoint;
use super::params::Params;
use super::validate::{ApiQuery, EndpointPath};
use crate::serve::latency::{KEEP, WindowStats};

const DEFAULT_WINDOW: Duration = Duration::from_secs(3600);

/// Every endpoint's stats over one window.
#[derive(Debug, Serialize, ToSchema)]
pub struct AllStats {
    pub window_s: u64,
    pub endpoints: Vec<WindowStats>,
}

fn window(q: HashMap<String, String>, route: &'static str) -> ApiResult<Duration> {
    Params::new(q, route, &["window"])?.duration("window", DEFAULT_WINDOW, KEEP)
}

/// One endpoint's latency percentiles, cold starts and series.
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}/metrics", tag = "endpoints",
    params(("endpoint_id" = String, Path),
        ("window" = Option<String>, Query, description = "How far back: 5m, 1h (default), 24h (the most kept)")),
    responses((status = 200, body = WindowStats),
        (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn endpoint_stats(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<WindowStats>> {
    caller.require_admin()?;
    let window = window(q, "the endpoint metrics route")?;
    check_endpoint(&state, &endpoint)?;
    Ok(Json(state.app.latency(&endpoint, window)))
}

/// Every endpoint's latency percentiles, cold starts and series.
#[utoipa::path(get, path = "/v1/metrics", tag = "fleet",
    params(("window" = Option<String>, Query, description = "How far back: 5m, 1h (default), 24h (the most kept)")),
    responses((status = 200, body = AllStats), Rejected),
    security(("api_key" = [])))]
pub async fn all_stats(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<AllStats>> {
    caller.require_admin()?;
    let window = window(q, "/v1/metrics")?;
    let endpoints = state
        .app
        .pools
        .all()
        .into_iter()
        .map(|(id, _)| state.app.latency(&id, window))
        .collect();
    Ok(Json(AllStats {
        window_s: window.as_secs(),
        endpoints,
    }))
}
