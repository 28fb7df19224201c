//! `wasmpod:serverless/job`: progress, streamed chunks and logs of the
//! running job, forwarded to its [`JobSink`](crate::runtime::JobSink).

use crate::runtime::bindings::job;
use crate::runtime::job::LogLevel;
use crate::runtime::state::WorkerState;

fn parse_json(what: &str, text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("{what} must be valid JSON text: {e}"))
}

impl job::Host for WorkerState {
    fn id(&mut self) -> wasmtime::Result<String> {
        Ok(self.job.as_ref().map(|j| j.id.clone()).unwrap_or_default())
    }

    fn progress(&mut self, update: String) -> wasmtime::Result<Result<(), String>> {
        let value = match parse_json("progress", &update) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        match &self.job {
            Some(j) => j.sink.progress(value),
            None => {
                return Ok(Err(
                    "progress can only be reported while handling a job, not in init".into(),
                ));
            }
        }
        Ok(Ok(()))
    }

    fn stream(&mut self, chunk: String) -> wasmtime::Result<Result<(), String>> {
        let value = match parse_json("a stream chunk", &chunk) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        match &self.job {
            Some(j) => j.sink.stream(value),
            None => {
                return Ok(Err(
                    "chunks can only be streamed while handling a job, not in init".into(),
                ));
            }
        }
        Ok(Ok(()))
    }

    fn log(&mut self, level: job::LogLevel, message: String) -> wasmtime::Result<()> {
        let level = match level {
            job::LogLevel::Debug => LogLevel::Debug,
            job::LogLevel::Info => LogLevel::Info,
            job::LogLevel::Warn => LogLevel::Warn,
            job::LogLevel::Error => LogLevel::Error,
        };
        match (&self.job, &self.idle_sink) {
            (Some(j), _) => j.sink.log(level, &message),
            (None, Some(worker)) => worker.log(level, &message),
            (None, None) => tracing::info!(target: "guest", ?level, "{message}"),
        }
        Ok(())
    }

    fn cancelled(&mut self) -> wasmtime::Result<bool> {
        Ok(self.job.as_ref().is_some_and(|j| j.cancel.is_cancelled()))
    }
}

impl crate::runtime::bindings::types::Host for WorkerState {}
