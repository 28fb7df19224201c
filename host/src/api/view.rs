//! The wire shapes shared by several routes (and by webhooks): RunPod's job
//! status object.

use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::store::{JobRecord, JobStatus, now_ms};

/// RunPod's status object, as `/status`, `/runsync` and webhooks send it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatusBody {
    pub id: String,
    pub status: JobStatus,
    /// Milliseconds the job waited in the queue before it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_time: Option<i64>,
    /// Milliseconds it ran (so far, while IN_PROGRESS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// The handler's output (COMPLETED), or its latest progress value
    /// (IN_PROGRESS).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// Why it FAILED or TIMED_OUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times it was re-queued (by /retry or after a host crash).
    pub retries: i64,
}

/// Stored JSON text as a value (text that is not JSON as a string).
pub fn json_or_text(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_string()))
}

pub fn job_status(job: &JobRecord) -> JobStatusBody {
    let execution_time = match (job.status, job.execution_ms, job.started_at) {
        (_, Some(ms), _) => Some(ms),
        (JobStatus::InProgress, None, Some(start)) => Some((now_ms() - start).max(0)),
        _ => None,
    };
    let output = match job.status {
        JobStatus::Completed => job.output.as_deref().map(json_or_text),
        JobStatus::InProgress => job.progress.as_deref().map(json_or_text),
        _ => None,
    };
    JobStatusBody {
        id: job.id.clone(),
        status: job.status,
        delay_time: job.delay_ms,
        execution_time,
        worker_id: job.worker_id.clone(),
        output,
        error: job.error.clone(),
        retries: job.retries,
    }
}

/// [`job_status`] as JSON.
pub fn job_status_body(job: &JobRecord) -> Value {
    serde_json::to_value(job_status(job)).unwrap_or_else(|_| json!({"id": job.id}))
}

/// `{"id", "status"}`: the answer of /run, /cancel, /retry.
pub fn id_status(id: &str, status: JobStatus) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.to_string()));
    m.insert("status".into(), Value::String(status.as_str().to_string()));
    Value::Object(m)
}
