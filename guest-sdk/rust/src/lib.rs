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

// Lets the bindings below name this crate's modules by the same path inside
// the crate and in the macros that expand in a handler's crate.
extern crate self as wasmpod_sdk;

mod decoder;
mod device;
mod entry;
pub mod http;
mod job;
mod model;
mod tensor;
mod vision;

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
pub use vision::{Activation, Conv1dParams, ConvParams, Layout, PadMode, PoolParams};

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

/// Raw bindings of world `wasmpod:serverless/http-handler`, sharing the GPU
/// interfaces with [`bindings`] and wasi:http's types with the `wasip2`
/// crate. Used by [`http_handler!`].
#[doc(hidden)]
pub mod http_bindings {
    wit_bindgen::generate!({
        world: "http-handler",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_http_handler_world",
        default_bindings_module: "wasmpod_sdk::http_bindings",
        with: {
            "wasmpod:serverless/tensor@0.1.0": wasmpod_sdk::bindings::wasmpod::serverless::tensor,
            "wasmpod:serverless/model@0.1.0": wasmpod_sdk::bindings::wasmpod::serverless::model,
            "wasmpod:serverless/device@0.1.0": wasmpod_sdk::bindings::wasmpod::serverless::device,
            "wasi:http/types@0.2.12": wasmpod_sdk::__wasip2::http::types,
            "wasi:io/streams@0.2.12": wasmpod_sdk::__wasip2::io::streams,
            "wasi:io/error@0.2.12": wasmpod_sdk::__wasip2::io::error,
            "wasi:io/poll@0.2.12": wasmpod_sdk::__wasip2::io::poll,
            "wasi:clocks/monotonic-clock@0.2.12": wasmpod_sdk::__wasip2::clocks::monotonic_clock,
        },
    });
}

#[doc(hidden)]
pub use wasip2 as __wasip2;

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

/// Register an HTTP handler (world `http-handler`, for load-balancing
/// endpoints): `app` builds the [`http::Router`] (once per instance), and
/// `init = setup` optionally runs once per instance before the first
/// request (open models there, as with [`handler!`]).
///
/// ```no_run
/// use wasmpod_sdk::http::{Response, Router};
///
/// fn app() -> Router {
///     Router::new().get("/ping", |_| Response::text("ok"))
/// }
///
/// wasmpod_sdk::http_handler!(app);
/// ```
///
/// Use the macro once per crate, at module level, instead of [`handler!`].
#[macro_export]
macro_rules! http_handler {
    ($app:expr) => {
        $crate::http_handler!($app, init = $crate::__private::no_init);
    };
    ($app:expr, init = $init:expr $(,)?) => {
        struct __WasmpodHttpHandler;

        impl $crate::http_bindings::Guest for __WasmpodHttpHandler {
            fn init() -> ::core::result::Result<(), ::std::string::String> {
                $crate::__private::run_init($init)?;
                $crate::http::prepare($app);
                Ok(())
            }
        }

        impl $crate::http_bindings::exports::wasi::http::incoming_handler::Guest
            for __WasmpodHttpHandler
        {
            fn handle(
                request: $crate::__wasip2::http::types::IncomingRequest,
                response_out: $crate::__wasip2::http::types::ResponseOutparam,
            ) {
                $crate::http::serve($app, request, response_out)
            }
        }

        $crate::http_bindings::__export_http_handler_world!(__WasmpodHttpHandler with_types_in $crate::http_bindings);
    };
}
