//! FlashBoot layer 2: instances pre-initialised after `init`.
//!
//! A snapshot is the handler component rewritten by wasmtime-wizer so its
//! linear memories and globals start as they were after `init` (a new
//! instance gets that heap copy-on-write from the pooling allocator and runs
//! no `init`), plus a manifest of the host handles the guest kept across
//! `init`: for each slot of the instance's handle table, "model M",
//! "weight W of model M" (re-acquired through the model store, shared, no
//! copy) or "tensor bytes" (saved beside it), or a hole. [`shim`] adds the
//! exports that put those handles back in the same slots.
//!
//! Snapshots live on disk under `<cache>/snapshots/<key>/`, where the key
//! hashes the handler's digest, the wasmpod version and every setting that
//! can change what `init` leaves behind (environment, memory cap, model
//! directory, devices), so one handler's snapshot is never used for
//! another; the manifest repeats the digest and is checked on load.

pub mod shim;
mod store;
pub(crate) mod wizer;

pub use store::{Manifest, Slot, Snapshot, SnapshotStore};

/// Why a snapshot could not be taken or used. None of these fail a start:
/// FlashBoot falls back to running `init` and says why.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// wasmtime-wizer could not instrument or rewrite the component (for
    /// example a component layout it does not support yet).
    #[error("wizer cannot snapshot this component: {0}")]
    Wizer(String),
    /// Adding the restore exports failed.
    #[error("adding the restore exports to the snapshot failed: {0}")]
    Rewrite(String),
    /// The guest keeps a host resource across `init` that a snapshot cannot
    /// re-create (a WASI stream, a file, a socket).
    #[error(
        "the handler keeps a {0} open across init, which a snapshot cannot restore; it starts with init instead (close it before init returns to get pre-initialised starts)"
    )]
    UnsupportedResource(String),
    /// Reading or writing the snapshot directory failed.
    #[error("snapshot files under {path}: {message}")]
    Io { path: String, message: String },
    /// The files on disk do not belong to this handler/configuration or are
    /// damaged; they are discarded.
    #[error("snapshot {path} is not valid for this handler: {reason}")]
    Mismatch { path: String, reason: String },
    /// Re-creating the handles on restore failed.
    #[error("restoring the handles the handler kept across init failed: {0}")]
    Restore(String),
}
