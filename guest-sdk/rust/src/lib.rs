//! The Rust SDK for wasmpod handlers.
//!
//! A handler is a function from a deserializable input to a serializable
//! output; [`handler!`] turns it into the component exports the host calls.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct Input { name: String }
//!
//! #[derive(Serialize)]
//! struct Output { greeting: String }
//!
//! fn handle(input: Input) -> Result<Output, wasmpod_sdk::JobError> {
//!     wasmpod_sdk::progress(&"greeting")?;
//!     wasmpod_sdk::info!("greeting {}", input.name);
//!     Ok(Output { greeting: format!("hello, {}", input.name) })
//! }
//!
//! wasmpod_sdk::handler!(handle);
//! ```
//!
//! Beyond pure computation a handler reaches the host through this crate:
//! [`Tensor`] (ops on the worker's device), [`Model`] (safetensors weights and
//! auxiliary files), the running job ([`progress`], [`stream`], [`log`] and
//! [`info!`], [`job_id`], [`cancelled`]) and the device slice ([`devices`],
//! [`quota_bytes`], [`used_bytes`]); the decoder ops ([`Tensor::linear`],
//! [`Tensor::attention_cached`], [`Tensor::sample`], ...) run a
//! transformer decoder on the device, and [`capture`] records a decode
//! step as a [`Graph`] replayed with one call. Errors are Rust error types
//! ([`TensorError`], [`ModelError`], [`JobError`]), so `?` works into
//! `Box<dyn std::error::Error>` or any error of your own.
//!
//! A handler crate is a `cdylib` depending on `wasmpod-sdk` and `serde`.
//! Build it with `cargo build --target wasm32-wasip2 --release`: the
//! `.wasm` in `target/wasm32-wasip2/release/` is already a component, ready
//! to upload or to try with `wasmpod run`. A panic traps the instance; the
//! host fails the job with the panic message and starts a fresh instance.

#![warn(missing_docs)]

mod decoder;
mod device;
mod entry;
mod job;
mod model;
mod tensor;

pub use decoder::{
    AttentionOptions, Graph, Llama3Scaling, RopeConfig, RopeLayout, RopeScaling, Sampling, capture,
    capture_begin, capture_end,
};
pub use device::{DeviceInfo, DeviceKind, devices, quota_bytes, used_bytes};
pub use job::{JobError, LogLevel, cancelled, job_id, log, progress, stream};
pub use model::{Model, ModelError, WeightInfo};
/// Re-exported so a handler can take or return `serde_json::Value` without
/// a dependency of its own.
pub use serde_json;
pub use tensor::{DType, Tensor, TensorError};

/// Raw bindings generated from `wit/` (world `wasmpod:serverless/handler`).
/// Used by [`handler!`]; handlers should not need them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_handler_world",
        default_bindings_module: "wasmpod_sdk::bindings",
    });
}

/// Support for [`handler!`]'s expansion; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::entry::{no_init, run_handle, run_init};
}

/// Register the function that handles jobs, and optionally one that runs
/// once per instance before the first job:
///
/// ```no_run
/// use std::sync::OnceLock;
/// use wasmpod_sdk::{Model, Tensor};
///
/// static EMBEDDINGS: OnceLock<Tensor> = OnceLock::new();
///
/// fn setup() -> Result<(), wasmpod_sdk::ModelError> {
///     let table = Model::open("words")?.weight("embeddings")?;
///     EMBEDDINGS.get_or_init(|| table);
///     Ok(())
/// }
///
/// fn handle(ids: Vec<i64>) -> Result<Vec<f32>, Box<dyn std::error::Error>> {
///     let table = EMBEDDINGS.get().ok_or("init did not run")?;
///     let ids = Tensor::from_i64(&[ids.len() as u32], &ids)?;
///     Ok(table.gather(&ids)?.mean(0, false)?.to_vec_f32()?)
/// }
///
/// wasmpod_sdk::handler!(handle, init = setup);
/// ```
///
/// `handle` is any `FnOnce(In) -> Result<Out, E>` where `In:
/// serde::de::DeserializeOwned`, `Out: serde::Serialize` and `E: Display`;
/// the output becomes the job's `output`, an error the job's `error`. Input
/// that does not deserialize into `In` fails the job with
/// `invalid input: <serde's explanation>` before `handle` runs.
///
/// `setup` is `FnOnce() -> Result<(), E>`; an error there fails the
/// worker's start rather than a job. Use it to open models and keep their
/// weights (in a `static OnceLock`, as above) for every job the instance
/// handles. Without `init = ...` the instance starts with nothing to do.
///
/// Use the macro once per crate, at module level.
#[macro_export]
macro_rules! handler {
    ($handle:expr) => {
        $crate::handler!($handle, init = $crate::__private::no_init);
    };
    ($handle:expr, init = $init:expr $(,)?) => {
        struct __WasmpodHandler;

        impl $crate::bindings::Guest for __WasmpodHandler {
            fn init() -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::run_init($init)
            }

            fn handle(
                job: $crate::bindings::wasmpod::serverless::types::JobRequest,
            ) -> ::core::result::Result<::std::string::String, ::std::string::String> {
                $crate::__private::run_handle(&job.input, $handle)
            }
        }

        $crate::bindings::__export_handler_world!(__WasmpodHandler with_types_in $crate::bindings);
    };
}
