//! Device buffers of the CUDA backend.
//!
//! A buffer belongs to the stream of the backend that made it (its home
//! stream): it is allocated, written and freed there, in stream order. A
//! backend on another stream of the same device may read it (a model's
//! weights, uploaded once and shared read-only; only its home stream ever
//! writes a buffer): that reader first waits for the work that produced it
//! (one event, recorded at the first foreign read and then reused, and
//! dropped from the path altogether once it has completed), and is noted
//! as a reader; the free makes the home stream wait for everything each
//! reader stream had queued by then, so no stream reads memory already
//! handed back to the pool. Reading a weight thus costs a few atomic loads
//! per op, not an event per read.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaEvent, CudaStream, result, sys};

use super::device::fault;
use crate::{Reservation, Result, Storage};

/// One device allocation and the quota bytes it holds.
pub struct CudaStorage {
    ptr: sys::CUdeviceptr,
    bytes: usize,
    home: Arc<CudaStream>,
    /// The event foreign readers wait on: the home stream's work up to the
    /// first foreign read.
    produced: Mutex<Option<CudaEvent>>,
    /// Set once `produced` has completed: foreign reads need no wait.
    settled: AtomicBool,
    /// Foreign streams that read the buffer (the free waits for them).
    readers: Mutex<Vec<Arc<CudaStream>>>,
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
            produced: Mutex::new(None),
            settled: AtomicBool::new(false),
            readers: Mutex::new(Vec::new()),
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
        if self.is_home(stream) || self.settled.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut produced = self.produced.lock().unwrap_or_else(|p| p.into_inner());
        let event = match &*produced {
            Some(e) if e.is_complete() => {
                self.settled.store(true, Ordering::Release);
                return Ok(());
            }
            Some(e) => e,
            None => produced.insert(
                self.home
                    .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
                    .map_err(fault("recording a cross-stream event"))?,
            ),
        };
        stream
            .wait(event)
            .map_err(fault("waiting for another worker's stream"))
    }

    /// Makes `stream` wait for all work queued on the home stream so far,
    /// with an event of its own: for readers of buffers that may have been
    /// written in place since (a GPU-to-GPU copy of a guest tensor).
    pub(crate) fn before_read_fresh(&self, stream: &CudaStream) -> Result<()> {
        if self.is_home(stream) {
            return Ok(());
        }
        let now = self
            .home
            .record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING))
            .map_err(fault("recording a cross-stream event"))?;
        stream
            .wait(&now)
            .map_err(fault("waiting for another stream"))
    }

    /// Notes that `stream` has queued reads of this buffer, so freeing it
    /// waits for them.
    pub(crate) fn after_read_on(&self, stream: &Arc<CudaStream>) -> Result<()> {
        if self.is_home(stream) {
            return Ok(());
        }
        let mut readers = self.readers.lock().unwrap_or_else(|p| p.into_inner());
        if !readers.iter().any(|r| r.cu_stream() == stream.cu_stream()) {
            readers.push(Arc::clone(stream));
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
        let readers = std::mem::take(self.readers.get_mut().unwrap_or_else(|p| p.into_inner()));
        for reader in &readers {
            // Everything the reader queued so far, its reads of this buffer
            // included, happens before the free.
            match reader.record_event(Some(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING)) {
                Ok(done) => ctx.record_err(self.home.wait(&done)),
                Err(e) => ctx.record_err::<()>(Err(e)),
            }
        }
        // SAFETY: ptr was allocated on the home stream and is freed once, in
        // that stream's order, after every foreign reader's queued work.
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
