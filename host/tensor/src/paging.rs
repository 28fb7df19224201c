//! Paging tensors off a device: when a worker scales to zero its tensors
//! (and its slice's model weights) are copied to host memory — pinned on a
//! GPU, so the way back is one bulk DMA per tensor — and, once the host-RAM
//! budget is spent, to files on disk. Paging in uploads them again without
//! touching the original source (safetensors, or the guest's computation).
//! On the CPU a tensor whose buffer has no other handle is not copied at
//! all: the buffer itself moves to the page store and back
//! ([`PageStore::page_out_owned`], [`PagedTensor::page_in_owned`]), since
//! host RAM is that device's memory; only its accounting moves (off the
//! worker's quota, onto the page store's budget).
//!
//! The budget is a hard cap on the host RAM paged tensors hold: a tensor
//! that would pass it goes to disk whole. Every paged tensor gives its RAM
//! back and deletes its file when dropped, so nothing outlives it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{DType, Device, HostBuffer, Tensor, TensorError};

/// Why paging failed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The device could not copy the tensor out or back.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// The spill file could not be written or read.
    #[error(
        "paging spill file {path}: {source}; check that the spill directory is writable and has room, or raise the host-RAM paging budget"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a paged tensor's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageLocation {
    /// Host RAM (pinned on a GPU).
    Ram,
    /// A spill file on disk.
    Disk,
}

/// Host RAM (up to a budget) and a spill directory for paged tensors.
#[derive(Debug)]
pub struct PageStore {
    ram_budget: u64,
    ram_used: AtomicU64,
    disk_used: AtomicU64,
    spill_dir: PathBuf,
    next_file: AtomicU64,
}

impl PageStore {
    /// A store that keeps up to `ram_budget` bytes in host RAM and spills
    /// the rest under `spill_dir` (created when first needed).
    pub fn new(ram_budget: u64, spill_dir: impl Into<PathBuf>) -> Arc<Self> {
        Arc::new(Self {
            ram_budget,
            ram_used: AtomicU64::new(0),
            disk_used: AtomicU64::new(0),
            spill_dir: spill_dir.into(),
            next_file: AtomicU64::new(0),
        })
    }

    pub fn ram_budget(&self) -> u64 {
        self.ram_budget
    }

    /// Bytes of paged tensors held in host RAM now.
    pub fn ram_used(&self) -> u64 {
        self.ram_used.load(Ordering::Acquire)
    }

    /// Bytes of paged tensors spilled to disk now.
    pub fn disk_used(&self) -> u64 {
        self.disk_used.load(Ordering::Acquire)
    }

    pub fn spill_dir(&self) -> &Path {
        &self.spill_dir
    }

    /// Takes `bytes` of the RAM budget, or returns false leaving it as is.
    fn reserve_ram(&self, bytes: u64) -> bool {
        self.ram_used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|n| *n <= self.ram_budget)
            })
            .is_ok()
    }

    /// Copies `t` (held by `device`) out to host RAM, or to disk when the
    /// RAM budget cannot hold it. The device copy is untouched: drop every
    /// handle to `t` to free its device memory.
    pub fn page_out(
        self: &Arc<Self>,
        device: &Device,
        t: &Tensor,
    ) -> Result<PagedTensor, PageError> {
        self.page_out_owned(device, t.clone())
    }

    /// Like [`PageStore::page_out`], taking the handle: where `t` is the last
    /// handle to a CPU buffer, the buffer itself moves to the page store (on
    /// the CPU host RAM is the device, so nothing needs copying).
    pub fn page_out_owned(
        self: &Arc<Self>,
        device: &Device,
        t: Tensor,
    ) -> Result<PagedTensor, PageError> {
        let len = t.numel() * t.dtype().size();
        let (dtype, shape) = (t.dtype(), t.shape().to_vec());
        let (home, location) = if self.reserve_ram(len as u64) {
            let filled = match device.take_host(t) {
                Ok(moved) => Ok(moved),
                Err(t) => device
                    .host_buffer(len)
                    .and_then(|mut buf| device.download_into(&t, &mut buf).map(|()| buf)),
            };
            match filled {
                Ok(buf) => (Home::Ram(buf), PageLocation::Ram),
                Err(e) => {
                    self.ram_used.fetch_sub(len as u64, Ordering::AcqRel);
                    return Err(e.into());
                }
            }
        } else {
            let bytes = device.download(&t)?;
            let path = self.spill_path();
            write_spill(&self.spill_dir, &path, &bytes)?;
            self.disk_used.fetch_add(len as u64, Ordering::AcqRel);
            (Home::Disk(path), PageLocation::Disk)
        };
        Ok(PagedTensor {
            dtype,
            shape,
            len,
            home,
            location,
            store: Arc::clone(self),
        })
    }

    fn spill_path(&self) -> PathBuf {
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        self.spill_dir
            .join(format!("{}-{n}.page", std::process::id()))
    }
}

fn write_spill(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), PageError> {
    let io = |source| PageError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    Ok(())
}

enum Home {
    Ram(HostBuffer),
    Disk(PathBuf),
    /// The RAM buffer moved back to the device by `page_in_owned`.
    Taken,
}

/// A tensor paged off its device: dtype, shape and bytes in RAM or on disk.
pub struct PagedTensor {
    dtype: DType,
    shape: Vec<usize>,
    len: usize,
    home: Home,
    location: PageLocation,
    store: Arc<PageStore>,
}

impl PagedTensor {
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.len
    }

    pub fn location(&self) -> PageLocation {
        self.location
    }

    /// True when the RAM copy is pinned (a GPU page-out).
    pub fn is_pinned(&self) -> bool {
        matches!(&self.home, Home::Ram(b) if b.is_pinned())
    }

    /// Uploads the bytes to `device` (charged to its account): one bulk copy
    /// from RAM, or a read of the spill file into a host buffer first.
    pub fn page_in(&self, device: &Device) -> Result<Tensor, PageError> {
        match &self.home {
            // One DMA straight from the pinned copy.
            Home::Ram(buf) => Ok(device.upload_host(self.dtype, &self.shape, buf)?),
            Home::Taken => unreachable!("only page_in_owned takes the buffer, consuming self"),
            Home::Disk(path) => {
                let mut buf = device.host_buffer(self.len)?;
                let io = |source| PageError::Io {
                    path: path.clone(),
                    source,
                };
                std::fs::File::open(path)
                    .and_then(|mut f| f.read_exact(buf.as_mut_slice()))
                    .map_err(io)?;
                Ok(device.upload_host(self.dtype, &self.shape, &buf)?)
            }
        }
    }
}

/// Pages many tensors in to `device`: those in pinned RAM in one batch of
/// copies with a single wait, the others one by one. In the order given.
pub fn page_in_all(device: &Device, paged: &[&PagedTensor]) -> Result<Vec<Tensor>, PageError> {
    let batch: Vec<(DType, &[usize], &HostBuffer)> = paged
        .iter()
        .filter_map(|p| match &p.home {
            Home::Ram(buf) if buf.is_pinned() => Some((p.dtype, p.shape.as_slice(), buf)),
            _ => None,
        })
        .collect();
    let mut batched = device.upload_host_batch(&batch)?.into_iter();
    paged
        .iter()
        .map(|p| match &p.home {
            Home::Ram(buf) if buf.is_pinned() => {
                Ok(batched.next().expect("one tensor per batched item"))
            }
            _ => p.page_in(device),
        })
        .collect()
}

impl PagedTensor {
    /// Like [`PagedTensor::page_in`], giving the paged copy up: a CPU buffer
    /// moved out by [`PageStore::page_out_owned`] moves back without a copy.
    pub fn page_in_owned(mut self, device: &Device) -> Result<Tensor, PageError> {
        match std::mem::replace(&mut self.home, Home::Taken) {
            Home::Ram(buf) => Ok(device.upload_host_owned(self.dtype, &self.shape, buf)?),
            other => {
                self.home = other;
                self.page_in(device)
            }
        }
    }
}

impl Drop for PagedTensor {
    fn drop(&mut self) {
        match self.location {
            PageLocation::Ram => {
                self.store
                    .ram_used
                    .fetch_sub(self.len as u64, Ordering::AcqRel);
            }
            PageLocation::Disk => {
                if let Home::Disk(path) = &self.home {
                    let _ = std::fs::remove_file(path);
                }
                self.store
                    .disk_used
                    .fetch_sub(self.len as u64, Ordering::AcqRel);
            }
        }
    }
}

impl std::fmt::Debug for PagedTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PagedTensor({}, {:?}, {:?})",
            self.dtype,
            self.shape,
            self.location()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryAccount;

    fn sample(device: &Device, n: usize, seed: f32) -> Tensor {
        let values: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 + seed).collect();
        device.upload_f32(&[n], &values).unwrap()
    }

    fn round_trip(device: &Device, spill: &Path) {
        // Budget for exactly one 4 KiB tensor: the second spills to disk.
        let store = PageStore::new(4096, spill);
        let a = sample(device, 1024, 1.0);
        let b = sample(device, 1024, 2.0);
        let pa = store.page_out(device, &a).unwrap();
        let pb = store.page_out(device, &b).unwrap();
        assert_eq!(pa.location(), PageLocation::Ram);
        assert_eq!(pb.location(), PageLocation::Disk);
        assert_eq!((store.ram_used(), store.disk_used()), (4096, 4096));
        let (a_bytes, b_bytes) = (device.download(&a).unwrap(), device.download(&b).unwrap());
        drop((a, b));
        assert_eq!(device.account().used(), 0, "device copies freed");
        let (a2, b2) = (pa.page_in(device).unwrap(), pb.page_in(device).unwrap());
        assert_eq!(device.download(&a2).unwrap(), a_bytes);
        assert_eq!(device.download(&b2).unwrap(), b_bytes);
        // In one batch (the pinned copy queued, the spilled one read back),
        // in the order given.
        let all = page_in_all(device, &[&pb, &pa]).unwrap();
        assert_eq!(device.download(&all[0]).unwrap(), b_bytes);
        assert_eq!(device.download(&all[1]).unwrap(), a_bytes);
        drop(all);
        drop((pa, pb));
        assert_eq!((store.ram_used(), store.disk_used()), (0, 0));
        let left = std::fs::read_dir(spill).map(|d| d.count()).unwrap_or(0);
        assert_eq!(left, 0, "spill files removed on drop");
    }

    fn spill_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("wasmpod-paging-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn cpu_page_out_and_in_respects_the_budget() {
        let device = Device::cpu(MemoryAccount::unlimited("test"));
        let dir = spill_dir("cpu");
        round_trip(&device, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cpu_owned_page_out_moves_the_buffer_without_a_copy() {
        let account = MemoryAccount::unlimited("test");
        let device = Device::cpu(Arc::clone(&account));
        let store = PageStore::new(1 << 20, spill_dir("cpu-owned"));
        let t = sample(&device, 1024, 5.0);
        let bytes = device.download(&t).unwrap();
        let paged = store.page_out_owned(&device, t).unwrap();
        assert_eq!(account.used(), 0, "the worker's quota is released");
        assert_eq!(store.ram_used(), 4096);
        let back = paged.page_in_owned(&device).unwrap();
        assert_eq!(device.download(&back).unwrap(), bytes);
        assert_eq!((account.used(), store.ram_used()), (4096, 0));
        // A shared buffer cannot move: it is copied instead.
        let shared = back.clone();
        let paged = store.page_out_owned(&device, back).unwrap();
        assert_eq!(account.used(), 4096, "the other handle keeps the buffer");
        drop(shared);
        assert_eq!(
            device
                .download(&paged.page_in_owned(&device).unwrap())
                .unwrap(),
            bytes
        );
    }

    #[test]
    fn cuda_page_out_is_pinned_and_round_trips() {
        if !crate::cuda::available() {
            println!("skipped: no CUDA device");
            return;
        }
        let account = MemoryAccount::unlimited("test");
        let backend = crate::cuda::CudaBackend::new(0, Arc::clone(&account)).unwrap();
        let device = Device::new(Arc::new(backend));
        let store = PageStore::new(1 << 20, spill_dir("cuda-pinned"));
        let t = sample(&device, 256, 3.0);
        let paged = store.page_out(&device, &t).unwrap();
        assert!(paged.is_pinned());
        drop((t, paged));
        let dir = spill_dir("cuda");
        round_trip(&device, &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
