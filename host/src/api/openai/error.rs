//! Errors of the OpenAI routes in OpenAI's shape, `{"error": {"message",
//! "type", "param", "code"}}`, from the API's own errors and from jobs that
//! did not complete.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::error::ApiError;
use crate::store::{JobRecord, JobStatus};

/// An error answer in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) param: Option<&'static str>,
    pub(super) code: Option<&'static str>,
}

/// OpenAI's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorDetail {
    /// What went wrong and what to do.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl OpenAiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    pub(super) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        }
    }

    pub(super) fn body(&self) -> OpenAiErrorBody {
        OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.message.clone(),
                kind: self.kind().into(),
                param: self.param.map(str::to_string),
                code: self.code.map(str::to_string),
            },
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            // Logged with its detail; the client is told what to do.
            tracing::error!(status = %e.status, "{}", e.message);
            return Self::new(
                e.status,
                "the server failed to handle the request; try again, and tell its operator if it persists",
            );
        }
        Self::new(e.status, e.message)
    }
}

impl From<crate::store::StoreError> for OpenAiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// The error a job that did not complete answers with.
pub(super) fn job_error(record: &JobRecord) -> OpenAiError {
    let message = record.error.clone().unwrap_or_default();
    match record.status {
        JobStatus::Cancelled => OpenAiError {
            code: Some("cancelled"),
            ..OpenAiError::new(
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                format!("job {} was cancelled", record.id),
            )
        },
        JobStatus::TimedOut => OpenAiError {
            code: Some("timeout"),
            ..OpenAiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("job {} timed out: {message}", record.id),
            )
        },
        // The handler's own refusal of the request ("invalid request: ...",
        // or the SDK's "invalid input: ...") is the client's to fix.
        _ if message.starts_with("invalid request: ") || message.starts_with("invalid input: ") => {
            OpenAiError::new(StatusCode::BAD_REQUEST, message)
        }
        _ => OpenAiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("job {} failed: {message}", record.id),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_refusals_are_the_clients_and_other_failures_the_servers() {
        let mut record = JobRecord {
            id: "j".into(),
            endpoint_id: "e".into(),
            status: JobStatus::Failed,
            input: "{}".into(),
            output: None,
            error: Some("invalid request: max_tokens must be at least 1".into()),
            progress: None,
            webhook: None,
            execution_timeout_ms: None,
            ttl_ms: 0,
            low_priority: false,
            sync: true,
            retries: 0,
            created_at: 0,
            queued_at: 0,
            started_at: None,
            completed_at: None,
            delay_ms: None,
            execution_ms: None,
            expires_at: None,
            worker_id: None,
            handler: None,
            webhook_state: None,
            webhook_error: None,
            webhook_attempts: 0,
        };
        assert_eq!(job_error(&record).status, StatusCode::BAD_REQUEST);
        record.error = Some("tensor op: device fault".into());
        assert_eq!(job_error(&record).status, StatusCode::INTERNAL_SERVER_ERROR);
        record.status = JobStatus::TimedOut;
        assert_eq!(job_error(&record).status, StatusCode::GATEWAY_TIMEOUT);
    }
}
