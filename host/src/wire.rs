//! The wire shapes shared by the HTTP edge and the engine room: RunPod's job
//! status object, as `/status`, `/runsync` and webhooks send it. Outputs
//! are stored as JSON text and go out as they are (no parse and re-print).

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::store::{FinalJob, JobRecord, JobStatus, now_ms};

/// RunPod's status object.
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
    pub output: Option<Box<RawValue>>,
    /// Why it FAILED or TIMED_OUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times it was re-queued (by /retry or after a host crash).
    pub retries: i64,
}

/// Stored JSON text as it is; anything else (a hand-edited row) as a
/// JSON string.
pub fn json_or_text(s: &str) -> Box<RawValue> {
    RawValue::from_string(s.to_string()).unwrap_or_else(|_| {
        RawValue::from_string(Value::String(s.to_string()).to_string())
            .expect("a JSON string is JSON")
    })
}

/// The status object of a job as stored.
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

/// The status object of a job as it became final.
pub fn final_status(job: &FinalJob) -> JobStatusBody {
    JobStatusBody {
        id: job.id.clone(),
        status: job.status,
        delay_time: job.delay_ms,
        execution_time: job.execution_ms,
        worker_id: job.worker_id.clone(),
        output: match job.status {
            JobStatus::Completed => job.output.as_deref().map(json_or_text),
            _ => None,
        },
        error: job.error.clone(),
        retries: job.retries,
    }
}

/// [`job_status`] as JSON text.
pub fn job_status_body(job: &JobRecord) -> String {
    serde_json::to_string(&job_status(job)).expect("status objects serialize")
}

/// `{"id", "status"}`: the answer of /run, /cancel, /retry.
pub fn id_status(id: &str, status: JobStatus) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), Value::String(id.to_string()));
    m.insert("status".into(), Value::String(status.as_str().to_string()));
    Value::Object(m)
}
