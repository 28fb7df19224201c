//! `wasmpod executor`: the per-slice worker process the host spawns. Not for
//! people to run: it speaks JSON lines on stdin/stdout. It sandboxes itself
//! (see `wasmpod::executor::sandbox`) on its main thread before the async
//! runtime starts any other, so every thread it ever has is inside.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wasmpod::executor::sandbox::{self, Applied, SandboxPolicy};
use wasmpod::executor::{SliceSpec, http, server};

#[derive(clap::Args, Debug)]
pub struct ExecutorArgs {
    /// The slice to serve, as JSON (a `SliceSpec`).
    #[arg(long)]
    pub slice: String,
    /// Compiled-component cache shared with the host (writable).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Bytes of host memory parked (FlashBoot) tensors may hold before
    /// they spill to disk.
    #[arg(long, default_value_t = 16 << 30)]
    pub page_budget: u64,
    /// A directory (or file) the executor may read: handlers, models.
    #[arg(long = "sandbox-read")]
    pub sandbox_read: Vec<PathBuf>,
    /// A directory the executor may write (besides its cache).
    #[arg(long = "sandbox-write")]
    pub sandbox_write: Vec<PathBuf>,
    /// No Landlock ruleset (no_new_privs is still set).
    #[arg(long)]
    pub no_sandbox: bool,
    /// Instead of serving: sandbox as usual, then try to read each PATH and
    /// print one JSON line per try (how the tests see what a sandboxed
    /// executor can reach).
    #[arg(long = "probe-read", hide = true)]
    pub probe_read: Vec<PathBuf>,
    /// Likewise, try to create each PATH.
    #[arg(long = "probe-write", hide = true)]
    pub probe_write: Vec<PathBuf>,
    /// Likewise, try to open a TCP connection to each ADDR.
    #[arg(long = "probe-connect", hide = true)]
    pub probe_connect: Vec<String>,
    /// Unix socket to serve HTTP handlers' requests on (HTTP/2); bound
    /// before the sandbox closes, so its directory need not be writable.
    #[arg(long)]
    pub http_socket: Option<PathBuf>,
    /// Instances the process may hold at once (its engine's pool); unset,
    /// the engine's default. Shared CPU executors hold many endpoints'.
    #[arg(long)]
    pub max_instances: Option<u32>,
}

/// Runs on the main thread, before any async runtime.
pub fn executor(args: ExecutorArgs) -> anyhow::Result<ExitCode> {
    let slice: SliceSpec = serde_json::from_str(&args.slice).context("--slice")?;
    let mut policy = SandboxPolicy {
        disabled: args.no_sandbox,
        read_only: args.sandbox_read.clone(),
        read_write: args.sandbox_write.clone(),
    };
    policy.read_write.extend(args.cache_dir.clone());
    // The CUDA context and its libraries come up before the sandbox closes,
    // and so does the HTTP link's socket: the sandbox grants no directory
    // where sockets can be made, and accepting on a bound one needs none.
    let device = slice.cuda.then(|| server::slice_device(&slice));
    let http_listener = match &args.http_socket {
        Some(path) => {
            Some(http::bind(path).with_context(|| format!("--http-socket {}", path.display()))?)
        }
        None => None,
    };
    match sandbox::apply(&policy, slice.cuda).context("sandboxing the executor")? {
        Applied::Full => tracing::debug!(slice = %slice.id, "executor sandboxed (Landlock)"),
        Applied::Partial => tracing::debug!(
            slice = %slice.id,
            "executor sandboxed with the Landlock rules this kernel offers"
        ),
        Applied::NoLandlock(why) => {
            tracing::debug!(slice = %slice.id, "executor without Landlock: {why}")
        }
    }
    if !(args.probe_read.is_empty() && args.probe_write.is_empty() && args.probe_connect.is_empty())
    {
        probe(&args);
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(server::serve(
        slice,
        device,
        args.cache_dir,
        args.page_budget,
        args.max_instances,
        http_listener,
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn probe(args: &ExecutorArgs) {
    let report = |kind: &str, target: String, result: std::io::Result<()>| {
        let line = serde_json::json!({
            "probe": kind,
            "target": target,
            "ok": result.is_ok(),
            "error": result.err().map(|e| e.to_string()),
        });
        println!("{line}");
    };
    for p in &args.probe_read {
        // An unreadable file and a readable empty one differ: say how much.
        let read = std::fs::read(p);
        let bytes = read.as_ref().map_or(0, Vec::len);
        report(
            &format!("read {bytes} bytes"),
            p.display().to_string(),
            read.map(drop),
        );
    }
    for p in &args.probe_write {
        report(
            "write",
            p.display().to_string(),
            std::fs::write(p, b"probe"),
        );
    }
    for a in &args.probe_connect {
        report(
            "connect",
            a.clone(),
            std::net::TcpStream::connect(a).map(drop),
        );
    }
}
