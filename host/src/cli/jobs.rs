//! `wasmpod jobs ENDPOINT [JOB]`: an endpoint's retained jobs, newest
//! first (`--status` filters), or one job whole: input, output, stream
//! chunks and its log lines. `wasmpod invoke ENDPOINT`: run a job.

use std::process::ExitCode;

use serde_json::{Value, json};

use super::client::{Client, RemoteArgs, segment};
use super::logs::print_line;
use super::table;
use super::wire;

#[derive(clap::Args, Debug)]
pub struct JobsArgs {
    pub endpoint: String,
    /// Show this job whole instead of the list.
    pub job: Option<String>,
    /// Only jobs with this status: IN_QUEUE, IN_PROGRESS, COMPLETED,
    /// FAILED, CANCELLED, TIMED_OUT.
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub async fn jobs(args: JobsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.remote)?;
    let base = format!("/v1/endpoints/{}/jobs", segment(&args.endpoint));
    if let Some(job) = &args.job {
        let answer = client
            .get::<Value>(&format!("{base}/{}", segment(job)))
            .await?;
        if args.remote.json {
            table::print_json(&answer.raw);
        } else {
            print_job(&answer.raw);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut path = format!("{base}?limit={}", args.limit);
    if let Some(s) = &args.status {
        path.push_str(&format!("&status={}", segment(&s.to_ascii_uppercase())));
    }
    let answer = client.get::<wire::Jobs>(&path).await?;
    if args.remote.json {
        table::print_json(&answer.raw);
        return Ok(ExitCode::SUCCESS);
    }
    let rows = answer
        .value
        .jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.status.clone(),
                table::ago(j.created_at),
                table::millis(j.delay_ms),
                table::millis(j.execution_ms),
                j.worker_id.clone().unwrap_or_default(),
                j.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::print(
        &[
            "job",
            "status",
            "submitted",
            "delay",
            "execution",
            "worker",
            "error",
        ],
        rows,
        &format!("no retained jobs on endpoint {}", args.endpoint),
    );
    Ok(ExitCode::SUCCESS)
}

fn print_job(job: &Value) {
    let field = |k: &str| match &job[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("job       {}", field("id"));
    println!("status    {}", field("status"));
    println!("worker    {}", field("worker_id"));
    println!(
        "delay     {}   execution {}   retries {}",
        table::millis(job["delay_ms"].as_i64()),
        table::millis(job["execution_ms"].as_i64()),
        field("retries")
    );
    println!("input     {}", field("input"));
    if !job["progress"].is_null() {
        println!("progress  {}", field("progress"));
    }
    println!("output    {}", field("output"));
    if !job["error"].is_null() {
        println!("error     {}", field("error"));
    }
    if let Some(chunks) = job["stream"].as_array()
        && !chunks.is_empty()
    {
        println!("stream    {} chunk(s)", chunks.len());
        for c in chunks {
            println!("  {c}");
        }
    }
    let lines: Vec<wire::LogLine> = serde_json::from_value(job["logs"].clone()).unwrap_or_default();
    println!("logs      {} line(s)", lines.len());
    for l in &lines {
        print!("  ");
        print_line(l);
    }
}

#[derive(clap::Args, Debug)]
pub struct InvokeArgs {
    pub endpoint: String,
    /// The job's input, as JSON.
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// Queue it (/run) and print its id instead of waiting (/runsync).
    #[arg(long = "async")]
    pub no_wait: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

/// `wasmpod invoke ENDPOINT --input JSON`: the output on stdout; exit 1
/// when the job fails.
pub async fn invoke(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let input: Value = serde_json::from_str(&args.input)
        .map_err(|e| anyhow::anyhow!("--input is not valid JSON ({e}): {}", args.input))?;
    let client = Client::new(&args.remote)?;
    let route = if args.no_wait { "run" } else { "runsync" };
    let answer = client
        .post::<wire::JobStatus>(
            &format!("/v2/{}/{route}", segment(&args.endpoint)),
            &json!({ "input": input }),
        )
        .await?;
    let s = &answer.value;
    if args.remote.json {
        table::print_json(&answer.raw);
    } else if s.status == "COMPLETED" {
        table::print_json(s.output.as_ref().unwrap_or(&Value::Null));
    } else {
        println!("{} {}", s.id, s.status);
    }
    let failed = matches!(s.status.as_str(), "FAILED" | "TIMED_OUT" | "CANCELLED");
    if failed {
        eprintln!(
            "job {} {}: {} (see `wasmpod logs {} --job {}`)",
            s.id,
            s.status,
            s.error.as_deref().unwrap_or("no error given"),
            args.endpoint,
            s.id
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
