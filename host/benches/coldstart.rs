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

use wasmpod::gpu::{ModelStore, WorkerDevices};
use wasmpod::runtime::{
    BootLayer, CancelSignal, FlashBoot, Instance, InstanceConfig, NullSink, Runtime, RuntimeConfig,
    SnapshotStore,
};
use wasmpod_tensor::PageStore;

mod common;
use common::coldstart::{
    Row, bigmodel_row_name, cold_args, device_bandwidth, example_component, generate_model,
    model_bytes, p50_min, print_table,
};

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

fn main() {
    let args = cold_args("coldstart", false);
    let devices = WorkerDevices::select(args.device, u64::MAX)
        .unwrap_or_else(|e| panic!("--device {:?}: {e}", args.device));
    let work = args.dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    let echo = example_component("echo");
    let big = example_component("bigmodel");
    let (device_name, bandwidth) = device_bandwidth(&devices, args.cuda());

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
        let mut row = tokio.block_on(measure(
            &format!("big{}", size >> 20),
            &big,
            &devices,
            Some(&models),
            &work,
            args.repeats,
        ));
        row.name = bigmodel_row_name(size);
        row.bytes = model_bytes(size);
        rows.push(row);
    }
    let _ = std::fs::remove_dir_all(&work);

    println!(
        "\ncold start to first job output on {device_name} ({}), p50 (min) of {} runs ({} for echo)\n",
        if args.cuda() { "cuda" } else { "cpu" },
        args.repeats,
        args.repeats * 4
    );
    print_table(&rows, bandwidth, false);
}
