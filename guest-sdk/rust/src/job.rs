//! The running job: its id, cancellation, progress, streamed chunks and log
//! lines (the [`log`] function and the `debug!`/`info!`/`warn!`/`error!`
//! macros).

use serde::Serialize;

use crate::bindings::wasmpod::serverless::job as wit;

/// Severity of a log line: `Debug`, `Info`, `Warn` or `Error`.
pub use wit::LogLevel;

/// Why a progress update or a streamed chunk was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// The value could not be serialized to JSON (e.g. a map with non-string
    /// keys).
    #[error("could not serialize the value to JSON: {0}")]
    Serialize(String),
    /// The host refused the value, e.g. because no job is running (during
    /// `init`).
    #[error("the host refused the value: {0}")]
    Rejected(String),
}

fn to_json(value: &impl Serialize) -> Result<String, JobError> {
    serde_json::to_string(value).map_err(|e| JobError::Serialize(e.to_string()))
}

/// Report progress; `/status` shows this value as the job's `output` while
/// the job is in progress. Each call replaces the previous value.
pub fn progress(value: &impl Serialize) -> Result<(), JobError> {
    wit::progress(&to_json(value)?).map_err(JobError::Rejected)
}

/// Stream a partial output; clients read the chunks from `/stream`, each
/// once and in order.
pub fn stream(chunk: &impl Serialize) -> Result<(), JobError> {
    wit::stream(&to_json(chunk)?).map_err(JobError::Rejected)
}

/// Write a log line attributed to the current job (to the worker during
/// `init`). The [`info!`](crate::info) family of macros formats and calls
/// this.
pub fn log(level: LogLevel, message: &str) {
    wit::log(level, message);
}

/// The id of the job being handled, as clients see it in `/status/{id}`;
/// empty during `init`.
pub fn job_id() -> String {
    wit::id()
}

/// True once the job was cancelled; a long handler should check this now
/// and then and return early, since its output will be discarded.
pub fn cancelled() -> bool {
    wit::cancelled()
}

/// Log a line at [`LogLevel::Debug`], formatted like `format!`:
/// `wasmpod_sdk::debug!("batch {i} of {n}")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Debug, &::std::format!($($arg)+))
    };
}

/// Log a line at [`LogLevel::Info`], formatted like `format!`:
/// `wasmpod_sdk::info!("loaded {} weights", n)`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Info, &::std::format!($($arg)+))
    };
}

/// Log a line at [`LogLevel::Warn`], formatted like `format!`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Warn, &::std::format!($($arg)+))
    };
}

/// Log a line at [`LogLevel::Error`], formatted like `format!`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => {
        $crate::log($crate::LogLevel::Error, &::std::format!($($arg)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn values_that_are_not_json_are_refused_before_the_host() {
        let not_json = HashMap::from([((1, 2), "tuple keys")]);
        let err = to_json(&not_json).unwrap_err();
        assert!(
            matches!(&err, JobError::Serialize(m) if m.contains("key must be a string")),
            "{err}"
        );
        assert_eq!(to_json(&serde_json::json!({"i": 1})).unwrap(), r#"{"i":1}"#);
    }
}
