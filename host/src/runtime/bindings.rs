//! Rust bindings generated from wit/ for the host side of the two worlds:
//! `handler` (queue endpoints, at the top of this module) and
//! `http-handler` (load-balancing endpoints, in [`http`]). Resources map to
//! host types kept in the store's `ResourceTable`; each interface's error
//! type maps to a host fault type (see [`super::host::fault`]), so host
//! functions return `Result<T, Fault>` and the generated glue turns a fault
//! into the guest's error value or a trap. The http world reuses the queue
//! world's interfaces, so one host implementation serves both.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: { default: trappable },
    exports: { default: async },
    trappable_error_type: {
        "wasmpod:serverless/tensor.tensor-error" => crate::runtime::host::fault::TensorFault,
        "wasmpod:serverless/model.model-error" => crate::runtime::host::fault::ModelFault,
        "wasmpod:serverless/job.job-error" => crate::runtime::host::fault::JobFault,
    },
    with: {
        "wasmpod:serverless/tensor.tensor": crate::runtime::host::tensor::TensorEntry,
        "wasmpod:serverless/tensor.graph": crate::runtime::host::graph::GraphEntry,
        "wasmpod:serverless/model.model": crate::runtime::host::model::ModelEntry,
    },
});

pub use self::wasmpod::serverless::{device, job, model, tensor, types};

/// World `http-handler`: `wasi:http/incoming-handler` plus the GPU imports.
pub mod http {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "http-handler",
        imports: { default: trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasmpod:serverless/tensor": super::tensor,
            "wasmpod:serverless/model": super::model,
            "wasmpod:serverless/device": super::device,
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });

    pub use self::wasmpod::serverless::log;
}
