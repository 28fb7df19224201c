//! Messages between the host and an executor, one JSON object per line.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::gpu::DeviceInfo;
use crate::runtime::{BootLayer, JobError, OutputStream};

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
    /// Start through FlashBoot (a snapshot taken after `init`, or the
    /// endpoint's parked instances) and park the instances when stopped.
    #[serde(default)]
    pub flashboot: bool,
}

/// What parking a stopped worker's instances moved off the device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParkReport {
    /// Instances kept (their tensors paged out).
    pub instances: usize,
    /// Tensors and model weights paged out.
    pub tensors: usize,
    pub bytes: u64,
    pub ms: f64,
}

/// How a worker's instances started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerStarted {
    /// Milliseconds from the request to the instances being ready.
    pub init_ms: f64,
    pub boot: BootLayer,
    /// Why FlashBoot did not use a faster layer, if it says.
    pub note: Option<String>,
}

/// Host → executor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Load `wasm_path` (content `digest`) and create the worker's instances
    /// (running `init`).
    StartWorker {
        worker: String,
        /// The endpoint whose parked instances the worker may take over.
        endpoint: String,
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
    /// Drop the worker's instances, or with `park` (a FlashBoot worker),
    /// page their tensors and the slice's weights out to host memory and
    /// keep them for the endpoint's next worker. Answered by
    /// [`Event::WorkerStopped`].
    StopWorker {
        worker: String,
        #[serde(default)]
        park: bool,
    },
    /// Drop the endpoint's parked instances (a new handler version, FlashBoot
    /// turned off, or the endpoint deleted).
    ReleaseParked { endpoint: String },
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
        started: WorkerStarted,
    },
    WorkerFailed {
        worker: String,
        error: String,
    },
    WorkerStopped {
        worker: String,
        /// Set when the instances were parked.
        parked: Option<ParkReport>,
        /// Why parking failed (the instances were dropped instead).
        error: Option<String>,
    },
    Progress {
        job: String,
        value: serde_json::Value,
    },
    Stream {
        job: String,
        chunk: serde_json::Value,
    },
    /// A guest log call: during a job (`job`), else in its worker (`init`,
    /// between jobs).
    Log {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        worker: Option<String>,
        level: String,
        message: String,
    },
    /// A line the guest wrote to stdout or stderr, attributed as [`Event::Log`].
    Output {
        #[serde(default)]
        job: Option<String>,
        #[serde(default)]
        worker: Option<String>,
        stream: OutputStream,
        line: String,
    },
    JobDone {
        job: String,
        result: Result<String, JobError>,
    },
}
