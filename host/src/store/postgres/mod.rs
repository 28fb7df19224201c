//! The Postgres backend (cluster mode): every host of a cluster points at
//! the same database and together they are one platform. It implements the
//! same interfaces as the SQLite backend and passes the same suite
//! (`store/suite.rs`); what differs is what a shared database needs:
//! claims take rows `FOR UPDATE SKIP LOCKED` so hosts never wait on each
//! other's claims, a claimed job is leased to its host for as long as that
//! host's heartbeat (the `hosts` table) is fresh, and triggers send
//! `LISTEN`/`NOTIFY` wake-ups when jobs queue or finish (see
//! `migrations-postgres/`).
//!
//! Durability: Postgres's default (`synchronous_commit = on`): a commit is
//! on disk before the call returns. The hot path's group commits
//! (`JobStore::commit`) make that one WAL flush per batch of jobs.

mod batches;
mod logs;
mod notify;
mod queue;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};

use super::aggregates::*;
use super::types::*;
use super::{Result, StoreError};

/// A Postgres-backed store. Cheap to clone (a connection pool).
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// A host whose heartbeat is older than this is dead; its claimed jobs
    /// go back to the queue.
    dead_after_ms: i64,
}

/// The channels the triggers of the schema notify on.
pub const QUEUED_CHANNEL: &str = "wasmpod_queued";
pub const FINAL_CHANNEL: &str = "wasmpod_final";

const JOB_COLUMNS: &str = "id, endpoint_id, status, input, output, error, progress, webhook, \
    execution_timeout_ms, ttl_ms, low_priority, sync, retries, created_at, queued_at, started_at, \
    completed_at, delay_ms, execution_ms, expires_at, worker_id, handler, webhook_state, webhook_attempts, \
    webhook_error";

/// Columns a final job is read back with (no input: see [`FinalJob`]).
const FINAL_COLUMNS: &str = "id, endpoint_id, status, output, error, delay_ms, \
    execution_ms, worker_id, retries, webhook_state";

/// Set when a job becomes final ($1: now, $2: retention).
const FINALIZE: &str = "completed_at = $1, expires_at = $1 + $2, progress = NULL, \
    webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END, \
    webhook_attempts = 0, webhook_next_at = $1";

fn job_from_row(r: &PgRow) -> Result<JobRecord> {
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
        webhook_error: r.try_get("webhook_error")?,
    })
}

fn final_from_row(r: &PgRow) -> Result<FinalJob> {
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

fn finals(rows: &[PgRow]) -> Result<Vec<FinalJob>> {
    rows.iter().map(final_from_row).collect()
}

fn endpoint_from_row(r: &PgRow) -> Result<EndpointRecord> {
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

fn key_from_row(r: &PgRow) -> Result<ApiKeyRecord> {
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

fn handler_from_row(r: &PgRow) -> Result<HandlerRecord> {
    Ok(HandlerRecord {
        digest: r.try_get("digest")?,
        size: r.try_get("size")?,
        created_at: r.try_get("created_at")?,
        world: r.try_get("world")?,
    })
}

fn config_json(c: &EndpointConfig) -> Result<String> {
    serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Serialises migrations of hosts starting at once (any fixed key).
const MIGRATE_LOCK: i64 = 0x7761_736d_706f_6400;

impl PgStore {
    /// Connect to `url` (`postgres://user:pass@host:port/db`) and migrate.
    /// `dead_after` is how old a host's heartbeat may get before its
    /// claimed jobs are re-queued.
    pub async fn open(url: &str, dead_after: Duration) -> Result<Self> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|e| StoreError::Database(format!("the database URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .min_connections(1)
            // While the database is down a request fails fast (503) instead
            // of hanging for the default 30 s.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        // sqlx takes an advisory lock itself, but hosts starting together
        // would still race on creating the migrations table.
        let mut conn = pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *conn)
            .await?;
        let migrated = sqlx::migrate!("./migrations-postgres")
            .run(&mut *conn)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the database: {e}")));
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(MIGRATE_LOCK)
            .execute(&mut *conn)
            .await?;
        migrated?;
        Ok(Self {
            pool,
            dead_after_ms: dead_after.as_millis() as i64,
        })
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

impl HandlerStore for PgStore {
    async fn put_handler(&self, digest: &str, size: i64, world: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO handlers (digest, size, created_at, world) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(size)
        .bind(now_ms())
        .bind(world)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn get_handler(&self, digest: &str) -> Result<Option<HandlerRecord>> {
        let row =
            sqlx::query("SELECT digest, size, created_at, world FROM handlers WHERE digest = $1")
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(handler_from_row).transpose()
    }

    async fn list_handlers(&self) -> Result<Vec<HandlerRecord>> {
        let rows =
            sqlx::query("SELECT digest, size, created_at, world FROM handlers ORDER BY created_at")
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(handler_from_row).collect()
    }

    async fn endpoints_using(&self, digest: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM endpoints WHERE handler = $1 ORDER BY id")
            .bind(digest)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn delete_handler(&self, digest: &str) -> Result<bool> {
        sqlx::query("DELETE FROM handler_bytes WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        let r = sqlx::query("DELETE FROM handlers WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_handler_bytes(&self, digest: &str, bytes: &[u8]) -> Result<()> {
        sqlx::query(
            "INSERT INTO handler_bytes (digest, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn handler_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>> {
        let row = sqlx::query("SELECT bytes FROM handler_bytes WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("bytes")).transpose()?)
    }
}

impl EndpointStore for PgStore {
    async fn create_endpoint(&self, e: &EndpointRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO endpoints (id, name, handler, config, generation, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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

    async fn get_endpoint(&self, id: &str) -> Result<Option<EndpointRecord>> {
        let row = sqlx::query("SELECT * FROM endpoints WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        let rows = sqlx::query("SELECT * FROM endpoints ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn update_endpoint(&self, e: &EndpointRecord) -> Result<Option<EndpointRecord>> {
        let row = sqlx::query(
            "UPDATE endpoints SET name = $1, handler = $2, config = $3, generation = generation + 1, \
             updated_at = $4 WHERE id = $5 RETURNING *",
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

    async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM jobs WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM logs WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM batches WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE endpoint_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }
}

impl KeyStore for PgStore {
    async fn insert_key(&self, key: &ApiKeyRecord, hash: &str) -> Result<()> {
        let (scope, endpoint) = match &key.scope {
            Scope::Admin => ("admin", None),
            Scope::Invoke { endpoint_id } => ("invoke", Some(endpoint_id.as_str())),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, hash_scheme, prefix, scope, endpoint_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(hash)
        .bind(KEY_HASH_SCHEME)
        .bind(&key.prefix)
        .bind(scope)
        .bind(endpoint)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn find_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT * FROM api_keys WHERE hash = $1 AND hash_scheme = $2 AND revoked_at IS NULL",
        )
        .bind(hash)
        .bind(KEY_HASH_SCHEME)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn key_with_hash(&self, hash: &str, scheme: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE hash = $1 AND hash_scheme = $2")
            .bind(hash)
            .bind(scheme)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn rehash_key(&self, id: &str, hash: &str, prefix: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET hash = $1, hash_scheme = $2, prefix = $3 WHERE id = $4")
            .bind(hash)
            .bind(KEY_HASH_SCHEME)
            .bind(prefix)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.pool)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_admin_keys(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE scope = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }
}

impl ModelFileStore for PgStore {
    async fn put_model_file(&self, model: &str, f: &ModelFile) -> Result<()> {
        sqlx::query(
            "INSERT INTO model_files (model, path, sha256, size, created_at) VALUES ($1, $2, $3, $4, $5) \
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

    async fn list_model_files(&self) -> Result<Vec<(String, ModelFile)>> {
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

    async fn delete_model(&self, model: &str) -> Result<u64> {
        let r = sqlx::query("DELETE FROM model_files WHERE model = $1")
            .bind(model)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }

    async fn blob_in_use(&self, sha256: &str) -> Result<bool> {
        let row =
            sqlx::query("SELECT EXISTS (SELECT 1 FROM model_files WHERE sha256 = $1) AS used")
                .bind(sha256)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("used")?)
    }
}

impl UsageStore for PgStore {
    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let endpoints: Vec<&str> = deltas.iter().map(|d| d.endpoint_id.as_str()).collect();
        let slices: Vec<&str> = deltas.iter().map(|d| d.slice_type.as_str()).collect();
        let minutes: Vec<i64> = deltas.iter().map(|d| d.minute).collect();
        let ms: Vec<i64> = deltas.iter().map(|d| d.worker_ms).collect();
        // One statement; rows of the same key are summed first (an upsert
        // may not touch a row twice).
        sqlx::query(
            "INSERT INTO worker_usage (endpoint_id, slice_type, minute, worker_ms) \
             SELECT e, s, m, SUM(w)::BIGINT FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
             AS d(e, s, m, w) GROUP BY e, s, m \
             ON CONFLICT (endpoint_id, slice_type, minute) \
             DO UPDATE SET worker_ms = worker_usage.worker_ms + excluded.worker_ms",
        )
        .bind(endpoints)
        .bind(slices)
        .bind(minutes)
        .bind(ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn usage(
        &self,
        endpoint_id: Option<&str>,
        since: i64,
        until: i64,
    ) -> Result<Vec<UsageTotal>> {
        let rows = sqlx::query(
            "SELECT endpoint_id, slice_type, SUM(worker_ms)::BIGINT AS ms FROM worker_usage \
             WHERE minute >= $1 AND minute < $2 AND ($3::text IS NULL OR endpoint_id = $3) \
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

impl HostStore for PgStore {
    async fn heartbeat(&self, host_id: &str, address: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO hosts (id, address, started_at, heartbeat_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, address = excluded.address",
        )
        .bind(host_id)
        .bind(address)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_hosts(&self, now: i64) -> Result<Vec<HostRecord>> {
        let rows = sqlx::query("SELECT * FROM hosts ORDER BY started_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let heartbeat_at: i64 = r.try_get("heartbeat_at")?;
                Ok(HostRecord {
                    id: r.try_get("id")?,
                    address: r.try_get("address")?,
                    started_at: r.try_get("started_at")?,
                    heartbeat_at,
                    alive: now - heartbeat_at < self.dead_after_ms,
                })
            })
            .collect()
    }

    async fn leave(&self, host_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM hosts WHERE id = $1")
            .bind(host_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }
}
