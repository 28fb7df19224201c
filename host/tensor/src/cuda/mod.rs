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
//! memory, [`pinned`] page-locked buffers for paged-out tensors, [`dnn`]
//! cuDNN (convolutions, loaded at run time too), and [`backend`] the ops of
//! one worker (the image and math op families in its `image` and `math`
//! submodules, their kernels in image.cu).

mod backend;
mod blas;
mod device;
mod dnn;
mod kernels;
mod layout;
mod pinned;
mod staging;
mod storage;

pub use backend::CudaBackend;
pub use device::{available, device_count};
pub use dnn::probe as cudnn_probe;
pub use pinned::PinnedBuffer;
pub use storage::CudaStorage;
