//! The job queue on Postgres ([`JobStore`], [`WebhookStore`]). A group
//! commit ([`Batch`]) is one transaction of a few array-bound statements
//! (`UNNEST`), however many jobs it carries; each part runs in a savepoint
//! so one part's failure (a duplicate id) is undone alone. Claims lock the
//! rows they take `FOR UPDATE SKIP LOCKED`: hosts claiming at once take
//! different jobs and never wait for each other.

use sqlx::{Acquire, AssertSqlSafe, PgConnection, Postgres, Row, Transaction};

use super::{FINAL_COLUMNS, FINALIZE, JOB_COLUMNS, PgStore, final_from_row, finals, job_from_row};
use crate::store::aggregates::{JobStore, WebhookStore};
use crate::store::types::*;
use crate::store::{Result, StoreError};

/// Normal jobs first, in arrival order; low-priority ones only in what the
/// limit leaves, up to the host's cap ($7) less those it runs already.
const CLAIM_SQL: &str = "WITH normal AS ( \
      SELECT seq FROM jobs WHERE endpoint_id = $5 AND status = 'IN_QUEUE' \
        AND NOT low_priority AND queued_at + ttl_ms > $1 \
        AND $4 = (SELECT handler FROM endpoints WHERE id = $5) \
      ORDER BY seq LIMIT $6 FOR UPDATE SKIP LOCKED), \
    low AS ( \
      SELECT seq FROM jobs WHERE endpoint_id = $5 AND status = 'IN_QUEUE' \
        AND low_priority AND queued_at + ttl_ms > $1 \
        AND $4 = (SELECT handler FROM endpoints WHERE id = $5) \
      ORDER BY seq \
      LIMIT GREATEST(0, LEAST($6 - (SELECT COUNT(*) FROM normal), \
        $7 - (SELECT COUNT(*) FROM jobs WHERE endpoint_id = $5 AND status = 'IN_PROGRESS' \
          AND low_priority AND host_id = $3))) \
      FOR UPDATE SKIP LOCKED), \
    picked AS (SELECT seq FROM normal UNION ALL SELECT seq FROM low) \
    UPDATE jobs SET status = 'IN_PROGRESS', started_at = $1, delay_ms = $1 - queued_at, \
      worker_id = $2, host_id = $3, handler = $4 \
    FROM picked WHERE jobs.seq = picked.seq \
    RETURNING jobs.low_priority, jobs.seq, jobs.id, jobs.input, jobs.execution_timeout_ms, \
      jobs.retries, jobs.sync";

fn finish_sql() -> String {
    format!(
        "UPDATE jobs SET status = v.s, output = v.o, error = v.r, \
         execution_ms = $1 - started_at, completed_at = $1, expires_at = $1 + v.ret, \
         progress = NULL, webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END, \
         webhook_attempts = 0, webhook_next_at = $1 \
         FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) \
           AS v(id, w, s, o, r, ret) \
         WHERE jobs.id = v.id AND jobs.worker_id = v.w AND jobs.status = 'IN_PROGRESS' \
         RETURNING {}",
        FINAL_COLUMNS
            .split(", ")
            .map(|c| format!("jobs.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

const ACCEPT_SQL: &str = "INSERT INTO jobs (id, endpoint_id, status, input, webhook, \
    execution_timeout_ms, ttl_ms, low_priority, sync, created_at, queued_at, started_at, delay_ms, \
    worker_id, host_id, handler) \
    SELECT id, e, CASE WHEN w IS NULL THEN 'IN_QUEUE' ELSE 'IN_PROGRESS' END, i, hook, x, ttl, lo, sy, \
      COALESCE(at, $1), COALESCE(at, $1), \
      CASE WHEN w IS NULL THEN NULL ELSE COALESCE(ho, at, $1) END, \
      CASE WHEN w IS NULL THEN NULL ELSE COALESCE(ho, at, $1) - COALESCE(at, $1) END, w, h, hd \
    FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], \
      $8::bool[], $9::bool[], $10::text[], $11::text[], $12::text[], $13::bigint[], $14::bigint[]) \
      AS v(id, e, i, hook, x, ttl, lo, sy, w, h, hd, at, ho)";

async fn finish_all(conn: &mut PgConnection, done: &[Finish], now: i64) -> Result<Vec<FinalJob>> {
    let rows = sqlx::query(AssertSqlSafe(finish_sql()))
        .bind(now)
        .bind(done.iter().map(|f| f.id.as_str()).collect::<Vec<_>>())
        .bind(
            done.iter()
                .map(|f| f.worker_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            done.iter()
                .map(|f| f.outcome.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            done.iter()
                .map(|f| f.outcome.output.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            done.iter()
                .map(|f| f.outcome.error.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(done.iter().map(|f| f.retention_ms).collect::<Vec<_>>())
        .fetch_all(conn)
        .await?;
    finals(&rows)
}

async fn accept_all(
    conn: &mut PgConnection,
    jobs: &[(&NewJob, Option<&ClaimBy>)],
    now: i64,
) -> Result<()> {
    sqlx::query(ACCEPT_SQL)
        .bind(now)
        .bind(jobs.iter().map(|(j, _)| j.id.as_str()).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|(j, _)| j.endpoint_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|(j, _)| j.input.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|(j, _)| j.webhook.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|(j, _)| j.execution_timeout_ms)
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|(j, _)| j.ttl_ms).collect::<Vec<_>>())
        .bind(jobs.iter().map(|(j, _)| j.low_priority).collect::<Vec<_>>())
        .bind(jobs.iter().map(|(j, _)| j.sync).collect::<Vec<_>>())
        .bind(
            jobs.iter()
                .map(|(_, c)| c.map(|c| c.worker_id.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|(_, c)| c.map(|c| c.host_id.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(
            jobs.iter()
                .map(|(_, c)| c.map(|c| c.handler.as_str()))
                .collect::<Vec<_>>(),
        )
        .bind(jobs.iter().map(|(j, _)| j.accepted_at).collect::<Vec<_>>())
        .bind(jobs.iter().map(|(j, _)| j.handed_at).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

async fn claim_one(
    conn: &mut PgConnection,
    req: &ClaimRequest,
    now: i64,
) -> Result<Vec<ClaimedJob>> {
    let rows = sqlx::query(CLAIM_SQL)
        .bind(now)
        .bind(&req.by.worker_id)
        .bind(&req.by.host_id)
        .bind(&req.by.handler)
        .bind(&req.endpoint_id)
        .bind(req.limit as i64)
        .bind(req.low_cap.min(i64::MAX as usize) as i64)
        .fetch_all(conn)
        .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        // Queue order: normal priority first, then arrival.
        let order: (bool, i64) = (r.try_get(0)?, r.try_get(1)?);
        claimed.push((
            order,
            ClaimedJob {
                id: r.try_get(2)?,
                input: r.try_get(3)?,
                execution_timeout_ms: r.try_get(4)?,
                attempt: r.try_get(5)?,
                sync: r.try_get(6)?,
                low_priority: order.0,
            },
        ));
    }
    claimed.sort_by_key(|(order, _)| *order);
    Ok(claimed.into_iter().map(|(_, j)| j).collect())
}

/// Run one part of a group commit in a savepoint: its failure is undone
/// alone and the rest of the transaction goes on.
macro_rules! part {
    ($tx:expr, |$c:ident| $body:expr) => {{
        match $tx.begin().await {
            Err(e) => Err(StoreError::from(e)),
            Ok(mut sp) => {
                let r = {
                    let $c: &mut PgConnection = &mut sp;
                    $body.await
                };
                match r {
                    Ok(v) => sp.commit().await.map(|_| v).map_err(StoreError::from),
                    Err(e) => {
                        sp.rollback().await?;
                        Err(e)
                    }
                }
            }
        }
    }};
}

async fn commit(
    tx: &mut Transaction<'static, Postgres>,
    batch: Batch,
    now: i64,
) -> Result<BatchOutcome> {
    let Batch {
        finishes,
        accepts,
        claims,
    } = batch;
    let accepted = if accepts.is_empty() {
        Ok(())
    } else {
        let jobs: Vec<(&NewJob, Option<&ClaimBy>)> =
            accepts.iter().map(|(j, c)| (j, c.as_ref())).collect();
        part!(tx, |c| accept_all(c, &jobs, now))
    };
    let finished = if finishes.is_empty() {
        Ok(Vec::new())
    } else {
        part!(tx, |c| finish_all(c, &finishes, now))
    };
    let mut claimed = Vec::with_capacity(claims.len());
    let mut short: Vec<&str> = Vec::new();
    for req in &claims {
        if short.contains(&req.endpoint_id.as_str()) {
            claimed.push(Vec::new());
            continue;
        }
        match part!(tx, |c| claim_one(c, req, now)) {
            Ok(jobs) => {
                if jobs.len() < req.limit {
                    short.push(&req.endpoint_id);
                }
                claimed.push(jobs);
            }
            Err(e) => {
                tracing::warn!(endpoint = %req.endpoint_id, "claiming jobs: {e}");
                short.push(&req.endpoint_id);
                claimed.push(Vec::new());
            }
        }
    }
    Ok(BatchOutcome {
        finished,
        accepts,
        accepted,
        claimed,
    })
}

fn ids(rows: &[sqlx::postgres::PgRow]) -> Result<Vec<String>> {
    Ok(rows
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?)
}

fn status_of(row: &sqlx::postgres::PgRow) -> Result<JobStatus> {
    let status: String = row.try_get("status")?;
    JobStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))
}

impl JobStore for PgStore {
    async fn commit(&self, batch: Batch, now: i64) -> Result<BatchOutcome> {
        let mut tx = self.begin().await?;
        let outcome = commit(&mut tx, batch, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn accept(&self, jobs: &[Accept<'_>], now: i64) -> Result<()> {
        let jobs: Vec<(&NewJob, Option<&ClaimBy>)> =
            jobs.iter().map(|a| (a.job, a.claim)).collect();
        let mut conn = self.pool.acquire().await?;
        accept_all(&mut conn, &jobs, now).await
    }

    async fn get_job(&self, endpoint_id: &str, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND endpoint_id = $2"
        )))
        .bind(id)
        .bind(endpoint_id)
        .fetch_optional(&self.pool)
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
             WHERE endpoint_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY seq DESC LIMIT $3",
        )
        .bind(endpoint_id)
        .bind(status.map(JobStatus::as_str))
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(JobSummary {
                    id: r.try_get("id")?,
                    status: status_of(r)?,
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
            "SELECT chunk FROM job_stream WHERE job_id = $1 \
             AND attempt = (SELECT MAX(attempt) FROM job_stream WHERE job_id = $1) ORDER BY idx",
        )
        .bind(id)
        .fetch_all(&self.pool)
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
        let req = ClaimRequest {
            endpoint_id: endpoint_id.to_string(),
            by: by.clone(),
            limit,
            low_cap: usize::MAX,
        };
        let mut conn = self.pool.acquire().await?;
        claim_one(&mut conn, &req, now).await
    }

    async fn unclaim(&self, id: &str, worker_id: &str) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET status = 'IN_QUEUE', started_at = NULL, delay_ms = NULL, \
             worker_id = NULL, host_id = NULL, handler = NULL \
             WHERE id = $1 AND worker_id = $2 AND status = 'IN_PROGRESS'",
        )
        .bind(id)
        .bind(worker_id)
        .execute(&self.pool)
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
        if !chunks.is_empty() {
            sqlx::query(
                "INSERT INTO job_stream (job_id, attempt, idx, chunk) \
                 SELECT $1, $2, i, c FROM UNNEST($3::bigint[], $4::text[]) AS v(i, c) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(attempt)
            .bind(chunks.iter().map(|(i, _)| *i).collect::<Vec<_>>())
            .bind(chunks.iter().map(|(_, c)| c.as_str()).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(p) = progress {
            sqlx::query("UPDATE jobs SET progress = $1 WHERE id = $2 AND status = 'IN_PROGRESS'")
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
            "UPDATE job_stream SET delivered = TRUE WHERE job_id = $1 AND NOT delivered \
             RETURNING attempt, idx, chunk",
        )
        .bind(id)
        .fetch_all(&self.pool)
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
        let mut conn = self.pool.acquire().await?;
        finish_all(&mut conn, done, now).await
    }

    async fn cancel(
        &self,
        endpoint_id: &str,
        id: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<CancelOutcome> {
        let mut tx = self.begin().await?;
        let row =
            sqlx::query("SELECT status FROM jobs WHERE id = $1 AND endpoint_id = $2 FOR UPDATE")
                .bind(id)
                .bind(endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else {
            return Ok(CancelOutcome::NotFound);
        };
        let status = status_of(&row)?;
        if status.is_final() {
            return Ok(CancelOutcome::AlreadyFinal(status));
        }
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'CANCELLED', error = NULL, \
             execution_ms = CASE WHEN started_at IS NULL THEN NULL ELSE $1 - started_at END, \
             {FINALIZE} WHERE id = $3 RETURNING {FINAL_COLUMNS}"
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
        let row =
            sqlx::query("SELECT status FROM jobs WHERE id = $1 AND endpoint_id = $2 FOR UPDATE")
                .bind(id)
                .bind(endpoint_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(row) = row else {
            return Ok(RetryOutcome::NotFound);
        };
        let status = status_of(&row)?;
        if !matches!(status, JobStatus::Failed | JobStatus::TimedOut) {
            return Ok(RetryOutcome::NotRetryable(status));
        }
        sqlx::query(
            "UPDATE jobs SET status = 'IN_QUEUE', retries = retries + 1, queued_at = $1, \
             output = NULL, error = NULL, progress = NULL, started_at = NULL, completed_at = NULL, \
             delay_ms = NULL, execution_ms = NULL, expires_at = NULL, worker_id = NULL, host_id = NULL, \
             webhook_state = NULL, webhook_attempts = 0, webhook_next_at = NULL, webhook_error = NULL \
             WHERE id = $2",
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
            "UPDATE jobs SET status = 'CANCELLED', error = $3, {FINALIZE} \
             WHERE endpoint_id = $4 AND status = 'IN_QUEUE' RETURNING {FINAL_COLUMNS}"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(reason)
        .bind(endpoint_id)
        .fetch_all(&self.pool)
        .await?;
        finals(&rows)
    }

    async fn queue_depth(&self, endpoint_id: &str, now: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE endpoint_id = $1 AND status = 'IN_QUEUE' \
             AND queued_at + ttl_ms > $2",
        )
        .bind(endpoint_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    async fn job_ids(&self, endpoint_id: &str, status: JobStatus) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT id FROM jobs WHERE endpoint_id = $1 AND status = $2 ORDER BY seq")
                .bind(endpoint_id)
                .bind(status.as_str())
                .fetch_all(&self.pool)
                .await?;
        ids(&rows)
    }

    async fn job_counts(&self, endpoint_id: &str) -> Result<JobCounts> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n, COUNT(*) FILTER (WHERE retries > 0) AS retried FROM jobs \
             WHERE endpoint_id = $1 GROUP BY status",
        )
        .bind(endpoint_id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = JobCounts::default();
        for r in &rows {
            let n: i64 = r.try_get("n")?;
            counts.retried += r.try_get::<i64, _>("retried")?;
            match status_of(r)? {
                JobStatus::Completed => counts.completed += n,
                JobStatus::Failed | JobStatus::TimedOut => counts.failed += n,
                JobStatus::InProgress => counts.in_progress += n,
                JobStatus::InQueue => counts.in_queue += n,
                JobStatus::Cancelled => {}
            }
        }
        Ok(counts)
    }

    async fn oldest_queued_ms(&self, endpoint_id: &str, now: i64) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(queued_at) AS t FROM jobs WHERE endpoint_id = $1 AND status = 'IN_QUEUE' \
             AND queued_at + ttl_ms > $2",
        )
        .bind(endpoint_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let t: Option<i64> = row.try_get("t")?;
        Ok(t.map(|t| (now - t).max(0)))
    }

    /// In a cluster the orphans are the jobs claimed by a host other than
    /// `host_id` whose heartbeat (its lease) is missing or older than the
    /// dead-host time; jobs of live hosts are left alone.
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
             WHERE j.status = 'IN_PROGRESS' AND (j.host_id IS NULL OR j.host_id != $1) \
               AND NOT EXISTS (SELECT 1 FROM hosts h WHERE h.id = j.host_id AND h.heartbeat_at > $2) \
             FOR UPDATE OF j SKIP LOCKED",
        )
        .bind(host_id)
        .bind(now - self.dead_after_ms)
        .fetch_all(&mut *tx)
        .await?;
        let mut requeued = Vec::new();
        let mut failed = Vec::new();
        for r in &rows {
            let id: String = r.try_get("id")?;
            let retries: i64 = r.try_get("retries")?;
            let config: String = r.try_get("config")?;
            let lost = "the worker running this job was lost (its host stopped)";
            match requeue_or_fail(&mut tx, &id, retries, &config, lost, now, retention_ms).await? {
                LostJobOutcome::Failed(job) => failed.push(job),
                _ => requeued.push(id),
            }
        }
        // Hosts gone for an hour leave /v1/hosts (their jobs came back
        // long ago; each restart of a host is a new host id).
        sqlx::query("DELETE FROM hosts WHERE heartbeat_at < $1 AND id != $2")
            .bind(now - 3_600_000)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
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
             WHERE j.id = $1 AND j.worker_id = $2 AND j.status = 'IN_PROGRESS' FOR UPDATE OF j",
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
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'TIMED_OUT', \
             error = 'the job waited in the queue longer than its ttl of ' || ttl_ms || ' ms; raise policy.ttl or add workers', \
             {FINALIZE} WHERE status = 'IN_QUEUE' AND queued_at + ttl_ms <= $1 RETURNING {FINAL_COLUMNS}"
        )))
        .bind(now)
        .bind(retention_ms)
        .fetch_all(&self.pool)
        .await?;
        finals(&rows)
    }

    async fn purge_expired(&self, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM jobs WHERE expires_at <= $1 AND batch_id IS NULL \
             AND (webhook_state IS NULL OR webhook_state != 'pending')",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
}

impl WebhookStore for PgStore {
    /// Each due webhook is handed to one host: the rows are pushed a
    /// minute ahead as they are taken (skipping rows another host is
    /// taking), so no other host sends them meanwhile; the attempt's
    /// outcome then sets the real next time.
    async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<JobRecord>> {
        let columns = JOB_COLUMNS
            .split(", ")
            .map(|c| format!("jobs.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = sqlx::query(AssertSqlSafe(format!(
            "WITH due AS (SELECT seq FROM jobs WHERE webhook_state = 'pending' AND webhook_next_at <= $1 \
               ORDER BY webhook_next_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             UPDATE jobs SET webhook_next_at = $1 + 60000 FROM due WHERE jobs.seq = due.seq \
             RETURNING {columns}"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
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
            "UPDATE jobs SET webhook_state = $1, webhook_attempts = webhook_attempts + 1, \
             webhook_next_at = $2, webhook_error = $3 WHERE id = $4",
        )
        .bind(state)
        .bind(next_at)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn webhook_refused(&self, id: &str, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET webhook_state = 'refused', webhook_attempts = webhook_attempts + 1, \
             webhook_next_at = NULL, webhook_error = $1 WHERE id = $2",
        )
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn next_webhook_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(webhook_next_at) AS t FROM jobs WHERE webhook_state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("t")?)
    }
}

/// A job whose worker was lost: back in the queue with one more retry while
/// the endpoint's `max_retries` (from its stored `config`) allows, else
/// FAILED with `lost` and how to retry it by hand.
async fn requeue_or_fail(
    tx: &mut Transaction<'static, Postgres>,
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
            "UPDATE jobs SET status = 'IN_QUEUE', retries = retries + 1, queued_at = $1, \
             progress = NULL, started_at = NULL, delay_ms = NULL, worker_id = NULL, \
             host_id = NULL WHERE id = $2",
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
        "UPDATE jobs SET status = 'FAILED', error = $3, execution_ms = $1 - started_at, \
         {FINALIZE} WHERE id = $4 RETURNING {FINAL_COLUMNS}"
    )))
    .bind(now)
    .bind(retention_ms)
    .bind(error)
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(LostJobOutcome::Failed(final_from_row(&row)?))
}
