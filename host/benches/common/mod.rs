//! What the benchmark programs share: the workspace root, example components
//! built for wasm32-wasip2, child processes killed on drop, free ports, and
//! sizes read from the environment; the cold-start benches' own shared part
//! is in [`coldstart`].
#![allow(dead_code)]

pub mod coldstart;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds the example crate `example-<name>` for wasm32-wasip2 (release)
/// and returns the component's path.
pub fn example_wasm(name: &str) -> PathBuf {
    let status = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .arg("-p")
        .arg(format!("example-{name}"))
        .status()
        .expect("running cargo to build an example");
    assert!(status.success(), "building example-{name} failed");
    root().join(format!(
        "target/wasm32-wasip2/release/example_{}.wasm",
        name.replace('-', "_")
    ))
}

/// `name` from the environment as a number, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process that is killed (and reaped) when dropped, so a panicking
/// bench leaves no server behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}
