//! `wasmpod executor`: the per-slice worker process the host spawns. Not for
//! people to run: it speaks JSON lines on stdin/stdout.

use std::path::PathBuf;
use std::process::ExitCode;

use wasmpod::executor::SliceSpec;

#[derive(clap::Args, Debug)]
pub struct ExecutorArgs {
    /// The slice to serve, as JSON (a `SliceSpec`).
    #[arg(long)]
    pub slice: String,
    /// Compiled-component cache shared with the host.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Bytes of host memory parked (FlashBoot) tensors may hold before
    /// they spill to disk.
    #[arg(long, default_value_t = 16 << 30)]
    pub page_budget: u64,
    /// Unix socket to serve HTTP handlers' requests on (HTTP/2).
    #[arg(long)]
    pub http_socket: Option<PathBuf>,
    /// Instances the process may hold at once (its engine's pool); unset,
    /// the engine's default. Shared CPU executors hold many endpoints'.
    #[arg(long)]
    pub max_instances: Option<u32>,
}

pub async fn executor(args: ExecutorArgs) -> anyhow::Result<ExitCode> {
    let slice: SliceSpec = serde_json::from_str(&args.slice)?;
    wasmpod::executor::server::serve(
        slice,
        args.cache_dir,
        args.page_budget,
        args.max_instances,
        args.http_socket,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
