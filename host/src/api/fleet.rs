//! /v1 admin views of the host's hardware and its use: the device
//! inventory with the slices workers hold and the executors serving them
//! (`/v1/inventory`), and metered worker time (`/v1/usage`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::doc::Rejected;
use super::error::{ApiError, ApiResult};
use super::validate::{self, ApiQuery};
use crate::serve::InventoryView;
use crate::store::{UsageTotal, now_ms};

/// The device inventory, which slices are held by which endpoint's worker,
/// and the executor process of every slice used so far.
#[utoipa::path(get, path = "/v1/inventory", tag = "fleet",
    responses((status = 200, body = InventoryView), Rejected),
    security(("api_key" = [])))]
pub async fn inventory(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<InventoryView>> {
    caller.require_admin()?;
    Ok(Json(state.app.ctx().slices.view()))
}

/// One host of the cluster (GET /v1/hosts).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostBody {
    pub id: String,
    /// Where its API listens.
    pub address: String,
    pub started_at: i64,
    /// Its last heartbeat, ms since the epoch.
    pub heartbeat_at: i64,
    /// Its heartbeat is fresher than the dead-host time.
    pub alive: bool,
    /// The host that answered.
    pub this_host: bool,
}

/// The hosts sharing this host's database (cluster mode) and their last
/// heartbeats; on a host alone on its SQLite file, just itself.
#[utoipa::path(get, path = "/v1/hosts", tag = "fleet",
    responses((status = 200, body = Vec<HostBody>), Rejected),
    security(("api_key" = [])))]
pub async fn hosts(
    State(state): State<ApiState>,
    caller: Caller,
) -> ApiResult<Json<Vec<HostBody>>> {
    caller.require_admin()?;
    let me = state.app.jobs.host_id().to_string();
    let mut hosts: Vec<HostBody> = state
        .app
        .hosts()
        .await?
        .into_iter()
        .map(|h| HostBody {
            this_host: h.id == me,
            id: h.id,
            address: h.address,
            started_at: h.started_at,
            heartbeat_at: h.heartbeat_at,
            alive: h.alive,
        })
        .collect();
    if hosts.is_empty() {
        let now = now_ms();
        hosts.push(HostBody {
            id: me,
            address: state.app.address(),
            started_at: now,
            heartbeat_at: now,
            alive: true,
            this_host: true,
        });
    }
    Ok(Json(hosts))
}

/// Answer of /v1/usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageBody {
    /// The range asked for, ms since the epoch (minute granularity).
    pub since: i64,
    pub until: i64,
    /// Worker time per endpoint and slice type.
    pub usage: Vec<UsageTotal>,
    pub total_worker_seconds: f64,
}

fn ms_param(q: &HashMap<String, String>, key: &str) -> ApiResult<Option<i64>> {
    match q.get(key) {
        None => Ok(None),
        Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "{key}={v:?} is not a time; give milliseconds since the Unix epoch, e.g. {key}={}",
                now_ms()
            ))
        }),
    }
}

/// Metered worker time (the billing basis): seconds workers held slices,
/// per endpoint and slice type. Query: `endpoint` (one endpoint), `since`
/// and `until` (ms since the epoch; default: from the start until now).
#[utoipa::path(get, path = "/v1/usage", tag = "fleet",
    params(
        ("endpoint" = Option<String>, Query, description = "Only this endpoint"),
        ("since" = Option<i64>, Query, description = "From (ms since the epoch)"),
        ("until" = Option<i64>, Query, description = "Until, exclusive (ms since the epoch)")),
    responses((status = 200, body = UsageBody), Rejected),
    security(("api_key" = [])))]
pub async fn usage(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<UsageBody>> {
    caller.require_admin()?;
    if let Some(k) = q
        .keys()
        .find(|k| !matches!(k.as_str(), "endpoint" | "since" | "until"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?}; /v1/usage takes endpoint, since and until"
        )));
    }
    let since = ms_param(&q, "since")?.unwrap_or(0);
    // Rows are keyed by the minute they start: "until now" includes the
    // minute running now.
    let until = ms_param(&q, "until")?.unwrap_or_else(|| now_ms() + 1);
    if since > until {
        return Err(ApiError::bad_request(format!(
            "since ({since}) is after until ({until})"
        )));
    }
    let endpoint = q
        .get("endpoint")
        .map(|e| validate::endpoint_id(e))
        .transpose()?;
    let usage = state
        .app
        .usage_now(endpoint.as_deref(), since, until)
        .await?;
    let total_worker_seconds = usage.iter().map(|u| u.worker_seconds).sum();
    Ok(Json(UsageBody {
        since,
        until,
        usage,
        total_worker_seconds,
    }))
}
