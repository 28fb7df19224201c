//! What a running job exposes to its handler and to whoever submitted it:
//! the sink that receives progress, stream chunks and logs, and the cancel
//! signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Severity of a guest log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// Which of the guest's output streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// Receives what a handler reports while a job runs (and, as an instance's
/// worker sink, its log calls and output outside jobs, e.g. in `init`).
/// Calls come from the instance's thread and must not block for long:
/// queue, don't do I/O.
pub trait JobSink: Send + Sync {
    /// A progress value (valid JSON) for `/status` while IN_PROGRESS.
    fn progress(&self, value: serde_json::Value);
    /// A partial output (valid JSON), delivered once and in order by `/stream`.
    fn stream(&self, chunk: serde_json::Value);
    /// A log line from the handler.
    fn log(&self, level: LogLevel, message: &str);
    /// A line the guest wrote to stdout or stderr (without its newline).
    fn output(&self, _stream: OutputStream, _line: &str) {}
}

/// A sink that drops everything (for `init`, which has no job).
pub struct NullSink;

impl JobSink for NullSink {
    fn progress(&self, _: serde_json::Value) {}
    fn stream(&self, _: serde_json::Value) {}
    fn log(&self, level: LogLevel, message: &str) {
        tracing::info!(target: "guest", ?level, "{message}");
    }
}

/// Cancellation of one job, shared between the canceller and the instance.
#[derive(Clone, Default)]
pub struct CancelSignal(Arc<(AtomicBool, Notify)>);

impl CancelSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.0.store(true, Ordering::SeqCst);
        self.0.1.notify_waiters();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Resolves once [`CancelSignal::cancel`] was called.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.1.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// The job an instance is running now.
pub(crate) struct CurrentJob {
    pub id: String,
    pub sink: Arc<dyn JobSink>,
    pub cancel: CancelSignal,
}
