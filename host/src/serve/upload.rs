//! Receiving large uploads: the body is written to a temporary file while
//! it is hashed, never held in memory whole.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Why an upload could not be received.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the upload is empty; send the file's bytes as the request body")]
    Empty,
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("storing the upload: {0}")]
    Io(#[from] std::io::Error),
}

/// A received upload in a temporary file, removed on drop unless persisted.
pub struct Received {
    path: Option<PathBuf>,
    pub sha256: String,
    pub size: u64,
}

impl Received {
    pub fn path(&self) -> &Path {
        self.path.as_deref().expect("a received upload has a path")
    }

    /// Move the file to `dest` (same filesystem), keeping it.
    pub fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        let from = self.path.take().expect("a received upload has a path");
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::rename(&from, dest).inspect_err(|_| {
            let _ = std::fs::remove_file(&from);
        })
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write `body` to a new file under `tmp_dir`, hashing as it goes; stop
/// with [`UploadError::TooLarge`] past `limit` bytes.
pub async fn receive<S, B, E>(tmp_dir: &Path, body: S, limit: u64) -> Result<Received, UploadError>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    tokio::fs::create_dir_all(tmp_dir).await?;
    let path = tmp_dir.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
    let mut received = Received {
        path: Some(path.clone()),
        sha256: String::new(),
        size: 0,
    };
    let mut file = tokio::fs::File::create(&path).await?;
    let mut hasher = Sha256::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| UploadError::Interrupted(e.to_string()))?;
        let bytes = chunk.as_ref();
        received.size += bytes.len() as u64;
        if received.size > limit {
            return Err(UploadError::TooLarge { limit });
        }
        hasher.update(bytes);
        file.write_all(bytes).await?;
    }
    if received.size == 0 {
        return Err(UploadError::Empty);
    }
    file.flush().await?;
    file.sync_all().await?;
    received.sha256 = hex::encode(hasher.finalize());
    Ok(received)
}
