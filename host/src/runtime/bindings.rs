//! Rust bindings generated from wit/ for the host side of world `handler`.
//! Resources map to host types kept in the store's `ResourceTable`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "wasmpod:serverless/tensor.tensor": crate::runtime::host::tensor::TensorEntry,
        "wasmpod:serverless/model.model": crate::runtime::host::model::ModelEntry,
    },
});

pub use self::wasmpod::serverless::{device, job, model, tensor, types};
