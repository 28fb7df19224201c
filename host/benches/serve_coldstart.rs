//! FlashBoot cold starts end to end through `wasmpod serve`: the time from
//! sending POST /v2/{endpoint}/runsync on an endpoint with zero workers to
//! receiving its COMPLETED answer, for `echo` (no model) and `bigmodel`
//! (examples/bigmodel: init opens model "big" and takes every weight) with
//! generated safetensors models of the given sizes, in four modes:
//!
//! 1. nothing cached (`flashboot: false`): before each run a new handler
//!    version (the component plus a custom section carrying a nonce) is
//!    uploaded, the compiled artifact the upload left in the host's cache is
//!    removed, the endpoint is pointed at it, and the slice's executor is
//!    killed: compile, instantiate, init, weights from safetensors;
//! 2. code cached (`flashboot: false`, same handler, executor killed):
//!    compiled code memory-mapped from the disk cache, init runs;
//! 3. and pre-initialised (`flashboot: true`, executor killed): the
//!    instance starts from the snapshot a warm-up request left on disk;
//! 4. and VRAM restore (`flashboot: true`, executor kept): the worker that
//!    scaled to zero left its instance and the slice's weights parked in
//!    (pinned) host RAM; the next start pages them back in.
//!
//! "Executor killed" is SIGKILL of every live executor listed by
//! /v1/inventory; the host restarts them at once, and the run is timed only
//! once each slice shows a new live process, so the spawn is not in the
//! time. Endpoints have `min_workers: 0`, `max_workers: 1`,
//! `idle_timeout_s: 0`; before each timed request /health must show no warm
//! or initializing worker (and, for mode 4, one parked worker). Each run's
//! boot layer is checked against /health's `lastBoot`, and every mode's
//! output against the others.
//!
//! Beside model rows: the physical bound, bytes / bulk-copy bandwidth
//! measured in this process (pinned host-to-device on a GPU, memcpy on the
//! CPU), and the VRAM restore's ratio to it.
//!
//! Run: `cargo bench -p wasmpod --bench serve_coldstart -- [--device cpu|cuda]
//! [--gpus cpu|H200,H100,A100] [--sizes 1GiB,8GiB] [--repeats 5] [--dir DIR]`
//! (p50 and min of `--repeats` runs, at least 12 for echo). The server is
//! WASMPOD_BIN, else the `wasmpod` binary cargo builds with this bench
//! (target/release/wasmpod). WASMPOD_COLDSTART_WASM names a directory of
//! prebuilt example components where cargo is absent; models are generated
//! once under DIR (default target/coldstart, shared with the coldstart
//! bench) and reused.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use wasm_encoder::{ComponentSection, CustomSection};
use wasmpod::gpu::WorkerDevices;

mod common;
use common::coldstart::{
    Row, bigmodel_row_name, cold_args, device_bandwidth, example_component, generate_model,
    model_bytes, p50_min, print_table,
};
use common::{Killed, start_serve, upload_handler};

const ADMIN_KEY: &str = "wpk_bench_admin_key_0123456789abcdef";

/// How long the host may take to settle (workers retire, executors restart).
const SETTLE: Duration = Duration::from_secs(120);

/// The server binary: WASMPOD_BIN, else the one cargo built with this bench.
fn wasmpod_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("WASMPOD_BIN") {
        return PathBuf::from(bin);
    }
    let built = PathBuf::from(env!("CARGO_BIN_EXE_wasmpod"));
    assert!(
        built.exists(),
        "{} is missing: set WASMPOD_BIN to a wasmpod binary (or build with cargo bench -p wasmpod --bench serve_coldstart --no-run)",
        built.display()
    );
    built
}

/// The four modes, in the order they run for a handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    NothingCached,
    CodeCached,
    Preinitialised,
    VramRestore,
}

const MODES: [Mode; 4] = [
    Mode::NothingCached,
    Mode::CodeCached,
    Mode::Preinitialised,
    Mode::VramRestore,
];

impl Mode {
    /// The `boot` values /health may report for a start in this mode.
    fn boots(self) -> &'static [&'static str] {
        match self {
            Mode::NothingCached => &["cold"],
            Mode::CodeCached => &["cold", "code-cached"],
            Mode::Preinitialised => &["pre-initialised"],
            Mode::VramRestore => &["vram-restored"],
        }
    }

    fn accepts(self, boot: &str) -> bool {
        // serde's kebab-case spells BootLayer::Preinitialised
        // "preinitialised"; the API documents "pre-initialised".
        let plain = |s: &str| s.replace('-', "");
        self.boots().iter().any(|b| plain(b) == plain(boot))
    }

    /// A fresh (restarted, empty) executor process before each run.
    fn fresh_executor(self) -> bool {
        self != Mode::VramRestore
    }

    fn flashboot(self) -> bool {
        matches!(self, Mode::Preinitialised | Mode::VramRestore)
    }
}

/// One handler under test.
struct Subject {
    /// Row name in the table.
    name: String,
    /// Prefix of its endpoints' ids.
    key: String,
    wasm: Vec<u8>,
    /// The models directory (with `big/`) and the model's bytes.
    model: Option<(PathBuf, u64)>,
    repeats: usize,
}

/// A `wasmpod serve` of this bench, with its home directory.
struct Server {
    _child: Killed,
    home: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
    gpus: Vec<String>,
    /// Every executor restart's time as the host reports it.
    restarts_ms: Vec<f64>,
    /// Compiled artifacts of uploads removed from the host's cache.
    uncached: usize,
}

impl Server {
    async fn start(flashboot_ram_mib: u64, gpus: Vec<String>) -> Server {
        let home = tempfile::tempdir().unwrap();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(900))
            .build()
            .unwrap();
        let ram = format!("{flashboot_ram_mib}MiB");
        let (child, base) = start_serve(
            &wasmpod_bin(),
            home.path(),
            // Idle executors stay, so only the bench's kills replace them.
            &["--executor-idle", "24h", "--flashboot-ram", &ram],
            // Not warn: every executor the bench kills is a warning.
            (ADMIN_KEY, "error"),
            &client,
            SETTLE,
        )
        .await;
        Server {
            _child: child,
            home,
            base,
            client,
            gpus,
            restarts_ms: Vec::new(),
            uncached: 0,
        }
    }

    /// An admin request; returns the status and the JSON body.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A request that must succeed; returns its body.
    async fn ok(&self, method: Method, path: &str, body: Option<&Value>) -> Value {
        let (status, reply) = self.call(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path} answered {status}: {reply}"
        );
        reply
    }

    /// Upload a handler component; returns its digest.
    async fn upload(&self, wasm: Vec<u8>) -> String {
        upload_handler(&self.client, &self.base, ADMIN_KEY, wasm).await
    }

    /// Remove the compiled artifact of `digest` that the upload left in
    /// the host's code cache (`<home>/cache/<engine hash>/<digest>.cwasm`),
    /// so the next start compiles.
    fn uncache(&mut self, digest: &str) {
        let cache = self.home.path().join("cache");
        for dir in std::fs::read_dir(&cache).unwrap().flatten() {
            let artifact = dir.path().join(format!("{digest}.cwasm"));
            if artifact.exists() {
                std::fs::remove_file(&artifact).unwrap();
                self.uncached += 1;
            }
        }
    }

    async fn create_endpoint(&self, id: &str, digest: &str, mode: Mode, subject: &Subject) {
        let mut body = json!({
            "id": id,
            "handler": digest,
            "min_workers": 0,
            "max_workers": 1,
            "idle_timeout_s": 0,
            "flashboot": mode.flashboot(),
            "gpus": self.gpus,
        });
        if let Some((models, bytes)) = &subject.model {
            body["models_dir"] = json!(models.to_str().expect("a UTF-8 path"));
            body["tensor_quota_mib"] = json!((bytes >> 20) + 1024);
        }
        let (status, reply) = self.call(Method::POST, "/v1/endpoints", Some(&body)).await;
        assert_eq!(status, 201, "creating endpoint {id}: {reply}");
    }

    async fn health(&self, ep: &str) -> Value {
        self.ok(Method::GET, &format!("/v2/{ep}/health"), None)
            .await
    }

    /// Wait until `ep` has no warm or starting worker and, with `parked`,
    /// one worker parked by FlashBoot.
    async fn settle(&self, ep: &str, parked: bool) {
        let started = Instant::now();
        loop {
            let health = self.health(ep).await;
            let count = |k: &str| {
                health["workers"][k]
                    .as_u64()
                    .unwrap_or_else(|| panic!("/v2/{ep}/health has no workers.{k}: {health}"))
            };
            // A retired worker holds its slice until its executor has
            // dropped or parked its instances; a request sent before then
            // would be placed on another slice.
            if count("warm") == 0
                && count("initializing") == 0
                && (!parked || count("snapshotted") == 1)
                && !self.holds_slice(ep).await
            {
                return;
            }
            assert!(
                started.elapsed() < SETTLE,
                "{ep} did not settle to zero warm workers{} in {SETTLE:?}: {health}",
                if parked { " with one parked" } else { "" }
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The list `key` of /v1/inventory (`in_use`, `executors`).
    async fn inventory(&self, key: &str) -> Vec<Value> {
        let mut inv = self.ok(Method::GET, "/v1/inventory", None).await;
        match inv[key].take() {
            Value::Array(list) => list,
            _ => panic!("/v1/inventory has no {key}[]: {inv}"),
        }
    }

    /// Whether a worker of `ep` holds a slice.
    async fn holds_slice(&self, ep: &str) -> bool {
        let in_use = self.inventory("in_use").await;
        in_use.iter().any(|u| u["endpoint"] == ep)
    }

    /// Live executors as (slice, pid).
    async fn executors(&self) -> Vec<(String, u64)> {
        let executors = self.inventory("executors").await;
        executors
            .iter()
            .filter(|x| x["alive"] == true)
            .filter_map(|x| Some((x["slice"].as_str()?.to_string(), x["pid"].as_u64()?)))
            .collect()
    }

    /// SIGKILL every live executor and wait until each slice has a new
    /// live process (the host restarts them at once).
    async fn kill_executors(&mut self) {
        let old = self.executors().await;
        assert!(!old.is_empty(), "no live executor to kill");
        for (_, pid) in &old {
            let status = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .expect("running kill");
            assert!(status.success(), "kill -9 {pid} failed");
        }
        let started = Instant::now();
        loop {
            let executors = self.inventory("executors").await;
            let replaced = |slice: &str, old_pid: u64| {
                executors.iter().find(|x| {
                    x["slice"] == slice && x["alive"] == true && x["pid"].as_u64() != Some(old_pid)
                })
            };
            let new: Vec<_> = old
                .iter()
                .filter_map(|(slice, pid)| replaced(slice, *pid))
                .collect();
            if new.len() == old.len() {
                self.restarts_ms
                    .extend(new.iter().filter_map(|x| x["last_restart_ms"].as_f64()));
                return;
            }
            assert!(
                started.elapsed() < SETTLE,
                "executors {old:?} were not restarted: {executors:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// POST /runsync to `ep`; returns the time to the COMPLETED answer and
    /// the job's answer (output, delayTime, executionTime).
    async fn run(&self, ep: &str) -> (Duration, Value) {
        let body = json!({"input": {"bench": "serve_coldstart"}});
        let started = Instant::now();
        let reply = self
            .ok(Method::POST, &format!("/v2/{ep}/runsync"), Some(&body))
            .await;
        let took = started.elapsed();
        assert_eq!(reply["status"], "COMPLETED", "{ep}: {reply}");
        (took, reply)
    }

    /// The boot layer and start time of the worker that served `ep`'s last
    /// run, from /health's `lastBoot`; it must be a worker other than
    /// `previous` (the last one seen).
    async fn last_boot(&self, ep: &str, previous: &mut Option<String>) -> (String, f64) {
        let health = self.health(ep).await;
        let last = &health["lastBoot"];
        let (Some(worker), Some(boot)) = (last["worker"].as_str(), last["boot"].as_str()) else {
            panic!("/v2/{ep}/health has no lastBoot {{worker, boot}}: {health}");
        };
        assert_ne!(
            previous.as_deref(),
            Some(worker),
            "{ep}: lastBoot still names the previous worker: {health}"
        );
        *previous = Some(worker.to_string());
        (
            boot.to_string(),
            last["init_ms"].as_f64().unwrap_or(f64::NAN),
        )
    }

    async fn delete_endpoint(&self, ep: &str) {
        self.ok(
            Method::DELETE,
            &format!("/v1/endpoints/{ep}?force=true"),
            None,
        )
        .await;
    }
}

/// `wasm` with a custom section named `wasmpod-bench-nonce` carrying
/// `nonce` appended: a valid component with other bytes (a new digest).
fn with_nonce(wasm: &[u8], nonce: &str) -> Vec<u8> {
    let mut out = wasm.to_vec();
    CustomSection {
        name: "wasmpod-bench-nonce".into(),
        data: nonce.as_bytes().into(),
    }
    .append_to_component(&mut out);
    out
}

/// What a handler's runs gave: the row, each mode's boots and host-side
/// start times (`lastBoot.init_ms`, p50).
struct Measured {
    row: Row,
    boots: Vec<Vec<String>>,
    init_ms: Vec<f64>,
    /// The answers' delayTime and executionTime (whole ms, p50).
    delay_ms: Vec<f64>,
    exec_ms: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One handler in every mode.
async fn measure(server: &mut Server, subject: &Subject) -> Measured {
    let digest = server.upload(subject.wasm.clone()).await;
    let mut outputs: Vec<(Mode, Value)> = Vec::new();
    let mut modes = Vec::new();
    let mut boots = Vec::new();
    let mut init_ms = Vec::new();
    let mut delay_ms = Vec::new();
    let mut exec_ms = Vec::new();
    // Modes 3 and 4 share one endpoint: 4 restores what 3's workers parked.
    let ids = [
        format!("{}-cold", subject.key),
        format!("{}-code", subject.key),
        format!("{}-flash", subject.key),
        format!("{}-flash", subject.key),
    ];
    let mut last_worker = None;
    for (i, mode) in MODES.into_iter().enumerate() {
        let ep = ids[i].as_str();
        if i == 0 || ids[i - 1] != ids[i] {
            server.create_endpoint(ep, &digest, mode, subject).await;
            // Warm-up: spawns the executor, and on a FlashBoot endpoint
            // takes the snapshot after init.
            let (_, reply) = server.run(ep).await;
            outputs.push((mode, reply["output"].clone()));
            last_worker = None;
            server.last_boot(ep, &mut last_worker).await;
        }
        let mut times = Vec::new();
        let mut mode_boots = Vec::new();
        let mut mode_init = Vec::new();
        let mut mode_delay = Vec::new();
        let mut mode_exec = Vec::new();
        for r in 0..subject.repeats {
            // FlashBoot endpoints also wait for the retired worker's park,
            // so an executor is never killed in the middle of one.
            server.settle(ep, mode.flashboot()).await;
            if mode == Mode::NothingCached {
                let nonce = format!("{}-{r}-{}", std::process::id(), subject.key);
                let version = server.upload(with_nonce(&subject.wasm, &nonce)).await;
                server.uncache(&version);
                server
                    .ok(
                        Method::PATCH,
                        &format!("/v1/endpoints/{ep}"),
                        Some(&json!({"handler": version})),
                    )
                    .await;
            }
            if mode.fresh_executor() {
                server.kill_executors().await;
            }
            let executors = server.executors().await;
            let (took, reply) = server.run(ep).await;
            let ms = |field: &str| reply[field].as_f64().unwrap_or(f64::NAN);
            mode_delay.push(ms("delayTime"));
            mode_exec.push(ms("executionTime"));
            let output = reply["output"].clone();
            let spawned: Vec<_> = server
                .executors()
                .await
                .into_iter()
                .filter(|x| !executors.contains(x))
                .collect();
            assert!(
                spawned.is_empty(),
                "{} in mode {mode:?}: the run started executor(s) {spawned:?} (live before: {executors:?}), so a spawn is in its time",
                subject.name
            );
            let (boot, ms) = server.last_boot(ep, &mut last_worker).await;
            assert!(
                mode.accepts(&boot),
                "{} in mode {mode:?} started with boot {boot:?}; expected one of {:?}",
                subject.name,
                mode.boots()
            );
            times.push(took);
            mode_boots.push(boot);
            mode_init.push(ms);
            outputs.push((mode, output));
        }
        // The next mode's warm-up must find the slice free too.
        server.settle(ep, mode.flashboot()).await;
        modes.push(Some(p50_min(times)));
        mode_boots.sort();
        mode_boots.dedup();
        boots.push(mode_boots);
        init_ms.push(median(mode_init));
        delay_ms.push(median(mode_delay));
        exec_ms.push(median(mode_exec));
    }
    let (first_mode, first) = &outputs[0];
    for (mode, output) in &outputs {
        assert_eq!(
            output, first,
            "{}: the output in mode {mode:?} differs from mode {first_mode:?}",
            subject.name
        );
    }
    for ep in &ids[..3] {
        server.delete_endpoint(ep).await;
    }
    Measured {
        row: Row {
            name: subject.name.clone(),
            bytes: subject.model.as_ref().map_or(0, |(_, b)| *b),
            modes,
        },
        boots,
        init_ms,
        delay_ms,
        exec_ms,
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a listing; nothing to list.
    }
    // reqwest is built without a default TLS provider (the host picks ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cold_args("serve_coldstart", true);
    let gpus: Vec<String> = args
        .gpus
        .clone()
        .unwrap_or_else(|| if args.cuda() { "H200,H100,A100" } else { "cpu" }.into())
        .split(',')
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();

    let (device_name, bandwidth) = {
        let devices = WorkerDevices::select(args.device, u64::MAX)
            .unwrap_or_else(|e| panic!("--device {:?}: {e}", args.device));
        device_bandwidth(&devices, args.cuda())
    };

    let echo_repeats = args.repeats.max(12);
    let mut subjects = vec![Subject {
        name: "echo".into(),
        key: "echo".into(),
        wasm: example_component("echo"),
        model: None,
        repeats: echo_repeats,
    }];
    let big = example_component("bigmodel");
    for &size in &args.sizes {
        subjects.push(Subject {
            name: bigmodel_row_name(size),
            key: format!("big{}", size >> 20),
            wasm: big.clone(),
            model: Some((generate_model(&args.dir, size), model_bytes(size))),
            repeats: args.repeats,
        });
    }
    let largest_mib = args.sizes.iter().map(|&s| model_bytes(s) >> 20).max();
    let flashboot_ram_mib = largest_mib.unwrap_or(0) + 1024;

    let mut server = Server::start(flashboot_ram_mib, gpus.clone()).await;
    let mut measured = Vec::new();
    for subject in &subjects {
        eprintln!(
            "measuring {} ({} runs a mode)",
            subject.name, subject.repeats
        );
        measured.push(measure(&mut server, subject).await);
    }

    println!(
        "\ncold start through wasmpod serve (POST /runsync on an endpoint at zero workers -> COMPLETED) on {device_name} ({}, endpoint gpus {gpus:?}), p50 (min) of {} runs ({echo_repeats} for echo), --flashboot-ram {flashboot_ram_mib}MiB\n",
        if args.cuda() { "cuda" } else { "cpu" },
        args.repeats,
    );
    let rows: Vec<Row> = measured.iter().map(|m| m.row.clone()).collect();
    print_table(&rows, bandwidth, true);
    if !args.cuda() {
        println!(
            "\n(on the CPU host RAM is the device: parking moves the weights' buffers and the restore moves them back, so the memcpy bound does not apply to the VRAM-restore column)"
        );
    }

    println!(
        "\nworker start as the host reports it (lastBoot.init_ms, p50), the boot layers seen, and the answer's delayTime / executionTime (whole ms, p50):\n"
    );
    println!("| handler | nothing cached | code cached | + pre-initialised | + VRAM restore |");
    println!("|---|---|---|---|---|");
    for m in &measured {
        let cells: Vec<String> = (0..m.init_ms.len())
            .map(|i| {
                format!(
                    "{:.1} ms ({}); {} / {} ms",
                    m.init_ms[i],
                    m.boots[i].join(", "),
                    m.delay_ms[i],
                    m.exec_ms[i]
                )
            })
            .collect();
        println!("| {} | {} |", m.row.name, cells.join(" | "));
    }

    println!(
        "\nmodes 1-3 run on a restarted (empty) executor process: each run's executor was killed (SIGKILL) and the host's replacement was live before the request was sent, so its spawn is not in the times above."
    );
    let restarts = &server.restarts_ms;
    if restarts.is_empty() {
        println!("/v1/inventory reported no last_restart_ms for the restarted executors.");
    } else {
        // The host backs off after a slice's third restart (crash-loop
        // guard), so only the first three show the restart itself.
        let (first, later) = restarts.split_at(restarts.len().min(3));
        let first: Vec<String> = first.iter().map(|ms| format!("{ms:.0} ms")).collect();
        print!(
            "executor restart (death -> replacement ready, the host's last_restart_ms), {} kills: first three {}",
            restarts.len(),
            first.join(", ")
        );
        if later.is_empty() {
            println!(".");
        } else {
            println!(
                "; later ones p50 {:.0} ms (the host's crash-loop back-off: 200 ms per restart after the third, up to 4 s).",
                median(later.to_vec())
            );
        }
    }
    if server.uncached > 0 {
        println!(
            "mode 1 removed the compiled artifact that each POST /v1/handlers left in the host's cache (the upload precompiles), so its start compiles ({} removed).",
            server.uncached
        );
    }
}
