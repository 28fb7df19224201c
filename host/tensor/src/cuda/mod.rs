//! The CUDA backend: cuBLAS GEMM and NVRTC-compiled kernels behind the
//! [`crate::Backend`] trait, with CUDA loaded at run time.
//!
//! Nothing here links against CUDA: the driver, cuBLAS and NVRTC are opened
//! with `dlopen` the first time they are needed, so a binary built with this
//! module runs on machines without a GPU; [`available`] says whether one can
//! be used, and [`CudaBackend::new`] returns an error (never panics) when it
//! cannot.
//!
//! Layout: [`device`] owns the per-device context shared by every backend of
//! a process, [`kernels`] compiles and caches the kernels, [`storage`] the
//! device buffers and their cross-stream bookkeeping, [`layout`] the strided
//! index plans, [`blas`] the GEMM, [`staging`] large uploads through pinned
//! memory, [`pinned`] page-locked buffers for paged-out tensors, [`backend`] the ops of one worker
//! (the image and math op families in its `image` and `math` submodules,
//! kernels in image.cu), [`dnn`] cuDNN for the convolutions (loaded at run
//! time too), [`decoder`] the decoder ops (kernels in decoder.cu) and
//! [`graph`] CUDA graphs built from recorded ops.

/// Launches kernel `$name` on the backend's queue stream (its own, or the
/// capture stream while a graph is built). Arguments must be local
/// variables: the launch reads them through pointers.
macro_rules! launch {
    ($self:ident, $name:expr, $cfg:expr, $($arg:ident),* $(,)?) => {{
        let name: &str = &$name;
        let func = $self.device.kernels.get(name)?;
        let stream = $self.queue();
        let mut builder = stream.launch_builder(&func);
        $( builder.arg(&$arg); )*
        // SAFETY: the argument list matches the kernel's signature in
        // kernels.cu / decoder.cu, and every pointer is a live buffer of
        // this context large enough for the launch's index range.
        unsafe { builder.launch($cfg) }
            .map(|_| ())
            .map_err($crate::cuda::device::fault(name))
    }};
}

mod backend;
mod blas;
mod decoder;
mod device;
mod dnn;
mod graph;
mod kernels;
mod layout;
mod pinned;
mod staging;
mod storage;

pub use backend::CudaBackend;
pub use device::{available, device_count};
pub use dnn::probe as cudnn_probe;
pub use kernels::decoder_compile_time;
pub use pinned::PinnedBuffer;
pub use storage::CudaStorage;
