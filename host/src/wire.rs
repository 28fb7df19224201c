//! The wire shapes shared by the HTTP edge and the engine room: RunPod's job
//! status object, as `/status`, `/runsync` and webhooks send it. Outputs
//! are stored as JSON text and go out as they are (no parse and re-print).

use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
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
    #[schema(value_type = Option<serde_json::Value>)]
    pub output: Option<Box<RawValue>>,
    /// Why it FAILED or TIMED_OUT.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Times it was re-queued (by /retry or after a host crash).
    pub retries: i64,
    /// The job's webhook delivery, when it has a webhook (not in the
    /// webhook's own body).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookView>,
}

/// Where a job's webhook stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// "waiting" (the job is not final yet), "pending" (due or being
    /// retried), "delivered", "failed" (its tries spent) or "refused" (an
    /// address this host does not send to; never retried).
    pub state: String,
    /// Deliveries tried so far.
    pub attempts: i64,
    /// Why the last try failed or was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
        webhook: job.webhook.as_ref().map(|_| WebhookView {
            state: job
                .webhook_state
                .clone()
                .unwrap_or_else(|| "waiting".to_string()),
            attempts: job.webhook_attempts,
            error: job.webhook_error.clone(),
        }),
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
        webhook: None,
    }
}

/// What a job's webhook is sent: its status object without the delivery
/// state, as JSON text.
pub fn webhook_payload(job: &JobRecord) -> String {
    let mut body = job_status(job);
    body.webhook = None;
    serde_json::to_string(&body).expect("status objects serialize")
}
