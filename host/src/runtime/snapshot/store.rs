//! Snapshots on disk: `<root>/<key>/` holds `component.wasm` (the
//! pre-initialised component with its restore exports), `tensors.bin` (the
//! bytes of tensors the guest computed in `init` and kept) and
//! `manifest.json` (what to check and what each handle slot holds). A
//! snapshot is written to a temporary directory and renamed into place, so
//! a reader sees a whole one or none.

use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sha2::{Digest, Sha256};

use super::SnapshotError;
use crate::runtime::InstanceConfig;

/// Bumped when the layout of a snapshot changes.
const FORMAT: u32 = 1;

/// What one slot of the guest's handle table held after `init` (slot `i` is
/// handle index `i + 1`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Slot {
    /// A free slot; restored as a placeholder the guest never references.
    Hole,
    /// An opened model.
    Model { name: String },
    /// A model weight as the model store hands it out (shared, read-only).
    Weight {
        model: String,
        weight: String,
        device: usize,
    },
    /// A tensor the guest computed; its bytes are in `tensors.bin`.
    Tensor {
        dtype: String,
        shape: Vec<usize>,
        device: usize,
        offset: u64,
        len: u64,
    },
}

/// The checked description of a snapshot.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub key: String,
    pub handler_digest: String,
    pub wasmpod_version: String,
    /// sha256 of `component.wasm`.
    pub component_digest: String,
    pub slots: Vec<Slot>,
}

/// A snapshot read back from disk.
pub struct Snapshot {
    pub manifest: Manifest,
    pub component: Vec<u8>,
    /// `tensors.bin`, mapped (absent when no tensor slot needs it).
    pub tensors: Option<Mmap>,
    pub dir: PathBuf,
}

impl Snapshot {
    /// The saved bytes of a tensor slot.
    pub fn tensor_bytes(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let map = self.tensors.as_ref()?;
        let end = offset.checked_add(len)?;
        map.get(offset as usize..end as usize)
    }
}

/// The directory of snapshots.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |e| SnapshotError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

impl SnapshotStore {
    /// Snapshots under `root` (created on first save).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The key of `handler_digest` started with `config`: every input that
    /// can change the state `init` leaves behind.
    pub fn key(handler_digest: &str, config: &InstanceConfig) -> String {
        let mut h = Sha256::new();
        h.update(format!("wasmpod-flashboot format {FORMAT}\n"));
        h.update(format!("handler {handler_digest}\n"));
        h.update(format!("wasmpod {}\n", env!("CARGO_PKG_VERSION")));
        h.update(format!("memory {}\n", config.memory_limit));
        let mut env = config.env.clone();
        env.sort();
        for (k, v) in &env {
            h.update(format!("env {}={}\n", k.len(), k));
            h.update(v.as_bytes());
            h.update(b"\n");
        }
        match &config.models {
            Some(models) => {
                let root = models.root();
                let root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
                h.update(format!("models {}\n", root.display()));
            }
            None => h.update("models none\n"),
        }
        for info in config.devices.infos() {
            h.update(format!(
                "device {:?} {} {}\n",
                info.kind, info.name, info.uuid
            ));
        }
        hex::encode(h.finalize())
    }

    fn dir(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The snapshot saved under `key` for `handler_digest`, if a valid one
    /// exists. One that fails a check is removed and reported.
    pub fn load(&self, key: &str, handler_digest: &str) -> Result<Option<Snapshot>, SnapshotError> {
        let dir = self.dir(key);
        let manifest_path = dir.join("manifest.json");
        if !manifest_path.exists() {
            return Ok(None);
        }
        match self.read(&dir, key, handler_digest) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn read(&self, dir: &Path, key: &str, handler_digest: &str) -> Result<Snapshot, SnapshotError> {
        let mismatch = |reason: String| SnapshotError::Mismatch {
            path: dir.display().to_string(),
            reason,
        };
        let manifest_path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| mismatch(format!("manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(mismatch(format!(
                "format {} (this wasmpod reads {FORMAT})",
                manifest.format
            )));
        }
        if manifest.handler_digest != handler_digest {
            return Err(mismatch(format!(
                "it was taken of handler {}, not {handler_digest}",
                manifest.handler_digest
            )));
        }
        if manifest.key != key {
            return Err(mismatch(format!("its key is {}, not {key}", manifest.key)));
        }
        if manifest.wasmpod_version != env!("CARGO_PKG_VERSION") {
            return Err(mismatch(format!(
                "taken by wasmpod {}, this is {}",
                manifest.wasmpod_version,
                env!("CARGO_PKG_VERSION")
            )));
        }
        let component_path = dir.join("component.wasm");
        let component = std::fs::read(&component_path).map_err(io(&component_path))?;
        let got = crate::runtime::digest(&component);
        if got != manifest.component_digest {
            return Err(mismatch(format!(
                "component.wasm has digest {got}, the manifest says {}",
                manifest.component_digest
            )));
        }
        let needs_tensors = manifest
            .slots
            .iter()
            .any(|s| matches!(s, Slot::Tensor { len, .. } if *len > 0));
        let tensors = if needs_tensors {
            let path = dir.join("tensors.bin");
            let file = std::fs::File::open(&path).map_err(io(&path))?;
            // SAFETY: the file belongs to this host's snapshot directory and
            // is never modified after the directory is renamed into place;
            // every slice taken from it is bounds-checked.
            Some(unsafe { Mmap::map(&file) }.map_err(io(&path))?)
        } else {
            None
        };
        Ok(Snapshot {
            manifest,
            component,
            tensors,
            dir: dir.to_path_buf(),
        })
    }

    /// Removes every snapshot of `handler_digest` (whatever its settings);
    /// returns how many. Unreadable entries are left alone.
    pub fn remove_handler(&self, handler_digest: &str) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for dir in entries.flatten().map(|e| e.path()) {
            let manifest = std::fs::read(dir.join("manifest.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok());
            if manifest.is_some_and(|m| m.handler_digest == handler_digest)
                && std::fs::remove_dir_all(&dir).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Saves a snapshot under `key`, unless another save of the same key
    /// placed one first (then that one stays).
    pub fn save(
        &self,
        key: &str,
        handler_digest: &str,
        component: &[u8],
        slots: Vec<Slot>,
        tensors: &[u8],
    ) -> Result<PathBuf, SnapshotError> {
        let manifest = Manifest {
            format: FORMAT,
            key: key.to_string(),
            handler_digest: handler_digest.to_string(),
            wasmpod_version: env!("CARGO_PKG_VERSION").to_string(),
            component_digest: crate::runtime::digest(component),
            slots,
        };
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        // Unique per process and save: two workers of one endpoint may
        // snapshot the same key at once in a shared executor.
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!(".{key}.{}.{n}.tmp", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let write = |name: &str, bytes: &[u8]| {
            let path = tmp.join(name);
            std::fs::write(&path, bytes).map_err(io(&path))
        };
        write("component.wasm", component)?;
        write("tensors.bin", tensors)?;
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        write("manifest.json", &json)?;
        let dir = self.dir(key);
        let placed = std::fs::rename(&tmp, &dir).or_else(|e| {
            if dir.join("manifest.json").exists() {
                // Another worker of this key (the same handler and
                // settings) placed its snapshot first: keep that whole one
                // rather than delete it under a reader.
                return Ok(());
            }
            // What a removal cut short left behind (a snapshot directory
            // only ever appears whole, by this rename): replace it.
            std::fs::remove_dir_all(&dir).map_err(|_| e)?;
            std::fs::rename(&tmp, &dir)
        });
        let _ = std::fs::remove_dir_all(&tmp);
        placed.map_err(io(&dir))?;
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two workers of one endpoint may snapshot the same key at once: the
    /// second save keeps the first one's whole snapshot in place.
    #[test]
    fn a_second_save_of_a_key_keeps_the_first_whole() {
        let root = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(root.path());
        let first = store.save("k", "h", b"first", Vec::new(), b"").unwrap();
        let reader = store.load("k", "h").unwrap().expect("saved");
        let second = store.save("k", "h", b"second", Vec::new(), b"").unwrap();
        assert_eq!(first, second);
        assert_eq!(reader.component, b"first");
        let again = store.load("k", "h").unwrap().expect("still there");
        assert_eq!(again.component, b"first");
        // No temporary directories are left behind.
        let names: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["k"]);
    }
}
