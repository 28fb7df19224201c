//! Executors: one long-lived process per slice that holds the slice's
//! wasmtime engine, compiled handlers, model cache and the workers'
//! instances. A CUDA process can drive only one MIG device, and a crashed
//! executor must not take the host down, so the host talks to each executor
//! over its stdin/stdout with the line-delimited JSON of [`protocol`].
//!
//! - [`server`]: the executor side (`wasmpod executor`).
//! - [`client`]: the host side: spawn, send work, route events, notice death.
//! - [`http`]: the HTTP/2 link that carries load-balancing endpoints'
//!   requests to their workers' instances, bodies streamed both ways.
//! - [`sandbox`]: what an executor may touch (Landlock, no_new_privs).

pub mod client;
pub mod http;
pub mod protocol;
pub mod sandbox;
pub mod server;

pub use client::{ExecutorError, ExecutorProcess, JobReply, JobRun, ParkedWorker};
pub use http::{HttpLink, LinkBody};
pub use protocol::{ParkReport, SliceSpec, WorkerSpec, WorkerStarted};
pub use sandbox::SandboxPolicy;
