//! The SQLite backend: one file in WAL mode, migrated on open. Every state
//! change of a job is one statement (or one `BEGIN IMMEDIATE` transaction),
//! so a `kill -9` leaves each job either before or after the change.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

use super::types::*;
use super::{Result, StoreError};

/// A SQLite-backed store. Cheap to clone (a connection pool).
#[derive(Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

pub(super) const JOB_COLUMNS: &str = "id, endpoint_id, status, input, output, error, progress, webhook, \
    execution_timeout_ms, ttl_ms, low_priority, sync, retries, created_at, queued_at, started_at, \
    completed_at, delay_ms, execution_ms, expires_at, worker_id, handler, webhook_state, webhook_attempts";

/// Set when a job becomes final: when it is purged, and its webhook (if
/// any) becomes due.
pub(super) const FINALIZE: &str = "completed_at = ?1, expires_at = ?1 + ?2, progress = NULL, \
    webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END, \
    webhook_attempts = 0, webhook_next_at = ?1";

pub(super) fn job_from_row(r: &SqliteRow) -> Result<JobRecord> {
    let status: String = r.try_get("status")?;
    Ok(JobRecord {
        id: r.try_get("id")?,
        endpoint_id: r.try_get("endpoint_id")?,
        status: JobStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("job status {status:?}")))?,
        input: r.try_get("input")?,
        output: r.try_get("output")?,
        error: r.try_get("error")?,
        progress: r.try_get("progress")?,
        webhook: r.try_get("webhook")?,
        execution_timeout_ms: r.try_get("execution_timeout_ms")?,
        ttl_ms: r.try_get("ttl_ms")?,
        low_priority: r.try_get("low_priority")?,
        sync: r.try_get("sync")?,
        retries: r.try_get("retries")?,
        created_at: r.try_get("created_at")?,
        queued_at: r.try_get("queued_at")?,
        started_at: r.try_get("started_at")?,
        completed_at: r.try_get("completed_at")?,
        delay_ms: r.try_get("delay_ms")?,
        execution_ms: r.try_get("execution_ms")?,
        expires_at: r.try_get("expires_at")?,
        worker_id: r.try_get("worker_id")?,
        handler: r.try_get("handler")?,
        webhook_state: r.try_get("webhook_state")?,
        webhook_attempts: r.try_get("webhook_attempts")?,
    })
}

fn endpoint_from_row(r: &SqliteRow) -> Result<EndpointRecord> {
    let config: String = r.try_get("config")?;
    let config: EndpointConfig = serde_json::from_str(&config)
        .map_err(|e| StoreError::Corrupt(format!("endpoint config: {e}")))?;
    Ok(EndpointRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        handler: r.try_get("handler")?,
        config,
        generation: r.try_get("generation")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn key_from_row(r: &SqliteRow) -> Result<ApiKeyRecord> {
    let scope: String = r.try_get("scope")?;
    let endpoint_id: Option<String> = r.try_get("endpoint_id")?;
    let scope = match (scope.as_str(), endpoint_id) {
        ("admin", _) => Scope::Admin,
        ("invoke", Some(endpoint_id)) => Scope::Invoke { endpoint_id },
        (other, _) => return Err(StoreError::Corrupt(format!("key scope {other:?}"))),
    };
    Ok(ApiKeyRecord {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        prefix: r.try_get("prefix")?,
        scope,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn config_json(c: &EndpointConfig) -> Result<String> {
    serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl SqliteStore {
    pub async fn open(url: &str) -> Result<Self> {
        let url = if url.starts_with("sqlite:") {
            url.to_string()
        } else {
            format!("sqlite://{url}")
        };
        let options = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL survives a process crash (kill -9): a committed
            // transaction is in the WAL file. Only an OS crash or power
            // loss can drop the last few.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the database: {e}")))?;
        Ok(Self { pool })
    }

    pub(super) async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        // IMMEDIATE takes the write lock up front, so a read-then-write
        // transaction never fails half-way on a lock upgrade.
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    // --- handlers -------------------------------------------------------

    pub async fn put_handler(&self, digest: &str, size: i64, world: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO handlers (digest, size, created_at, world) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(size)
        .bind(now_ms())
        .bind(world)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn get_handler(&self, digest: &str) -> Result<Option<HandlerRecord>> {
        let row =
            sqlx::query("SELECT digest, size, created_at, world FROM handlers WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(HandlerRecord {
                digest: r.try_get("digest")?,
                size: r.try_get("size")?,
                created_at: r.try_get("created_at")?,
                world: r.try_get("world")?,
            })
        })
        .transpose()
    }

    pub async fn list_handlers(&self) -> Result<Vec<HandlerRecord>> {
        let rows =
            sqlx::query("SELECT digest, size, created_at, world FROM handlers ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(HandlerRecord {
                    digest: r.try_get("digest")?,
                    size: r.try_get("size")?,
                    created_at: r.try_get("created_at")?,
                    world: r.try_get("world")?,
                })
            })
            .collect()
    }

    pub async fn endpoints_using(&self, digest: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM endpoints WHERE handler = ? ORDER BY id")
            .bind(digest)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    pub async fn delete_handler(&self, digest: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM handlers WHERE digest = ?")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    // --- endpoints ------------------------------------------------------

    pub async fn create_endpoint(&self, e: &EndpointRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO endpoints (id, name, handler, config, generation, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.id)
        .bind(&e.name)
        .bind(&e.handler)
        .bind(config_json(&e.config)?)
        .bind(e.generation)
        .bind(e.created_at)
        .bind(e.updated_at)
        .execute(&self.pool)
        .await
        .map_err(|err| match StoreError::from(err) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("an endpoint with id {:?} already exists", e.id))
            }
            other => other,
        })?;
        Ok(())
    }

    pub async fn get_endpoint(&self, id: &str) -> Result<Option<EndpointRecord>> {
        let row = sqlx::query("SELECT * FROM endpoints WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    pub async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        let rows = sqlx::query("SELECT * FROM endpoints ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    pub async fn update_endpoint(&self, e: &EndpointRecord) -> Result<Option<EndpointRecord>> {
        let row = sqlx::query(
            "UPDATE endpoints SET name = ?, handler = ?, config = ?, generation = generation + 1, \
             updated_at = ? WHERE id = ? RETURNING *",
        )
        .bind(&e.name)
        .bind(&e.handler)
        .bind(config_json(&e.config)?)
        .bind(now_ms())
        .bind(&e.id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    pub async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM jobs WHERE endpoint_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM batches WHERE endpoint_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = ? WHERE endpoint_id = ? AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM endpoints WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    // --- API keys -------------------------------------------------------

    pub async fn insert_key(&self, key: &ApiKeyRecord, hash: &str) -> Result<()> {
        let (scope, endpoint) = match &key.scope {
            Scope::Admin => ("admin", None),
            Scope::Invoke { endpoint_id } => ("invoke", Some(endpoint_id.as_str())),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, prefix, scope, endpoint_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(hash)
        .bind(&key.prefix)
        .bind(scope)
        .bind(endpoint)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn find_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE hash = ? AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub async fn revoke_key(&self, id: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn count_admin_keys(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE scope = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    // --- models ---------------------------------------------------------

    pub async fn put_model_file(&self, model: &str, f: &ModelFile) -> Result<()> {
        sqlx::query(
            "INSERT INTO model_files (model, path, sha256, size, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (model, path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, \
             created_at = excluded.created_at",
        )
        .bind(model)
        .bind(&f.path)
        .bind(&f.sha256)
        .bind(f.size)
        .bind(f.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn list_model_files(&self) -> Result<Vec<(String, ModelFile)>> {
        let rows = sqlx::query("SELECT * FROM model_files ORDER BY model, path")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("model")?,
                    ModelFile {
                        path: r.try_get("path")?,
                        sha256: r.try_get("sha256")?,
                        size: r.try_get("size")?,
                        created_at: r.try_get("created_at")?,
                    },
                ))
            })
            .collect()
    }

    pub async fn delete_model(&self, model: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM model_files WHERE model = ?")
            .bind(model)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    pub async fn blob_in_use(&self, sha256: &str) -> Result<bool> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM model_files WHERE sha256 = ?) AS used")
            .bind(sha256)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("used")?)
    }

    // --- jobs -----------------------------------------------------------

    pub async fn enqueue(&self, job: &NewJob, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO jobs (id, endpoint_id, status, input, webhook, execution_timeout_ms, ttl_ms, \
             low_priority, sync, created_at, queued_at) VALUES (?, ?, 'IN_QUEUE', ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&job.id)
        .bind(&job.endpoint_id)
        .bind(&job.input)
        .bind(&job.webhook)
        .bind(job.execution_timeout_ms)
        .bind(job.ttl_ms)
        .bind(job.low_priority)
        .bind(job.sync)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_job(&self, endpoint_id: &str, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id = ? AND endpoint_id = ?"
        )))
        .bind(id)
        .bind(endpoint_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn claim(
        &self,
        endpoint_id: &str,
        worker_id: &str,
        host_id: &str,
        handler: &str,
        now: i64,
        allow_low: bool,
    ) -> Result<Option<ClaimedJob>> {
        let row = sqlx::query(
            "UPDATE jobs SET status = 'IN_PROGRESS', started_at = ?1, delay_ms = ?1 - queued_at, \
             worker_id = ?2, host_id = ?3, handler = ?4 \
             WHERE seq = (SELECT seq FROM jobs WHERE endpoint_id = ?5 AND status = 'IN_QUEUE' \
                          AND queued_at + ttl_ms > ?1 AND (?6 OR low_priority = 0) \
                          ORDER BY low_priority, seq LIMIT 1) \
               AND status = 'IN_QUEUE' \
               AND ?4 = (SELECT handler FROM endpoints WHERE id = ?5) \
             RETURNING id, input, execution_timeout_ms, retries, sync, low_priority",
        )
        .bind(now)
        .bind(worker_id)
        .bind(host_id)
        .bind(handler)
        .bind(endpoint_id)
        .bind(allow_low)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(ClaimedJob {
                id: r.try_get("id")?,
                input: r.try_get("input")?,
                execution_timeout_ms: r.try_get("execution_timeout_ms")?,
                attempt: r.try_get("retries")?,
                sync: r.try_get("sync")?,
                low_priority: r.try_get("low_priority")?,
            })
        })
        .transpose()
    }

    /// Real-time (not batch) jobs of an endpoint waiting in the queue.
    pub async fn realtime_queue_depth(&self, endpoint_id: &str) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE endpoint_id = ? AND status = 'IN_QUEUE' \
             AND batch_id IS NULL",
        )
        .bind(endpoint_id)
        .fetch_one(&self.pool)
        .await?)
    }

    pub async fn set_progress(&self, id: &str, progress: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET progress = ? WHERE id = ? AND status = 'IN_PROGRESS'")
            .bind(progress)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn append_stream(
        &self,
        id: &str,
        attempt: i64,
        chunks: &[(i64, String)],
    ) -> Result<()> {
        if chunks.is_empty() {
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
        tx.commit().await?;
        Ok(())
    }

    pub async fn take_stream(&self, id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "UPDATE job_stream SET delivered = 1 WHERE job_id = ? AND delivered = 0 \
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

    pub async fn finish(
        &self,
        id: &str,
        worker_id: &str,
        outcome: &JobOutcome,
        now: i64,
        retention_ms: i64,
    ) -> Result<Option<JobRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = ?3, output = ?4, error = ?5, execution_ms = ?1 - started_at, \
             {FINALIZE} WHERE id = ?6 AND worker_id = ?7 AND status = 'IN_PROGRESS' \
             RETURNING {JOB_COLUMNS}"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(outcome.status.as_str())
        .bind(&outcome.output)
        .bind(&outcome.error)
        .bind(id)
        .bind(worker_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn cancel(
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
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'CANCELLED', error = NULL, \
             execution_ms = CASE WHEN started_at IS NULL THEN NULL ELSE ?1 - started_at END, \
             {FINALIZE} WHERE id = ?3"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled {
            was_running: status == JobStatus::InProgress,
        })
    }

    pub async fn retry(&self, endpoint_id: &str, id: &str, now: i64) -> Result<RetryOutcome> {
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

    pub async fn purge_queue(
        &self,
        endpoint_id: &str,
        reason: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'CANCELLED', error = ?3, {FINALIZE} \
             WHERE endpoint_id = ?4 AND status = 'IN_QUEUE' RETURNING id"
        )))
        .bind(now)
        .bind(retention_ms)
        .bind(reason)
        .bind(endpoint_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    pub async fn queue_depth(&self, endpoint_id: &str, now: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM jobs WHERE endpoint_id = ? AND status = 'IN_QUEUE' \
             AND queued_at + ttl_ms > ?",
        )
        .bind(endpoint_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn job_ids(&self, endpoint_id: &str, status: JobStatus) -> Result<Vec<String>> {
        let rows =
            sqlx::query("SELECT id FROM jobs WHERE endpoint_id = ? AND status = ? ORDER BY seq")
                .bind(endpoint_id)
                .bind(status.as_str())
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    pub async fn job_counts(&self, endpoint_id: &str) -> Result<JobCounts> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n, SUM(retries > 0) AS retried FROM jobs \
             WHERE endpoint_id = ? GROUP BY status",
        )
        .bind(endpoint_id)
        .fetch_all(&self.pool)
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

    pub async fn recover_orphans(
        &self,
        host_id: &str,
        now: i64,
        retention_ms: i64,
    ) -> Result<(Vec<String>, Vec<String>)> {
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
                LostJobOutcome::Requeued => requeued.push(id),
                _ => failed.push(id),
            }
        }
        tx.commit().await?;
        Ok((requeued, failed))
    }

    pub async fn expire_ttl(&self, now: i64, retention_ms: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE jobs SET status = 'TIMED_OUT', \
             error = 'the job waited in the queue longer than its ttl of ' || ttl_ms || ' ms; raise policy.ttl or add workers', \
             {FINALIZE} WHERE status = 'IN_QUEUE' AND queued_at + ttl_ms <= ?1 RETURNING id"
        )))
        .bind(now)
        .bind(retention_ms)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM jobs WHERE expires_at <= ? AND batch_id IS NULL \
             AND (webhook_state IS NULL OR webhook_state != 'pending')",
        )
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    pub async fn due_webhooks(&self, now: i64, limit: i64) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE webhook_state = 'pending' AND webhook_next_at <= ? \
             ORDER BY webhook_next_at LIMIT ?"
        )))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_from_row).collect()
    }

    pub async fn webhook_attempted(
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn next_webhook_at(&self) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(webhook_next_at) AS t FROM jobs WHERE webhook_state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("t")?)
    }

    pub async fn requeue_lost(
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

    pub async fn oldest_queued_ms(&self, endpoint_id: &str, now: i64) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(queued_at) AS t FROM jobs WHERE endpoint_id = ? AND status = 'IN_QUEUE' \
             AND queued_at + ttl_ms > ?",
        )
        .bind(endpoint_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        let t: Option<i64> = row.try_get("t")?;
        Ok(t.map(|t| (now - t).max(0)))
    }

    pub async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for d in deltas {
            sqlx::query(
                "INSERT INTO worker_usage (endpoint_id, slice_type, minute, worker_ms) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (endpoint_id, slice_type, minute) \
                 DO UPDATE SET worker_ms = worker_ms + excluded.worker_ms",
            )
            .bind(&d.endpoint_id)
            .bind(&d.slice_type)
            .bind(d.minute)
            .bind(d.worker_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn usage(
        &self,
        endpoint_id: Option<&str>,
        since: i64,
        until: i64,
    ) -> Result<Vec<UsageTotal>> {
        let rows = sqlx::query(
            "SELECT endpoint_id, slice_type, SUM(worker_ms) AS ms FROM worker_usage \
             WHERE minute >= ? AND minute < ? AND (?3 IS NULL OR endpoint_id = ?3) \
             GROUP BY endpoint_id, slice_type ORDER BY endpoint_id, slice_type",
        )
        .bind(since)
        .bind(until)
        .bind(endpoint_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let ms: i64 = r.try_get("ms")?;
                Ok(UsageTotal {
                    endpoint_id: r.try_get("endpoint_id")?,
                    slice_type: r.try_get("slice_type")?,
                    worker_seconds: ms as f64 / 1000.0,
                })
            })
            .collect()
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
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'FAILED', error = ?3, execution_ms = ?1 - started_at, \
         {FINALIZE} WHERE id = ?4"
    )))
    .bind(now)
    .bind(retention_ms)
    .bind(error)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(LostJobOutcome::Failed)
}
