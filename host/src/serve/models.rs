//! The host's managed model store, content-addressed: every file is kept
//! once as `blobs/<sha256>`, and each model is a tree of hard links
//! `tree/<model>/<path>` to its blobs, which is the directory layout
//! [`crate::gpu::ModelStore`] reads. Replacing a file re-links the path; a
//! worker that has the old file mapped keeps reading the old blob.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use futures_util::Stream;

use super::upload::{self, UploadError};
use crate::store::{ModelFile, Store, StoreError, now_ms};

/// Why a model operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ModelRepoError {
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// A bad model name, path or file; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    #[error("no model {0:?}; upload its files with PUT /v1/models/{0}/files/<path>")]
    NotFound(String),
    /// The path clashes with another file of the model (a file where a
    /// directory is needed, or the other way round).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("model storage: {0}")]
    Io(#[from] std::io::Error),
}

/// The managed model store.
pub struct ModelRepo {
    root: PathBuf,
    store: Store,
    max_file_bytes: u64,
}

/// Check a model name: one plain directory name.
pub fn check_model_name(name: &str) -> Result<(), ModelRepoError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        let shown: String = name.chars().take(80).collect();
        Err(ModelRepoError::Invalid(format!(
            "{shown:?} is not a model name: use letters, digits, '-', '_' and '.', not starting with '.', at most 128 characters"
        )))
    }
}

/// Check a file path inside a model: relative, no `..`, no hidden parts.
pub fn check_file_path(path: &str) -> Result<(), ModelRepoError> {
    let p = Path::new(path);
    // Each part must also be a file name the filesystem takes (255 bytes,
    // no control characters), so a bad path is this 400 and never an I/O
    // error later.
    let plain = !path.is_empty()
        && path.len() <= 512
        && !path.chars().any(char::is_control)
        && p.components().all(|c| match c {
            Component::Normal(s) => s.len() <= 255 && !s.to_string_lossy().starts_with('.'),
            _ => false,
        });
    if plain {
        Ok(())
    } else {
        let shown: String = path.chars().take(80).collect();
        Err(ModelRepoError::Invalid(format!(
            "{shown:?} is not a file path inside a model: use a relative path like \"model.safetensors\" or \"tokenizer/vocab.txt\", at most 512 bytes, parts of at most 255, without '..', hidden ('.') parts or control characters"
        )))
    }
}

impl ModelRepo {
    pub fn new(root: PathBuf, store: Store, max_file_bytes: u64) -> Self {
        Self {
            root,
            store,
            max_file_bytes,
        }
    }

    /// The directory of model trees: the `root` a [`crate::gpu::ModelStore`]
    /// opens models under.
    pub fn tree_dir(&self) -> PathBuf {
        self.root.join("tree")
    }

    fn blob_path(&self, sha256: &str) -> PathBuf {
        self.root.join("blobs").join(sha256)
    }

    /// Receive one file of `model`. `.safetensors` files are checked to be
    /// valid safetensors with dtypes wasmpod reads.
    pub async fn upload<S, B, E>(
        &self,
        model: &str,
        path: &str,
        body: S,
    ) -> Result<ModelFile, ModelRepoError>
    where
        S: Stream<Item = Result<B, E>>,
        B: AsRef<[u8]>,
        E: std::fmt::Display,
    {
        check_model_name(model)?;
        check_file_path(path)?;
        let received = upload::receive(&self.root.join("tmp"), body, self.max_file_bytes).await?;
        if path.ends_with(".safetensors") {
            let tmp = received.path().to_path_buf();
            let path_owned = path.to_string();
            tokio::task::spawn_blocking(move || check_safetensors(&tmp, &path_owned))
                .await
                .map_err(|e| ModelRepoError::Invalid(format!("checking the file failed: {e}")))??;
        }
        let sha256 = received.sha256.clone();
        let size = received.size as i64;
        let blob = self.blob_path(&sha256);
        if blob.exists() {
            drop(received);
        } else {
            received.persist(&blob)?;
        }
        let link = self.tree_dir().join(model).join(path);
        let parent = link.parent().expect("a model file path has a parent");
        let clash = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotADirectory
            | std::io::ErrorKind::IsADirectory
            | std::io::ErrorKind::AlreadyExists
            | std::io::ErrorKind::DirectoryNotEmpty => ModelRepoError::Conflict(format!(
                "{path:?} clashes with another file of model {model:?} (a file where a directory is needed, or a directory where the file goes); delete the model or pick another path"
            )),
            _ => ModelRepoError::Io(e),
        };
        std::fs::create_dir_all(parent).map_err(clash)?;
        // Hidden while staged: the model reader skips dot files.
        let staged = parent.join(format!(".{}.link", uuid::Uuid::new_v4().simple()));
        std::fs::hard_link(&blob, &staged).map_err(clash)?;
        std::fs::rename(&staged, &link).map_err(|e| {
            let _ = std::fs::remove_file(&staged);
            clash(e)
        })?;
        let file = ModelFile {
            path: path.to_string(),
            sha256,
            size,
            created_at: now_ms(),
        };
        self.store.put_model_file(model, &file).await?;
        Ok(file)
    }

    /// Every model and its files.
    pub async fn list(&self) -> Result<BTreeMap<String, Vec<ModelFile>>, ModelRepoError> {
        let mut models: BTreeMap<String, Vec<ModelFile>> = BTreeMap::new();
        for (model, file) in self.store.list_model_files().await? {
            models.entry(model).or_default().push(file);
        }
        Ok(models)
    }

    /// Delete a model's tree and the blobs no other model uses.
    pub async fn delete(&self, model: &str) -> Result<(), ModelRepoError> {
        check_model_name(model)?;
        let files = self.list().await?.remove(model).unwrap_or_default();
        if files.is_empty() {
            return Err(ModelRepoError::NotFound(model.to_string()));
        }
        self.store.delete_model(model).await?;
        let dir = self.tree_dir().join(model);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        for f in files {
            if !self.store.blob_in_use(&f.sha256).await? {
                let _ = std::fs::remove_file(self.blob_path(&f.sha256));
            }
        }
        Ok(())
    }
}

fn check_safetensors(file: &Path, name: &str) -> Result<(), ModelRepoError> {
    let f = std::fs::File::open(file)?;
    // SAFETY: the temporary file is private to this upload.
    let map = unsafe { memmap2::Mmap::map(&f) }?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&map).map_err(|e| {
        ModelRepoError::Invalid(format!(
            "{name} is not a valid safetensors file ({e}); upload the file exactly as saved by safetensors"
        ))
    })?;
    for (weight, info) in meta.tensors() {
        use safetensors::Dtype as D;
        if !matches!(
            info.dtype,
            D::F32 | D::F16 | D::BF16 | D::I32 | D::I64 | D::U8
        ) {
            return Err(ModelRepoError::Invalid(format!(
                "{name}: weight {weight:?} has dtype {:?}; wasmpod reads F32, F16, BF16, I32, I64 and U8",
                info.dtype
            )));
        }
    }
    Ok(())
}
