//! Command-line interface: one module per subcommand (or group of them).
//! Local: `new`, `build`, `run`; the server: `serve` (and the internal
//! `executor`), `gpus`; its client over HTTP ([`client`]): `deploy`,
//! `invoke`, `endpoints`, `jobs`, `logs`, `keys`.

mod client;
mod deploy;
mod endpoints;
mod executor;
mod gpus;
mod jobs;
mod keys;
mod logs;
mod new;
mod project;
mod run;
mod run_http;
mod serve;
mod table;
mod wire;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// wasmpod: a self-hosted serverless runtime for WebAssembly GPU handlers.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// Where wasmpod keeps its state (compiled-component cache, database).
    #[arg(long, global = true, env = "WASMPOD_HOME")]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Make a handler project from a template (rust, python or js).
    New(new::NewArgs),
    /// Build a handler project into a component (.wasm).
    Build(project::BuildArgs),
    /// Run one job through a handler locally and print what it reports, or
    /// (--http ADDR) serve an HTTP handler locally.
    Run(run::RunArgs),
    /// Build, upload and serve a handler as an endpoint (create or hot swap).
    Deploy(Box<deploy::DeployArgs>),
    /// Run a job on an endpoint of the server and print its output.
    Invoke(jobs::InvokeArgs),
    /// List the server's endpoints.
    Endpoints(endpoints::EndpointsArgs),
    /// List an endpoint's jobs, or show one.
    Jobs(jobs::JobsArgs),
    /// Show (or follow) an endpoint's logs: guest output and worker events.
    Logs(logs::LogsArgs),
    /// Manage the server's API keys.
    Keys(keys::KeysArgs),
    /// Serve the RunPod-compatible job API and the admin API over HTTP.
    Serve(serve::ServeArgs),
    /// Print the device inventory (GPUs, MIG instances, CPU).
    Gpus(gpus::GpusArgs),
    /// (internal) Serve one slice's workers for a host over stdin/stdout.
    #[command(hide = true)]
    Executor(executor::ExecutorArgs),
}

impl Cli {
    /// `--home`, else `$XDG_DATA_HOME/wasmpod` or `~/.local/share/wasmpod`.
    pub fn home(&self) -> PathBuf {
        if let Some(h) = &self.home {
            return h.clone();
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
            return PathBuf::from(x).join("wasmpod");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/share/wasmpod")
    }
}

/// Run the command. Files and directories it creates are private to the
/// user (umask 077). An executor sandboxes itself before any async runtime
/// (and so any other thread) exists; the other commands run on tokio.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    wasmpod::serve::home::private_umask();
    let home = cli.home();
    let command = match cli.command {
        Command::Executor(args) => return executor::executor(args),
        Command::Gpus(args) => return gpus::gpus(args),
        Command::New(args) => return new::new(args),
        other => other,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting tokio");
    runtime.block_on(async move {
        match command {
            Command::Build(args) => {
                tokio::task::spawn_blocking(move || project::build(args)).await?
            }
            Command::Run(args) => run::run(&home, args).await,
            Command::Deploy(args) => deploy::deploy(*args).await,
            Command::Invoke(args) => jobs::invoke(args).await,
            Command::Endpoints(args) => endpoints::endpoints(args).await,
            Command::Jobs(args) => jobs::jobs(args).await,
            Command::Logs(args) => logs::logs(args).await,
            Command::Keys(args) => keys::keys(args).await,
            Command::Serve(args) => serve::serve(&home, args).await,
            Command::Gpus(_) | Command::Executor(_) | Command::New(_) => {
                unreachable!("handled above")
            }
        }
    })
}

/// Parse sizes such as `512MiB`, `4GiB`, `1024` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. 512MiB or 4GiB"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use B, KiB, MiB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}
