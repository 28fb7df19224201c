//! The SQLite backend: one file in WAL mode, migrated on open. Every state
//! change of a job is one statement (or one `BEGIN IMMEDIATE` transaction),
//! so a `kill -9` leaves each job either before or after the change; a batch
//! (many accepts, many finishes) is one statement too, all or nothing.
//!
//! Writes go through one connection and reads through a pool of others.
//! SQLite has one writer at a time; two of our own connections racing for
//! the write lock would make the loser sleep in SQLite's busy handler
//! (1 ms, 2 ms, 5 ms, ...), which is what made the old tail latency. With
//! one write connection, writers queue on the pool instead, in order, and
//! WAL readers never wait for them.
//!
//! Durability: `journal_mode=WAL`, `synchronous=NORMAL`. A commit is in the
//! WAL file (the OS page cache) before the call returns, so it survives the
//! process being killed (`kill -9`, a crash, OOM). It is not fsynced at
//! commit: an OS crash or power loss can lose the last commits (SQLite
//! syncs the WAL at checkpoints). `synchronous=FULL` would cover power loss
//! at the price of an fsync per commit.

mod batches;
mod logs;
mod queue;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::aggregates::*;
use super::types::*;
use super::{Result, StoreError};

/// A SQLite-backed store. Cheap to clone (connection pools).
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads (WAL: never blocked by the writer).
    read: SqlitePool,
    /// The other writes: one connection, so they queue on the pool
    /// instead of racing each other for SQLite's lock.
    write: SqlitePool,
    /// The queue's group commits, on their own thread and connection.
    writer: writer::Writer,
}

const JOB_COLUMNS: &str = "id, endpoint_id, status, input, output, error, progress, webhook, \
    execution_timeout_ms, ttl_ms, low_priority, sync, retries, created_at, queued_at, started_at, \
    completed_at, delay_ms, execution_ms, expires_at, worker_id, handler, webhook_state, webhook_attempts, \
    webhook_error";

/// Set when a job becomes final: when it is purged, and its webhook (if
/// any) becomes due.
const FINALIZE: &str = "completed_at = ?1, expires_at = ?1 + ?2, progress = NULL, \
    webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END, \
    webhook_attempts = 0, webhook_next_at = ?1";

fn job_from_row(r: &SqliteRow) -> Result<JobRecord> {
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

/// How often the WAL is copied back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Copy the WAL back into the database (and sync both) off the write path,
/// so no commit waits for an fsync. PASSIVE never blocks the writer or the
/// readers; once readers move on, a later pass (or the writer) restarts the
/// WAL from its beginning. Ends when the store is dropped.
async fn checkpoint(read: SqlitePool) {
    loop {
        tokio::time::sleep(CHECKPOINT_EVERY).await;
        if read.is_closed() {
            return;
        }
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&read)
            .await
        {
            tracing::debug!("checkpointing the WAL: {e}");
        }
    }
}

fn config_json(c: &EndpointConfig) -> Result<String> {
    serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl SqliteStore {
    /// Run the queue's committer on the writer thread (see `writer`).
    pub fn host_committer(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.writer.host(task);
    }

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
            .foreign_keys(true)
            // Reads map the file instead of copying pages in with a system
            // call each (the writer keeps changing them under the readers).
            .pragma("mmap_size", "268435456")
            .pragma("cache_size", "-16384");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // A write waits for the one connection rather than failing.
            .acquire_timeout(Duration::from_secs(60))
            // Checkpoints (which fsync) run beside the writer, from a reader
            // connection (see `checkpoint`), not inside a commit.
            .connect_with(options.clone().pragma("wal_autocheckpoint", "0"))
            .await?;
        sqlx::migrate!("./migrations")
            .run(&write)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the database: {e}")))?;
        let read = SqlitePoolOptions::new()
            .max_connections(6)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        let writer = writer::Writer::open(options.get_filename())?;
        let store = Self {
            read,
            write,
            writer,
        };
        tokio::spawn(checkpoint(store.read.clone()));
        Ok(store)
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>> {
        // IMMEDIATE takes the write lock up front, so a read-then-write
        // transaction never fails half-way on a lock upgrade.
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }
}

impl HandlerStore for SqliteStore {
    async fn put_handler(&self, digest: &str, size: i64, world: &str) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO handlers (digest, size, created_at, world) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(digest)
        .bind(size)
        .bind(now_ms())
        .bind(world)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn get_handler(&self, digest: &str) -> Result<Option<HandlerRecord>> {
        let row =
            sqlx::query("SELECT digest, size, created_at, world FROM handlers WHERE digest = ?")
                .bind(digest)
                .fetch_optional(&self.read)
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

    async fn list_handlers(&self) -> Result<Vec<HandlerRecord>> {
        let rows =
            sqlx::query("SELECT digest, size, created_at, world FROM handlers ORDER BY created_at")
                .fetch_all(&self.read)
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

    async fn endpoints_using(&self, digest: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM endpoints WHERE handler = ? ORDER BY id")
            .bind(digest)
            .fetch_all(&self.read)
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn delete_handler(&self, digest: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM handlers WHERE digest = ?")
            .bind(digest)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// One host: the bytes are in its handler directory only.
    async fn put_handler_bytes(&self, _digest: &str, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }

    async fn handler_bytes(&self, _digest: &str) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
}

impl EndpointStore for SqliteStore {
    async fn create_endpoint(&self, e: &EndpointRecord) -> Result<()> {
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
        .execute(&self.write)
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
        let row = sqlx::query("SELECT * FROM endpoints WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>> {
        let rows = sqlx::query("SELECT * FROM endpoints ORDER BY created_at, id")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(endpoint_from_row).collect()
    }

    async fn update_endpoint(&self, e: &EndpointRecord) -> Result<Option<EndpointRecord>> {
        let row = sqlx::query(
            "UPDATE endpoints SET name = ?, handler = ?, config = ?, generation = generation + 1, \
             updated_at = ? WHERE id = ? RETURNING *",
        )
        .bind(&e.name)
        .bind(&e.handler)
        .bind(config_json(&e.config)?)
        .bind(now_ms())
        .bind(&e.id)
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(endpoint_from_row).transpose()
    }

    async fn delete_endpoint(&self, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM jobs WHERE endpoint_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM logs WHERE endpoint_id = ?")
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
}

impl KeyStore for SqliteStore {
    async fn insert_key(&self, key: &ApiKeyRecord, hash: &str) -> Result<()> {
        let (scope, endpoint) = match &key.scope {
            Scope::Admin => ("admin", None),
            Scope::Invoke { endpoint_id } => ("invoke", Some(endpoint_id.as_str())),
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, hash, hash_scheme, prefix, scope, endpoint_id, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(hash)
        .bind(KEY_HASH_SCHEME)
        .bind(&key.prefix)
        .bind(scope)
        .bind(endpoint)
        .bind(key.created_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn find_key(&self, hash: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query(
            "SELECT * FROM api_keys WHERE hash = ? AND hash_scheme = ? AND revoked_at IS NULL",
        )
        .bind(hash)
        .bind(KEY_HASH_SCHEME)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn key_with_hash(&self, hash: &str, scheme: &str) -> Result<Option<ApiKeyRecord>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE hash = ? AND hash_scheme = ?")
            .bind(hash)
            .bind(scheme)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    async fn rehash_key(&self, id: &str, hash: &str, prefix: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET hash = ?, hash_scheme = ?, prefix = ? WHERE id = ?")
            .bind(hash)
            .bind(KEY_HASH_SCHEME)
            .bind(prefix)
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at, id")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_key(&self, id: &str) -> Result<bool> {
        let r =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now_ms())
                .bind(id)
                .execute(&self.write)
                .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn count_admin_keys(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE scope = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(row.try_get("n")?)
    }
}

impl ModelFileStore for SqliteStore {
    async fn put_model_file(&self, model: &str, f: &ModelFile) -> Result<()> {
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
        .execute(&self.write)
        .await?;
        Ok(())
    }

    async fn list_model_files(&self) -> Result<Vec<(String, ModelFile)>> {
        let rows = sqlx::query("SELECT * FROM model_files ORDER BY model, path")
            .fetch_all(&self.read)
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
        let r = sqlx::query("DELETE FROM model_files WHERE model = ?")
            .bind(model)
            .execute(&self.write)
            .await?;
        Ok(r.rows_affected())
    }

    async fn blob_in_use(&self, sha256: &str) -> Result<bool> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM model_files WHERE sha256 = ?) AS used")
            .bind(sha256)
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("used")?)
    }
}

impl UsageStore for SqliteStore {
    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<()> {
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

    async fn usage(
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
        .fetch_all(&self.read)
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

/// One host per SQLite file: nothing to share.
impl HostStore for SqliteStore {
    async fn heartbeat(&self, _host_id: &str, _address: &str, _now: i64) -> Result<()> {
        Ok(())
    }

    async fn list_hosts(&self, _now: i64) -> Result<Vec<HostRecord>> {
        Ok(Vec::new())
    }

    async fn leave(&self, _host_id: &str) -> Result<()> {
        Ok(())
    }

    fn shared(&self) -> bool {
        false
    }
}
