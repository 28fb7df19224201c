//! The batch aggregate: a named set of requests against one queue endpoint
//! (RunPod's batch jobs). A DRAFT batch's requests are kept apart from the
//! queue (`batch_requests`); finalizing queues them, in one transaction, as
//! low-priority jobs that remember their batch and position, so the job
//! lifecycle runs them like any other and the batch's counts and pages are
//! read from the jobs. A batch and its jobs are purged together, a
//! retention after its last request finished (a draft, a retention after
//! its last change).

use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use utoipa::ToSchema;

use super::sqlite::{JOB_COLUMNS, SqliteStore, job_from_row};
use super::types::{JobRecord, NewJob};
use super::{Result, Store, StoreError};

/// A batch's state, spelled as RunPod spells it. A finalized batch stays
/// FINALIZED while its requests run; it is done when completed + failed
/// (+ cancelled) requests equal the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    /// Requests can be added or removed; nothing runs.
    Draft,
    /// Locked; its requests are queued behind real-time jobs.
    Finalized,
    /// Cancelled: queued requests were cancelled, running ones finished.
    Cancelled,
    /// The batch itself failed (not one of its requests).
    Failed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Draft => "DRAFT",
            BatchStatus::Finalized => "FINALIZED",
            BatchStatus::Cancelled => "CANCELLED",
            BatchStatus::Failed => "FAILED",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "DRAFT" => BatchStatus::Draft,
            "FINALIZED" => BatchStatus::Finalized,
            "CANCELLED" => BatchStatus::Cancelled,
            "FAILED" => BatchStatus::Failed,
            other => return Err(StoreError::Corrupt(format!("batch status {other:?}"))),
        })
    }
}

/// A batch with its request counts.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: String,
    pub endpoint_id: String,
    pub name: Option<String>,
    pub status: BatchStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub finalized_at: Option<i64>,
    pub counts: BatchCounts,
}

/// How a batch's requests stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BatchCounts {
    pub total: i64,
    pub in_queue: i64,
    pub in_progress: i64,
    pub completed: i64,
    /// FAILED or TIMED_OUT.
    pub failed: i64,
    pub cancelled: i64,
}

/// One request of a batch, as its results page shows it.
#[derive(Debug, Clone)]
pub enum BatchItem {
    /// Still in the draft: its input only.
    Draft { id: String, input: String },
    /// Queued (finalized): the job it became.
    Job(Box<JobRecord>),
}

/// Why a batch change was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRefusal {
    NotFound,
    /// Not a draft any more (its status).
    NotDraft(BatchStatus),
    /// It would hold more than `max` requests (it has `has`).
    TooMany { has: i64, max: i64 },
}

const STATUS_COUNTS: &str = "SELECT COUNT(*) AS total, \
    COALESCE(SUM(status = 'IN_QUEUE'), 0) AS in_queue, \
    COALESCE(SUM(status = 'IN_PROGRESS'), 0) AS in_progress, \
    COALESCE(SUM(status = 'COMPLETED'), 0) AS completed, \
    COALESCE(SUM(status IN ('FAILED', 'TIMED_OUT')), 0) AS failed, \
    COALESCE(SUM(status = 'CANCELLED'), 0) AS cancelled \
    FROM jobs WHERE batch_id = ?";

impl SqliteStore {
    async fn batch_counts(&self, batch: &str, status: BatchStatus) -> Result<BatchCounts> {
        if status == BatchStatus::Draft {
            let total: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM batch_requests WHERE batch_id = ?")
                    .bind(batch)
                    .fetch_one(&self.pool)
                    .await?;
            return Ok(BatchCounts {
                total,
                ..Default::default()
            });
        }
        let r = sqlx::query(STATUS_COUNTS)
            .bind(batch)
            .fetch_one(&self.pool)
            .await?;
        Ok(BatchCounts {
            total: r.try_get("total")?,
            in_queue: r.try_get("in_queue")?,
            in_progress: r.try_get("in_progress")?,
            completed: r.try_get("completed")?,
            failed: r.try_get("failed")?,
            cancelled: r.try_get("cancelled")?,
        })
    }

    async fn batch_from_row(&self, r: &sqlx::sqlite::SqliteRow) -> Result<BatchRecord> {
        let id: String = r.try_get("id")?;
        let status = BatchStatus::parse(&r.try_get::<String, _>("status")?)?;
        let counts = self.batch_counts(&id, status).await?;
        Ok(BatchRecord {
            endpoint_id: r.try_get("endpoint_id")?,
            name: r.try_get("name")?,
            status,
            created_at: r.try_get("created_at")?,
            updated_at: r.try_get("updated_at")?,
            finalized_at: r.try_get("finalized_at")?,
            counts,
            id,
        })
    }

    pub async fn create_batch(
        &self,
        id: &str,
        endpoint_id: &str,
        name: Option<&str>,
        now: i64,
        draft_retention_ms: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO batches (id, endpoint_id, name, status, created_at, updated_at, expires_at) \
             VALUES (?, ?, ?, 'DRAFT', ?4, ?4, ?4 + ?5)",
        )
        .bind(id)
        .bind(endpoint_id)
        .bind(name)
        .bind(now)
        .bind(draft_retention_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_batch(&self, endpoint_id: &str, id: &str) -> Result<Option<BatchRecord>> {
        let row = sqlx::query("SELECT * FROM batches WHERE id = ? AND endpoint_id = ?")
            .bind(id)
            .bind(endpoint_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.batch_from_row(&r).await?)),
            None => Ok(None),
        }
    }

    /// An endpoint's batches, newest first.
    pub async fn list_batches(&self, endpoint_id: &str) -> Result<Vec<BatchRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM batches WHERE endpoint_id = ? ORDER BY created_at DESC, id DESC",
        )
        .bind(endpoint_id)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(self.batch_from_row(r).await?);
        }
        Ok(out)
    }

    /// Batches of an endpoint that are drafts or still have requests to
    /// run.
    pub async fn active_batches(&self, endpoint_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM batches b WHERE b.endpoint_id = ? AND (b.status = 'DRAFT' OR \
             (b.status = 'FINALIZED' AND EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id \
              AND j.status IN ('IN_QUEUE', 'IN_PROGRESS'))))",
        )
        .bind(endpoint_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Batch requests of an endpoint waiting in its queue.
    pub async fn queued_batch_requests(&self, endpoint_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE endpoint_id = ? AND status = 'IN_QUEUE' \
             AND batch_id IS NOT NULL",
        )
        .bind(endpoint_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Add requests `(id, input)` to a draft, up to `max` in all.
    pub async fn add_batch_requests(
        &self,
        endpoint_id: &str,
        batch: &str,
        requests: &[(String, String)],
        max: i64,
        now: i64,
        draft_retention_ms: i64,
    ) -> std::result::Result<std::result::Result<i64, BatchRefusal>, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT status FROM batches WHERE id = ? AND endpoint_id = ?")
            .bind(batch)
            .bind(endpoint_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(Err(BatchRefusal::NotFound));
        };
        let status = BatchStatus::parse(&row.try_get::<String, _>("status")?)?;
        if status != BatchStatus::Draft {
            return Ok(Err(BatchRefusal::NotDraft(status)));
        }
        let (has, next): (i64, i64) = {
            let r = sqlx::query(
                "SELECT COUNT(*) AS n, COALESCE(MAX(idx) + 1, 0) AS next FROM batch_requests \
                 WHERE batch_id = ?",
            )
            .bind(batch)
            .fetch_one(&mut *tx)
            .await?;
            (r.try_get("n")?, r.try_get("next")?)
        };
        if has + requests.len() as i64 > max {
            return Ok(Err(BatchRefusal::TooMany { has, max }));
        }
        for (i, (id, input)) in requests.iter().enumerate() {
            sqlx::query("INSERT INTO batch_requests (batch_id, idx, id, input) VALUES (?, ?, ?, ?)")
                .bind(batch)
                .bind(next + i as i64)
                .bind(id)
                .bind(input)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE batches SET updated_at = ?1, expires_at = ?1 + ?2 WHERE id = ?3")
            .bind(now)
            .bind(draft_retention_ms)
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(has + requests.len() as i64))
    }

    /// Remove one request from a draft; Ok(false) if it has no such request.
    pub async fn remove_batch_request(
        &self,
        endpoint_id: &str,
        batch: &str,
        request: &str,
        now: i64,
    ) -> std::result::Result<std::result::Result<bool, BatchRefusal>, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT status FROM batches WHERE id = ? AND endpoint_id = ?")
            .bind(batch)
            .bind(endpoint_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(Err(BatchRefusal::NotFound));
        };
        let status = BatchStatus::parse(&row.try_get::<String, _>("status")?)?;
        if status != BatchStatus::Draft {
            return Ok(Err(BatchRefusal::NotDraft(status)));
        }
        let r = sqlx::query("DELETE FROM batch_requests WHERE batch_id = ? AND id = ?")
            .bind(batch)
            .bind(request)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE batches SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Ok(r.rows_affected() == 1))
    }

    pub async fn rename_batch(
        &self,
        endpoint_id: &str,
        batch: &str,
        name: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE batches SET name = ?, updated_at = ? WHERE id = ? AND endpoint_id = ?",
        )
        .bind(name)
        .bind(now)
        .bind(batch)
        .bind(endpoint_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Lock a draft and queue its requests as low-priority jobs (`template`
    /// gives each job's settings; its id and input are the request's).
    pub async fn finalize_batch(
        &self,
        endpoint_id: &str,
        batch: &str,
        template: &NewJob,
        now: i64,
    ) -> std::result::Result<std::result::Result<i64, BatchRefusal>, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT status FROM batches WHERE id = ? AND endpoint_id = ?")
            .bind(batch)
            .bind(endpoint_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(Err(BatchRefusal::NotFound));
        };
        let status = BatchStatus::parse(&row.try_get::<String, _>("status")?)?;
        if status != BatchStatus::Draft {
            return Ok(Err(BatchRefusal::NotDraft(status)));
        }
        let queued = sqlx::query(
            "INSERT INTO jobs (id, endpoint_id, status, input, execution_timeout_ms, ttl_ms, \
             low_priority, sync, created_at, queued_at, batch_id, batch_idx) \
             SELECT id, ?1, 'IN_QUEUE', input, ?2, ?3, 1, 0, ?4, ?4, batch_id, idx \
             FROM batch_requests WHERE batch_id = ?5 ORDER BY idx",
        )
        .bind(endpoint_id)
        .bind(template.execution_timeout_ms)
        .bind(template.ttl_ms)
        .bind(now)
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM batch_requests WHERE batch_id = ?")
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE batches SET status = 'FINALIZED', finalized_at = ?1, updated_at = ?1, \
             expires_at = NULL WHERE id = ?2",
        )
        .bind(now)
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(queued as i64))
    }

    /// Cancel a batch: its queued requests become CANCELLED (running ones
    /// finish). Returns the cancelled jobs' ids.
    pub async fn cancel_batch(
        &self,
        endpoint_id: &str,
        batch: &str,
        now: i64,
        retention_ms: i64,
    ) -> std::result::Result<std::result::Result<Vec<String>, BatchRefusal>, StoreError> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT status FROM batches WHERE id = ? AND endpoint_id = ?")
            .bind(batch)
            .bind(endpoint_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(Err(BatchRefusal::NotFound));
        };
        let status = BatchStatus::parse(&row.try_get::<String, _>("status")?)?;
        if matches!(status, BatchStatus::Cancelled | BatchStatus::Failed) {
            return Ok(Err(BatchRefusal::NotDraft(status)));
        }
        let ids: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'CANCELLED', error = 'the batch was cancelled before this request started', \
             {} WHERE batch_id = ?3 AND status = 'IN_QUEUE' RETURNING id",
            super::sqlite::FINALIZE
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(batch)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE batches SET status = 'CANCELLED', updated_at = ?1, \
             expires_at = CASE WHEN status = 'DRAFT' THEN ?1 + ?2 ELSE expires_at END WHERE id = ?3",
        )
        .bind(now)
        .bind(retention_ms)
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(ids))
    }

    /// A page of a batch's requests, in the order they were added.
    pub async fn batch_items(
        &self,
        batch: &BatchRecord,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<BatchItem>> {
        if batch.status == BatchStatus::Draft {
            let rows = sqlx::query(
                "SELECT id, input FROM batch_requests WHERE batch_id = ? ORDER BY idx LIMIT ? OFFSET ?",
            )
            .bind(&batch.id)
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
            return rows
                .iter()
                .map(|r| {
                    Ok(BatchItem::Draft {
                        id: r.try_get("id")?,
                        input: r.try_get("input")?,
                    })
                })
                .collect();
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = ? ORDER BY batch_idx LIMIT ? OFFSET ?"
        )))
        .bind(&batch.id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(BatchItem::Job(Box::new(job_from_row(r)?))))
            .collect()
    }

    /// Batches done (no request left to run) get their expiry; batches past
    /// it are deleted with their jobs. Returns how many were deleted.
    pub async fn purge_batches(&self, now: i64, retention_ms: i64) -> Result<u64> {
        sqlx::query(
            "UPDATE batches SET expires_at = ?1 + ?2 WHERE expires_at IS NULL AND status != 'DRAFT' \
             AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = batches.id \
                             AND j.status IN ('IN_QUEUE', 'IN_PROGRESS'))",
        )
        .bind(now)
        .bind(retention_ms)
        .execute(&self.pool)
        .await?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM jobs WHERE batch_id IN (SELECT id FROM batches WHERE expires_at <= ?) \
             AND status NOT IN ('IN_QUEUE', 'IN_PROGRESS')",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM batches WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.backend() {
            super::Backend::Sqlite($s) => $e,
        }
    };
}

/// The batch operations of the serving store.
impl Store {
    pub async fn create_batch(
        &self,
        id: &str,
        endpoint_id: &str,
        name: Option<&str>,
        now: i64,
        draft_retention_ms: i64,
    ) -> Result<()> {
        dispatch!(self, s => s.create_batch(id, endpoint_id, name, now, draft_retention_ms).await)
    }
    pub async fn get_batch(&self, endpoint_id: &str, id: &str) -> Result<Option<BatchRecord>> {
        dispatch!(self, s => s.get_batch(endpoint_id, id).await)
    }
    pub async fn list_batches(&self, endpoint_id: &str) -> Result<Vec<BatchRecord>> {
        dispatch!(self, s => s.list_batches(endpoint_id).await)
    }
    pub async fn active_batches(&self, endpoint_id: &str) -> Result<i64> {
        dispatch!(self, s => s.active_batches(endpoint_id).await)
    }
    pub async fn queued_batch_requests(&self, endpoint_id: &str) -> Result<i64> {
        dispatch!(self, s => s.queued_batch_requests(endpoint_id).await)
    }
    pub async fn add_batch_requests(
        &self,
        endpoint_id: &str,
        batch: &str,
        requests: &[(String, String)],
        max: i64,
        now: i64,
        draft_retention_ms: i64,
    ) -> std::result::Result<std::result::Result<i64, BatchRefusal>, StoreError> {
        dispatch!(self, s => s.add_batch_requests(endpoint_id, batch, requests, max, now, draft_retention_ms).await)
    }
    pub async fn remove_batch_request(
        &self,
        endpoint_id: &str,
        batch: &str,
        request: &str,
        now: i64,
    ) -> std::result::Result<std::result::Result<bool, BatchRefusal>, StoreError> {
        dispatch!(self, s => s.remove_batch_request(endpoint_id, batch, request, now).await)
    }
    pub async fn rename_batch(
        &self,
        endpoint_id: &str,
        batch: &str,
        name: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        dispatch!(self, s => s.rename_batch(endpoint_id, batch, name, now).await)
    }
    pub async fn finalize_batch(
        &self,
        endpoint_id: &str,
        batch: &str,
        template: &NewJob,
        now: i64,
    ) -> std::result::Result<std::result::Result<i64, BatchRefusal>, StoreError> {
        dispatch!(self, s => s.finalize_batch(endpoint_id, batch, template, now).await)
    }
    pub async fn cancel_batch(
        &self,
        endpoint_id: &str,
        batch: &str,
        now: i64,
        retention_ms: i64,
    ) -> std::result::Result<std::result::Result<Vec<String>, BatchRefusal>, StoreError> {
        dispatch!(self, s => s.cancel_batch(endpoint_id, batch, now, retention_ms).await)
    }
    pub async fn batch_items(
        &self,
        batch: &BatchRecord,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<BatchItem>> {
        dispatch!(self, s => s.batch_items(batch, offset, limit).await)
    }
    pub async fn purge_batches(&self, now: i64, retention_ms: i64) -> Result<u64> {
        dispatch!(self, s => s.purge_batches(now, retention_ms).await)
    }
}
