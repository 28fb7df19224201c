//! The queue's hot-path writes on SQLite: one synchronous connection owned
//! by its own thread. A group commit ([`Batch`]: accepts, finishes,
//! claims) is one message to that thread and one transaction there, so it
//! costs one thread hop and one WAL commit however many jobs it carries
//! (through the async driver, every statement is a hop of its own, which
//! measured 60-110 µs each on the dev box; the statements themselves take
//! a few). Statements are multi-row, in a few fixed sizes, each prepared
//! once.
//!
//! The thread runs a small runtime of its own, and the queue's committer
//! (`serve::lifecycle`) runs there ([`Writer::host`]): a group commit is
//! then a plain call on the thread's connection, not a hop to this thread
//! and back (under load each wake-up of another thread waits for a core).
//!
//! The other writes (admin, housekeeping, stream chunks) stay on the async
//! driver's single write connection. The two take turns on SQLite's write
//! lock; this side waits for it in short naps rather than SQLite's default
//! 1, 2, 5, ... ms ones, so the hot path never sleeps long behind a sweep.

use std::cell::RefCell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Statement};
use tokio::sync::{mpsc, oneshot};

use crate::store::types::*;
use crate::store::{Result, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(f, msg) = &e
            && f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        {
            return StoreError::Conflict(msg.clone().unwrap_or_else(|| e.to_string()));
        }
        StoreError::Database(e.to_string())
    }
}

enum Work {
    /// A write from another thread.
    Run(Box<dyn FnOnce(&mut Connection) + Send>),
    /// A task to run on the thread (the committer).
    Host(Pin<Box<dyn Future<Output = ()> + Send>>),
}

/// The writer thread's handle. Dropping the last one ends the thread.
#[derive(Clone)]
pub(super) struct Writer {
    id: u64,
    work: mpsc::UnboundedSender<Work>,
}

thread_local! {
    /// On a writer thread: its writer's id and connection.
    static CONNECTION: RefCell<Option<(u64, Connection)>> = const { RefCell::new(None) };
}

static NEXT_WRITER: AtomicU64 = AtomicU64::new(1);

/// SQLite's lock, held by the other write connection: nap this long and
/// try again, for up to a minute.
fn busy(tries: i32) -> bool {
    std::thread::sleep(Duration::from_micros(50));
    tries < 1_200_000
}

impl Writer {
    /// Open the database file (already created and migrated) and start the
    /// thread.
    pub(super) fn open(path: &Path) -> Result<Writer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The same durability as every other connection (see the module
        // above): WAL, NORMAL; checkpoints run beside the writers.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA wal_autocheckpoint = 0; PRAGMA mmap_size = 268435456; \
             PRAGMA temp_store = MEMORY;",
        )?;
        conn.busy_handler(Some(busy))?;
        // Plans stay as prepared. Without this SQLite re-prepares a
        // statement whenever a parameter it planned with is bound again
        // (the claim's LIMIT): a full parse and plan on every claim.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        conn.set_prepared_statement_cache_capacity(64);
        let id = NEXT_WRITER.fetch_add(1, Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Database(format!("starting the writer's runtime: {e}")))?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Work>();
        std::thread::Builder::new()
            .name("wasmpod-db-writer".into())
            .spawn(move || {
                CONNECTION.with(|c| *c.borrow_mut() = Some((id, conn)));
                runtime.block_on(async move {
                    while let Some(work) = rx.recv().await {
                        match work {
                            Work::Run(f) => with_connection(id, f).expect("on the writer thread"),
                            Work::Host(task) => drop(tokio::spawn(task)),
                        }
                    }
                });
                CONNECTION.with(|c| c.borrow_mut().take());
            })
            .map_err(|e| StoreError::Database(format!("starting the writer thread: {e}")))?;
        Ok(Writer { id, work: tx })
    }

    /// Run `task` on the writer thread, where this writer's commits are
    /// plain calls. It ends with the thread, when the last handle is gone.
    pub(super) fn host(&self, task: impl Future<Output = ()> + Send + 'static) {
        let _ = self.work.send(Work::Host(Box::pin(task)));
    }

    /// Run `f` on the writer's connection: right here on the writer thread
    /// (no await in between, so nothing else holds it), else sent there.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> T + Send + 'static,
    ) -> Result<T> {
        let stopped = || StoreError::Database("the database writer has stopped".into());
        let mut f = Some(f);
        if let Some(v) = with_connection(self.id, |conn| (f.take().expect("once"))(conn)) {
            return Ok(v);
        }
        let f = f.take().expect("not run");
        let (tx, rx) = oneshot::channel();
        self.work
            .send(Work::Run(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            })))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    /// One group commit.
    pub(super) async fn commit(&self, batch: Batch, now: i64) -> Result<BatchOutcome> {
        self.run(move |conn| commit(conn, batch, now)).await?
    }
}

/// Run `f` on writer `id`'s connection if this is its thread.
fn with_connection<T>(id: u64, f: impl FnOnce(&mut Connection) -> T) -> Option<T> {
    CONNECTION.with(|c| match c.borrow_mut().as_mut() {
        Some((owner, conn)) if *owner == id => Some(f(conn)),
        _ => None,
    })
}

/// Batch sizes with a prepared statement each; a batch is cut into these
/// (23 = 16 + 4 + 1 + 1 + 1).
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for size in CHUNKS {
        while n >= size {
            out.push(size);
            n -= size;
        }
    }
    out
}

/// `(?, ?, ...), (...)`: `rows` rows of `cols` numbered parameters from
/// `first`.
fn placeholders(rows: usize, cols: usize, first: usize) -> String {
    (0..rows)
        .map(|r| {
            let start = first + r * cols;
            let row: Vec<String> = (start..start + cols).map(|i| format!("?{i}")).collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

const ACCEPT_COLUMNS: usize = 16;

/// The statement text for a chunk size, built once.
fn sql_for(
    cache: &'static [OnceLock<String>; 4],
    rows: usize,
    make: fn(usize) -> String,
) -> &'static str {
    let i = CHUNKS
        .iter()
        .position(|c| *c == rows)
        .expect("a chunk size");
    cache[i].get_or_init(|| make(rows))
}

static ACCEPT_SQL: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];
static FINISH_SQL: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];

fn accept_sql(rows: usize) -> String {
    format!(
        "INSERT INTO jobs (id, endpoint_id, status, input, webhook, execution_timeout_ms, ttl_ms, \
         low_priority, sync, created_at, queued_at, started_at, delay_ms, worker_id, host_id, handler) \
         VALUES {}",
        placeholders(rows, ACCEPT_COLUMNS, 1)
    )
}

const FINISH_COLUMNS: usize = 6;

/// Columns a final job is read back with (no input: see [`FinalJob`]).
pub(super) const FINAL_COLUMNS: &str = "id, endpoint_id, status, output, error, delay_ms, \
    execution_ms, worker_id, retries, webhook_state";

fn finish_sql(rows: usize) -> String {
    format!(
        "WITH v(id, w, s, o, r, ret) AS (VALUES {}) \
         UPDATE jobs SET status = v.s, output = v.o, error = v.r, \
         execution_ms = ?1 - started_at, completed_at = ?1, expires_at = ?1 + v.ret, \
         progress = NULL, webhook_state = CASE WHEN webhook IS NULL THEN NULL ELSE 'pending' END, \
         webhook_attempts = 0, webhook_next_at = ?1 \
         FROM v WHERE jobs.id = v.id AND jobs.worker_id = v.w AND jobs.status = 'IN_PROGRESS' \
         RETURNING {FINAL_COLUMNS}",
        placeholders(rows, FINISH_COLUMNS, 2)
    )
}

/// Normal jobs first, in arrival order; low-priority ones only up to the
/// host's cap (?7) less those it runs already.
const CLAIM_SQL: &str = "UPDATE jobs SET status = 'IN_PROGRESS', started_at = ?1, \
    delay_ms = ?1 - queued_at, worker_id = ?2, host_id = ?3, handler = ?4 \
    WHERE seq IN (SELECT seq FROM ( \
        SELECT * FROM (SELECT low_priority, seq FROM jobs WHERE endpoint_id = ?5 \
          AND status = 'IN_QUEUE' AND low_priority = 0 AND queued_at + ttl_ms > ?1 \
          ORDER BY seq LIMIT ?6) \
        UNION ALL \
        SELECT * FROM (SELECT low_priority, seq FROM jobs WHERE endpoint_id = ?5 \
          AND status = 'IN_QUEUE' AND low_priority = 1 AND queued_at + ttl_ms > ?1 \
          ORDER BY seq LIMIT max(0, min(?6, ?7 - (SELECT COUNT(*) FROM jobs \
            WHERE endpoint_id = ?5 AND status = 'IN_PROGRESS' AND low_priority = 1 \
              AND host_id = ?3))))) \
      ORDER BY low_priority, seq LIMIT ?6) \
      AND status = 'IN_QUEUE' \
      AND ?4 = (SELECT handler FROM endpoints WHERE id = ?5) \
    RETURNING low_priority, seq, id, input, execution_timeout_ms, retries, sync";

fn final_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FinalJob> {
    let status: String = r.get(2)?;
    let webhook_state: Option<String> = r.get(9)?;
    Ok(FinalJob {
        id: r.get(0)?,
        endpoint_id: r.get(1)?,
        status: JobStatus::parse(&status).unwrap_or(JobStatus::Failed),
        output: r.get(3)?,
        error: r.get(4)?,
        delay_ms: r.get(5)?,
        execution_ms: r.get(6)?,
        worker_id: r.get(7)?,
        retries: r.get(8)?,
        webhook_pending: webhook_state.as_deref() == Some("pending"),
    })
}

fn bind_accept(
    stmt: &mut Statement<'_>,
    first: usize,
    job: &NewJob,
    claim: Option<&ClaimBy>,
    now: i64,
) -> rusqlite::Result<()> {
    let claimed = claim.is_some();
    let at = job.accepted_at.unwrap_or(now);
    let i = first;
    stmt.raw_bind_parameter(i, job.id.as_str())?;
    stmt.raw_bind_parameter(i + 1, job.endpoint_id.as_str())?;
    stmt.raw_bind_parameter(i + 2, if claimed { "IN_PROGRESS" } else { "IN_QUEUE" })?;
    stmt.raw_bind_parameter(i + 3, job.input.as_str())?;
    stmt.raw_bind_parameter(i + 4, job.webhook.as_deref())?;
    stmt.raw_bind_parameter(i + 5, job.execution_timeout_ms)?;
    stmt.raw_bind_parameter(i + 6, job.ttl_ms)?;
    stmt.raw_bind_parameter(i + 7, job.low_priority)?;
    stmt.raw_bind_parameter(i + 8, job.sync)?;
    stmt.raw_bind_parameter(i + 9, at)?;
    stmt.raw_bind_parameter(i + 10, at)?;
    let started = job.handed_at.unwrap_or(at);
    stmt.raw_bind_parameter(i + 11, claimed.then_some(started))?;
    stmt.raw_bind_parameter(i + 12, claimed.then_some(started - at))?;
    stmt.raw_bind_parameter(i + 13, claim.map(|c| c.worker_id.as_str()))?;
    stmt.raw_bind_parameter(i + 14, claim.map(|c| c.host_id.as_str()))?;
    stmt.raw_bind_parameter(i + 15, claim.map(|c| c.handler.as_str()))?;
    Ok(())
}

fn accept_all(
    conn: &Connection,
    accepts: &[(NewJob, Option<ClaimBy>)],
    now: i64,
) -> rusqlite::Result<()> {
    let mut rest = accepts;
    for size in chunk_sizes(accepts.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut stmt = conn.prepare_cached(sql_for(&ACCEPT_SQL, size, accept_sql))?;
        for (r, (job, claim)) in chunk.iter().enumerate() {
            bind_accept(&mut stmt, 1 + r * ACCEPT_COLUMNS, job, claim.as_ref(), now)?;
        }
        stmt.raw_execute()?;
    }
    Ok(())
}

fn finish_all(conn: &Connection, done: &[Finish], now: i64) -> rusqlite::Result<Vec<FinalJob>> {
    let mut out = Vec::with_capacity(done.len());
    let mut rest = done;
    for size in chunk_sizes(done.len()) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let mut stmt = conn.prepare_cached(sql_for(&FINISH_SQL, size, finish_sql))?;
        stmt.raw_bind_parameter(1, now)?;
        for (r, f) in chunk.iter().enumerate() {
            let i = 2 + r * FINISH_COLUMNS;
            stmt.raw_bind_parameter(i, f.id.as_str())?;
            stmt.raw_bind_parameter(i + 1, f.worker_id.as_str())?;
            stmt.raw_bind_parameter(i + 2, f.outcome.status.as_str())?;
            stmt.raw_bind_parameter(i + 3, f.outcome.output.as_deref())?;
            stmt.raw_bind_parameter(i + 4, f.outcome.error.as_deref())?;
            stmt.raw_bind_parameter(i + 5, f.retention_ms)?;
        }
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            out.push(final_from_row(row)?);
        }
    }
    Ok(out)
}

fn claim_one(conn: &Connection, req: &ClaimRequest, now: i64) -> rusqlite::Result<Vec<ClaimedJob>> {
    let mut stmt = conn.prepare_cached(CLAIM_SQL)?;
    stmt.raw_bind_parameter(1, now)?;
    stmt.raw_bind_parameter(2, req.by.worker_id.as_str())?;
    stmt.raw_bind_parameter(3, req.by.host_id.as_str())?;
    stmt.raw_bind_parameter(4, req.by.handler.as_str())?;
    stmt.raw_bind_parameter(5, req.endpoint_id.as_str())?;
    stmt.raw_bind_parameter(6, req.limit as i64)?;
    stmt.raw_bind_parameter(7, req.low_cap.min(i64::MAX as usize) as i64)?;
    let mut rows = stmt.raw_query();
    let mut claimed = Vec::new();
    while let Some(r) = rows.next()? {
        // Queue order: normal priority first, then arrival.
        let order: (bool, i64) = (r.get(0)?, r.get(1)?);
        claimed.push((
            order,
            ClaimedJob {
                id: r.get(2)?,
                input: r.get(3)?,
                execution_timeout_ms: r.get(4)?,
                attempt: r.get(5)?,
                sync: r.get(6)?,
                low_priority: order.0,
            },
        ));
    }
    claimed.sort_by_key(|(order, _)| *order);
    Ok(claimed.into_iter().map(|(_, j)| j).collect())
}

/// Run `part` inside a savepoint: its failure is undone alone.
fn part<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> std::result::Result<T, StoreError> {
    run(conn, "SAVEPOINT part")?;
    match f(conn) {
        Ok(v) => {
            run(conn, "RELEASE part")?;
            Ok(v)
        }
        Err(e) => {
            run(conn, "ROLLBACK TO part")?;
            run(conn, "RELEASE part")?;
            Err(e.into())
        }
    }
}

/// A statement without parameters, prepared once.
fn run(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.raw_execute().map(drop)
}

fn commit(conn: &mut Connection, batch: Batch, now: i64) -> Result<BatchOutcome> {
    let Batch {
        finishes,
        accepts,
        claims,
    } = batch;
    run(conn, "BEGIN IMMEDIATE")?;
    let accepted = if accepts.is_empty() {
        Ok(())
    } else {
        part(conn, |c| accept_all(c, &accepts, now))
    };
    let finished = if finishes.is_empty() {
        Ok(Vec::new())
    } else {
        part(conn, |c| finish_all(c, &finishes, now))
    };
    let mut claimed = Vec::with_capacity(claims.len());
    let mut short: Vec<&str> = Vec::new();
    for req in &claims {
        if short.contains(&req.endpoint_id.as_str()) {
            claimed.push(Vec::new());
            continue;
        }
        match part(conn, |c| claim_one(c, req, now)) {
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
    if let Err(e) = run(conn, "COMMIT") {
        let _ = run(conn, "ROLLBACK");
        return Err(e.into());
    }
    Ok(BatchOutcome {
        finished,
        accepts,
        accepted,
        claimed,
    })
}
