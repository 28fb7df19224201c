//! `GET /v1/endpoints/{id}/logs`: an endpoint's log stream (guest log
//! calls, stdout and stderr per job and worker, and the workers' lifecycle
//! events), filtered by job, worker, level and time; with `follow=true` the
//! answer is server-sent events: the matching backlog, then each new line
//! as it is stored (`event: log`, `id:` its seq, so a reconnecting client's
//! `Last-Event-ID` resumes after it). Admin only.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::doc::Rejected;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::history::check_endpoint;
use super::params::Params;
use super::validate::{ApiQuery, EndpointPath};
use crate::store::{Level, LogFilter, LogLine};

/// Answer of a logs read (without `follow`).
#[derive(Debug, Serialize, ToSchema)]
pub struct LogsBody {
    /// Oldest first.
    pub lines: Vec<LogLine>,
}

const NAMES: &[&str] = &[
    "job", "worker", "level", "since", "until", "after", "limit", "follow",
];

fn sse_event(line: &LogLine) -> Event {
    Event::default()
        .event("log")
        .id(line.seq.to_string())
        .json_data(line)
        .unwrap_or_else(|_| Event::default().comment("unserializable line"))
}

/// Read (or follow) an endpoint's log lines.
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}/logs", tag = "endpoints",
    params(("endpoint_id" = String, Path),
        ("job" = Option<String>, Query, description = "Only this job's lines"),
        ("worker" = Option<String>, Query, description = "Only this worker's lines"),
        ("level" = Option<String>, Query, description = "This level and above: debug, info, warn, error"),
        ("since" = Option<i64>, Query, description = "From (ms since the epoch)"),
        ("until" = Option<i64>, Query, description = "Until, exclusive (ms since the epoch)"),
        ("after" = Option<i64>, Query, description = "Only lines after this seq"),
        ("limit" = Option<u32>, Query, description = "The last this many (default 200, max 5000)"),
        ("follow" = Option<bool>, Query, description = "Keep the answer open as server-sent events")),
    responses((status = 200, body = LogsBody, description = "The lines; with follow=true a text/event-stream of `log` events"),
        (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn logs(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let p = Params::new(q, "the logs route", NAMES)?;
    check_endpoint(&state, &endpoint)?;
    let min_level = match p.str("level") {
        None => None,
        Some(l) => Some(Level::parse(l).ok_or_else(|| {
            ApiError::bad_request(format!(
                "level={l:?} is not a level; use debug, info, warn or error"
            ))
        })?),
    };
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let mut filter = LogFilter {
        endpoint_id: endpoint,
        job_id: p.str("job").map(str::to_string),
        worker_id: p.str("worker").map(str::to_string),
        min_level,
        since: p.ms("since")?,
        until: p.ms("until")?,
        after: p.int("after")?.or(resume),
        limit: p.count("limit", 200, 5000)?,
    };
    if !p.bool("follow")? {
        let lines = state.app.logs(&filter).await?;
        return Ok(Json(LogsBody { lines }).into_response());
    }
    // Subscribe before reading the backlog, so no line falls between them.
    let live = state.app.follow_logs();
    let backlog = state.app.logs(&filter).await?;
    if let Some(last) = backlog.last() {
        filter.after = Some(last.seq);
    }
    let first: Vec<Result<Event, Infallible>> = backlog.iter().map(|l| Ok(sse_event(l))).collect();
    let rest = futures_util::stream::unfold((live, filter), |(mut live, filter)| async move {
        loop {
            match live.recv().await {
                Ok(line) if filter.matches(&line) => {
                    return Some((Ok(sse_event(&line)), (live, filter)));
                }
                Ok(_) => continue,
                // A slow reader fell behind the live buffer: say so.
                Err(RecvError::Lagged(n)) => {
                    let skipped = Event::default()
                        .comment(format!("{n} line(s) skipped: the reader fell behind"));
                    return Some((Ok(skipped), (live, filter)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = futures_util::stream::iter(first).chain(rest);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
