//! The per-GPU state every backend of the process shares: one CUDA context
//! per device (so workers on one GPU can read each other's tensors, e.g. a
//! model's weights uploaded once), its loaded kernels, and the probe that
//! says whether CUDA can be used at all.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{CudaContext, result, sys};

use super::kernels::Kernels;
use super::staging::Staging;
use crate::TensorError;

/// A GPU as the whole process sees it.
pub(crate) struct SharedDevice {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) ordinal: usize,
    pub(crate) name: String,
    pub(crate) kernels: Kernels,
    pub(crate) staging: Staging,
}

/// Opened devices, by ordinal. Contexts stay open for the life of the
/// process: creating one costs about a third of a second, and keeping it is
/// what lets a worker scaled to zero come back in milliseconds.
static OPENED: Mutex<Vec<(usize, Arc<SharedDevice>)>> = Mutex::new(Vec::new());

/// Number of CUDA devices this process can use: 0 when the driver, cuBLAS
/// or NVRTC library is missing or no GPU is visible. Probed once.
pub fn device_count() -> usize {
    static COUNT: OnceLock<usize> = OnceLock::new();
    *COUNT.get_or_init(probe)
}

/// True when at least one CUDA device can be used ([`device_count`] > 0).
pub fn available() -> bool {
    device_count() > 0
}

fn probe() -> usize {
    // SAFETY: these only try to dlopen the libraries by name.
    let libraries_present = unsafe {
        cudarc::driver::sys::is_culib_present()
            && cudarc::cublas::sys::is_culib_present()
            && cudarc::nvrtc::sys::is_culib_present()
    };
    if !libraries_present {
        return 0;
    }
    // cudarc panics when a symbol is missing (a driver older than the
    // bindings); treat that like having no usable device.
    catch_unwind(|| {
        result::init().ok()?;
        result::device::get_count().ok()
    })
    .ok()
    .flatten()
    .map_or(0, |n| n.max(0) as usize)
}

/// The shared state of device `ordinal`, opened on first use.
pub(crate) fn shared(ordinal: usize) -> Result<Arc<SharedDevice>, TensorError> {
    let count = device_count();
    if count == 0 {
        return Err(TensorError::DeviceFault(
            "no CUDA device: the NVIDIA driver, cuBLAS or NVRTC library was not found, or no GPU is visible to this process".into(),
        ));
    }
    if ordinal >= count {
        return Err(TensorError::InvalidArgument(format!(
            "CUDA device {ordinal} does not exist; this process sees {count} (0 to {})",
            count - 1
        )));
    }
    let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, dev)) = opened.iter().find(|(o, _)| *o == ordinal) {
        return Ok(Arc::clone(dev));
    }
    let dev = Arc::new(guard("opening the device", || open(ordinal))?);
    opened.push((ordinal, Arc::clone(&dev)));
    Ok(dev)
}

fn open(ordinal: usize) -> Result<SharedDevice, TensorError> {
    let ctx = CudaContext::new(ordinal).map_err(fault("creating the context"))?;
    if !ctx.has_async_alloc() {
        return Err(TensorError::DeviceFault(format!(
            "CUDA device {ordinal} does not support stream-ordered allocation (memory pools), which this backend needs"
        )));
    }
    // SAFETY: the device handle comes from the context just created, and the
    // attribute value is a u64 as the driver expects for this attribute.
    unsafe {
        let pool = result::device::get_default_mem_pool(ctx.cu_device())
            .map_err(fault("reading the memory pool"))?;
        // Keep freed blocks in the pool rather than handing them back to the
        // driver at every synchronisation: otherwise each job's first large
        // allocation pays a full cuMemAlloc again.
        let mut keep_all: u64 = u64::MAX;
        result::mem_pool::set_attribute(
            pool,
            sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
            (&mut keep_all as *mut u64).cast(),
        )
        .map_err(fault("configuring the memory pool"))?;
    }
    let (major, minor) = ctx
        .compute_capability()
        .map_err(fault("reading the compute capability"))?;
    let name = ctx.name().map_err(fault("reading the device name"))?;
    let kernels = Kernels::load(&ctx, major, minor)?;
    Ok(SharedDevice {
        ctx,
        ordinal,
        name,
        kernels,
        staging: Staging::new(),
    })
}

/// Turns a CUDA error into a `DeviceFault` naming what was being done.
pub(crate) fn fault<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> TensorError + '_ {
    move |e| TensorError::DeviceFault(format!("cuda: {what}: {e:?}"))
}

/// Runs `f`, turning a panic inside cudarc (a missing library symbol) into
/// a `DeviceFault`, so constructing a backend never takes the host down.
pub(crate) fn guard<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, TensorError>,
) -> Result<T, TensorError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| panic.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        Err(TensorError::DeviceFault(format!("cuda: {what}: {msg}")))
    })
}
