//! `wasmpod logs ENDPOINT [--job ID] [--follow]`: an endpoint's log stream
//! (the guest's log calls, stdout and stderr per job and worker, and the
//! workers' lifecycle events), filtered by job, worker, level and time;
//! `--follow` keeps reading the server-sent events as lines arrive.

use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::Method;

use super::client::{Client, RemoteArgs, segment};
use super::table;
use super::wire;

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    pub endpoint: String,
    /// Only this job's lines.
    #[arg(long)]
    pub job: Option<String>,
    /// Only this worker's lines.
    #[arg(long)]
    pub worker: Option<String>,
    /// Only lines at this level or above: debug, info, warn, error.
    #[arg(long)]
    pub level: Option<String>,
    /// Only lines newer than this, e.g. 10m, 2h.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// The last this many lines.
    #[arg(long, default_value_t = 200)]
    pub limit: u32,
    /// Keep printing new lines as they come (Ctrl-C stops).
    #[arg(long, short = 'f')]
    pub follow: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// One log line for a terminal.
pub fn print_line(l: &wire::LogLine) {
    let whose = match (&l.worker, &l.job) {
        (Some(w), Some(j)) => format!("{w} {j}"),
        (Some(w), None) => w.clone(),
        (None, Some(j)) => j.clone(),
        (None, None) => "-".into(),
    };
    println!(
        "{} {:<5} {:<6} {whose}  {}",
        table::clock(l.at),
        l.level.to_ascii_uppercase(),
        l.source,
        l.message
    );
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let mut query = vec![format!("limit={}", args.limit)];
    for (k, v) in [
        ("job", &args.job),
        ("worker", &args.worker),
        ("level", &args.level),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={}", segment(v)));
        }
    }
    if let Some(d) = args.since {
        query.push(format!(
            "since={}",
            wasmpod::store::now_ms() - d.as_millis() as i64
        ));
    }
    let base = format!("/v1/endpoints/{}/logs", segment(&args.endpoint));
    if !args.follow {
        let path = format!("{base}?{}", query.join("&"));
        let answer = client.get::<wire::Logs>(&path).await?;
        if args.remote.json {
            table::print_json(&answer.raw);
        } else {
            for l in &answer.value.lines {
                print_line(l);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    query.push("follow=true".into());
    let path = format!("{base}?{}", query.join("&"));
    let resp = client
        .response(
            Method::GET,
            &path,
            client
                .request(Method::GET, &path)
                .header("accept", "text/event-stream"),
        )
        .await?;
    // Server-sent events: blocks separated by a blank line, the payload on
    // `data:` lines (one JSON log line per `log` event here).
    let mut body = resp.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| anyhow::anyhow!("the log stream broke: {e}"))?;
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue; // a keep-alive comment
            }
            if args.remote.json {
                println!("{data}");
                continue;
            }
            match serde_json::from_str::<wire::LogLine>(&data) {
                Ok(l) => print_line(&l),
                Err(_) => println!("{data}"),
            }
        }
    }
    eprintln!("the server closed the log stream");
    Ok(ExitCode::SUCCESS)
}
