//! FlashBoot: pre-initialised instances (snapshots after `init`, restored
//! with the guest's host handles in their slots) and paged-out VRAM state,
//! with real example components, real wasmtime and real files.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use wasmpod::gpu::{ModelStore, WorkerDevices};
use wasmpod::runtime::{
    BootLayer, CancelSignal, FlashBoot, Instance, InstanceConfig, NullSink, Runtime, RuntimeConfig,
    SnapshotStore,
};
use wasmpod_tensor::PageStore;

use crate::common;

const MLP_INPUT: &str = r#"{"inputs": [[1, 1], [-2, 0.5], [-1, -3], [2, -0.25]]}"#;

fn runtime(cache: &Path) -> Runtime {
    Runtime::new(&RuntimeConfig {
        cache_dir: Some(cache.join("code")),
        ..Default::default()
    })
    .expect("runtime")
}

fn mlp_config(models: &Path) -> InstanceConfig {
    let mut config = InstanceConfig::cpu(256 << 20, 1 << 30, None);
    config.models = Some(ModelStore::new(models, config.devices.primary().clone()));
    config
}

async fn run(instance: &mut Instance, input: &str) -> String {
    instance
        .handle(
            "test",
            input,
            Arc::new(NullSink),
            CancelSignal::new(),
            Duration::from_secs(60),
        )
        .await
        .expect("job succeeds")
}

fn tokio() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn mlp_restored_from_its_snapshot_answers_exactly_as_after_init() {
    let wasm = std::fs::read(common::example_wasm("mlp")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = common::make_mlp_models(&dir.path().join("models"));
    tokio().block_on(async {
        let rt = runtime(dir.path());
        // Reference: the ordinary path, init run by the handler.
        let mut plain = rt
            .load(&wasm)
            .unwrap()
            .instantiate(&mlp_config(&models))
            .await
            .unwrap();
        let expected = run(&mut plain, MLP_INPUT).await;

        let boot = FlashBoot::new(rt.clone(), SnapshotStore::new(dir.path().join("snapshots")));
        let config = mlp_config(&models);
        let (mut cold, report) = boot.start(&wasm, &config).await.unwrap();
        assert_ne!(report.layer, BootLayer::Preinitialised);
        assert!(
            report.snapshot_taken.is_some(),
            "no snapshot: {:?}",
            report.note
        );
        assert_eq!(run(&mut cold, MLP_INPUT).await, expected);

        // A fresh model store, as after a restart: weights re-acquired.
        let config = mlp_config(&models);
        let (mut warm, report) = boot.start(&wasm, &config).await.unwrap();
        assert_eq!(report.layer, BootLayer::Preinitialised, "{:?}", report.note);
        // fc1ᵀ and fc2ᵀ (computed in init, saved as bytes), the two biases
        // (weights, re-acquired through the model store) and the slots the
        // guest freed in between.
        assert!(report.handles >= 4, "{report:?}");
        for _ in 0..3 {
            assert_eq!(run(&mut warm, MLP_INPUT).await, expected);
        }
    });
}

#[test]
fn echo_snapshot_restores_without_init() {
    let wasm = std::fs::read(common::example_wasm("echo")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tokio().block_on(async {
        let boot = FlashBoot::new(
            runtime(dir.path()),
            SnapshotStore::new(dir.path().join("s")),
        );
        let config = InstanceConfig::cpu(64 << 20, 1 << 20, None);
        let (mut a, first) = boot.start(&wasm, &config).await.unwrap();
        let (mut b, second) = boot.start(&wasm, &config).await.unwrap();
        assert!(first.snapshot_taken.is_some(), "{:?}", first.note);
        assert_eq!(second.layer, BootLayer::Preinitialised, "{:?}", second.note);
        let input = r#"{"x":[1,2,3],"s":"é"}"#;
        assert_eq!(run(&mut a, input).await, run(&mut b, input).await);
    });
}

/// What an upload precompiles is what a first FlashBoot start loads: that
/// start maps compiled code instead of compiling.
#[test]
fn precompiled_handler_starts_code_cached() {
    let wasm = std::fs::read(common::example_wasm("echo")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tokio().block_on(async {
        FlashBoot::precompile(&runtime(dir.path()), &wasm).unwrap();
        // A fresh runtime on the same cache, as an executor has.
        let boot = FlashBoot::new(
            runtime(dir.path()),
            SnapshotStore::new(dir.path().join("s")),
        );
        let config = InstanceConfig::cpu(64 << 20, 1 << 20, None);
        let (_, first) = boot.start(&wasm, &config).await.unwrap();
        assert_eq!(first.layer, BootLayer::CodeCached, "{:?}", first.note);
        assert!(first.snapshot_taken.is_some(), "{:?}", first.note);
    });
}

#[test]
fn a_snapshot_is_never_used_for_another_handler_or_configuration() {
    let echo = std::fs::read(common::example_wasm("echo")).unwrap();
    let stream = std::fs::read(common::example_wasm("stream")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tokio().block_on(async {
        let snapshots = SnapshotStore::new(dir.path().join("s"));
        let boot = FlashBoot::new(runtime(dir.path()), snapshots.clone());
        let config = InstanceConfig::cpu(64 << 20, 1 << 20, None);
        let echo_digest = wasmpod::runtime::digest(&echo);
        let stream_digest = wasmpod::runtime::digest(&stream);
        let echo_key = SnapshotStore::key(&echo_digest, &config);
        assert_ne!(echo_key, SnapshotStore::key(&stream_digest, &config));
        let mut other = config.clone();
        other.env.push(("MODE".into(), "fast".into()));
        assert_ne!(
            echo_key,
            SnapshotStore::key(&echo_digest, &other),
            "env is part of the key"
        );

        boot.start(&echo, &config).await.unwrap();
        assert!(snapshots.root().join(&echo_key).exists());
        // Plant echo's snapshot where stream's would be: it must be refused
        // (the manifest names echo), discarded, and stream started cold.
        let stream_key = SnapshotStore::key(&stream_digest, &config);
        copy_dir(
            &snapshots.root().join(&echo_key),
            &snapshots.root().join(&stream_key),
        );
        let err = snapshots
            .load(&stream_key, &stream_digest)
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("not valid for this handler"),
            "{err}"
        );
        copy_dir(
            &snapshots.root().join(&echo_key),
            &snapshots.root().join(&stream_key),
        );
        let (mut instance, report) = boot.start(&stream, &config).await.unwrap();
        assert_ne!(report.layer, BootLayer::Preinitialised);
        assert!(
            report.note.unwrap_or_default().contains("not valid"),
            "the refusal is reported"
        );
        let out: serde_json::Value =
            serde_json::from_str(&run(&mut instance, r#"{"n":2}"#).await).unwrap();
        assert_eq!(
            out,
            serde_json::json!({"count": 2}),
            "stream's own code ran"
        );

        // A different environment is another key: cold again.
        let (_, report) = boot.start(&echo, &other).await.unwrap();
        assert_ne!(report.layer, BootLayer::Preinitialised);
    });
}

fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn wasmpod_run(
    home: &Path,
    wasm: &Path,
    input: &str,
    extra: &[&str],
) -> (serde_json::Value, String) {
    let out = Command::new(common::wasmpod_bin())
        .arg("--home")
        .arg(home)
        .arg("run")
        .arg(wasm)
        .args([
            "--input",
            input,
            "--device",
            "cpu",
            "--flashboot",
            "--timings",
        ])
        .args(extra)
        .output()
        .expect("running wasmpod");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}); stderr: {stderr}"));
    (value, stderr)
}

#[test]
fn snapshots_survive_a_process_restart() {
    let wasm = common::example_wasm("mlp");
    let home = tempfile::tempdir().unwrap();
    let models = common::make_mlp_models(&home.path().join("models"));
    let models = models.to_str().unwrap();
    let (first, err1) = wasmpod_run(home.path(), &wasm, MLP_INPUT, &["--models", models]);
    assert!(err1.contains("served by cold"), "{err1}");
    assert!(err1.contains("snapshot taken"), "{err1}");
    let (second, err2) = wasmpod_run(home.path(), &wasm, MLP_INPUT, &["--models", models]);
    assert!(err2.contains("served by pre-initialised"), "{err2}");
    assert_eq!(first, second);
}

#[test]
fn paged_out_worker_answers_the_same_within_its_budget_and_leaves_nothing() {
    let wasm = std::fs::read(common::example_wasm("mlp")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = common::make_mlp_models(&dir.path().join("models"));
    let spill = dir.path().join("spill");
    tokio().block_on(async {
        let config = mlp_config(&models);
        let account = Arc::clone(config.devices.account());
        let rt = runtime(dir.path());
        let mut instance = rt.load(&wasm).unwrap().instantiate(&config).await.unwrap();
        let expected = run(&mut instance, MLP_INPUT).await;
        assert!(account.used() > 0);

        // 100 bytes of RAM: the 16-byte biases fit, the rest spills.
        let pages = PageStore::new(100, &spill);
        let own = instance.page_out(&pages).unwrap();
        let weights = config.models.as_ref().unwrap().page_out(&pages).unwrap();
        assert_eq!(own.tensors, 2, "fc1ᵀ and fc2ᵀ are the guest's own");
        assert_eq!(weights.tensors, 4, "the model's four weights");
        assert_eq!(account.used(), 0, "no device memory left to the worker");
        assert!(
            pages.ram_used() <= 100,
            "budget respected: {}",
            pages.ram_used()
        );
        assert!(pages.disk_used() > 0, "over budget spills to disk");
        assert_eq!(
            pages.ram_used() + pages.disk_used(),
            own.bytes + weights.bytes
        );
        assert!(std::fs::read_dir(&spill).unwrap().count() > 0);

        // The next job pages the instance's tensors back in first; the
        // model store pages in the weights the guest still holds on demand
        // and the rest (fc1/fc2 before init transposed them) in bulk.
        assert_eq!(run(&mut instance, MLP_INPUT).await, expected);
        assert!(!instance.is_paged_out());
        let back = config.models.as_ref().unwrap().page_in().unwrap();
        assert_eq!(back.tensors, 2, "the two weights only init used");
        assert_eq!(
            (pages.ram_used(), pages.disk_used()),
            (0, 0),
            "paged copies released"
        );
        assert_eq!(
            std::fs::read_dir(&spill).unwrap().count(),
            0,
            "spill files removed"
        );

        // Out again, then dropped while paged out: nothing is left over.
        instance.page_out(&pages).unwrap();
        config.models.as_ref().unwrap().page_out(&pages).unwrap();
        drop(instance);
        drop(config);
        assert_eq!((pages.ram_used(), pages.disk_used()), (0, 0));
        assert_eq!(std::fs::read_dir(&spill).unwrap().count(), 0);
        assert_eq!(account.used(), 0);
    });
}

#[test]
fn cuda_paged_out_worker_answers_the_same() {
    if !wasmpod_tensor::cuda::available() {
        println!("skipped: no CUDA device");
        return;
    }
    let wasm = std::fs::read(common::example_wasm("mlp")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = common::make_mlp_models(&dir.path().join("models"));
    tokio().block_on(async {
        let mut config = InstanceConfig::cpu(256 << 20, 1 << 30, None);
        config.devices = WorkerDevices::cuda(1 << 30).unwrap();
        config.models = Some(ModelStore::new(&models, config.devices.primary().clone()));
        let rt = runtime(dir.path());
        let boot = FlashBoot::new(rt, SnapshotStore::new(dir.path().join("s")));
        let (mut cold, _) = boot.start(&wasm, &config).await.unwrap();
        let expected = run(&mut cold, MLP_INPUT).await;
        let (mut warm, report) = boot.start(&wasm, &config).await.unwrap();
        assert_eq!(report.layer, BootLayer::Preinitialised, "{:?}", report.note);
        let pages = PageStore::new(1 << 30, dir.path().join("spill"));
        warm.page_out(&pages).unwrap();
        drop(cold);
        config.models.as_ref().unwrap().page_out(&pages).unwrap();
        assert_eq!(config.devices.account().used(), 0);
        config.models.as_ref().unwrap().page_in().unwrap();
        assert_eq!(run(&mut warm, MLP_INPUT).await, expected);
    });
}
