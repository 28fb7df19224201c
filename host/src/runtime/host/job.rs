//! `wasmpod:serverless/job`: progress, streamed chunks and logs of the
//! running job, forwarded to its [`JobSink`](crate::runtime::JobSink).

use super::fault::JobFault;
use crate::runtime::bindings::job;
use std::sync::Arc;

use crate::runtime::job::{CurrentJob, JobSink, LogLevel};

/// The job interface's share of an instance's state: the job it is running
/// (none during `init`), and where log calls go outside a job (the
/// worker's log).
#[derive(Default)]
pub struct JobCtx {
    pub(crate) current: Option<CurrentJob>,
    /// Where log calls go outside a job (the worker's log).
    pub(crate) idle_sink: Option<Arc<dyn JobSink>>,
}

fn parse_json(what: &str, text: &str) -> Result<serde_json::Value, JobFault> {
    serde_json::from_str(text)
        .map_err(|e| JobFault::Refused(format!("{what} must be valid JSON text: {e}")))
}

impl JobCtx {
    /// The running job, or why `what` cannot be reported now.
    fn running(&self, what: &str) -> Result<&CurrentJob, JobFault> {
        self.current.as_ref().ok_or_else(|| {
            JobFault::Refused(format!(
                "{what} can only be reported while handling a job, not in init"
            ))
        })
    }
}

impl job::Host for JobCtx {
    fn convert_job_error(&mut self, err: JobFault) -> wasmtime::Result<job::JobError> {
        match err {
            JobFault::Refused(message) => Ok(message),
            JobFault::Trap(trap) => Err(trap),
        }
    }

    fn id(&mut self) -> wasmtime::Result<String> {
        Ok(self
            .current
            .as_ref()
            .map(|j| j.id.clone())
            .unwrap_or_default())
    }

    fn progress(&mut self, update: String) -> Result<(), JobFault> {
        let value = parse_json("progress", &update)?;
        self.running("progress")?.sink.progress(value);
        Ok(())
    }

    fn stream(&mut self, chunk: String) -> Result<(), JobFault> {
        let value = parse_json("a stream chunk", &chunk)?;
        self.running("stream chunks")?.sink.stream(value);
        Ok(())
    }

    fn log(&mut self, level: job::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            job::LogLevel::Debug => LogLevel::Debug,
            job::LogLevel::Info => LogLevel::Info,
            job::LogLevel::Warn => LogLevel::Warn,
            job::LogLevel::Error => LogLevel::Error,
        };
        match (&self.current, &self.idle_sink) {
            (Some(j), _) => j.sink.log(level, &message),
            (None, Some(worker)) => worker.log(level, &message),
            (None, None) => tracing::info!(target: "guest", ?level, "{message}"),
        }
        Ok(())
    }

    fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self
            .current
            .as_ref()
            .is_some_and(|j| j.cancel.is_cancelled()))
    }
}

/// `types` has only type definitions; its trait is empty.
impl crate::runtime::bindings::types::Host for JobCtx {}
