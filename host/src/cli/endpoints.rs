//! `wasmpod endpoints`: every endpoint with its handler, workers and jobs.

use std::process::ExitCode;

use super::client::{Client, RemoteArgs};
use super::table;
use super::wire;

#[derive(clap::Args, Debug)]
pub struct EndpointsArgs {
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn endpoints(args: EndpointsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let answer = client.get::<wire::Endpoints>("/v1/endpoints").await?;
    if args.remote.json {
        table::print_json(&answer.raw);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = answer
        .value
        .endpoints
        .iter()
        .map(|e| {
            let w = &e.workers;
            let mut workers = format!("{} ready", w.idle + w.running);
            for (n, what) in [
                (w.initializing, "starting"),
                (w.throttled, "throttled"),
                (w.unhealthy, "unhealthy"),
                (w.outdated, "outdated"),
            ] {
                if n > 0 {
                    workers.push_str(&format!(", {n} {what}"));
                }
            }
            vec![
                e.id.clone(),
                e.handler.chars().take(12).collect(),
                format!("{}-{}", e.min_workers, e.max_workers),
                e.gpus.join(","),
                workers,
                format!("{}/{}", e.jobs.in_queue, e.jobs.in_progress),
                format!("{}/{}", e.jobs.completed, e.jobs.failed),
                e.last_error.clone().unwrap_or_default(),
                format!("{}{}", client.base(), e.url),
            ]
        })
        .collect();
    table::print(
        &[
            "endpoint",
            "handler",
            "workers min-max",
            "gpus",
            "workers now",
            "queued/running",
            "done/failed",
            "last error",
            "url",
        ],
        rows,
        "no endpoints yet; make one with `wasmpod deploy DIR --endpoint NAME`",
    );
    Ok(ExitCode::SUCCESS)
}
