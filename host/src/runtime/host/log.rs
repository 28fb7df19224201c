//! `wasmpod:serverless/log`: log lines of an HTTP handler, attributed to the
//! request being served (the host's log, target `wasmpod::guest`).

use crate::runtime::bindings::http::log;
use crate::runtime::state::WorkerState;

impl log::Host for WorkerState {
    fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let request = self.request.as_deref().unwrap_or("init");
        match level {
            log::Level::Debug => tracing::debug!(target: "wasmpod::guest", request, "{message}"),
            log::Level::Info => tracing::info!(target: "wasmpod::guest", request, "{message}"),
            log::Level::Warn => tracing::warn!(target: "wasmpod::guest", request, "{message}"),
            log::Level::Error => tracing::error!(target: "wasmpod::guest", request, "{message}"),
        }
        Ok(())
    }
}
