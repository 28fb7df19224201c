//! `wasmpod run`: the local test loop, like RunPod's `--test_input`. Streams
//! progress and chunks to stderr as they come, prints the output JSON on
//! stdout, and exits non-zero when the job fails. With `--http ADDR` an HTTP
//! handler is served locally instead ([`super::run_http`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmpod::gpu::{BackendChoice, ModelStore, WorkerDevices};
use wasmpod::runtime::{
    BootReport, CancelSignal, FlashBoot, Instance, InstanceConfig, JobError, JobSink, LogLevel,
    Runtime, RuntimeConfig, SnapshotStore, World,
};

use super::run_http::Starter;
use wasmpod_tensor::PageStore;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The handler: a component (.wasm), or a project directory, which is
    /// built first.
    pub handler: PathBuf,
    /// The job's input, as JSON (default: a project's test_input.json,
    /// else `{}`).
    #[arg(long)]
    pub input: Option<String>,
    #[command(flatten)]
    pub sdk: super::project::SdkArgs,
    /// Directory of models the handler may open (one sub-directory per model).
    #[arg(long)]
    pub models: Option<PathBuf>,
    /// Execution timeout, e.g. 30s, 2m.
    #[arg(long, default_value = "600s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Cap on the handler's linear memory.
    #[arg(long, default_value = "1GiB", value_parser = super::parse_size)]
    pub memory: u64,
    /// Quota on tensor memory.
    #[arg(long, default_value = "8GiB", value_parser = super::parse_size)]
    pub tensor_quota: u64,
    /// Environment variable for the guest, KEY=VALUE (repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Do not use the compiled-component cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print load, instantiate and run times to stderr.
    #[arg(long)]
    pub timings: bool,
    /// Run the job this many times on the same warm instance (with
    /// --timings, the min, median and max handle times are printed): a
    /// quick steady-state benchmark. The last run's output is printed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Tensor backend: auto picks CUDA when a usable GPU is visible.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub device: BackendChoice,
    /// Start through FlashBoot: from a snapshot taken after `init` when one
    /// exists under the home's cache (`init` does not run), else cold,
    /// taking the snapshot for the next run. With --timings, says which
    /// layer served the start.
    #[arg(long)]
    pub flashboot: bool,
    /// With --flashboot: after the first run, page the worker's tensors and
    /// model weights out (host RAM up to --page-budget, then disk) and back
    /// in before the next run, as a worker scaled to zero and woken again.
    #[arg(long, requires = "flashboot")]
    pub page_out: bool,
    /// Host RAM paged-out tensors may use before they spill to disk.
    #[arg(long, default_value = "16GiB", value_parser = super::parse_size)]
    pub page_budget: u64,
    /// Serve an HTTP handler (world http-handler) on this address, e.g.
    /// 127.0.0.1:8080, instead of running one job; --timeout bounds each
    /// request.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["repeat", "page_out"])]
    pub http: Option<std::net::SocketAddr>,
    /// With --http: requests served at once (one instance each).
    #[arg(long, default_value_t = 4, requires = "http", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
}

/// Which layer served the start, and what it cost.
fn print_boot(boot: &Option<BootReport>, total: Duration) {
    match boot {
        None => eprintln!("timings: start {total:?} (flashboot off: load + instantiate + init)"),
        Some(r) => {
            eprintln!(
                "timings: start {total:?} served by {}: load {:?}, instantiate{} {:?}, restore {} handle(s) {:?}",
                r.layer,
                r.load,
                if r.layer == wasmpod::runtime::BootLayer::Preinitialised {
                    ""
                } else {
                    "+init"
                },
                r.instantiate,
                r.handles,
                r.restore_handles
            );
            if let Some(t) = r.snapshot_taken {
                eprintln!(
                    "timings: snapshot taken after init in {t:?} (the next start is pre-initialised)"
                );
            }
            if let Some(note) = &r.note {
                eprintln!("flashboot: {note}");
            }
        }
    }
}

/// Page the worker's tensors and weights out and back in (layer 3), as a
/// worker scaled to zero and woken by the next job.
fn page_cycle(
    instance: &mut Instance,
    config: &InstanceConfig,
    pages: &std::sync::Arc<PageStore>,
    timings: bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let own = instance.page_out(pages)?;
    let weights = match &config.models {
        Some(m) => m.page_out(pages)?,
        None => Default::default(),
    };
    let out = started.elapsed();
    let (ram, disk) = (pages.ram_used(), pages.disk_used());
    let started = Instant::now();
    let weights_in = match &config.models {
        Some(m) => m.page_in()?,
        None => Default::default(),
    };
    let own_in = instance.page_in()?;
    let back = started.elapsed();
    if timings {
        eprintln!(
            "timings: paged out {} tensor(s) + {} weight(s) ({} bytes; {ram} in RAM, {disk} on disk) in {out:?}; + VRAM restore of {} bytes in {back:?}",
            own.tensors,
            weights.tensors,
            own.bytes + weights.bytes,
            own_in.bytes + weights_in.bytes
        );
    }
    Ok(())
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

/// Prints what the handler reports as it happens.
struct ConsoleSink;

impl JobSink for ConsoleSink {
    fn progress(&self, value: serde_json::Value) {
        eprintln!("progress: {value}");
    }

    fn stream(&self, chunk: serde_json::Value) {
        eprintln!("stream: {chunk}");
    }

    fn log(&self, level: LogLevel, message: &str) {
        eprintln!("log[{}]: {message}", format!("{level:?}").to_lowercase());
    }
}

/// The job's input: `--input`, else the project's test_input.json, else
/// `{}`.
fn job_input(args: &RunArgs, project: Option<&super::project::Project>) -> anyhow::Result<String> {
    if let Some(input) = &args.input {
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .with_context(|| format!("--input is not valid JSON: {input}"))?;
        return Ok(input.clone());
    }
    let from_file = match project {
        Some(p) => super::project::test_input(&p.dir)?,
        None => None,
    };
    Ok(from_file
        .map(|v| v.to_string())
        .unwrap_or_else(|| "{}".into()))
}

pub async fn run(home: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (handler, sdk) = (args.handler.clone(), args.sdk.clone());
    let (wasm_path, project) =
        tokio::task::spawn_blocking(move || super::project::component(&handler, &sdk))
            .await
            .context("the build task")??;
    let input = job_input(&args, project.as_ref())?;
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let cache_dir = (!args.no_cache).then(|| home.join("cache"));
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir,
        ..Default::default()
    })?;

    let mut config = InstanceConfig::cpu(args.memory as usize, args.tensor_quota, None);
    config.devices = WorkerDevices::select(args.device, args.tensor_quota)
        .with_context(|| format!("opening the {:?} tensor backend", args.device))?;
    if let Some(dir) = &args.models {
        anyhow::ensure!(
            dir.is_dir(),
            "--models {} is not a directory",
            dir.display()
        );
        config.models = Some(ModelStore::new(dir, config.devices.primary().clone()));
    }
    config.env = args.env.clone();
    config.echo_output = true;

    let started = Instant::now();
    let handler = runtime.load(&wasm)?;
    let world = handler.world();
    match (world, args.http) {
        (World::HttpHandler, None) => anyhow::bail!(
            "{} is an HTTP handler (world http-handler); serve it with --http 127.0.0.1:8080 and send it requests",
            args.handler.display()
        ),
        (World::Handler, Some(_)) => anyhow::bail!(
            "{} is a queue handler (world handler); run a job with --input, not --http",
            args.handler.display()
        ),
        _ => {}
    }
    let (starter, (mut instance, boot)) = if args.flashboot {
        let snapshots = SnapshotStore::new(home.join("cache").join("snapshots"));
        let flashboot = FlashBoot::new(runtime, snapshots);
        let (instance, report) = flashboot.start(&wasm, &config).await?;
        (
            Starter::FlashBoot(flashboot, Arc::new(wasm)),
            (instance, Some(report)),
        )
    } else {
        let instance = handler.instantiate(&config).await?;
        (Starter::Plain(handler), (instance, None))
    };
    let instantiated = started.elapsed();
    if args.timings {
        print_boot(&boot, instantiated);
    }
    if let Some(addr) = args.http {
        return super::run_http::serve(
            addr,
            starter,
            config,
            instance,
            args.concurrency,
            args.timeout,
        )
        .await;
    }
    let pages = PageStore::new(args.page_budget, home.join("cache").join("paging"));

    let mut runs = Vec::with_capacity(args.repeat as usize);
    let mut result = Err(JobError::Cancelled);
    for _ in 0..args.repeat {
        let started = Instant::now();
        result = instance
            .handle(
                "local",
                &input,
                Arc::new(ConsoleSink),
                CancelSignal::new(),
                args.timeout,
            )
            .await;
        runs.push(started.elapsed());
        if result.is_err() {
            break;
        }
        if args.page_out && runs.len() < args.repeat as usize {
            page_cycle(&mut instance, &config, &pages, args.timings)?;
        }
    }
    if args.timings {
        eprintln!("timings: first handle {:?}", runs[0]);
        if runs.len() > 1 {
            let mut sorted = runs.clone();
            sorted.sort();
            eprintln!(
                "timings: {} runs, handle min {:?}, median {:?}, max {:?}",
                runs.len(),
                sorted[0],
                sorted[sorted.len() / 2],
                sorted[sorted.len() - 1]
            );
        }
    }
    match result {
        Ok(output) => {
            let value: serde_json::Value = serde_json::from_str(&output)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
