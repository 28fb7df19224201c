//! `/v1/endpoints/{id}/jobs`: an endpoint's retained jobs, newest first,
//! and `/v1/endpoints/{id}/jobs/{job}`: one job whole (input, output,
//! progress, every stream chunk, and its log lines). Admin only.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::doc::Rejected;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::params::Params;
use super::validate::{ApiQuery, EndpointPath, JobPath};
use crate::store::{JobStatus, JobSummary, LogLine};
use crate::wire::json_or_text;

/// Answer of the jobs list.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<JobSummary>,
}

/// One job with everything it produced.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Its state and times (the error in full).
    #[serde(flatten)]
    pub job: JobSummary,
    pub endpoint: String,
    #[schema(value_type = Object)]
    pub input: Box<RawValue>,
    /// The handler's output once COMPLETED.
    #[schema(value_type = Option<Object>)]
    pub output: Option<Box<RawValue>>,
    /// Its latest progress value while IN_PROGRESS.
    #[schema(value_type = Option<Object>)]
    pub progress: Option<Box<RawValue>>,
    /// Every chunk it streamed (its latest attempt), whether read or not.
    #[schema(value_type = Vec<Object>)]
    pub stream: Vec<Box<RawValue>>,
    /// The handler version that ran it.
    pub handler: Option<String>,
    /// Its log lines (guest log calls, stdout, stderr), the first 1000.
    pub logs: Vec<LogLine>,
}

/// 404 unless the endpoint exists.
pub(super) fn check_endpoint(state: &ApiState, id: &str) -> ApiResult<()> {
    if state.app.pools.endpoint(id).is_none() {
        return Err(ApiError::not_found(format!(
            "no endpoint {id:?}; list endpoints with GET /v1/endpoints"
        )));
    }
    Ok(())
}
/// An endpoint's retained jobs, newest first. Query: `status` (one of
/// RunPod's statuses), `limit` (default 100, at most 1000).
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}/jobs", tag = "endpoints",
    params(("endpoint_id" = String, Path),
        ("status" = Option<String>, Query, description = "IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED or TIMED_OUT"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, max 1000)")),
    responses((status = 200, body = JobList),
        (status = 404, body = ErrorBody), Rejected),
    security(("api_key" = [])))]
pub async fn list_jobs(
    State(state): State<ApiState>,
    caller: Caller,
    EndpointPath { endpoint }: EndpointPath,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> ApiResult<Json<JobList>> {
    caller.require_admin()?;
    let p = Params::new(q, "the jobs list", &["status", "limit"])?;
    check_endpoint(&state, &endpoint)?;
    let status = match p.str("status") {
        None => None,
        Some(s) => Some(JobStatus::parse(&s.to_ascii_uppercase()).ok_or_else(|| {
            ApiError::bad_request(format!(
                "status={s:?} is not a job status; use IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED or TIMED_OUT"
            ))
        })?),
    };
    let limit = p.count("limit", 100, 1000)?;
    let jobs = state.app.list_jobs(&endpoint, status, limit).await?;
    Ok(Json(JobList { jobs }))
}

/// One job whole, with its stream chunks and log lines.
#[utoipa::path(get, path = "/v1/endpoints/{endpoint_id}/jobs/{job_id}", tag = "endpoints",
    params(("endpoint_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, body = JobView),
        (status = 404, description = "Unknown endpoint or job (or purged after its retention)", body = ErrorBody),
        Rejected),
    security(("api_key" = [])))]
pub async fn get_job(
    State(state): State<ApiState>,
    caller: Caller,
    JobPath { endpoint, job }: JobPath,
) -> ApiResult<Json<JobView>> {
    caller.require_admin()?;
    check_endpoint(&state, &endpoint)?;
    let detail = state.app.job_detail(&endpoint, &job).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no job {job:?} on endpoint {endpoint:?} (finished jobs are purged after their retention); its log lines outlive it: GET /v1/endpoints/{endpoint}/logs?job={job}"
        ))
    })?;
    let r = detail.record;
    Ok(Json(JobView {
        job: JobSummary::of(&r),
        input: json_or_text(&r.input),
        output: r.output.as_deref().map(json_or_text),
        progress: r.progress.as_deref().map(json_or_text),
        stream: detail.stream.iter().map(|c| json_or_text(c)).collect(),
        endpoint: r.endpoint_id,
        handler: r.handler,
        logs: detail.logs,
    }))
}
