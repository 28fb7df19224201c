//! Log lines: what a handler logs and prints and its workers' lifecycle
//! events, one stream per endpoint; a backend stores them behind
//! [`super::LogStore`] (appended in batches, read back by a [`LogFilter`],
//! trimmed by age and count).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// The guest's `log` call (the SDKs' `info!`, `wasmpod.info`, ...).
    Log,
    Stdout,
    Stderr,
    /// wasmpod itself: a worker's lifecycle (start, boot, crash, retire).
    System,
}

/// A line's severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LogSource::Log => "log",
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
            LogSource::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "log" => LogSource::Log,
            "stdout" => LogSource::Stdout,
            "stderr" => LogSource::Stderr,
            "system" => LogSource::System,
            _ => return None,
        })
    }
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Debug, Level::Info, Level::Warn, Level::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
    }
}

/// A line to store.
#[derive(Debug, Clone)]
pub struct NewLogLine {
    pub endpoint_id: String,
    pub worker_id: Option<String>,
    pub job_id: Option<String>,
    /// ms since the Unix epoch.
    pub at: i64,
    pub source: LogSource,
    pub level: Level,
    pub message: String,
}

/// A stored line, as the logs API sends it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    /// Order of arrival (increasing); resume a read after it with `after`.
    pub seq: i64,
    /// ms since the Unix epoch.
    pub at: i64,
    pub endpoint: String,
    pub worker: Option<String>,
    pub job: Option<String>,
    pub source: LogSource,
    pub level: Level,
    pub message: String,
}

/// Which lines to read: the last `limit` of those matching, oldest first.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    pub endpoint_id: String,
    pub job_id: Option<String>,
    pub worker_id: Option<String>,
    /// This level and above.
    pub min_level: Option<Level>,
    /// `at` in `[since, until)`.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Only lines with a larger `seq`.
    pub after: Option<i64>,
    pub limit: i64,
}

impl LogFilter {
    /// Whether a line matches (for lines that arrive while following).
    pub fn matches(&self, l: &LogLine) -> bool {
        l.endpoint == self.endpoint_id
            && self
                .job_id
                .as_ref()
                .is_none_or(|j| l.job.as_ref() == Some(j))
            && self
                .worker_id
                .as_ref()
                .is_none_or(|w| l.worker.as_ref() == Some(w))
            && self.min_level.is_none_or(|m| l.level >= m)
            && self.since.is_none_or(|s| l.at >= s)
            && self.until.is_none_or(|u| l.at < u)
            && self.after.is_none_or(|a| l.seq > a)
    }
}
