//! Cold-start benchmark (FlashBoot): time from "a job arrives for a handler
//! with no live instance" to the job's output, for a handler without a
//! model (echo) and for `bigmodel` (init takes every weight of a generated
//! safetensors model) at several sizes, in four modes:
//!
//! 1. nothing cached: compile, instantiate, init (weights from safetensors);
//! 2. code cached: compiled code memory-mapped from the cache, init runs;
//! 3. and pre-initialised: started from the snapshot taken after init (no
//!    init; the guest's handles re-created, weights from safetensors);
//! 4. and VRAM restore: as 3, the weights paged back in from host RAM
//!    (pinned on a GPU) where the worker's scale-to-zero left them.
//!
//! Beside each model row: the physical bound, bytes / bulk-copy bandwidth
//! measured here (pinned host-to-device on a GPU, memcpy on the CPU).
//! Outputs of every mode are checked equal.
//!
//! Run: `cargo bench -p wasmpod --bench coldstart -- [--device cpu|cuda]
//! [--sizes 1GiB,8GiB] [--repeats 5] [--dir DIR]` (also WASMPOD_COLDSTART_SIZES,
//! WASMPOD_COLDSTART_DEVICE, WASMPOD_COLDSTART_DIR; WASMPOD_COLDSTART_WASM
//! names a directory of prebuilt example components where cargo is absent).
//! Models are generated once under DIR (default target/coldstart) and reused.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use safetensors::Dtype;
use safetensors::tensor::TensorView;
use wasmpod::gpu::{BackendChoice, ModelStore, WorkerDevices};
use wasmpod::runtime::{
    BootLayer, CancelSignal, FlashBoot, Instance, InstanceConfig, NullSink, Runtime, RuntimeConfig,
    SnapshotStore,
};
use wasmpod_tensor::{DType, Device, PageStore};

mod common;
use common::root;

/// Generated weights are `[ROWS, COLS]` f32, four per shard file.
const ROWS: usize = 4096;
const COLS: usize = 4096;
const WEIGHTS_PER_SHARD: usize = 4;
const WEIGHT_BYTES: usize = ROWS * COLS * 4;
const SHARD_BYTES: usize = WEIGHT_BYTES * WEIGHTS_PER_SHARD;

struct Args {
    device: BackendChoice,
    sizes: Vec<u64>,
    repeats: usize,
    dir: PathBuf,
}

fn parse_size(s: &str) -> u64 {
    let s = s.trim();
    let (num, mult) = if let Some(n) = s.strip_suffix("GiB") {
        (n, 1u64 << 30)
    } else if let Some(n) = s.strip_suffix("MiB") {
        (n, 1 << 20)
    } else {
        (s, 1)
    };
    num.trim().parse::<u64>().expect("sizes like 1GiB, 512MiB") * mult
}

fn args() -> Args {
    let mut device = std::env::var("WASMPOD_COLDSTART_DEVICE").unwrap_or_else(|_| "cpu".into());
    let mut sizes = std::env::var("WASMPOD_COLDSTART_SIZES").unwrap_or_else(|_| "1GiB,8GiB".into());
    let mut dir = std::env::var("WASMPOD_COLDSTART_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target/coldstart"));
    let mut repeats = 5;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--device" => device = it.next().expect("--device cpu|cuda"),
            "--sizes" => sizes = it.next().expect("--sizes 1GiB,8GiB"),
            "--repeats" => repeats = it.next().expect("--repeats N").parse().expect("a number"),
            "--dir" => dir = PathBuf::from(it.next().expect("--dir DIR")),
            "--bench" => {}
            other => panic!("unknown argument {other}; see the header of benches/coldstart.rs"),
        }
    }
    let device = match device.as_str() {
        "cpu" => BackendChoice::Cpu,
        "cuda" => BackendChoice::Cuda,
        other => panic!("--device {other}: use cpu or cuda"),
    };
    let sizes = sizes
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse_size)
        .collect();
    Args {
        device,
        sizes,
        repeats: repeats.max(1),
        dir,
    }
}

/// The example component `name`: from WASMPOD_COLDSTART_WASM (a directory
/// of prebuilt `example_<name>.wasm`, for machines without cargo) or built
/// now.
fn build_example(name: &str) -> Vec<u8> {
    if let Ok(dir) = std::env::var("WASMPOD_COLDSTART_WASM") {
        let path = Path::new(&dir).join(format!("example_{name}.wasm"));
        return std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    std::fs::read(common::example_wasm(name)).unwrap()
}

/// Writes `bytes` of f32 weights as safetensors shards under `dir/big`
/// (kept across runs: a marker records the size written).
fn generate_model(dir: &Path, bytes: u64) -> PathBuf {
    let models = dir.join(format!("models-{}MiB", bytes >> 20));
    let big = models.join("big");
    let marker = big.join(".complete");
    if marker.exists() {
        return models;
    }
    let _ = std::fs::remove_dir_all(&big);
    std::fs::create_dir_all(&big).unwrap();
    let shards = (bytes as usize).div_ceil(SHARD_BYTES);
    let mut data = vec![0f32; SHARD_BYTES / 4];
    eprintln!(
        "generating {shards} shard(s) of {} MiB under {}",
        SHARD_BYTES >> 20,
        big.display()
    );
    for shard in 0..shards {
        for (i, v) in data.iter_mut().enumerate() {
            // Distinct per shard and position, cheap to make.
            *v = ((i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(shard as u32 * 7919)
                % 2048) as f32
                / 1024.0
                - 1.0;
        }
        let bytes: &[u8] = bytemuck::cast_slice(&data);
        let views: Vec<(String, TensorView<'_>)> = (0..WEIGHTS_PER_SHARD)
            .map(|w| {
                let name = format!("layer{shard:04}.w{w}");
                let slice = &bytes[w * WEIGHT_BYTES..(w + 1) * WEIGHT_BYTES];
                (
                    name,
                    TensorView::new(Dtype::F32, vec![ROWS, COLS], slice).unwrap(),
                )
            })
            .collect();
        let path = big.join(format!("shard-{shard:04}.safetensors"));
        safetensors::tensor::serialize_to_file(views, None, &path).unwrap();
    }
    std::fs::write(&marker, bytes.to_string()).unwrap();
    models
}

/// Best bulk-copy bandwidth into `device` (bytes/s): pinned host-to-device
/// through the backend on a GPU; on the CPU a plain memcpy between two
/// already-faulted buffers (what a CPU "upload" can at best be).
fn bulk_bandwidth(device: &Device, cuda: bool) -> f64 {
    const LEN: usize = 512 << 20;
    let mut best = f64::MAX;
    if cuda {
        // The size of one generated weight, as page-in copies them.
        let mut small = device.host_buffer(WEIGHT_BYTES).unwrap();
        small.as_mut_slice().fill(1);
        let t = Instant::now();
        for _ in 0..16 {
            drop(
                device
                    .upload_host(DType::U8, &[WEIGHT_BYTES], &small)
                    .unwrap(),
            );
        }
        eprintln!(
            "pinned upload of {} MiB pieces: {:.1} GB/s",
            WEIGHT_BYTES >> 20,
            16.0 * WEIGHT_BYTES as f64 / t.elapsed().as_secs_f64() / 1e9
        );
        let mut buf = device.host_buffer(LEN).unwrap();
        buf.as_mut_slice().fill(1);
        for _ in 0..5 {
            let t = Instant::now();
            let up = device.upload_host(DType::U8, &[LEN], &buf).unwrap();
            best = best.min(t.elapsed().as_secs_f64());
            drop(up);
        }
    } else {
        let src = vec![1u8; LEN];
        let mut dst = vec![2u8; LEN];
        for _ in 0..5 {
            let t = Instant::now();
            dst.copy_from_slice(&src);
            std::hint::black_box(&dst);
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    LEN as f64 / best
}

fn config(devices: &Arc<WorkerDevices>, models: Option<&Path>) -> InstanceConfig {
    let mut c = InstanceConfig::cpu(256 << 20, u64::MAX, None);
    c.devices = Arc::clone(devices);
    c.models = models.map(|m| ModelStore::new(m, devices.primary().clone()));
    c
}

async fn first_output(instance: &mut Instance) -> String {
    instance
        .handle(
            "bench",
            "{}",
            Arc::new(NullSink),
            CancelSignal::new(),
            Duration::from_secs(600),
        )
        .await
        .expect("the job succeeds")
}

fn runtime(cache: Option<PathBuf>) -> Runtime {
    Runtime::new(&RuntimeConfig {
        cache_dir: cache,
        ..Default::default()
    })
    .unwrap()
}

#[derive(Default)]
struct Row {
    name: String,
    bytes: u64,
    modes: Vec<Option<(Duration, Duration)>>,
}

fn p50_min(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0])
}

/// One handler in every mode; returns (p50, min) per mode.
async fn measure(
    name: &str,
    wasm: &[u8],
    devices: &Arc<WorkerDevices>,
    models: Option<&Path>,
    work: &Path,
    repeats: usize,
) -> Row {
    let mut outputs = Vec::new();
    let mut modes = Vec::new();

    // 1. Nothing cached: a new code cache each time, init from safetensors.
    let mut times = Vec::new();
    for r in 0..repeats {
        let cache = work.join(format!("cold-{name}-{r}"));
        let _ = std::fs::remove_dir_all(&cache);
        let rt = runtime(Some(cache.clone()));
        let cfg = config(devices, models);
        let t = Instant::now();
        let mut inst = rt.load(wasm).unwrap().instantiate(&cfg).await.unwrap();
        outputs.push(first_output(&mut inst).await);
        times.push(t.elapsed());
        drop(inst);
        let _ = std::fs::remove_dir_all(&cache);
    }
    modes.push(Some(p50_min(times)));

    // 2. Code cached.
    let cache = work.join(format!("code-{name}"));
    let rt = runtime(Some(cache.clone()));
    rt.load(wasm).unwrap();
    let mut times = Vec::new();
    for _ in 0..repeats {
        let cfg = config(devices, models);
        let t = Instant::now();
        let mut inst = rt.load(wasm).unwrap().instantiate(&cfg).await.unwrap();
        outputs.push(first_output(&mut inst).await);
        times.push(t.elapsed());
    }
    modes.push(Some(p50_min(times)));

    // 3. Pre-initialised: the snapshot is taken by one cold start first.
    let boot = FlashBoot::new(
        rt.clone(),
        SnapshotStore::new(work.join(format!("snap-{name}"))),
    );
    {
        let cfg = config(devices, models);
        let (_, report) = boot.start(wasm, &cfg).await.unwrap();
        assert!(
            report.snapshot_taken.is_some(),
            "no snapshot for {name}: {:?}",
            report.note
        );
    }
    let mut times = Vec::new();
    for _ in 0..repeats {
        let cfg = config(devices, models);
        let t = Instant::now();
        let (mut inst, report) = boot.start(wasm, &cfg).await.unwrap();
        outputs.push(first_output(&mut inst).await);
        times.push(t.elapsed());
        assert_eq!(report.layer, BootLayer::Preinitialised, "{:?}", report.note);
    }
    modes.push(Some(p50_min(times)));

    // 4. + VRAM restore: the worker scaled to zero with its weights paged
    // out to host RAM; the next start pages them in, then restores.
    if models.is_some() {
        let mut times = Vec::new();
        for r in 0..repeats {
            let cfg = config(devices, models);
            let pages = PageStore::new(u64::MAX, work.join(format!("paging-{name}-{r}")));
            {
                let (inst, _) = boot.start(wasm, &cfg).await.unwrap();
                drop(inst);
                let store = cfg.models.as_ref().unwrap();
                store.page_out(&pages).unwrap();
                assert_eq!(store.resident_bytes(), 0);
            }
            let t = Instant::now();
            let back = cfg.models.as_ref().unwrap().page_in().unwrap();
            let paged_in = t.elapsed();
            let (mut inst, report) = boot.start(wasm, &cfg).await.unwrap();
            let started = t.elapsed();
            outputs.push(first_output(&mut inst).await);
            times.push(t.elapsed());
            eprintln!(
                "{name} VRAM restore: page-in of {} weights ({} bytes) {paged_in:?}, started at {started:?}, output at {:?}",
                back.tensors,
                back.bytes,
                t.elapsed()
            );
            assert_eq!(report.layer, BootLayer::Preinitialised);
        }
        modes.push(Some(p50_min(times)));
    } else {
        modes.push(None);
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "{name}: outputs differ between modes: {outputs:?}"
    );
    let _ = std::fs::remove_dir_all(&cache);
    Row {
        name: name.to_string(),
        bytes: 0,
        modes,
    }
}

fn fmt(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn main() {
    let args = args();
    let devices = WorkerDevices::select(args.device, u64::MAX)
        .unwrap_or_else(|e| panic!("--device {:?}: {e}", args.device));
    let cuda = args.device == BackendChoice::Cuda;
    let device_name = devices.infos().next().unwrap().name.clone();
    std::fs::create_dir_all(&args.dir).unwrap();
    let work = args.dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let echo = build_example("echo");
    let big = build_example("bigmodel");
    let bandwidth = bulk_bandwidth(devices.primary(), cuda);
    eprintln!(
        "device {device_name}: bulk copy {:.1} GB/s ({})",
        bandwidth / 1e9,
        if cuda {
            "pinned host-to-device"
        } else {
            "memcpy"
        }
    );

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    rows.push(tokio.block_on(measure(
        "echo",
        &echo,
        &devices,
        None,
        &work,
        args.repeats * 4,
    )));
    for &size in &args.sizes {
        let models = generate_model(&args.dir, size);
        let name = format!("bigmodel {} GiB", size as f64 / (1u64 << 30) as f64);
        let mut row = tokio.block_on(measure(
            &format!("big{}", size >> 20),
            &big,
            &devices,
            Some(&models),
            &work,
            args.repeats,
        ));
        row.name = name;
        row.bytes = (size as usize).div_ceil(SHARD_BYTES) as u64 * SHARD_BYTES as u64;
        rows.push(row);
    }
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "\ncold start to first job output on {device_name} ({}), p50 (min) of {} runs ({} for echo)\n",
        if cuda { "cuda" } else { "cpu" },
        args.repeats,
        args.repeats * 4
    );
    println!(
        "| handler | nothing cached | code cached | + pre-initialised | + VRAM restore | bound (bytes / bulk copy) |"
    );
    println!("|---|---|---|---|---|---|");
    for row in &rows {
        let cells: Vec<String> = row
            .modes
            .iter()
            .map(|m| match m {
                Some((p50, min)) => format!("{} ({})", fmt(*p50), fmt(*min)),
                None => "n/a (no VRAM state)".into(),
            })
            .collect();
        let bound = if row.bytes == 0 {
            "—".to_string()
        } else {
            format!(
                "{} ({:.2} GB at {:.1} GB/s)",
                fmt(Duration::from_secs_f64(row.bytes as f64 / bandwidth)),
                row.bytes as f64 / 1e9,
                bandwidth / 1e9
            )
        };
        println!("| {} | {} | {} |", row.name, cells.join(" | "), bound);
    }
}
