//! The model store: a directory of models, each a directory of safetensors
//! shards plus auxiliary files. Files are memory-mapped; each weight is
//! uploaded to a device once and then shared read-only by every instance.
//!
//! FlashBoot layer 3: [`ModelStore::page_out`] copies the uploaded weights
//! to a [`PageStore`] (pinned host RAM, or disk past its budget) and lets go
//! of the device copies; the next use, or [`ModelStore::page_in`] in bulk,
//! uploads them from there instead of re-reading the safetensors files.
//! Pinned copies (GPU) are kept after a page-in, since weights never
//! change: the next page-out costs nothing and no unpinning happens on the
//! wake-up path; they go with the store.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;
use wasmpod_tensor::{DType, Device, PageError, PageStore, PagedTensor, Tensor, TensorError};

/// Why a model operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("invalid model: {0}")]
    Invalid(String),
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// Where one weight lives.
#[derive(Debug, Clone)]
pub struct WeightInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
    shard: usize,
    start: usize,
    end: usize,
}

/// An opened model: its shards mapped, its weights indexed by name.
pub struct OpenModel {
    name: String,
    dir: PathBuf,
    shards: Vec<Mmap>,
    weights: BTreeMap<String, WeightInfo>,
    files: Vec<String>,
    /// Weights already on the store's device.
    loaded: Mutex<HashMap<String, Tensor>>,
    /// Weights paged off the device, by name.
    paged: Mutex<HashMap<String, PagedTensor>>,
}

/// What a page-out or page-in moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PagingStats {
    pub tensors: usize,
    pub bytes: u64,
}

impl From<PageError> for ModelError {
    fn from(e: PageError) -> Self {
        match e {
            PageError::Tensor(t) => ModelError::Tensor(t),
            other => ModelError::Invalid(other.to_string()),
        }
    }
}

/// The models of one endpoint, shared by every worker on one device.
pub struct ModelStore {
    root: PathBuf,
    device: Device,
    open: Mutex<HashMap<String, Arc<OpenModel>>>,
}

impl ModelStore {
    /// Models under `root`, loaded onto `device` (whose account holds the
    /// shared weights, not any one worker's quota).
    pub fn new(root: impl Into<PathBuf>, device: Device) -> Arc<Self> {
        Arc::new(Self {
            root: root.into(),
            device,
            open: Mutex::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Names of the model directories.
    pub fn list(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Open (or reuse) the model called `name`.
    pub fn open(&self, name: &str) -> Result<Arc<OpenModel>, ModelError> {
        if let Some(m) = self.open.lock().expect("model store lock").get(name) {
            return Ok(Arc::clone(m));
        }
        if !is_plain_name(name) {
            return Err(ModelError::NotFound(format!(
                "{name:?} is not a model name (a single directory name, no '/' or '..')"
            )));
        }
        let dir = self.root.join(name);
        if !dir.is_dir() {
            return Err(ModelError::NotFound(format!(
                "no model {name:?}; this endpoint has: {:?}",
                self.list()
            )));
        }
        let model = Arc::new(OpenModel::open(name, &dir)?);
        self.open
            .lock()
            .expect("model store lock")
            .insert(name.to_string(), Arc::clone(&model));
        Ok(model)
    }

    /// The device the weights are uploaded to.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The weight `weight` of `model` on the store's device, uploaded on
    /// first use (from its paged-out copy when there is one).
    pub fn weight(&self, model: &OpenModel, weight: &str) -> Result<Tensor, ModelError> {
        if let Some(t) = model.loaded.lock().expect("model weights lock").get(weight) {
            return Ok(t.clone());
        }
        let mut paged = model.paged.lock().expect("model paging lock");
        let tensor = match paged.get(weight) {
            // A weight never changes, so its pinned copy stays valid: it is
            // kept for the next page-out (no device-to-host copy then), and
            // unpinning (slow, in proportion to the size) stays off the
            // wake-up path.
            Some(pinned) if pinned.is_pinned() => Some(pinned.page_in(&self.device)?),
            // On the CPU the buffer itself moves back (no copy, no second
            // copy in RAM); a spilled copy is read back and its file removed.
            _ => match paged.remove(weight) {
                Some(p) => Some(p.page_in_owned(&self.device)?),
                None => None,
            },
        }
        .map(Tensor::into_read_only);
        drop(paged);
        if let Some(tensor) = tensor {
            model
                .loaded
                .lock()
                .expect("model weights lock")
                .insert(weight.to_string(), tensor.clone());
            return Ok(tensor);
        }
        let info = model.weights.get(weight).ok_or_else(|| {
            let names: Vec<&String> = model.weights.keys().take(20).collect();
            ModelError::NotFound(format!(
                "model {:?} has no weight {weight:?}; it has {} weights, e.g. {names:?}",
                model.name,
                model.weights.len()
            ))
        })?;
        let bytes = &model.shards[info.shard][info.start..info.end];
        // Shared by every instance: no op may write it in place.
        let tensor = self
            .device
            .upload(info.dtype, &info.shape, bytes)?
            .into_read_only();
        model
            .loaded
            .lock()
            .expect("model weights lock")
            .insert(weight.to_string(), tensor.clone());
        Ok(tensor)
    }
}

impl ModelStore {
    fn opened(&self) -> Vec<Arc<OpenModel>> {
        self.open
            .lock()
            .expect("model store lock")
            .values()
            .cloned()
            .collect()
    }

    /// Copies every uploaded weight to `pages` and drops the store's device
    /// copies. Device memory is freed once no instance holds the weights
    /// either (page instances out, or drop them, first).
    pub fn page_out(&self, pages: &Arc<PageStore>) -> Result<PagingStats, ModelError> {
        let mut stats = PagingStats::default();
        for model in self.opened() {
            // Taken out of the map first, so on the CPU the store's handle is
            // the last one and the buffer moves instead of being copied.
            let loaded: Vec<(String, Tensor)> = model
                .loaded
                .lock()
                .expect("model weights lock")
                .drain()
                .collect();
            for (name, tensor) in loaded {
                let bytes = (tensor.numel() * tensor.dtype().size()) as u64;
                let mut paged = model.paged.lock().expect("model paging lock");
                // An entry already there is the pinned copy from the last
                // page-out, still valid.
                if let std::collections::hash_map::Entry::Vacant(slot) = paged.entry(name) {
                    slot.insert(pages.page_out_owned(&self.device, tensor)?);
                }
                stats.tensors += 1;
                stats.bytes += bytes;
            }
        }
        Ok(stats)
    }

    /// Uploads every paged-out weight back, one bulk copy each: those in
    /// pinned RAM queued together with one wait at the end, so the link
    /// does not idle between weights.
    pub fn page_in(&self) -> Result<PagingStats, ModelError> {
        let mut stats = PagingStats::default();
        for model in self.opened() {
            {
                let mut loaded = model.loaded.lock().expect("model weights lock");
                let paged = model.paged.lock().expect("model paging lock");
                let pinned: Vec<(&String, &PagedTensor)> = paged
                    .iter()
                    .filter(|(name, p)| p.is_pinned() && !loaded.contains_key(*name))
                    .collect();
                let copies: Vec<&PagedTensor> = pinned.iter().map(|(_, p)| *p).collect();
                let tensors = wasmpod_tensor::paging::page_in_all(&self.device, &copies)?;
                for ((name, _), t) in pinned.into_iter().zip(tensors) {
                    stats.tensors += 1;
                    stats.bytes += (t.numel() * t.dtype().size()) as u64;
                    loaded.insert(name.clone(), t.into_read_only());
                }
            }
            // The rest (spilled to disk, or moved buffers on the CPU).
            let loaded = model.loaded.lock().expect("model weights lock");
            let names: Vec<String> = model
                .paged
                .lock()
                .expect("model paging lock")
                .keys()
                .filter(|name| !loaded.contains_key(*name))
                .cloned()
                .collect();
            drop(loaded);
            for name in names {
                let t = self.weight(&model, &name)?;
                stats.tensors += 1;
                stats.bytes += (t.numel() * t.dtype().size()) as u64;
            }
        }
        Ok(stats)
    }

    /// Bytes of weights on the device now (held by the store).
    pub fn resident_bytes(&self) -> u64 {
        self.opened()
            .iter()
            .flat_map(|m| {
                m.loaded
                    .lock()
                    .expect("model weights lock")
                    .values()
                    .map(|t| (t.numel() * t.dtype().size()) as u64)
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// Bytes of weights held in the page store now (on a GPU this includes
    /// the pinned copies kept after a page-in).
    pub fn paged_bytes(&self) -> u64 {
        self.opened()
            .iter()
            .flat_map(|m| {
                m.paged
                    .lock()
                    .expect("model paging lock")
                    .values()
                    .map(|p| p.len_bytes() as u64)
                    .collect::<Vec<_>>()
            })
            .sum()
    }
}

impl OpenModel {
    fn open(name: &str, dir: &Path) -> Result<Self, ModelError> {
        let mut shard_paths = Vec::new();
        let mut files = Vec::new();
        collect_files(dir, dir, &mut shard_paths, &mut files).map_err(|e| {
            ModelError::Invalid(format!("reading model directory {}: {e}", dir.display()))
        })?;
        shard_paths.sort();
        files.sort();
        let mut shards = Vec::new();
        let mut weights = BTreeMap::new();
        for path in &shard_paths {
            let file = std::fs::File::open(path)
                .map_err(|e| ModelError::Invalid(format!("opening {}: {e}", path.display())))?;
            // SAFETY: model files are owned by the host's model store and
            // treated as immutable once uploaded (content-addressed); the
            // map is only read.
            let mmap = unsafe { Mmap::map(&file) }
                .map_err(|e| ModelError::Invalid(format!("mapping {}: {e}", path.display())))?;
            let (header_len, meta) =
                safetensors::SafeTensors::read_metadata(&mmap).map_err(|e| {
                    ModelError::Invalid(format!("{} is not valid safetensors: {e}", path.display()))
                })?;
            let base = 8 + header_len;
            for (wname, info) in meta.tensors() {
                let dtype = convert_dtype(info.dtype).ok_or_else(|| {
                    ModelError::Invalid(format!(
                        "weight {wname:?} in {} has dtype {:?}; wasmpod supports F32, F16, BF16, I32, I64, U8",
                        path.display(),
                        info.dtype
                    ))
                })?;
                let (start, end) = info.data_offsets;
                weights.insert(
                    wname,
                    WeightInfo {
                        dtype,
                        shape: info.shape.clone(),
                        shard: shards.len(),
                        start: base + start,
                        end: base + end,
                    },
                );
            }
            shards.push(mmap);
        }
        Ok(Self {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            shards,
            weights,
            files,
            loaded: Mutex::default(),
            paged: Mutex::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every weight, sorted by name.
    pub fn weights(&self) -> impl Iterator<Item = (&String, &WeightInfo)> {
        self.weights.iter()
    }

    /// Auxiliary files, relative to the model directory.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// Read an auxiliary file; `path` must be one of [`Self::files`].
    pub fn read_file(&self, path: &str) -> Result<Vec<u8>, ModelError> {
        if !self.files.iter().any(|f| f == path) {
            return Err(ModelError::NotFound(format!(
                "model {:?} has no file {path:?}; it has {:?}",
                self.name, self.files
            )));
        }
        std::fs::read(self.dir.join(path))
            .map_err(|e| ModelError::Invalid(format!("reading {path}: {e}")))
    }
}

fn is_plain_name(name: &str) -> bool {
    let mut comps = Path::new(name).components();
    matches!(
        (comps.next(), comps.next()),
        (Some(Component::Normal(_)), None)
    )
}

/// Walk `dir`: safetensors files into `shards`, the rest (as paths relative
/// to `root`) into `files`. Symlinked directories are followed one level
/// deep only through their targets' regular files.
fn collect_files(
    root: &Path,
    dir: &Path,
    shards: &mut Vec<PathBuf>,
    files: &mut Vec<String>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, shards, files)?;
        } else if path.extension().is_some_and(|e| e == "safetensors") {
            shards.push(path);
        } else if let Ok(rel) = path.strip_prefix(root) {
            files.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

fn convert_dtype(d: safetensors::Dtype) -> Option<DType> {
    use safetensors::Dtype as S;
    Some(match d {
        S::F32 => DType::F32,
        S::F16 => DType::F16,
        S::BF16 => DType::BF16,
        S::I32 => DType::I32,
        S::I64 => DType::I64,
        S::U8 => DType::U8,
        _ => return None,
    })
}
