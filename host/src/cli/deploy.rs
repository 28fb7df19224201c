//! `wasmpod deploy [DIR|FILE] --endpoint NAME [settings]`: build the
//! project (or take a `.wasm`), upload it with a progress bar, create the
//! endpoint or PATCH it (a hot swap: running jobs finish on the old
//! version), wait until the new version serves, and print the endpoint's
//! URL and a curl line.
//!
//! "Serves" means: `/health` answers with no unhealthy worker, `min_workers`
//! of them ready when it asks for some, and, when the project has a
//! `test_input.json` (or `--test-input` gives one), that input run through
//! `/runsync` on the new version completes. A job submitted after the PATCH
//! can only run on the new version (a worker claims jobs only for the
//! endpoint's current handler).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::client::{Client, ClientError, RemoteArgs, segment};
use super::project::{self, SdkArgs};
use super::table;
use super::wire;

#[derive(clap::Args, Debug)]
pub struct DeployArgs {
    /// A handler project directory (built first) or a .wasm component.
    #[arg(default_value = ".")]
    pub path: PathBuf,
    /// The endpoint to create or update (default: the project's name).
    #[arg(long, short = 'e')]
    pub endpoint: Option<String>,
    /// GPU types in order of preference, comma-separated: H100,A100,cpu.
    #[arg(long, value_delimiter = ',')]
    pub gpus: Option<Vec<String>>,
    #[arg(long)]
    pub gpus_per_worker: Option<u32>,
    #[arg(long)]
    pub min_workers: Option<u32>,
    #[arg(long)]
    pub max_workers: Option<u32>,
    /// Jobs one worker runs at once.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// How long an idle worker above min_workers is kept, e.g. 30s, 5m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Default execution timeout of a job, e.g. 10m.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub execution_timeout: Option<Duration>,
    /// A directory of models (one sub-directory per model) uploaded into
    /// the server's model store; files already there are not sent again.
    #[arg(long, conflicts_with = "models_dir")]
    pub models: Option<PathBuf>,
    /// A models directory on the server's host instead of the model store.
    #[arg(long)]
    pub models_dir: Option<String>,
    /// Environment variable for the handler, KEY=VALUE (repeatable; replaces
    /// the endpoint's whole env).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// FlashBoot on or off (default on for a new endpoint).
    #[arg(long)]
    pub flashboot: Option<bool>,
    /// REQUEST_COUNT or QUEUE_DELAY.
    #[arg(long)]
    pub scaler_type: Option<String>,
    #[arg(long)]
    pub scaler_value: Option<u32>,
    /// Linear-memory cap of a handler instance, e.g. 512MiB.
    #[arg(long, value_parser = super::parse_size)]
    pub memory: Option<u64>,
    /// Tensor memory quota of a worker, e.g. 8GiB.
    #[arg(long, value_parser = super::parse_size)]
    pub tensor_quota: Option<u64>,
    /// The input of the check job run on the new version (default: the
    /// project's test_input.json).
    #[arg(long)]
    pub test_input: Option<String>,
    /// Skip the check job.
    #[arg(long)]
    pub no_test: bool,
    /// How long to wait for the new version to serve.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    #[command(flatten)]
    pub sdk: SdkArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

impl DeployArgs {
    /// The settings given on the command line, as the API spells them.
    fn settings(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put("gpus", self.gpus.as_ref().map(|g| json!(g)));
        put("gpus_per_worker", self.gpus_per_worker.map(|v| json!(v)));
        put("min_workers", self.min_workers.map(|v| json!(v)));
        put("max_workers", self.max_workers.map(|v| json!(v)));
        put("concurrency", self.concurrency.map(|v| json!(v)));
        put(
            "idle_timeout_s",
            self.idle_timeout.map(|d| json!(d.as_secs())),
        );
        put(
            "execution_timeout_ms",
            self.execution_timeout.map(|d| json!(d.as_millis() as u64)),
        );
        put("models_dir", self.models_dir.as_ref().map(|d| json!(d)));
        put(
            "env",
            (!self.env.is_empty()).then(|| {
                json!(
                    self.env
                        .iter()
                        .cloned()
                        .collect::<BTreeMap<String, String>>()
                )
            }),
        );
        put("flashboot", self.flashboot.map(|v| json!(v)));
        put(
            "scaler_type",
            self.scaler_type
                .as_ref()
                .map(|v| json!(v.to_ascii_uppercase())),
        );
        put("scaler_value", self.scaler_value.map(|v| json!(v)));
        put("memory_limit_mib", self.memory.map(|b| json!(b >> 20)));
        put(
            "tensor_quota_mib",
            self.tensor_quota.map(|b| json!(b >> 20)),
        );
        m
    }
}

pub async fn deploy(args: DeployArgs) -> anyhow::Result<ExitCode> {
    // Reach the server before a build that may take minutes.
    let client = Client::new(&args.remote)?;
    client
        .get::<Value>("/v1/endpoints")
        .await
        .context("checking the server")?;

    let path = args.path.clone();
    let sdk = args.sdk.clone();
    let (wasm, project) = tokio::task::spawn_blocking(move || project::component(&path, &sdk))
        .await
        .context("the build task")??;
    let endpoint = match (&args.endpoint, &project) {
        (Some(e), _) => e.clone(),
        (None, Some(p)) => p.name.clone(),
        (None, None) => bail!("give the endpoint to deploy to: --endpoint NAME"),
    };
    let test_input = match (&args.test_input, &project) {
        _ if args.no_test => None,
        (Some(t), _) => Some(
            serde_json::from_str::<Value>(t)
                .with_context(|| format!("--test-input is not JSON: {t}"))?,
        ),
        (None, Some(p)) => project::test_input(&p.dir)?,
        (None, None) => None,
    };

    if let Some(models) = &args.models {
        upload_models(&client, models).await?;
    }
    let uploaded = upload_handler(&client, &wasm).await?;
    eprintln!(
        "handler {} ({} bytes{})",
        &uploaded.digest[..12],
        uploaded.size,
        if uploaded.created {
            ""
        } else {
            ", already on the server"
        }
    );

    let mut body = args.settings();
    body.insert("handler".into(), json!(uploaded.digest));
    let path = format!("/v1/endpoints/{}", segment(&endpoint));
    let existing = match client.get::<wire::Endpoint>(&path).await {
        Ok(e) => Some(e.value),
        Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => None,
        Err(e) => return Err(e.into()),
    };
    let answer = match existing {
        Some(old) => {
            let swapped = old.handler != uploaded.digest;
            let a = client
                .patch::<wire::Endpoint>(&path, &Value::Object(body))
                .await?;
            eprintln!(
                "updated endpoint {endpoint} (generation {}{})",
                a.value.generation,
                if swapped {
                    "; running jobs finish on the old version"
                } else {
                    "; same handler"
                }
            );
            a
        }
        None => {
            body.insert("id".into(), json!(endpoint));
            let a = client
                .post::<wire::Endpoint>("/v1/endpoints", &Value::Object(body))
                .await?;
            eprintln!("created endpoint {endpoint}");
            a
        }
    };

    let served = wait_serving(&client, &answer.value, test_input.as_ref(), args.wait).await?;
    let url = format!("{}{}", client.base(), answer.value.url);
    if args.remote.json {
        table::print_json(&json!({
            "endpoint": answer.raw,
            "handler": uploaded.digest,
            "url": url,
            "test": served,
        }));
    } else {
        let input = test_input.unwrap_or_else(|| json!({}));
        println!(
            "endpoint {endpoint} is serving handler {}",
            &uploaded.digest[..12]
        );
        println!("  url   {url}");
        println!(
            "  try   curl -H \"Authorization: Bearer $WASMPOD_API_KEY\" -d '{}' {url}/runsync",
            json!({ "input": input })
        );
        println!("  logs  wasmpod logs {endpoint} --follow");
    }
    Ok(ExitCode::SUCCESS)
}

/// The progress bar of one upload (drawn on stderr only when it is a
/// terminal).
fn bar(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
        )
        .expect("a valid progress template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A request body that moves `bar` as hyper takes its chunks.
fn body_with_progress(bytes: Vec<u8>, bar: ProgressBar) -> reqwest::Body {
    const CHUNK: usize = 256 << 10;
    let chunks: Vec<Vec<u8>> = bytes.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |c| {
        bar.inc(c.len() as u64);
        Ok::<_, std::io::Error>(c)
    }));
    reqwest::Body::wrap_stream(stream)
}

async fn upload_handler(client: &Client, wasm: &Path) -> anyhow::Result<wire::Uploaded> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let bar = bar(bytes.len() as u64, "uploading handler");
    let req = client
        .request(Method::POST, "/v1/handlers")
        .header("content-type", "application/wasm")
        .body(body_with_progress(bytes, bar.clone()));
    let answer = client.send(Method::POST, "/v1/handlers", req).await;
    bar.finish_and_clear();
    Ok(answer?.value)
}

/// Upload every file under each model directory whose sha256 the store
/// does not already have at that path.
async fn upload_models(client: &Client, dir: &Path) -> anyhow::Result<()> {
    let mut models: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading --models {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    models.sort();
    if models.is_empty() {
        bail!(
            "--models {} has no model directories; it holds one sub-directory per model (e.g. {}/my-model/model.safetensors)",
            dir.display(),
            dir.display()
        );
    }
    for model_dir in models {
        let model = model_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let have: BTreeMap<String, String> = match client
            .get::<wire::Model>(&format!("/v1/models/{}", segment(&model)))
            .await
        {
            Ok(m) => m
                .value
                .files
                .into_iter()
                .map(|f| (f.path, f.sha256))
                .collect(),
            Err(e) if e.status() == Some(reqwest::StatusCode::NOT_FOUND) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        let mut sent = 0;
        for file in files_under(&model_dir)? {
            let rel = file
                .strip_prefix(&model_dir)
                .expect("under the model dir")
                .to_string_lossy()
                .replace('\\', "/");
            let sha = sha256_file(&file)?;
            if have.get(&rel) == Some(&sha) {
                continue;
            }
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let bar = bar(bytes.len() as u64, &format!("uploading {model}/{rel}"));
            let path = format!(
                "/v1/models/{}/files/{}",
                segment(&model),
                rel.split('/').map(segment).collect::<Vec<_>>().join("/")
            );
            let req = client
                .request(Method::PUT, &path)
                .header("content-type", "application/octet-stream")
                .body(body_with_progress(bytes, bar.clone()));
            let r = client.send::<Value>(Method::PUT, &path, req).await;
            bar.finish_and_clear();
            r?;
            sent += 1;
        }
        eprintln!("model {model}: {sent} file(s) uploaded");
    }
    Ok(())
}

fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Wait until the endpoint serves its new version (see the module doc);
/// returns the check job's status object, if one ran.
async fn wait_serving(
    client: &Client,
    endpoint: &wire::Endpoint,
    test_input: Option<&Value>,
    limit: Duration,
) -> anyhow::Result<Option<Value>> {
    let deadline = Instant::now() + limit;
    let health_path = format!("/v2/{}/health", segment(&endpoint.id));
    let want_ready = endpoint.min_workers.min(1) as usize;
    loop {
        let health = client.get::<wire::Health>(&health_path).await?.value;
        if let Some(bad) = health
            .worker_details
            .iter()
            .find(|w| w.state == "unhealthy")
        {
            bail!(
                "a worker of endpoint {} failed: {}; see `wasmpod logs {}`",
                endpoint.id,
                bad.error.as_deref().unwrap_or("no reason given"),
                endpoint.id
            );
        }
        let ready = health.workers.idle + health.workers.running;
        if ready >= want_ready {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "endpoint {} has no ready worker after {limit:?} (min_workers {}); see `wasmpod logs {}`",
                endpoint.id,
                endpoint.min_workers,
                endpoint.id
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let Some(input) = test_input else {
        return Ok(None);
    };
    let wait_ms = deadline
        .saturating_duration_since(Instant::now())
        .as_millis();
    let path = format!("/v2/{}/runsync?wait={wait_ms}", segment(&endpoint.id));
    let started = Instant::now();
    let answer = client
        .post::<wire::JobStatus>(&path, &json!({ "input": input }))
        .await
        .map_err(|e: ClientError| {
            anyhow::Error::new(e).context("running test_input on the new version")
        })?;
    let status = &answer.value;
    match status.status.as_str() {
        "COMPLETED" => {
            eprintln!(
                "test_input served in {}: {}",
                table::millis(Some(started.elapsed().as_millis() as i64)),
                status.output.clone().unwrap_or(Value::Null)
            );
            Ok(Some(answer.raw))
        }
        "IN_QUEUE" | "IN_PROGRESS" => bail!(
            "the check job {} on endpoint {} did not finish within {limit:?}; see `wasmpod jobs {}` and `wasmpod logs {} --job {}`",
            status.id,
            endpoint.id,
            endpoint.id,
            endpoint.id,
            status.id
        ),
        other => bail!(
            "the new version did not serve test_input: job {} {other}: {}; see `wasmpod logs {} --job {}`",
            status.id,
            status.error.as_deref().unwrap_or("no error given"),
            endpoint.id,
            status.id
        ),
    }
}
