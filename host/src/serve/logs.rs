//! The host's log service: what handlers log and print, per job and per
//! worker, and the workers' lifecycle events, in one stream per endpoint.
//!
//! Sinks queue lines without blocking (they run on the executor's event
//! reader); one writer task stores them in batches and then hands them to
//! live followers (`follow` on the logs route). Everything is bounded: a
//! line's length, the bytes one job or one worker may log (past that, one
//! line says how much was dropped), and the table by age and row count
//! (trimmed by housekeeping).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::runtime::{JobSink, LogLevel, OutputStream};
use crate::store::{Level, LogFilter, LogLine, LogSource, NewLogLine, Store, StoreError, now_ms};

/// How much is kept.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Lines older than this are deleted.
    pub retention: Duration,
    /// At most this many lines in all (the oldest go first).
    pub max_lines: u64,
    /// Bytes of log lines and output one job, or one worker outside jobs,
    /// may write; the rest is dropped (and counted in one line).
    pub max_bytes_per_job: usize,
    /// Longer lines are cut.
    pub max_line_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            max_lines: 1_000_000,
            max_bytes_per_job: 1 << 20,
            max_line_bytes: 8 << 10,
        }
    }
}

enum Msg {
    Line(NewLogLine),
    /// Answered once every line queued before it is stored.
    Flush(oneshot::Sender<()>),
}

/// The log service. Cheap to share (`Arc`).
pub struct Logs {
    store: Store,
    limits: LogLimits,
    tx: mpsc::UnboundedSender<Msg>,
    live: broadcast::Sender<Arc<LogLine>>,
}

/// Lines a slow follower may fall behind by before it skips some.
const LIVE_BUFFER: usize = 4096;
/// Lines stored per transaction at most.
const BATCH: usize = 512;

impl Logs {
    /// Start the service and its writer task (which ends when the last
    /// handle on the service is dropped).
    pub fn start(store: Store, limits: LogLimits) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        tokio::spawn(write(store.clone(), rx, live.clone()));
        Arc::new(Self {
            store,
            limits,
            tx,
            live,
        })
    }

    pub fn limits(&self) -> LogLimits {
        self.limits
    }

    fn push(&self, mut line: NewLogLine) {
        if line.message.len() > self.limits.max_line_bytes {
            let mut cut = self.limits.max_line_bytes;
            while !line.message.is_char_boundary(cut) {
                cut -= 1;
            }
            let dropped = line.message.len() - cut;
            line.message.truncate(cut);
            line.message
                .push_str(&format!(" … ({dropped} more bytes cut)"));
        }
        let _ = self.tx.send(Msg::Line(line));
    }

    /// A lifecycle event of a worker (or, with a job, of its job).
    pub fn system(
        &self,
        endpoint: &str,
        worker: Option<&str>,
        job: Option<&str>,
        level: Level,
        message: impl Into<String>,
    ) {
        self.push(NewLogLine {
            endpoint_id: endpoint.to_string(),
            worker_id: worker.map(str::to_string),
            job_id: job.map(str::to_string),
            at: now_ms(),
            source: LogSource::System,
            level,
            message: message.into(),
        });
    }

    /// Wait until every line queued so far is stored (and readable).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// A sink for one job's (or, `job` None, one worker's) lines, bounded
    /// to `max_bytes_per_job`.
    pub fn sink(self: &Arc<Self>, endpoint: &str, worker: &str, job: Option<&str>) -> Arc<LogSink> {
        Arc::new(LogSink {
            logs: Arc::clone(self),
            endpoint: endpoint.to_string(),
            worker: worker.to_string(),
            job: job.map(str::to_string),
            bytes: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            wrote: AtomicBool::new(false),
        })
    }

    /// Stored lines matching `filter`.
    pub async fn query(&self, filter: &LogFilter) -> Result<Vec<LogLine>, StoreError> {
        self.store.query_logs(filter).await
    }

    /// Lines stored from now on, as they are.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.live.subscribe()
    }

    /// Apply the age and count bounds.
    pub async fn trim(&self) -> Result<u64, StoreError> {
        let before = now_ms() - self.limits.retention.as_millis() as i64;
        self.store
            .trim_logs(before, self.limits.max_lines.min(i64::MAX as u64) as i64)
            .await
    }
}

/// Store lines in batches, then show them to followers. Failed writes are
/// retried a few times; lines are dropped (with a warning) rather than let
/// a broken database grow memory without bound.
async fn write(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    live: broadcast::Sender<Arc<LogLine>>,
) {
    while let Some(first) = rx.recv().await {
        let mut lines = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Line(l) => lines.push(l),
                Msg::Flush(tx) => flushes.push(tx),
            }
            if lines.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        let mut backoff = Duration::from_millis(50);
        for attempt in 0.. {
            match store.append_logs(lines.clone()).await {
                Ok(stored) => {
                    for l in stored {
                        let _ = live.send(Arc::new(l));
                    }
                    break;
                }
                Err(e) if attempt < 5 => {
                    tracing::warn!("storing {} log line(s): {e}; retrying", lines.len());
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    tracing::error!("dropping {} log line(s): {e}", lines.len());
                    break;
                }
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

/// One job's or one worker's lines, bounded in bytes.
pub struct LogSink {
    logs: Arc<Logs>,
    endpoint: String,
    worker: String,
    job: Option<String>,
    bytes: AtomicUsize,
    dropped: AtomicUsize,
    wrote: AtomicBool,
}

impl LogSink {
    pub fn line(&self, source: LogSource, level: Level, message: &str) {
        let len = message.len();
        let before = self.bytes.fetch_add(len, Ordering::SeqCst);
        let max = self.logs.limits.max_bytes_per_job;
        if before + len > max {
            self.dropped.fetch_add(len, Ordering::SeqCst);
            return;
        }
        self.wrote.store(true, Ordering::SeqCst);
        self.logs.push(NewLogLine {
            endpoint_id: self.endpoint.clone(),
            worker_id: Some(self.worker.clone()),
            job_id: self.job.clone(),
            at: now_ms(),
            source,
            level,
            message: message.to_string(),
        });
    }

    /// Done with this job: say what was dropped, and wait until its lines
    /// are stored (so a client reading them after the job's final status
    /// sees them all). Free for a job that logged nothing.
    pub async fn finish(&self) {
        let dropped = self.dropped.swap(0, Ordering::SeqCst);
        if dropped > 0 {
            self.logs.push(NewLogLine {
                endpoint_id: self.endpoint.clone(),
                worker_id: Some(self.worker.clone()),
                job_id: self.job.clone(),
                at: now_ms(),
                source: LogSource::System,
                level: Level::Warn,
                message: format!(
                    "{dropped} bytes of log output dropped past the limit of {} bytes per job (serve --log-max-job-bytes)",
                    self.logs.limits.max_bytes_per_job
                ),
            });
        }
        if self.wrote.load(Ordering::SeqCst) || dropped > 0 {
            self.logs.flush().await;
        }
    }
}

pub fn level_of(level: LogLevel) -> Level {
    match level {
        LogLevel::Debug => Level::Debug,
        LogLevel::Info => Level::Info,
        LogLevel::Warn => Level::Warn,
        LogLevel::Error => Level::Error,
    }
}

pub fn source_of(stream: OutputStream) -> LogSource {
    match stream {
        OutputStream::Stdout => LogSource::Stdout,
        OutputStream::Stderr => LogSource::Stderr,
    }
}

/// A worker's sink outside jobs (its `init`, between jobs): log calls and
/// output only.
impl JobSink for LogSink {
    fn progress(&self, _: serde_json::Value) {}
    fn stream(&self, _: serde_json::Value) {}
    fn log(&self, level: LogLevel, message: &str) {
        self.line(LogSource::Log, level_of(level), message);
    }
    fn output(&self, stream: OutputStream, line: &str) {
        self.line(source_of(stream), Level::Info, line);
    }
}
