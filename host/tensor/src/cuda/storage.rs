//! Device buffers of the CUDA backend.
//!
//! A buffer belongs to the stream of the backend that made it (its home
//! stream): it is allocated, written and freed there, in stream order. A
//! backend on another stream of the same device may read it (a model's
//! weights, uploaded once and shared read-only): that reader first waits for
//! the home stream's work so far, and records an event after its reads; the
//! free waits for those events, so no stream reads memory already handed
//! back to the pool.

use std::any::Any;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaEvent, CudaStream, result, sys};

use super::device::fault;
use crate::{Reservation, Result, Storage};

/// One device allocation and the quota bytes it holds.
pub struct CudaStorage {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    home: Arc<CudaStream>,
    /// Latest read event of each foreign stream, keyed by that stream.
    foreign_reads: Mutex<Vec<(usize, CudaEvent)>>,
    _reservation: Reservation,
}

impl CudaStorage {
    /// Takes ownership of `ptr` (`bytes` long, allocated on `home`, or 0 for
    /// an empty buffer).
    pub(crate) fn new(
        ptr: sys::CUdeviceptr,
        bytes: usize,
        home: Arc<CudaStream>,
        reservation: Reservation,
    ) -> Self {
        Self {
            ptr,
            bytes,
            home,
            foreign_reads: Mutex::new(Vec::new()),
            _reservation: reservation,
        }
    }

    /// The device address (0 for an empty buffer).
    pub fn device_ptr(&self) -> u64 {
        self.ptr
    }

    pub(crate) fn context(&self) -> &Arc<CudaContext> {
        self.home.context()
    }

    fn is_home(&self, stream: &CudaStream) -> bool {
        self.home.cu_stream() == stream.cu_stream()
    }

    /// Makes `stream` wait until the work that produced this buffer is done.
    pub(crate) fn before_read_on(&self, stream: &CudaStream) -> Result<()> {
        if self.is_home(stream) {
            return Ok(());
        }
        let produced = self
            .home
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .map_err(fault("recording a cross-stream event"))?;
        stream
            .wait(&produced)
            .map_err(fault("waiting for another worker's stream"))
    }

    /// Records that `stream` has queued reads of this buffer, so freeing it
    /// waits for them.
    pub(crate) fn after_read_on(&self, stream: &CudaStream) -> Result<()> {
        if self.is_home(stream) {
            return Ok(());
        }
        let done = stream
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .map_err(fault("recording a read event"))?;
        let key = stream.cu_stream() as usize;
        let mut reads = self.foreign_reads.lock().unwrap_or_else(|p| p.into_inner());
        match reads.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = done,
            None => reads.push((key, done)),
        }
        Ok(())
    }
}

impl Drop for CudaStorage {
    fn drop(&mut self) {
        if self.ptr == 0 {
            return;
        }
        let ctx = self.home.context();
        ctx.record_err(ctx.bind_to_thread());
        let reads = std::mem::take(
            self.foreign_reads
                .get_mut()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for (_, read) in &reads {
            ctx.record_err(self.home.wait(read));
        }
        // SAFETY: ptr was allocated on the home stream and is freed once, in
        // that stream's order, after every recorded foreign read.
        ctx.record_err(unsafe { result::free_async(self.ptr, self.home.cu_stream()) });
    }
}

impl Storage for CudaStorage {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn len_bytes(&self) -> usize {
        self.bytes
    }
}
