//! Batches on SQLite ([`BatchStore`]). Every change is one `BEGIN
//! IMMEDIATE` transaction on the write connection that reads the batch,
//! checks its state and limits, and writes; SQLite has one writer, so two
//! changes never both pass a limit only one of them fits.

use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use super::writer::FINAL_COLUMNS;
use super::{FINALIZE, JOB_COLUMNS, SqliteStore, job_from_row};
use crate::store::aggregates::BatchStore;
use crate::store::batches::*;
use crate::store::types::FinalJob;
use crate::store::{Result, StoreError};

type Refusable<T> = std::result::Result<T, BatchRefusal>;

const BATCH_COLUMNS: &str = "id, endpoint_id, name, status, created_at, updated_at, finalized_at";

/// A batch's counts: a draft's (or a cancelled draft's) from its requests,
/// a finalized one's from its jobs.
async fn counts(
    conn: &mut SqliteConnection,
    id: &str,
    status: BatchStatus,
    finalized: bool,
) -> Result<BatchCounts> {
    if !finalized {
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM batch_requests WHERE batch_id = ?")
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
        let cancelled = if status == BatchStatus::Cancelled {
            total
        } else {
            0
        };
        return Ok(BatchCounts {
            total,
            cancelled,
            ..Default::default()
        });
    }
    let r = sqlx::query(
        "SELECT COUNT(*) AS total, \
         COALESCE(SUM(status = 'IN_QUEUE'), 0) AS in_queue, \
         COALESCE(SUM(status = 'IN_PROGRESS'), 0) AS in_progress, \
         COALESCE(SUM(status = 'COMPLETED'), 0) AS completed, \
         COALESCE(SUM(status IN ('FAILED', 'TIMED_OUT')), 0) AS failed, \
         COALESCE(SUM(status = 'CANCELLED'), 0) AS cancelled \
         FROM jobs WHERE batch_id = ?",
    )
    .bind(id)
    .fetch_one(&mut *conn)
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

async fn record(conn: &mut SqliteConnection, r: &SqliteRow) -> Result<BatchRecord> {
    let id: String = r.try_get("id")?;
    let status: String = r.try_get("status")?;
    let status = BatchStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("batch status {status:?}")))?;
    let finalized_at: Option<i64> = r.try_get("finalized_at")?;
    let counts = counts(conn, &id, status, finalized_at.is_some()).await?;
    Ok(BatchRecord {
        endpoint_id: r.try_get("endpoint_id")?,
        name: r.try_get("name")?,
        status,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finalized_at,
        counts,
        id,
    })
}

/// The batch a transaction just checked or changed: it is there, or the
/// database broke its own isolation.
async fn read_in_transaction(
    conn: &mut SqliteConnection,
    endpoint_id: &str,
    id: &str,
) -> Result<BatchRecord> {
    read(conn, endpoint_id, id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("a batch vanished in its transaction".into()))
}

async fn read(
    conn: &mut SqliteConnection,
    endpoint_id: &str,
    id: &str,
) -> Result<Option<BatchRecord>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE id = ? AND endpoint_id = ?"
    )))
    .bind(id)
    .bind(endpoint_id)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) => Ok(Some(record(conn, &r).await?)),
        None => Ok(None),
    }
}

/// The batch if it is a draft, else why not.
async fn draft(
    conn: &mut SqliteConnection,
    endpoint_id: &str,
    id: &str,
) -> Result<Refusable<BatchRecord>> {
    Ok(match read(conn, endpoint_id, id).await? {
        None => Err(BatchRefusal::NotFound),
        Some(b) if b.status != BatchStatus::Draft => Err(BatchRefusal::NotDraft(b.status)),
        Some(b) => Ok(b),
    })
}

/// Append `requests` after the draft's last one.
async fn append(
    conn: &mut SqliteConnection,
    batch_id: &str,
    requests: &[BatchRequest],
) -> Result<()> {
    let next: i64 = sqlx::query_scalar(
        "SELECT COALESCE(MAX(idx) + 1, 0) FROM batch_requests WHERE batch_id = ?",
    )
    .bind(batch_id)
    .fetch_one(&mut *conn)
    .await?;
    for (i, r) in requests.iter().enumerate() {
        sqlx::query("INSERT INTO batch_requests (batch_id, idx, id, input) VALUES (?, ?, ?, ?)")
            .bind(batch_id)
            .bind(next + i as i64)
            .bind(&r.id)
            .bind(&r.input)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

async fn touched(
    conn: &mut SqliteConnection,
    batch_id: &str,
    now: i64,
    keep_ms: i64,
) -> Result<()> {
    sqlx::query("UPDATE batches SET updated_at = ?1, expires_at = ?1 + ?2 WHERE id = ?3")
        .bind(now)
        .bind(keep_ms)
        .bind(batch_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Batches of an endpoint that are drafts or still have requests to run.
const ACTIVE: &str = "SELECT COUNT(*) FROM batches b WHERE b.endpoint_id = ? AND (b.status = 'DRAFT' \
    OR (b.status = 'FINALIZED' AND EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id \
        AND j.status IN ('IN_QUEUE', 'IN_PROGRESS'))))";

impl BatchStore for SqliteStore {
    async fn create_batch(
        &self,
        batch: &NewBatch,
        caps: &BatchCaps,
        now: i64,
    ) -> Result<Refusable<BatchRecord>> {
        if batch.requests.len() as i64 > caps.max_requests {
            return Ok(Err(BatchRefusal::TooMany {
                has: 0,
                max: caps.max_requests,
            }));
        }
        let mut tx = self.begin().await?;
        let active: i64 = sqlx::query_scalar(ACTIVE)
            .bind(&batch.endpoint_id)
            .fetch_one(&mut *tx)
            .await?;
        if active >= caps.max_active {
            return Ok(Err(BatchRefusal::TooManyActive {
                max: caps.max_active,
            }));
        }
        sqlx::query(
            "INSERT INTO batches (id, endpoint_id, name, status, created_at, updated_at, expires_at) \
             VALUES (?1, ?2, ?3, 'DRAFT', ?4, ?4, ?4 + ?5)",
        )
        .bind(&batch.id)
        .bind(&batch.endpoint_id)
        .bind(&batch.name)
        .bind(now)
        .bind(caps.draft_retention_ms)
        .execute(&mut *tx)
        .await?;
        append(&mut tx, &batch.id, &batch.requests).await?;
        let record = read(&mut tx, &batch.endpoint_id, &batch.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a batch just created is missing".into()))?;
        tx.commit().await?;
        Ok(Ok(record))
    }

    async fn add_batch_requests(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        requests: &[BatchRequest],
        caps: &BatchCaps,
        now: i64,
    ) -> Result<Refusable<BatchRecord>> {
        let mut tx = self.begin().await?;
        let current = match draft(&mut tx, endpoint_id, batch_id).await? {
            Ok(b) => b,
            Err(r) => return Ok(Err(r)),
        };
        if current.counts.total + requests.len() as i64 > caps.max_requests {
            return Ok(Err(BatchRefusal::TooMany {
                has: current.counts.total,
                max: caps.max_requests,
            }));
        }
        append(&mut tx, batch_id, requests).await?;
        touched(&mut tx, batch_id, now, caps.draft_retention_ms).await?;
        let record = read_in_transaction(&mut tx, endpoint_id, batch_id).await?;
        tx.commit().await?;
        Ok(Ok(record))
    }

    async fn remove_batch_request(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        request_id: &str,
        caps: &BatchCaps,
        now: i64,
    ) -> Result<Refusable<BatchRecord>> {
        let mut tx = self.begin().await?;
        if let Err(r) = draft(&mut tx, endpoint_id, batch_id).await? {
            return Ok(Err(r));
        }
        let gone = sqlx::query("DELETE FROM batch_requests WHERE batch_id = ? AND id = ?")
            .bind(batch_id)
            .bind(request_id)
            .execute(&mut *tx)
            .await?;
        if gone.rows_affected() == 0 {
            return Ok(Err(BatchRefusal::NoRequest));
        }
        touched(&mut tx, batch_id, now, caps.draft_retention_ms).await?;
        let record = read_in_transaction(&mut tx, endpoint_id, batch_id).await?;
        tx.commit().await?;
        Ok(Ok(record))
    }

    async fn update_batch_request(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        request: &BatchRequest,
        caps: &BatchCaps,
        now: i64,
    ) -> Result<Refusable<BatchRecord>> {
        let mut tx = self.begin().await?;
        if let Err(r) = draft(&mut tx, endpoint_id, batch_id).await? {
            return Ok(Err(r));
        }
        let changed =
            sqlx::query("UPDATE batch_requests SET input = ? WHERE batch_id = ? AND id = ?")
                .bind(&request.input)
                .bind(batch_id)
                .bind(&request.id)
                .execute(&mut *tx)
                .await?;
        if changed.rows_affected() == 0 {
            return Ok(Err(BatchRefusal::NoRequest));
        }
        touched(&mut tx, batch_id, now, caps.draft_retention_ms).await?;
        let record = read_in_transaction(&mut tx, endpoint_id, batch_id).await?;
        tx.commit().await?;
        Ok(Ok(record))
    }

    async fn finalize_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<Refusable<BatchRecord>> {
        let mut tx = self.begin().await?;
        let current = match draft(&mut tx, endpoint_id, batch_id).await? {
            Ok(b) => b,
            Err(r) => return Ok(Err(r)),
        };
        if current.counts.total == 0 {
            return Ok(Err(BatchRefusal::Empty));
        }
        // In the order they were added: `seq` (the queue's order) follows
        // `idx`.
        sqlx::query(
            "INSERT INTO jobs (id, endpoint_id, status, input, execution_timeout_ms, ttl_ms, \
             low_priority, sync, created_at, queued_at, batch_id, batch_idx) \
             SELECT id, ?1, 'IN_QUEUE', input, NULL, ?2, 1, 0, ?3, ?3, batch_id, idx \
             FROM batch_requests WHERE batch_id = ?4 ORDER BY idx",
        )
        .bind(endpoint_id)
        .bind(ttl_ms)
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM batch_requests WHERE batch_id = ?")
            .bind(batch_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE batches SET status = 'FINALIZED', finalized_at = ?1, updated_at = ?1, \
             expires_at = NULL WHERE id = ?2",
        )
        .bind(now)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        let record = read_in_transaction(&mut tx, endpoint_id, batch_id).await?;
        tx.commit().await?;
        Ok(Ok(record))
    }

    async fn cancel_batch(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        retention_ms: i64,
        now: i64,
    ) -> Result<Refusable<BatchCancelled>> {
        let mut tx = self.begin().await?;
        let current = match read(&mut tx, endpoint_id, batch_id).await? {
            None => return Ok(Err(BatchRefusal::NotFound)),
            Some(b) => b,
        };
        if matches!(current.status, BatchStatus::Cancelled | BatchStatus::Failed) {
            return Ok(Err(BatchRefusal::Over(current.status)));
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'CANCELLED', \
             error = 'the batch was cancelled before this request started', {FINALIZE} \
             WHERE batch_id = ?3 AND status = 'IN_QUEUE' RETURNING {FINAL_COLUMNS}"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(batch_id)
        .fetch_all(&mut *tx)
        .await?;
        let cancelled = rows
            .iter()
            .map(super::queue::final_from_row)
            .collect::<Result<Vec<FinalJob>>>()?;
        // A draft is kept as long as a finished batch; a finalized one gets
        // its time when its running requests are done (`purge_batches`).
        sqlx::query(
            "UPDATE batches SET status = 'CANCELLED', updated_at = ?1, \
             expires_at = CASE WHEN finalized_at IS NULL THEN ?1 + ?2 ELSE NULL END WHERE id = ?3",
        )
        .bind(now)
        .bind(retention_ms)
        .bind(batch_id)
        .execute(&mut *tx)
        .await?;
        let batch = read_in_transaction(&mut tx, endpoint_id, batch_id).await?;
        tx.commit().await?;
        Ok(Ok(BatchCancelled { batch, cancelled }))
    }

    async fn get_batch(&self, endpoint_id: &str, batch_id: &str) -> Result<Option<BatchRecord>> {
        let mut conn = self.read.acquire().await?;
        read(&mut conn, endpoint_id, batch_id).await
    }

    async fn list_batches(&self, endpoint_id: &str, limit: i64) -> Result<Vec<BatchRecord>> {
        let mut conn = self.read.acquire().await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {BATCH_COLUMNS} FROM batches WHERE endpoint_id = ? \
             ORDER BY created_at DESC, id DESC LIMIT ?"
        )))
        .bind(endpoint_id)
        .bind(limit.max(0))
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(record(&mut conn, r).await?);
        }
        Ok(out)
    }

    async fn batch_items(
        &self,
        endpoint_id: &str,
        batch_id: &str,
        offset: i64,
        limit: i64,
    ) -> Result<Option<(BatchRecord, Vec<BatchItem>)>> {
        // One read transaction: the page and the counts from one snapshot.
        let mut tx = self.read.begin().await?;
        let out = page(&mut tx, endpoint_id, batch_id, offset, limit).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn purge_batches(&self, now: i64, retention_ms: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE batches SET expires_at = ?1 + ?2 WHERE expires_at IS NULL \
             AND finalized_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs j \
               WHERE j.batch_id = batches.id AND j.status IN ('IN_QUEUE', 'IN_PROGRESS'))",
        )
        .bind(now)
        .bind(retention_ms)
        .execute(&mut *tx)
        .await?;
        // A request re-queued by hand (/retry) keeps its batch.
        let due = "SELECT id FROM batches b WHERE b.expires_at <= ?1 AND NOT EXISTS \
            (SELECT 1 FROM jobs j WHERE j.batch_id = b.id AND j.status IN ('IN_QUEUE', 'IN_PROGRESS'))";
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM jobs WHERE batch_id IN ({due})"
        )))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM batches WHERE id IN ({due})"
        )))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }
}

async fn page(
    conn: &mut SqliteConnection,
    endpoint_id: &str,
    batch_id: &str,
    offset: i64,
    limit: i64,
) -> Result<Option<(BatchRecord, Vec<BatchItem>)>> {
    let Some(batch) = read(conn, endpoint_id, batch_id).await? else {
        return Ok(None);
    };
    let items = if batch.finalized_at.is_none() {
        let rows = sqlx::query(
            "SELECT id, input FROM batch_requests WHERE batch_id = ? ORDER BY idx LIMIT ? OFFSET ?",
        )
        .bind(batch_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BatchItem::Draft(BatchRequest {
                    id: r.try_get("id")?,
                    input: r.try_get("input")?,
                }))
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE batch_id = ? ORDER BY batch_idx LIMIT ? OFFSET ?"
        )))
        .bind(batch_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
        rows.iter()
            .map(|r| Ok(BatchItem::Job(Box::new(job_from_row(r)?))))
            .collect::<Result<Vec<_>>>()?
    };
    Ok(Some((batch, items)))
}
