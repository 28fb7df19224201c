//! Rust bindings generated from wit/ for the host side of world `handler`.
//! Resources map to host types kept in the store's `ResourceTable`; each
//! interface's error type maps to a host fault type (see
//! [`super::host::fault`]), so host functions return `Result<T, Fault>` and
//! the generated glue turns a fault into the guest's error value or a trap.

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
