//! Handler versions on disk: uploads are received to a temporary file,
//! validated as components of world `handler` or `http-handler` (recorded
//! with the version) and precompiled (the
//! runtime's compiled-code cache, shared with the executors; also, in the
//! background, the variant a FlashBoot start snapshots), then kept as
//! `<dir>/<sha256>.wasm`, where the slices' executors load them from.

use std::path::PathBuf;

use futures_util::Stream;

use super::upload::{self, UploadError};
use crate::runtime::{FlashBoot, Runtime, RuntimeError, SnapshotStore, World};
use crate::store::{HandlerRecord, Store, StoreError};

/// Why a handler operation failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The bytes are not a valid handler; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    #[error("no handler version {0}; upload it with POST /v1/handlers")]
    NotFound(String),
    #[error("loading the handler: {0}")]
    Runtime(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("handler storage: {0}")]
    Io(#[from] std::io::Error),
}

/// The uploaded handler versions of this host.
pub struct HandlerRepo {
    dir: PathBuf,
    runtime: Runtime,
    snapshots: SnapshotStore,
    store: Store,
    max_bytes: u64,
}

impl HandlerRepo {
    pub fn new(
        dir: PathBuf,
        runtime: Runtime,
        snapshots: SnapshotStore,
        store: Store,
        max_bytes: u64,
    ) -> Self {
        Self {
            dir,
            runtime,
            snapshots,
            store,
            max_bytes,
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where the component `digest` is kept (executors load it from there).
    pub fn path_of(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.wasm"))
    }

    /// Receive, validate, precompile and record a handler. Returns the
    /// record and whether it is new.
    pub async fn upload<S, B, E>(&self, body: S) -> Result<(HandlerRecord, bool), HandlerError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        let received = upload::receive(&self.dir.join("tmp"), body, self.max_bytes).await?;
        let digest = received.sha256.clone();
        if let Some(existing) = self.store.get_handler(&digest).await?
            && self.path_of(&digest).exists()
        {
            return Ok((existing, false));
        }
        let runtime = self.runtime.clone();
        let path = received.path().to_path_buf();
        // Validation and precompilation; the executors load the component
        // from disk later, its compiled code from the cache.
        let world = tokio::task::spawn_blocking(move || -> Result<World, HandlerError> {
            let file = std::fs::File::open(&path)?;
            // SAFETY: the temporary file is private to this upload and not
            // modified while mapped.
            let bytes = unsafe { memmap2::Mmap::map(&file) }?;
            runtime
                .load(&bytes)
                .map(|h| h.world())
                .map_err(|e| match e {
                    RuntimeError::Invalid(msg) => HandlerError::Invalid(msg),
                    other => HandlerError::Runtime(other.to_string()),
                })
        })
        .await
        .map_err(|e| HandlerError::Runtime(format!("the validation task failed: {e}")))??;
        let size = received.size as i64;
        received.persist(&self.path_of(&digest))?;
        self.precompile_for_flashboot(&digest);
        let created = self
            .store
            .put_handler(&digest, size, &world.to_string())
            .await?;
        if self.store.shared() {
            // The other hosts of the cluster fetch it from there.
            let bytes = tokio::fs::read(self.path_of(&digest)).await?;
            self.store.put_handler_bytes(&digest, &bytes).await?;
        }
        let record = self
            .store
            .get_handler(&digest)
            .await?
            .ok_or_else(|| HandlerError::NotFound(digest.clone()))?;
        Ok((record, created))
    }

    /// In the background, compile the component FlashBoot's first start of
    /// this version runs (endpoints have FlashBoot on by default), so that
    /// start finds it in the code cache. Best effort: a start that comes
    /// first compiles it itself.
    fn precompile_for_flashboot(&self, digest: &str) {
        let runtime = self.runtime.clone();
        let path = self.path_of(digest);
        tokio::task::spawn_blocking(move || {
            let compiled = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|wasm| FlashBoot::precompile(&runtime, &wasm).map_err(|e| e.to_string()));
            if let Err(e) = compiled {
                tracing::warn!(path = %path.display(), "precompiling for FlashBoot: {e}");
            }
        });
    }

    /// Make sure the component `digest` is on this host's disk: in a
    /// cluster, a version uploaded to another host is fetched from the
    /// shared store, verified against its digest, and kept here.
    pub async fn ensure_local(&self, digest: &str) -> Result<(), HandlerError> {
        let path = self.path_of(digest);
        if path.exists() {
            return Ok(());
        }
        let bytes = self
            .store
            .handler_bytes(digest)
            .await?
            .ok_or_else(|| HandlerError::NotFound(digest.to_string()))?;
        let actual = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        if actual != digest {
            return Err(HandlerError::Invalid(format!(
                "the stored bytes of handler {digest} hash to {actual}; upload it again"
            )));
        }
        let tmp = self
            .dir
            .join(format!(".{digest}.{}.part", uuid::Uuid::new_v4().simple()));
        tokio::fs::write(&tmp, &bytes).await?;
        tokio::fs::rename(&tmp, &path).await?;
        self.precompile_for_flashboot(digest);
        Ok(())
    }

    /// Forget a handler version (the caller checked no endpoint uses it),
    /// with its FlashBoot snapshots.
    pub async fn delete(&self, digest: &str) -> Result<bool, HandlerError> {
        let existed = self.store.delete_handler(digest).await?;
        match std::fs::remove_file(self.path_of(digest)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let snapshots = self.snapshots.clone();
        let digest = digest.to_string();
        let removed = tokio::task::spawn_blocking(move || snapshots.remove_handler(&digest))
            .await
            .unwrap_or(0);
        if removed > 0 {
            tracing::debug!(
                removed,
                "FlashBoot snapshots of the deleted handler removed"
            );
        }
        Ok(existed)
    }
}
