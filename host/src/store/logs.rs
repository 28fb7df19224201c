//! The log store: one table of lines per endpoint (guest log calls, stdout,
//! stderr, worker lifecycle events), appended in batches, read back by
//! filter, and trimmed by age and count. Separate from the job queue: a
//! job's lines outlive its row.

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};
use utoipa::ToSchema;

use super::{Result, StoreError};

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

    fn parse(s: &str) -> Option<Self> {
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

/// The log table of a store. Cheap to clone.
#[derive(Clone)]
pub struct LogStore {
    pool: SqlitePool,
}

fn line_from_row(r: &SqliteRow) -> Result<LogLine> {
    let source: String = r.try_get("source")?;
    let level: String = r.try_get("level")?;
    Ok(LogLine {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        endpoint: r.try_get("endpoint_id")?,
        worker: r.try_get("worker_id")?,
        job: r.try_get("job_id")?,
        source: LogSource::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("log source {source:?}")))?,
        level: Level::parse(&level)
            .ok_or_else(|| StoreError::Corrupt(format!("log level {level:?}")))?,
        message: r.try_get("message")?,
    })
}

impl LogStore {
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Store `lines` in one transaction; returns them with their `seq`.
    pub async fn append(&self, lines: Vec<NewLogLine>) -> Result<Vec<LogLine>> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(lines.len());
        for l in lines {
            let seq: i64 = sqlx::query(
                "INSERT INTO logs (endpoint_id, worker_id, job_id, at, source, level, message) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING seq",
            )
            .bind(&l.endpoint_id)
            .bind(&l.worker_id)
            .bind(&l.job_id)
            .bind(l.at)
            .bind(l.source.as_str())
            .bind(l.level.as_str())
            .bind(&l.message)
            .fetch_one(&mut *tx)
            .await?
            .try_get("seq")?;
            out.push(LogLine {
                seq,
                at: l.at,
                endpoint: l.endpoint_id,
                worker: l.worker_id,
                job: l.job_id,
                source: l.source,
                level: l.level,
                message: l.message,
            });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The last `limit` lines matching `filter`, oldest first.
    pub async fn query(&self, filter: &LogFilter) -> Result<Vec<LogLine>> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT seq, at, endpoint_id, worker_id, job_id, source, level, message FROM logs \
             WHERE endpoint_id = ",
        );
        q.push_bind(&filter.endpoint_id);
        if let Some(j) = &filter.job_id {
            q.push(" AND job_id = ").push_bind(j);
        }
        if let Some(w) = &filter.worker_id {
            q.push(" AND worker_id = ").push_bind(w);
        }
        if let Some(min) = filter.min_level {
            q.push(" AND level IN (");
            let mut levels = q.separated(", ");
            for l in Level::ALL.into_iter().filter(|l| *l >= min) {
                levels.push_bind(l.as_str());
            }
            q.push(")");
        }
        if let Some(s) = filter.since {
            q.push(" AND at >= ").push_bind(s);
        }
        if let Some(u) = filter.until {
            q.push(" AND at < ").push_bind(u);
        }
        if let Some(a) = filter.after {
            q.push(" AND seq > ").push_bind(a);
        }
        q.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(filter.limit.max(0));
        let rows = q.build().fetch_all(&self.pool).await?;
        let mut lines = rows.iter().map(line_from_row).collect::<Result<Vec<_>>>()?;
        lines.reverse();
        Ok(lines)
    }

    /// Delete lines older than `before`, then all but the newest
    /// `keep` lines; returns how many went.
    pub async fn trim(&self, before: i64, keep: i64) -> Result<u64> {
        let old = sqlx::query("DELETE FROM logs WHERE at < ?")
            .bind(before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let over = sqlx::query(
            "DELETE FROM logs WHERE seq <= (SELECT seq FROM logs ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        )
        .bind(keep.max(0))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(old + over)
    }

    /// Forget a deleted endpoint's lines.
    pub async fn delete_endpoint(&self, endpoint_id: &str) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM logs WHERE endpoint_id = ?")
            .bind(endpoint_id)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
