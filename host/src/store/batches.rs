//! Batches (RunPod's batch jobs): a named set of requests of one endpoint,
//! stored behind [`super::BatchStore`]. A DRAFT batch's requests are kept
//! apart from the queue; finalizing queues them, in one transaction, as
//! low-priority jobs that remember their batch and position, so the job
//! lifecycle runs them like any other (behind every normal job, by the
//! claim order) and a batch's counts and pages are read from its jobs. A
//! batch and its jobs are purged together, a retention after its last
//! request finished (a draft: a retention after its last change).

use serde::Serialize;
use utoipa::ToSchema;

use super::types::{FinalJob, JobRecord};

/// A batch's state, spelled as RunPod spells it. A finalized batch stays
/// FINALIZED while its requests run: it is done when its completed, failed
/// and cancelled requests add up to its total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BatchStatus {
    /// Requests can be added or removed; nothing runs.
    Draft,
    /// Locked; its requests are queued behind real-time jobs.
    Finalized,
    /// Cancelled: its queued requests were cancelled, running ones finish.
    Cancelled,
    /// The batch itself failed (not one of its requests). Nothing sets it
    /// today; RunPod's clients know the state.
    Failed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Draft => "DRAFT",
            BatchStatus::Finalized => "FINALIZED",
            BatchStatus::Cancelled => "CANCELLED",
            BatchStatus::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "DRAFT" => BatchStatus::Draft,
            "FINALIZED" => BatchStatus::Finalized,
            "CANCELLED" => BatchStatus::Cancelled,
            "FAILED" => BatchStatus::Failed,
            _ => return None,
        })
    }
}

/// How a batch's requests stand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub total: i64,
    pub in_queue: i64,
    pub in_progress: i64,
    pub completed: i64,
    /// FAILED or TIMED_OUT.
    pub failed: i64,
    pub cancelled: i64,
}

/// A batch with its request counts.
#[derive(Debug, Clone)]
pub struct BatchRecord {
    pub id: String,
    pub endpoint_id: String,
    pub name: Option<String>,
    pub status: BatchStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub finalized_at: Option<i64>,
    pub counts: BatchCounts,
}

/// A new batch: created DRAFT with `requests` (maybe none).
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: String,
    pub endpoint_id: String,
    pub name: Option<String>,
    pub requests: Vec<BatchRequest>,
}

/// One request of a draft: the id of the job it becomes, and its input
/// (JSON text, as the client sent it).
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub id: String,
    pub input: String,
}

/// The limits a batch change is checked against, in the same transaction.
#[derive(Debug, Clone, Copy)]
pub struct BatchCaps {
    /// Requests one batch may hold.
    pub max_requests: i64,
    /// Drafts, and finalized batches with requests left, per endpoint.
    pub max_active: i64,
    /// How long a draft is kept after its last change (ms).
    pub draft_retention_ms: i64,
}

/// One request of a batch, as its results page shows it.
#[derive(Debug, Clone)]
pub enum BatchItem {
    /// Still in the draft: its input only.
    Draft(BatchRequest),
    /// Queued (finalized): the job it became.
    Job(Box<JobRecord>),
}

/// Why a batch change was refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchRefusal {
    NotFound,
    /// Not a draft any more (its status).
    NotDraft(BatchStatus),
    /// Already over (cancelled or failed).
    Over(BatchStatus),
    /// It would hold more than `max` requests (it has `has`).
    TooMany {
        has: i64,
        max: i64,
    },
    /// The endpoint already has `max` active batches.
    TooManyActive {
        max: i64,
    },
    /// Finalizing a draft with no requests.
    Empty,
    /// No such request in the draft.
    NoRequest,
}

/// What cancelling a batch did.
#[derive(Debug, Clone)]
pub struct BatchCancelled {
    pub batch: BatchRecord,
    /// Its queued requests, now CANCELLED (to announce).
    pub cancelled: Vec<FinalJob>,
}
