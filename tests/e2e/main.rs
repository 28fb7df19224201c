//! The end-to-end suite as one test binary: each module is one area's
//! tests, named after it (`cargo test -p wasmpod --test e2e serve_lb::`
//! runs one area), sharing the helpers in tests/common. One binary links
//! wasmtime and compiles the helpers once, where one binary per area did
//! both twenty times over. The modules share this process: a helper that
//! builds something (an example component, a Postgres) does it once for
//! all of them, and no test may change process-wide state (environment,
//! current directory) that another area's tests read.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod dashboard;
mod executor;
mod flashboot;
mod guest_languages;
mod llm;
mod run_cli;
mod runtime_faults;
mod serve_api;
mod serve_batches;
mod serve_cluster;
mod serve_durability;
mod serve_flashboot;
mod serve_lb;
mod serve_logs;
mod serve_openai;
mod serve_runpod_client;
mod serve_scaling;
mod serve_security;
mod vision_examples;
