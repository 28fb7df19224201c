//! API errors: every failure answers a JSON body `{"error": "..."}` whose
//! message says what was wrong and what to do, with the right status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::serve::{HandlerError, ModelRepoError, upload::UploadError};
use crate::store::StoreError;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and how to fix it.
    pub error: String,
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, m)
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, m)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        }
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response();
        if let Some(s) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(s),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Unavailable(detail) => {
                tracing::warn!("the database is unreachable: {detail}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unreachable right now, so nothing was done (nothing you sent                      before is lost); send the request again in a few seconds",
                )
            }
            other => {
                // The database's own text stays in the log.
                tracing::error!("the job store failed: {other}");
                ApiError::internal(
                    "the job store failed; nothing was done; try again, and if it persists                      see the host's log",
                )
            }
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            UploadError::Empty => ApiError::bad_request(e.to_string()),
            UploadError::Interrupted(_) => ApiError::bad_request(e.to_string()),
            UploadError::Io(_) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<HandlerError> for ApiError {
    fn from(e: HandlerError) -> Self {
        match e {
            HandlerError::Upload(u) => u.into(),
            HandlerError::Invalid(m) => ApiError::bad_request(format!("invalid handler: {m}")),
            HandlerError::NotFound(_) => ApiError::not_found(e.to_string()),
            HandlerError::Store(s) => s.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<ModelRepoError> for ApiError {
    fn from(e: ModelRepoError) -> Self {
        match e {
            ModelRepoError::Upload(u) => u.into(),
            ModelRepoError::Invalid(m) => ApiError::bad_request(m),
            ModelRepoError::NotFound(_) => ApiError::not_found(e.to_string()),
            ModelRepoError::Conflict(m) => ApiError::conflict(m),
            ModelRepoError::Store(s) => s.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
