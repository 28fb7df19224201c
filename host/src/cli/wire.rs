//! The parts of the server's answers the CLI reads, as typed shapes (the
//! server sends more; `--json` prints all of it).

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Uploaded {
    pub digest: String,
    pub size: i64,
    pub created: bool,
}

#[derive(Debug, Deserialize)]
pub struct Endpoints {
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub handler: String,
    pub generation: i64,
    pub url: String,
    pub min_workers: u32,
    pub max_workers: u32,
    pub gpus: Vec<String>,
    pub workers: WorkerCounts,
    pub jobs: JobCounts,
    pub last_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WorkerCounts {
    pub idle: usize,
    pub running: usize,
    pub initializing: usize,
    pub throttled: usize,
    pub unhealthy: usize,
    pub outdated: usize,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobCounts {
    pub completed: i64,
    pub failed: i64,
    pub in_progress: i64,
    pub in_queue: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    pub workers: WorkerCounts,
    pub worker_details: Vec<WorkerDetail>,
}

#[derive(Debug, Deserialize)]
pub struct WorkerDetail {
    pub state: String,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Jobs {
    pub jobs: Vec<JobSummary>,
}

#[derive(Debug, Deserialize)]
pub struct JobSummary {
    pub id: String,
    pub status: String,
    pub created_at: i64,
    pub delay_ms: Option<i64>,
    pub execution_ms: Option<i64>,
    pub worker_id: Option<String>,
    pub error: Option<String>,
}

/// A job's status object (RunPod's shape).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    pub id: String,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Logs {
    pub lines: Vec<LogLine>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogLine {
    pub at: i64,
    pub worker: Option<String>,
    pub job: Option<String>,
    pub source: String,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct Keys {
    pub keys: Vec<Key>,
}

#[derive(Debug, Deserialize)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub endpoint_id: Option<String>,
    pub prefix: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
}

#[derive(Debug, Deserialize)]
pub struct Model {
    pub files: Vec<ModelFile>,
}

#[derive(Debug, Deserialize)]
pub struct ModelFile {
    pub path: String,
    pub sha256: String,
}
