//! Compiled components cached on disk by content hash.
//!
//! Compiling a component with Cranelift takes from milliseconds to seconds;
//! loading the serialized artifact is a memory map. Artifacts live under
//! `<dir>/<engine-compat-hash>/<sha256>.cwasm`, so a wasmtime upgrade or a
//! config change never loads an incompatible artifact.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::RuntimeError;

/// The sha256 of a component's bytes, hex-encoded: its identity everywhere.
pub fn digest(wasm: &[u8]) -> String {
    hex::encode(Sha256::digest(wasm))
}

/// How a component came to be in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadSource {
    /// Compiled now (and written to the cache, if there is one).
    Compiled,
    /// Memory-mapped from the on-disk cache.
    Cached,
}

/// The on-disk artifact cache of one engine.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: Option<PathBuf>,
}

impl ComponentCache {
    /// A cache under `root` (created on demand), or none.
    pub fn new(engine: &Engine, root: Option<&Path>) -> Self {
        let dir = root.map(|root| {
            let mut h = DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut h);
            root.join(format!("{:016x}", h.finish()))
        });
        Self { dir }
    }

    fn path_for(&self, digest: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{digest}.cwasm")))
    }

    /// Load a cached artifact for `digest` if present; else compile `wasm`
    /// and store it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> Result<(Component, LoadSource), RuntimeError> {
        if let Some(path) = self.path_for(digest)
            && path.exists()
        {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash (encoded in the
            // directory name), under a directory only this host writes, and
            // renamed into place atomically, so it is a complete artifact.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, LoadSource::Cached)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "dropping unreadable cached artifact: {e:#}");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = compile(engine, wasm)?;
        if let Some(path) = self.path_for(digest)
            && let Err(e) = write_atomically(&path, &component)
        {
            tracing::warn!(path = %path.display(), "could not cache compiled component: {e}");
        }
        Ok((component, LoadSource::Compiled))
    }
}

fn write_atomically(path: &Path, component: &Component) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let dir = path.parent().expect("cache path has a parent");
    std::fs::create_dir_all(dir)?;
    // Unique per process and write: two compiles in one executor (even of
    // the same component, by two workers) never share a temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(".{}.{n}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Compile `wasm`, turning wasmtime's parse errors into advice.
pub fn compile(engine: &Engine, wasm: &[u8]) -> Result<Component, RuntimeError> {
    check_header(wasm)?;
    Component::new(engine, wasm)
        .map_err(|e| RuntimeError::Invalid(format!("the component does not compile: {e:#}")))
}

/// Reject what is not a component before handing it to the compiler, with a
/// message that says how to build one.
fn check_header(wasm: &[u8]) -> Result<(), RuntimeError> {
    if wasm.len() < 8 || &wasm[..4] != b"\0asm" {
        return Err(RuntimeError::Invalid(
            "not a WebAssembly binary (it does not start with \\0asm); upload the .wasm file that `cargo build --target wasm32-wasip2` or componentize-py produced".into(),
        ));
    }
    // Bytes 4..8: version (2 bytes) and layer (2 bytes); layer 1 = component.
    if wasm[6..8] == [0, 0] {
        return Err(RuntimeError::Invalid(
            "this is a core WebAssembly module, not a component; build for the wasm32-wasip2 target, or wrap the module with `wasm-tools component new`".into(),
        ));
    }
    Ok(())
}
