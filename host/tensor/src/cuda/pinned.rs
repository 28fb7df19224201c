//! Page-locked host buffers for paged-out tensors: the DMA engine reads and
//! writes them directly, so a page-in is one `cuMemcpyHtoDAsync` per tensor
//! at the link's bandwidth, with no staging copy on the CPU.

use cudarc::driver::{result, sys};

use super::device::fault;
use crate::Result;

/// `len` bytes of pinned host memory, freed on drop.
pub struct PinnedBuffer {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is plain host memory owned by this value; access goes
// through &self / &mut self like a Vec's.
unsafe impl Send for PinnedBuffer {}
unsafe impl Sync for PinnedBuffer {}

impl PinnedBuffer {
    /// Allocates `len` bytes; the caller's context must be current (the
    /// allocation is portable, usable from every context of the process).
    pub(crate) fn new(len: usize) -> Result<Self> {
        if len == 0 {
            return Ok(Self {
                ptr: std::ptr::NonNull::dangling().as_ptr(),
                len,
            });
        }
        // SAFETY: a plain pinned allocation; freed once in Drop.
        let ptr = unsafe { result::malloc_host(len, sys::CU_MEMHOSTALLOC_PORTABLE) }
            .map_err(fault("allocating pinned host memory for a page-out"))?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr holds len bytes for the life of self.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: allocated by malloc_host in new, freed once; no DMA is in
        // flight (every copy through it is synchronized before returning).
        unsafe {
            let _ = result::free_host(self.ptr.cast());
        }
    }
}
