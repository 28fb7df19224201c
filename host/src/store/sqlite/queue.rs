//! The job queue on SQLite ([`JobStore`], [`WebhookStore`]). Accepts,
//! finishes and claims are the hot path: they go to the writer thread
//! ([`super::writer`]) as one group commit; the rest runs on the async
//! driver.

use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use super::{FINALIZE, JOB_COLUMNS, SqliteStore, job_from_row};
use crate::store::aggregates::{JobStore, WebhookStore};
use crate::store::types::*;
use crate::store::{Result, StoreError};

use super::writer::FINAL_COLUMNS;

pub(super) fn final_from_row(r: &SqliteRow) -> Result<FinalJob> {
    let status: String = r.try_get("status")?;
    let webhook_state: Option<String> = r.try_get("webhook_state")?;
    Ok(FinalJob {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?,
        output: r.try_get("output")?,
        error: r.try_get("error")?,
        delay_ms: r.try_get("delay_ms")?,
        execution_ms: r.try_get("execution_ms")?,
        worker_id: r.try_get("worker_id")?,
        retries: r.try_get("retries")?,
        webhook_pending: webhook_state.as_deref() == Some("pending"),
    })
}

fn finals(rows: &[SqliteRow]) -> Result<Vec<FinalJob>> {
    rows.iter().map(final_from_row).collect()
}

fn ids(rows: &[SqliteRow]) -> Result<Vec<String>> {
    Ok(rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?)
}

impl JobStore for SqliteStore {
    async fn commit(&self, batch: Batch, now: i64) -> Result<BatchOutcome> {
        self.writer.commit(batch, now).await
    }

    async fn accept(&self, jobs: &[Accept<'_>], now: i64) -> Result<()> {
        let batch = Batch {
            accepts: jobs
                .iter()
                .map(|a| (a.job.clone(), a.claim.cloned()))
                .collect(),
            ..Batch::default()
        };
        self.writer.commit(batch, now).await?.accepted
    }

    async fn get_job(&self, endpoint_id: &str, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND endpoint_id = ?"
        )))
        .bind(id)
        .bind(endpoint_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list_jobs(
        &self,
        endpoint_id: &str,
        status: Option<JobStatus>,
        limit: i64,
    ) -> Result<Vec<JobSummary>> {
        let rows = sqlx::query(
            "SELECT id, status, created_at, started_at, completed_at, delay_ms, execution_ms, \
             worker_id, retries, sync, substr(error, 1, 300) AS error FROM jobs \
             WHERE endpoint_id = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY seq DESC LIMIT ?3",
        )
        .bind(endpoint_id)
        .bind(status.map(JobStatus::as_str))
        .bind(limit.max(0))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(JobSummary {
                    id: r.try_get("id")?,
                    status: JobStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?,
                    created_at: r.try_get("created_at")?,
                    started_at: r.try_get("started_at")?,
                    completed_at: r.try_get("completed_at")?,
                    delay_ms: r.try_get("delay_ms")?,
                    execution_ms: r.try_get("execution_ms")?,
                    worker_id: r.try_get("worker_id")?,
                    retries: r.try_get("retries")?,
                    sync: r.try_get("sync")?,
                    error: r.try_get("error")?,
                })
            })
            .collect()
    }

    async fn stream_chunks(&self, id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT chunk FROM job_stream WHERE job_id = ?1 \
             AND attempt = (SELECT MAX(attempt) FROM job_stream WHERE job_id = ?1) ORDER BY idx",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("chunk"))
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn claim(
        &self,
        endpoint_id: &str,
        by: &ClaimBy,
        limit: usize,
        now: i64,
    ) -> Result<Vec<ClaimedJob>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let batch = Batch {
            claims: vec![ClaimRequest {
                endpoint_id: endpoint_id.to_string(),
                by: by.clone(),
                limit,
                low_cap: usize::MAX,
            }],
            ..Batch::default()
        };
        let mut outcome = self.writer.commit(batch, now).await?;
        Ok(outcome.claimed.pop().unwrap_or_default())
    }

    async fn unclaim(&self, id: &str, worker_id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'IN_QUEUE', started_at = NULL, delay_ms = NULL, \
             worker_id = NULL, host_id = NULL, handler = NULL \
             WHERE id = ? AND worker_id = ? AND status = 'IN_PROGRESS'",
        )
        .bind(id)
        .bind(worker_id)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn report(
        &self,
        id: &str,
        attempt: i64,
        progress: Option<&str>,
        chunks: &[(i64, String)],
    ) -> Result<()> {
        if chunks.is_empty() && progress.is_none() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (idx, chunk) in chunks {
            sqlx::query(
                "INSERT INTO job_stream (job_id, attempt, idx, chunk) VALUES (?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(attempt)
            .bind(idx)
            .bind(chunk)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(p) = progress {
            sqlx::query("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'IN_PROGRESS'")
                .bind(p)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn take_stream(&self, id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "UPDATE job_stream SET delivered = 1 WHERE job_id = ? AND delivered = 0 \
             RETURNING attempt, idx, chunk",
        )
        .bind(id)
        .fetch_all(&self.write)
        .await?;
        let mut chunks: Vec<(i64, i64, String)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("attempt")?,
                    r.try_get("idx")?,
                    r.try_get("chunk")?,
                ))
            })
            .collect::<Result<_>>()?;
        chunks.sort_by_key(|(a, i, _)| (*a, *i));
        Ok(chunks.into_iter().map(|(_, _, c)| c).collect())
    }

    async fn finish(&self, done: &[Finish], now: i64) -> Result<Vec<FinalJob>> {
        if done.is_empty() {
            return Ok(Vec::new());
        }
        let batch = Batch {
            finishes: done.to_vec(),
            ..Batch::default()
        };
        self.writer.commit(batch, now).await?.finished
    }

    async fn cancel(
        &self,
        endpoint_id: &str,
        id: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<CancelOutcome> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT status FROM jobs WHERE id = ? AND endpoint_id = ?")
            .bind(id)
            .bind(endpoint_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(CancelOutcome::NotFound);
        };
        let status: String = row.try_get("status")?;
        let status = JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?;
        if status.is_final() {
            return Ok(CancelOutcome::AlreadyFinal(status));
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'CANCELLED', error = NULL, \
             execution_ms = CASE WHEN started_at IS NULL THEN NULL ELSE ?1 - started_at END, \
             {FINALIZE} WHERE id = ?3 RETURNING {FINAL_COLUMNS}"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let job = final_from_row(&row)?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled {
            was_running: status == JobStatus::InProgress,
            job,
        })
    }

    async fn retry(&self, endpoint_id: &str, id: &str, now: i64) -> Result<RetryOutcome> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT status FROM jobs WHERE id = ? AND endpoint_id = ?")
            .bind(id)
            .bind(endpoint_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(RetryOutcome::NotFound);
        };
        let status: String = row.try_get("status")?;
        let status = JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?;
        if !matches!(status, JobStatus::Failed | JobStatus::TimedOut) {
            return Ok(RetryOutcome::NotRetryable(status));
        }
        sqlx::query(
            "UPDATE jobs SET status = 'IN_QUEUE', retries = retries + 1, queued_at = ?, \
             output = NULL, error = NULL, progress = NULL, started_at = NULL, completed_at = NULL, \
             delay_ms = NULL, execution_ms = NULL, expires_at = NULL, worker_id = NULL, host_id = NULL, \
             webhook_state = NULL, webhook_attempts = 0, webhook_next_at = NULL, webhook_error = NULL \
             WHERE id = ?",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RetryOutcome::Requeued)
    }

    async fn purge_queue(
        &self,
        endpoint_id: &str,
        reason: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<Vec<FinalJob>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'CANCELLED', error = ?3, {FINALIZE} \
             WHERE endpoint_id = ?4 AND status = 'IN_QUEUE' RETURNING {FINAL_COLUMNS}"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(reason)
        .bind(endpoint_id)
        .fetch_all(&self.write)
        .await?;
        finals(&rows)
    }

    async fn queue_depth(&self, endpoint_id: &str, now: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE endpoint_id = ? AND status = 'IN_QUEUE' \
             AND queued_at + ttl_ms > ?",
        )
        .bind(endpoint_id)
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn job_ids(&self, endpoint_id: &str, status: JobStatus) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT id FROM jobs WHERE endpoint_id = ? AND status = ? ORDER BY seq")
                .bind(endpoint_id)
                .bind(status.as_str())
                .fetch_all(&self.read)
                .await?;
        ids(&rows)
    }

    async fn job_counts(&self, endpoint_id: &str) -> Result<JobCounts> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n, SUM(retries > 0) AS retried FROM jobs \
             WHERE endpoint_id = ? GROUP BY status",
        )
        .bind(endpoint_id)
        .fetch_all(&self.read)
        .await?;
        let mut counts = JobCounts::default();
        for r in &rows {
            let status: String = r.try_get("status")?;
            let n: i64 = r.try_get("n")?;
            let retried: i64 = r.try_get::<Option<i64>, _>("retried")?.unwrap_or(0);
            counts.retried += retried;
            match JobStatus::parse(&status) {
                Some(JobStatus::Completed) => counts.completed += n,
                Some(JobStatus::Failed | JobStatus::TimedOut) => counts.failed += n,
                Some(JobStatus::InProgress) => counts.in_progress += n,
                Some(JobStatus::InQueue) => counts.in_queue += n,
                _ => {}
            }
        }
        Ok(counts)
    }

    async fn oldest_queued_ms(&self, endpoint_id: &str, now: i64) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(queued_at) AS t FROM jobs WHERE endpoint_id = ? AND status = 'IN_QUEUE' \
             AND queued_at + ttl_ms > ?",
        )
        .bind(endpoint_id)
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        let t: Option<i64> = row.try_get("t")?;
        Ok(t.map(|t| (now - t).max(0)))
    }

    async fn recover_orphans(
        &self,
        host_id: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<(Vec<String>, Vec<FinalJob>)> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(
            "SELECT j.id AS id, j.retries AS retries, e.config AS config FROM jobs j \
             JOIN endpoints e ON e.id = j.endpoint_id \
             WHERE j.status = 'IN_PROGRESS' AND (j.host_id IS NULL OR j.host_id != ?)",
        )
        .bind(host_id)
        .fetch_all(&mut *tx)
        .await?;
        let mut requeued = Vec::new();
        let mut failed = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            let retries: i64 = r.try_get("retries")?;
            let config: String = r.try_get("config")?;
            let lost = "the worker running this job was lost (the host stopped)";
            match requeue_or_fail(&mut tx, &id, retries, &config, lost, now, retention_ms).await? {
                LostJobOutcome::Failed(job) => failed.push(job),
                _ => requeued.push(id),
            }
        }
        tx.commit().await?;
        Ok((requeued, failed))
    }

    async fn requeue_lost(
        &self,
        id: &str,
        worker_id: &str,
        reason: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<LostJobOutcome> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT j.retries AS retries, e.config AS config FROM jobs j \
             JOIN endpoints e ON e.id = j.endpoint_id \
             WHERE j.id = ? AND j.worker_id = ? AND j.status = 'IN_PROGRESS'",
        )
        .bind(id)
        .bind(worker_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(LostJobOutcome::NotHeld);
        };
        let retries: i64 = row.try_get("retries")?;
        let config: String = row.try_get("config")?;
        let lost = format!("{reason},");
        let outcome =
            requeue_or_fail(&mut tx, id, retries, &config, &lost, now, retention_ms).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn expire_ttl(&self, now: i64, retention_ms: i64) -> Result<Vec<FinalJob>> {
        // Found on a reader first (through each endpoint's queue index), so
        // the write lock, which every group commit needs, is taken only
        // when some job did expire, and only for those rows. An UPDATE
        // with this filter would scan every retained job under that lock,
        // every sweep: tens of ms with 100k retained jobs, and a stall of
        // the whole queue each time.
        let expired: Vec<String> = sqlx::query_scalar(
            // CROSS JOIN keeps this order: endpoints, then each one's queue.
            "SELECT j.id FROM endpoints e CROSS JOIN jobs j WHERE j.endpoint_id = e.id \
             AND j.status = 'IN_QUEUE' AND j.queued_at + j.ttl_ms <= ?1",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'TIMED_OUT', \
             error = 'the job waited in the queue longer than its ttl of ' || ttl_ms || ' ms; raise policy.ttl or add workers', \
             {FINALIZE} WHERE id IN (SELECT value FROM json_each(?3)) \
               AND status = 'IN_QUEUE' AND queued_at + ttl_ms <= ?1 RETURNING {FINAL_COLUMNS}"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(serde_json::to_string(&expired).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .fetch_all(&self.write)
        .await?;
        finals(&rows)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        // In slices, each its own statement: a burst of jobs expiring at
        // once (a load test's /runsync results, a minute later) would
        // otherwise hold the write lock, and every group commit, for as
        // long as deleting all of them takes.
        const SLICE: i64 = 500;
        let mut purged = 0;
        loop {
            let r = sqlx::query(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE expires_at <= ?1 \
                 AND batch_id IS NULL AND (webhook_state IS NULL OR webhook_state != 'pending') \
                 LIMIT ?2)",
            )
            .bind(now)
            .bind(SLICE)
            .execute(&self.write)
            .await?;
            purged += r.rows_affected();
            if r.rows_affected() < SLICE as u64 {
                return Ok(purged);
            }
        }
    }
}

impl WebhookStore for SqliteStore {
    async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE webhook_state = 'pending' AND webhook_next_at <= ? \
             ORDER BY webhook_next_at LIMIT ?"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn webhook_attempted(
        &self,
        id: &str,
        delivered: bool,
        next_at: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        let state = match (delivered, next_at) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        sqlx::query(
            "UPDATE jobs SET webhook_state = ?, webhook_attempts = webhook_attempts + 1, \
             webhook_next_at = ?, webhook_error = ? WHERE id = ?",
        )
        .bind(state)
        .bind(next_at)
        .bind(error)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn webhook_refused(&self, id: &str, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET webhook_state = 'refused', webhook_attempts = webhook_attempts + 1, \
             webhook_next_at = NULL, webhook_error = ? WHERE id = ?",
        )
        .bind(error)
        .bind(id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn next_webhook_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(webhook_next_at) AS t FROM jobs WHERE webhook_state = 'pending'",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get("t")?)
    }
}

/// A job whose worker was lost (host restart, executor death): back in the
/// queue with one more retry while the endpoint's `max_retries` (from its
/// stored `config`) allows, else FAILED with `lost` — what happened, with
/// the punctuation the sentence needs — and how to retry it by hand.
async fn requeue_or_fail(
    tx: &mut Transaction<'static, Sqlite>,
    id: &str,
    retries: i64,
    config: &str,
    lost: &str,
    now: i64,
    retention_ms: i64,
) -> Result<LostJobOutcome> {
    let max_retries = serde_json::from_str::<EndpointConfig>(config)
        .map(|c| c.max_retries)
        .unwrap_or_default();
    if retries < i64::from(max_retries) {
        sqlx::query(
            "UPDATE jobs SET status = 'IN_QUEUE', retries = retries + 1, queued_at = ?, \
             progress = NULL, started_at = NULL, delay_ms = NULL, worker_id = NULL, \
             host_id = NULL WHERE id = ?",
        )
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        return Ok(LostJobOutcome::Requeued);
    }
    let error = format!(
        "{lost} and the job was already retried {retries} time(s), the endpoint's max_retries; retry it with POST /retry/{id}"
    );
    let row = sqlx::query(AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'FAILED', error = ?3, execution_ms = ?1 - started_at, \
         {FINALIZE} WHERE id = ?4 RETURNING {FINAL_COLUMNS}"
    )))
    .bind(now)
    .bind(retention_ms)
    .bind(error)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(LostJobOutcome::Failed(final_from_row(&row)?))
}
