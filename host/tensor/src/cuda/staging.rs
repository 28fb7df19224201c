//! Large uploads through pinned staging buffers.
//!
//! A copy from pageable memory runs at a third of the link's speed or less
//! (the driver stages it through its own small pinned buffers, one thread).
//! Here each large upload is cut into chunks: the host copies a chunk into
//! one of a few pinned buffers with several threads while the DMA engine
//! sends the previous chunk, so both run at once. The buffers belong to the
//! device (shared by its workers, one upload at a time); an event per buffer
//! says when its last DMA finished, so a buffer is refilled only then, and
//! the upload returns without waiting for the device.

use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaEvent, CudaStream, result, sys};
use rayon::prelude::*;

use super::device::fault;
use crate::Result;

/// Uploads at least this long go through the staging buffers.
pub(crate) const STAGE_FROM_BYTES: usize = 8 << 20;
const CHUNK: usize = 32 << 20;
const SLOTS: usize = 3;
/// Piece of a chunk one host thread copies.
const PIECE: usize = 1 << 20;

struct Slot {
    host: *mut u8,
    done: CudaEvent,
}

/// The device's staging buffers, allocated on first use.
pub(crate) struct Staging {
    slots: Mutex<Vec<Slot>>,
}

// SAFETY: the raw host pointers are only touched under the mutex.
unsafe impl Send for Staging {}
unsafe impl Sync for Staging {}

impl Staging {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Copies `bytes` to device address `dst` in `stream` order. `bytes`
    /// may be dropped once this returns.
    pub(crate) fn upload(
        &self,
        ctx: &Arc<CudaContext>,
        stream: &CudaStream,
        dst: u64,
        bytes: &[u8],
    ) -> Result<()> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        while slots.len() < SLOTS {
            // SAFETY: a plain pinned host allocation, freed never (the
            // device's state lives as long as the process).
            let host = unsafe { result::malloc_host(CHUNK, sys::CU_MEMHOSTALLOC_WRITECOMBINED) }
                .map_err(fault("allocating pinned staging memory"))?;
            let done = ctx
                .new_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
                .map_err(fault("creating a staging event"))?;
            // Recorded once so the first wait returns at once.
            done.record(stream)
                .map_err(fault("recording a staging event"))?;
            slots.push(Slot {
                host: host.cast(),
                done,
            });
        }
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            let slot = &slots[i % SLOTS];
            slot.done
                .synchronize()
                .map_err(fault("waiting for a staging buffer"))?;
            // SAFETY: the slot holds CHUNK >= chunk.len() bytes and its last
            // DMA has finished (event above); only this thread uses it now.
            let staged = unsafe { std::slice::from_raw_parts_mut(slot.host, chunk.len()) };
            staged
                .par_chunks_mut(PIECE)
                .zip(chunk.par_chunks(PIECE))
                .for_each(|(d, s)| d.copy_from_slice(s));
            // SAFETY: dst + offset lies inside the destination buffer (the
            // caller passes one of bytes.len()); the staged source stays
            // untouched until the event recorded next has fired.
            unsafe {
                result::memcpy_htod_async(dst + (i * CHUNK) as u64, &*staged, stream.cu_stream())
            }
            .map_err(fault("uploading"))?;
            slot.done
                .record(stream)
                .map_err(fault("recording a staging event"))?;
        }
        Ok(())
    }
}
