//! wasmpod: a self-hosted serverless runtime for GPU work.
//!
//! - [`runtime`]: wasmtime engine, compiled-component cache, the linker with
//!   one host capability per WIT interface, per-instance limits.
//! - [`executor`]: one process per slice running workers' instances,
//!   supervised by the host over a JSON-lines protocol.
//! - [`gpu`]: what a worker is pinned to (its devices and tensor backends)
//!   and the model store.
//!
//! - [`wire`]: RunPod's job status object, shared by the HTTP edge and the
//!   engine room (webhooks).
//!
//! The `wasmpod` binary (src/main.rs, src/cli/) is a thin edge over these.

pub mod api;
pub mod executor;
pub mod gpu;
pub mod runtime;
pub mod scheduler;
pub mod serve;
pub mod store;
pub mod wire;
