//! Host memory that holds a tensor's bytes while its device copy is paged
//! out: pinned (page-locked) where the backend can DMA from it directly, so
//! paging back in is one bulk copy at the link's full speed, else an
//! ordinary heap buffer.

use crate::cpu::CpuData;
use crate::cuda::PinnedBuffer;

/// A contiguous host buffer, pinned or pageable.
pub enum HostBuffer {
    /// Ordinary heap memory (the CPU backend, or a fallback).
    Pageable(Vec<u8>),
    /// Page-locked memory allocated through the CUDA driver.
    Pinned(PinnedBuffer),
    /// A CPU tensor's own buffer, moved out of the backend without a copy:
    /// on the CPU, host RAM is the device, so paging out only changes who
    /// accounts for it.
    CpuResident(CpuData),
}

impl HostBuffer {
    /// `len` zero bytes of pageable memory.
    pub fn pageable(len: usize) -> Self {
        Self::Pageable(vec![0; len])
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when the buffer is page-locked (DMA-able without staging).
    pub fn is_pinned(&self) -> bool {
        matches!(self, Self::Pinned(_))
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Self::Pageable(v) => v,
            Self::Pinned(p) => p.as_slice(),
            Self::CpuResident(d) => d.bytes(),
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        match self {
            Self::Pageable(v) => v,
            Self::Pinned(p) => p.as_mut_slice(),
            Self::CpuResident(d) => d.bytes_mut(),
        }
    }
}

impl std::fmt::Debug for HostBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostBuffer({} bytes, {})",
            self.len(),
            if self.is_pinned() {
                "pinned"
            } else {
                "pageable"
            }
        )
    }
}
