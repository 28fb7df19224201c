//! `wasmpod:serverless/log`: log lines of an HTTP handler, attributed to the
//! request being served (the host's log, target `wasmpod::guest`).

use crate::runtime::bindings::http::log;

/// The log interface's share of an instance's state: the request it is
/// serving (none during `init`).
#[derive(Default)]
pub struct LogCtx {
    pub(crate) request: Option<String>,
}

impl log::Host for LogCtx {
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
