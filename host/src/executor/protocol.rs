//! Messages between the host and an executor, one JSON object per line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::gpu::DeviceInfo;
use crate::runtime::JobError;

/// What an executor serves: the devices of one slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceSpec {
    /// Stable id, e.g. "gpu0", "gpu1-mig0", "gpus0-3", "cpu3".
    pub id: String,
    /// The devices, in the order the guest sees them.
    pub devices: Vec<DeviceInfo>,
    /// Value for CUDA_VISIBLE_DEVICES (GPU index list or MIG UUID); `None`
    /// for CPU and simulated slices, which compute on the CPU backend.
    pub cuda_visible_devices: Option<String>,
    /// Run tensor ops on CUDA (real GPU slices only).
    pub cuda: bool,
}

/// How one worker's instances are set up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub memory_limit: u64,
    pub tensor_quota: u64,
    pub models_dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Jobs the worker runs at once (one instance each).
    pub concurrency: u32,
}

/// Host → executor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Load `wasm_path` (content `digest`) and create the worker's instances
    /// (running `init`).
    StartWorker {
        worker: String,
        wasm_path: PathBuf,
        digest: String,
        spec: WorkerSpec,
    },
    /// Run a job on one of the worker's idle instances.
    RunJob {
        worker: String,
        job: String,
        input: String,
        timeout_ms: u64,
    },
    /// Cancel a running job.
    Cancel { job: String },
    /// Drop the worker's instances.
    StopWorker { worker: String },
}

/// Executor → host.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The executor is up and serving its slice.
    Ready {
        pid: u32,
    },
    WorkerReady {
        worker: String,
        init_ms: f64,
    },
    WorkerFailed {
        worker: String,
        error: String,
    },
    Progress {
        job: String,
        value: serde_json::Value,
    },
    Stream {
        job: String,
        chunk: serde_json::Value,
    },
    Log {
        job: String,
        level: String,
        message: String,
    },
    JobDone {
        job: String,
        result: Result<String, JobError>,
    },
}
