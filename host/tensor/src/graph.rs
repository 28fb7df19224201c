//! Recording tensor ops once and replaying them with one call: what makes a
//! decode step cost one host call instead of a couple of hundred.
//!
//! While a [`Capture`] is active on the calling thread ([`Capture::scope`]),
//! every op a [`Device`] runs is executed as usual and also recorded as a
//! [`Step`]: the backend call the front made, with its already checked
//! arguments (inputs held alive), and every buffer the backend allocated
//! for it, results and scratch alike, in order. [`Capture::finish`] turns
//! the steps into a [`Graph`].
//!
//! Replaying runs each step again with the allocator switched to *reuse*:
//! instead of fresh memory, the backend gets the step's recorded buffers
//! back, in the same order, so results land in the tensors the recording
//! returned and the guest's handles to them see the new values. The CPU
//! backend replays exactly so (re-running the ops into the same buffers);
//! a GPU backend does it once, under stream capture, when the graph is
//! built ([`crate::Backend::build_graph`]), and then launches the native
//! graph (a CUDA graph) per replay.
//!
//! Whatever varies between replays (positions, the KV cache's length, the
//! sampler's counter) must live in device tensors the guest updates in
//! place; scalar arguments are fixed at recording. Checks the front makes
//! by reading device data (gather indices) happen at recording only; the
//! kernels never read or write out of bounds whatever the data, so a
//! replay with bad values is wrong but safe.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::{Backend, Device, Result, Storage, Tensor, TensorError};

/// A recorded op: the checked backend call, replayable on the backend that
/// recorded it.
pub(crate) type Op = Arc<dyn Fn(&dyn Backend) -> Result<Vec<Tensor>> + Send + Sync>;

/// One recorded op and the buffers it allocated, in allocation order.
pub struct Step {
    pub(crate) run: Op,
    pub(crate) buffers: Vec<Arc<dyn Storage>>,
}

impl Step {
    /// Runs the op again with the allocator handing out this step's
    /// buffers; fails if the op allocates differently than when recorded.
    pub fn rerun(&self, backend: &dyn Backend) -> Result<()> {
        let previous =
            ALLOC.with(|a| a.replace(Alloc::Reuse(self.buffers.iter().cloned().collect())));
        let outcome = (self.run)(backend);
        let left = ALLOC.with(|a| a.replace(previous));
        outcome?;
        match left {
            Alloc::Reuse(rest) if rest.is_empty() => Ok(()),
            _ => Err(mismatch()),
        }
    }
}

/// How backend allocations are served on this thread.
enum Alloc {
    /// Fresh memory (everything outside recording and replay).
    Fresh,
    /// Fresh memory, each buffer also noted (a step being recorded).
    Log(Vec<Arc<dyn Storage>>),
    /// The recorded buffers of the step being replayed, in order.
    Reuse(VecDeque<Arc<dyn Storage>>),
}

thread_local! {
    static ACTIVE: RefCell<Option<Capture>> = const { RefCell::new(None) };
    static ALLOC: RefCell<Alloc> = const { RefCell::new(Alloc::Fresh) };
}

fn mismatch() -> TensorError {
    TensorError::DeviceFault(
        "a replayed op did not allocate what it allocated when it was recorded".into(),
    )
}

/// For backends: the buffer a replayed op gets instead of a fresh one of
/// `bytes` bytes, or `None` outside a replay (allocate as usual).
pub fn reuse(bytes: usize) -> Result<Option<Arc<dyn Storage>>> {
    ALLOC.with(|a| match &mut *a.borrow_mut() {
        Alloc::Reuse(queue) => match queue.pop_front() {
            Some(s) if s.len_bytes() == bytes => Ok(Some(s)),
            _ => Err(mismatch()),
        },
        _ => Ok(None),
    })
}

/// For backends: note a fresh buffer (kept by the step being recorded).
pub fn allocated(storage: &Arc<dyn Storage>) {
    ALLOC.with(|a| {
        if let Alloc::Log(buffers) = &mut *a.borrow_mut() {
            buffers.push(Arc::clone(storage));
        }
    });
}

/// For backends: true while an op is being replayed (or a native graph
/// built from it), when host-side checks that read device data back are
/// skipped and work must stay on the device.
pub fn replaying() -> bool {
    ALLOC.with(|a| matches!(&*a.borrow(), Alloc::Reuse(_)))
}

/// True while a [`Capture`] is active on this thread.
pub fn capturing() -> bool {
    ACTIVE.with(|a| a.borrow().is_some())
}

fn same_device(a: &Device, b: &Device) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a.backend()), Arc::as_ptr(b.backend()))
}

/// Runs `op` (a checked backend call) on `device`, recording it when a
/// capture is active on this thread.
pub(crate) fn run(
    device: &Device,
    inputs: &[&Tensor],
    op: impl Fn(&dyn Backend, &[Tensor]) -> Result<Vec<Tensor>> + Send + Sync + 'static,
) -> Result<Vec<Tensor>> {
    if !capturing() || replaying() {
        let inputs: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
        return op(device.backend().as_ref(), &inputs);
    }
    let other_device = ACTIVE.with(|a| {
        let mut active = a.borrow_mut();
        let capture = active.as_mut().expect("capturing() checked it");
        match &capture.device {
            Some(d) if !same_device(d, device) => Some(d.name().to_string()),
            Some(_) => None,
            None => {
                capture.device = Some(device.clone());
                None
            }
        }
    });
    if let Some(first) = other_device {
        return Err(TensorError::InvalidArgument(format!(
            "a capture records ops of one device: it began on {first}, this op runs on {}",
            device.name()
        )));
    }
    let inputs: Vec<Tensor> = inputs.iter().map(|&t| t.clone()).collect();
    let previous = ALLOC.with(|a| a.replace(Alloc::Log(Vec::new())));
    let outcome = op(device.backend().as_ref(), &inputs);
    let logged = ALLOC.with(|a| a.replace(previous));
    let out = outcome?;
    let Alloc::Log(buffers) = logged else {
        unreachable!("set to Log above and only this function changes it")
    };
    let step = Step {
        run: Arc::new(move |backend| op(backend, &inputs)),
        buffers,
    };
    ACTIVE.with(|a| {
        if let Some(capture) = a.borrow_mut().as_mut() {
            capture.steps.push(step);
        }
    });
    Ok(out)
}

/// [`run`] for ops with one result.
pub(crate) fn run1(
    device: &Device,
    inputs: &[&Tensor],
    op: impl Fn(&dyn Backend, &[Tensor]) -> Result<Tensor> + Send + Sync + 'static,
) -> Result<Tensor> {
    let mut out = run(device, inputs, move |b, t| op(b, t).map(|r| vec![r]))?;
    Ok(out.pop().expect("one result"))
}

/// An open recording of one caller's ops (an instance's, between its
/// `capture-begin` and `capture-end`).
#[derive(Default)]
pub struct Capture {
    device: Option<Device>,
    steps: Vec<Step>,
}

impl Capture {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ops recorded so far.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs `f` with `capture` active on this thread, so the device ops it
    /// calls are recorded into it. `capture` is put back when `f` returns
    /// (or panics).
    pub fn scope<R>(capture: &mut Option<Capture>, f: impl FnOnce() -> R) -> R {
        struct Restore<'a>(&'a mut Option<Capture>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                *self.0 = ACTIVE.with(|a| a.borrow_mut().take());
            }
        }
        if capture.is_none() {
            return f();
        }
        ACTIVE.with(|a| *a.borrow_mut() = capture.take());
        let _restore = Restore(capture);
        f()
    }

    /// The graph of everything recorded (built into a native graph by
    /// backends that have one). An empty capture makes an empty graph.
    pub fn finish(self) -> Result<Graph> {
        let Some(device) = self.device else {
            return Ok(Graph {
                native: None,
                steps: Vec::new(),
                device: None,
            });
        };
        let native = device.backend().build_graph(&self.steps)?;
        Ok(Graph {
            native,
            steps: self.steps,
            device: Some(device),
        })
    }
}

/// A backend's compiled form of a graph (a CUDA graph), launched per
/// replay. Dropping it must leave no launch reading freed memory.
pub trait NativeGraph: Send + Sync {
    fn launch(&self) -> Result<()>;
}

/// Recorded ops, replayable (see the module docs).
pub struct Graph {
    // Field order is drop order: the native graph goes before the buffers
    // its launches use.
    native: Option<Box<dyn NativeGraph>>,
    steps: Vec<Step>,
    device: Option<Device>,
}

impl Graph {
    /// Runs every recorded op again, in order.
    pub fn replay(&self) -> Result<()> {
        if let Some(native) = &self.native {
            return native.launch();
        }
        let Some(device) = &self.device else {
            return Ok(());
        };
        for step in &self.steps {
            step.rerun(device.backend().as_ref())?;
        }
        Ok(())
    }

    /// Number of recorded ops.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// True when replays launch a native (GPU) graph.
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }
}
