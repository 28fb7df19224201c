//! `wasmpod run`: the local test loop, like RunPod's `--test_input`. Streams
//! progress and chunks to stderr as they come, prints the output JSON on
//! stdout, and exits non-zero when the job fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use wasmpod::gpu::{BackendChoice, ModelStore, WorkerDevices};
use wasmpod::runtime::{
    CancelSignal, InstanceConfig, JobError, JobSink, LogLevel, Runtime, RuntimeConfig,
};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The handler component (.wasm).
    pub handler: PathBuf,
    /// The job's input, as JSON.
    #[arg(long, default_value = "{}")]
    pub input: String,
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
    /// --timings, each run's time and the median are printed): a quick
    /// steady-state benchmark. The last run's output is printed.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Tensor backend: auto picks CUDA when a usable GPU is visible.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub device: BackendChoice,
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

pub async fn run(home: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    serde_json::from_str::<serde::de::IgnoredAny>(&args.input)
        .with_context(|| format!("--input is not valid JSON: {}", args.input))?;
    let wasm = std::fs::read(&args.handler)
        .with_context(|| format!("reading {}", args.handler.display()))?;
    let cache_dir = (!args.no_cache).then(|| home.join("cache"));
    let runtime = Runtime::new(&RuntimeConfig {
        cache_dir,
        ..Default::default()
    })?;

    let handler = runtime.load(&wasm)?;
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
    let mut instance = handler.instantiate(&config).await?;
    let instantiated = started.elapsed();

    let mut runs = Vec::with_capacity(args.repeat as usize);
    let mut result = Err(JobError::Cancelled);
    for _ in 0..args.repeat {
        let started = Instant::now();
        result = instance
            .handle(
                "local",
                &args.input,
                Arc::new(ConsoleSink),
                CancelSignal::new(),
                args.timeout,
            )
            .await;
        runs.push(started.elapsed());
        if result.is_err() {
            break;
        }
    }
    if args.timings {
        eprintln!(
            "timings: load {:?} ({:?}), instantiate+init {instantiated:?}, handle {:?}",
            handler.load_time(),
            handler.source(),
            runs[0]
        );
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
