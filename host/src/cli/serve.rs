//! `wasmpod serve`: the job API and the admin API over HTTP, on the SQLite
//! store under `--home` by default, or on a Postgres database shared by a
//! cluster of hosts (`--database-url postgres://...`). Prints `listening on http://ADDR` (and,
//! on first start without WASMPOD_ADMIN_KEY, the bootstrap admin key, once)
//! on stdout.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use wasmpod::serve::{App, Bootstrap, LogLimits, Retention, ServeConfig};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8000", env = "WASMPOD_LISTEN")]
    pub listen: SocketAddr,
    /// Job store URL; default: the SQLite file <home>/wasmpod.db.
    #[arg(long, env = "WASMPOD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How long results of /run jobs are kept after they finish.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub retention_run: Duration,
    /// How long results of /runsync jobs are kept after they finish.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub retention_runsync: Duration,
    /// How long /runsync waits by default before answering with the job id.
    #[arg(long, default_value = "90s", value_parser = humantime::parse_duration)]
    pub runsync_wait: Duration,
    /// The longest wait a /runsync `?wait=` may ask for.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub runsync_max_wait: Duration,
    /// Webhook tries in all (first try plus retries).
    #[arg(long, default_value_t = 3)]
    pub webhook_attempts: u32,
    /// Wait before the first webhook retry (doubled for each later one).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub webhook_backoff: Duration,
    /// Networks webhooks may reach although they are not public, as CIDRs
    /// (comma-separated or repeated), e.g. `10.0.0.0/8,127.0.0.1/32`. By
    /// default a webhook to a loopback, private (RFC 1918), CGNAT,
    /// link-local (cloud metadata), IPv6 unique-local, multicast, reserved
    /// or unspecified address is refused (checked on the address connected
    /// to, so DNS cannot get around it), and recorded so on the job.
    #[arg(
        long,
        env = "WASMPOD_WEBHOOK_ALLOW",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub webhook_allow: Vec<ipnet::IpNet>,
    /// Send no webhooks at all: jobs that ask for one are refused (400).
    #[arg(long)]
    pub no_webhooks: bool,
    /// Largest handler upload.
    #[arg(long, default_value = "512MiB", value_parser = super::parse_size)]
    pub max_handler_size: u64,
    /// Largest model file upload.
    #[arg(long, default_value = "64GiB", value_parser = super::parse_size)]
    pub max_model_file_size: u64,
    /// A simulated device inventory (TOML: `[[gpu]] name, memory_gib,
    /// count, mig = [...]`) whose slices compute on the CPU; default: the
    /// GPUs NVML finds (the CPU is always there).
    #[arg(long, env = "WASMPOD_INVENTORY")]
    pub inventory: Option<PathBuf>,
    /// Serve /metrics without an API key (for a scraper on a private
    /// network); by default it needs an admin key, since it names every
    /// endpoint and shows its load and usage.
    #[arg(long)]
    pub metrics_public: bool,
    /// The secret file API keys are hashed with (HMAC-SHA256), made 0600
    /// on first start; default `<home>/key.secret`. Every host of a cluster
    /// (one shared --database-url) must use the same secret.
    #[arg(long, env = "WASMPOD_KEY_SECRET", value_name = "FILE")]
    pub key_secret: Option<std::path::PathBuf>,
    /// Run executors without their Landlock sandbox, which otherwise lets
    /// them reach only their cache, the handlers, the models and the GPU's
    /// device files (never the database or the key secret). For kernels
    /// whose Landlock gets in a driver's way; no_new_privs stays.
    #[arg(long, env = "WASMPOD_NO_EXECUTOR_SANDBOX")]
    pub no_executor_sandbox: bool,
    /// How long a slice's executor process is kept with no worker on it
    /// (warm for the next worker) before it is stopped, freeing its GPU
    /// memory. One holding a FlashBoot endpoint's parked worker follows
    /// --flashboot-keep instead.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub executor_idle: Duration,
    /// How long an executor holding FlashBoot's parked workers is kept with
    /// no worker on it. Their restore takes milliseconds; once it stops
    /// (freeing the GPU's context and the parked host memory), the next
    /// start comes from the snapshot on disk instead.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub flashboot_keep: Duration,
    /// Host memory each slice's executor may use for FlashBoot's parked
    /// workers (their tensors and the slice's model weights, pinned on a
    /// GPU) before the rest spills to files under the cache.
    #[arg(long, default_value = "16GiB", value_parser = super::parse_size)]
    pub flashboot_ram: u64,
    /// How long a request to a load-balancing endpoint waits for a worker
    /// (a start from zero, or a pool at max_workers with every worker at
    /// its concurrency) before it is answered 503 with Retry-After.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub lb_start_wait: Duration,
    /// Largest request body a load-balancing endpoint takes (413 past it).
    #[arg(long, default_value = "30MiB", value_parser = super::parse_size)]
    pub lb_body_limit: u64,
    /// Route `Host: {endpoint}.{DOMAIN}` to load-balancing endpoint
    /// `{endpoint}` with the whole path, as RunPod's
    /// `https://{endpoint}.api.runpod.ai/...` (e.g. --lb-domain
    /// lb.example.com, with a wildcard DNS record pointing here).
    #[arg(long, value_name = "DOMAIN")]
    pub lb_domain: Option<String>,
    /// Do not apply RunPod's rate-limit table by default (an endpoint's own
    /// `rate_limits` still apply).
    #[arg(long)]
    pub no_rate_limits: bool,
    /// How long handlers' log lines (and workers' lifecycle events) are
    /// kept.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    pub log_retention: Duration,
    /// Log lines kept in all, across endpoints (the oldest go first).
    #[arg(long, default_value_t = 1_000_000)]
    pub log_max_lines: u64,
    /// Bytes of log lines and output one job (or one worker outside jobs)
    /// may write; past it the rest is dropped and counted in one line.
    #[arg(long, default_value = "1MiB", value_parser = super::parse_size)]
    pub log_max_job_bytes: u64,
    /// Longer log lines are cut.
    #[arg(long, default_value = "8KiB", value_parser = super::parse_size)]
    pub log_max_line_bytes: u64,
    /// Executor processes the CPU workers of every endpoint share (the
    /// wasm sandbox isolates them; a crash fails only that process's jobs,
    /// which are re-queued, and it is restarted). Each GPU slice keeps its
    /// own process.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub cpu_executors: u16,
    /// Cluster mode (a postgres:// --database-url): a host whose heartbeat
    /// is older than this is declared dead, and the other hosts re-queue
    /// the jobs it was running (a retry counted, max_retries honoured).
    /// Heartbeats go out four times in this time.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub dead_host_after: Duration,
    /// Requests one batch may hold (RunPod: 5,000); past it POST .../batch
    /// and .../requests answer 400.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_max_requests: u64,
    /// Active batches (drafts, or finalized with requests left) one
    /// endpoint may have; past it creating one answers 429.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_max_active: u64,
    /// How long a batch and its results are kept after its last request
    /// finished (a draft: after its last change).
    #[arg(long, default_value = "7d", value_parser = humantime::parse_duration)]
    pub batch_retention: Duration,
}

pub async fn serve(home: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Before any secret is read: executors (and other processes of this
    // user) cannot read this process's environment or memory.
    wasmpod::executor::sandbox::shield_host();
    anyhow::ensure!(
        args.webhook_attempts >= 1,
        "--webhook-attempts must be at least 1"
    );
    let mut config = ServeConfig::new(home.to_path_buf());
    config.database_url = args.database_url;
    config.retention = Retention {
        run: args.retention_run,
        runsync: args.retention_runsync,
    };
    anyhow::ensure!(
        args.runsync_wait <= args.runsync_max_wait,
        "--runsync-wait ({:?}) must not be longer than --runsync-max-wait ({:?})",
        args.runsync_wait,
        args.runsync_max_wait
    );
    config.runsync_wait = args.runsync_wait;
    config.runsync_max_wait = args.runsync_max_wait;
    config.webhook_allow = args.webhook_allow;
    config.no_webhooks = args.no_webhooks;
    config.no_executor_sandbox = args.no_executor_sandbox;
    config.key_secret = args.key_secret;
    config.webhook_attempts = args.webhook_attempts;
    config.webhook_backoff = args.webhook_backoff;
    config.max_handler_bytes = args.max_handler_size;
    config.max_model_file_bytes = args.max_model_file_size;
    config.inventory = args.inventory;
    config.metrics_public = args.metrics_public;
    config.executor_idle = args.executor_idle;
    config.flashboot_ram = args.flashboot_ram;
    config.flashboot_keep = args.flashboot_keep;
    config.lb_start_wait = args.lb_start_wait;
    config.lb_body_limit = usize::try_from(args.lb_body_limit)
        .context("--lb-body-limit is too large for this machine")?;
    config.lb_domain = args
        .lb_domain
        .map(|d| d.trim_matches('.').to_ascii_lowercase());
    config.rate_limits = !args.no_rate_limits;
    anyhow::ensure!(
        args.log_max_line_bytes >= 64,
        "--log-max-line-bytes must be at least 64"
    );
    config.log_limits = LogLimits {
        retention: args.log_retention,
        max_lines: args.log_max_lines,
        max_bytes_per_job: args.log_max_job_bytes as usize,
        max_line_bytes: args.log_max_line_bytes as usize,
    };
    config.cpu_executors = usize::from(args.cpu_executors);
    anyhow::ensure!(
        args.dead_host_after >= Duration::from_millis(500),
        "--dead-host-after must be at least 500ms"
    );
    config.dead_host_after = args.dead_host_after;
    config.batch = wasmpod::serve::BatchLimits {
        max_requests: args.batch_max_requests as usize,
        max_active: args.batch_max_active as usize,
        retention: args.batch_retention,
    };
    config.admin_key = std::env::var("WASMPOD_ADMIN_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty());

    let (app, bootstrap) = App::start(config)
        .await
        .with_context(|| format!("starting the host with home {}", home.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    app.set_address(format!("http://{addr}"));
    {
        let mut out = std::io::stdout().lock();
        if let Bootstrap::Generated(key) = &bootstrap {
            writeln!(
                out,
                "admin key (shown once; store it now): {key}\n  use it as `Authorization: Bearer <key>`; set WASMPOD_ADMIN_KEY to choose your own"
            )?;
        }
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, home = %home.display(), "serving");
    axum::serve(listener, wasmpod::api::router(app.clone()))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("shutting down: workers finish their jobs");
    app.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
