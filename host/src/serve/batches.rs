//! Batch jobs (RunPod's batch API) as the App's use cases: create a batch
//! (with requests or empty), add and remove requests while it is a draft,
//! finalize it (its requests join the queue as low-priority jobs, behind
//! every real-time job: see [`super::lifecycle`]), read its counts and
//! pages of results, cancel it. The limits (requests per batch, active
//! batches per endpoint) and the retention are the host's settings
//! ([`BatchLimits`]).

use std::time::Duration;

use super::App;
use crate::store::{
    BatchCaps, BatchItem, BatchRecord, BatchRefusal, BatchRequest, MAX_DURATION_MS, NewBatch,
    StoreError, now_ms,
};

/// The host's batch limits (RunPod's by default).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Requests one batch holds at most.
    pub max_requests: usize,
    /// Drafts, and finalized batches with requests left, per endpoint.
    pub max_active: usize,
    /// How long a batch and its results are kept after its last request
    /// finished (a draft: after its last change).
    pub retention: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_requests: 5000,
            max_active: 10,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The most batches a list shows (newest first).
pub const LIST_LIMIT: i64 = 100;

/// Why a batch operation was refused; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("no endpoint {0:?}; list endpoints with GET /v1/endpoints")]
    NoEndpoint(String),
    #[error(
        "no batch {batch:?} on endpoint {endpoint:?}; list them with GET /v2/{endpoint}/batch (a finished batch is kept {kept_s} s)"
    )]
    NotFound {
        endpoint: String,
        batch: String,
        kept_s: u64,
    },
    #[error(
        "batch {batch:?} is {status}, not DRAFT: requests are added or removed only before /finalize; create a new batch for more"
    )]
    NotDraft { batch: String, status: &'static str },
    #[error("batch {batch:?} is already {status}; nothing to cancel")]
    Over { batch: String, status: &'static str },
    #[error(
        "a batch holds at most {max} requests; this one has {has} and the call adds {adding}: split the work across batches"
    )]
    TooManyRequests { max: i64, has: i64, adding: usize },
    #[error(
        "endpoint {endpoint:?} already has {max} active batches (drafts, or finalized with requests left), the most it may; finalize or cancel one, or wait for one to finish"
    )]
    TooManyActive { endpoint: String, max: i64 },
    #[error(
        "batch {0:?} has no requests; add some with POST /v2/{{endpoint}}/batch/{0}/requests before finalizing"
    )]
    Empty(String),
    #[error(
        "batch {batch:?} has no request {request:?}; list its requests with GET .../batch/{batch}/requests"
    )]
    NoRequest { batch: String, request: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page of a batch's requests.
pub struct BatchPage {
    pub batch: BatchRecord,
    pub items: Vec<BatchItem>,
}

impl App {
    fn batch_endpoint(&self, endpoint: &str) -> Result<(), BatchError> {
        match self.pools.shared(endpoint) {
            None => Err(BatchError::NoEndpoint(endpoint.to_string())),
            Some(_) => Ok(()),
        }
    }

    fn batch_caps(&self) -> BatchCaps {
        let l = self.config.batch;
        BatchCaps {
            max_requests: l.max_requests as i64,
            max_active: l.max_active as i64,
            draft_retention_ms: l.retention.as_millis() as i64,
        }
    }

    fn refused(&self, r: BatchRefusal, endpoint: &str, batch: &str, adding: usize) -> BatchError {
        match r {
            BatchRefusal::NotFound => BatchError::NotFound {
                endpoint: endpoint.to_string(),
                batch: batch.to_string(),
                kept_s: self.config.batch.retention.as_secs(),
            },
            BatchRefusal::NotDraft(s) => BatchError::NotDraft {
                batch: batch.to_string(),
                status: s.as_str(),
            },
            BatchRefusal::Over(s) => BatchError::Over {
                batch: batch.to_string(),
                status: s.as_str(),
            },
            BatchRefusal::TooMany { has, max } => BatchError::TooManyRequests { max, has, adding },
            BatchRefusal::TooManyActive { max } => BatchError::TooManyActive {
                endpoint: endpoint.to_string(),
                max,
            },
            BatchRefusal::Empty => BatchError::Empty(batch.to_string()),
            BatchRefusal::NoRequest => BatchError::NoRequest {
                batch: batch.to_string(),
                request: String::new(),
            },
        }
    }

    /// Each input (JSON text) becomes a request with the id its job will
    /// have (time-ordered, like /run's).
    fn requests(inputs: Vec<String>) -> Vec<BatchRequest> {
        inputs
            .into_iter()
            .map(|input| BatchRequest {
                id: uuid::Uuid::now_v7().to_string(),
                input,
            })
            .collect()
    }

    /// Create a draft batch with `inputs` as its first requests.
    pub async fn create_batch(
        &self,
        endpoint: &str,
        name: Option<String>,
        inputs: Vec<String>,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let adding = inputs.len();
        let batch = NewBatch {
            id: format!("batch-{}", uuid::Uuid::now_v7()),
            endpoint_id: endpoint.to_string(),
            name,
            requests: Self::requests(inputs),
        };
        self.store
            .create_batch(&batch, &self.batch_caps(), now_ms())
            .await?
            .map_err(|r| self.refused(r, endpoint, &batch.id, adding))
    }

    /// Append requests to a draft.
    pub async fn add_batch_requests(
        &self,
        endpoint: &str,
        batch: &str,
        inputs: Vec<String>,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let adding = inputs.len();
        let requests = Self::requests(inputs);
        self.store
            .add_batch_requests(endpoint, batch, &requests, &self.batch_caps(), now_ms())
            .await?
            .map_err(|r| self.refused(r, endpoint, batch, adding))
    }

    /// Remove one request from a draft.
    pub async fn remove_batch_request(
        &self,
        endpoint: &str,
        batch: &str,
        request: &str,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        self.store
            .remove_batch_request(endpoint, batch, request, &self.batch_caps(), now_ms())
            .await?
            .map_err(|r| match r {
                BatchRefusal::NoRequest => BatchError::NoRequest {
                    batch: batch.to_string(),
                    request: request.to_string(),
                },
                other => self.refused(other, endpoint, batch, 0),
            })
    }

    /// Replace one request's input in a draft.
    pub async fn update_batch_request(
        &self,
        endpoint: &str,
        batch: &str,
        request: &str,
        input: String,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let changed = BatchRequest {
            id: request.to_string(),
            input,
        };
        self.store
            .update_batch_request(endpoint, batch, &changed, &self.batch_caps(), now_ms())
            .await?
            .map_err(|r| match r {
                BatchRefusal::NoRequest => BatchError::NoRequest {
                    batch: batch.to_string(),
                    request: request.to_string(),
                },
                other => self.refused(other, endpoint, batch, 0),
            })
    }

    /// Lock a draft and queue its requests behind real-time jobs. They
    /// wait as long as the longest ttl a job may have (7 days).
    pub async fn finalize_batch(
        &self,
        endpoint: &str,
        batch: &str,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        self.jobs
            .finalize_batch(endpoint, batch, MAX_DURATION_MS as i64)
            .await?
            .map_err(|r| self.refused(r, endpoint, batch, 0))
    }

    /// Cancel a batch: queued requests are cancelled, running ones finish.
    pub async fn cancel_batch(
        &self,
        endpoint: &str,
        batch: &str,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        self.jobs
            .cancel_batch(endpoint, batch)
            .await?
            .map_err(|r| self.refused(r, endpoint, batch, 0))
    }

    /// A batch with its counts.
    pub async fn batch(&self, endpoint: &str, batch: &str) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        self.store
            .get_batch(endpoint, batch)
            .await?
            .ok_or_else(|| self.refused(BatchRefusal::NotFound, endpoint, batch, 0))
    }

    /// The endpoint's newest batches, newest first.
    pub async fn list_batches(&self, endpoint: &str) -> Result<Vec<BatchRecord>, BatchError> {
        self.batch_endpoint(endpoint)?;
        Ok(self.store.list_batches(endpoint, LIST_LIMIT).await?)
    }

    /// `limit` of a batch's requests from `offset`, in the order added.
    pub async fn batch_page(
        &self,
        endpoint: &str,
        batch: &str,
        offset: i64,
        limit: i64,
    ) -> Result<BatchPage, BatchError> {
        self.batch_endpoint(endpoint)?;
        let (batch_record, items) = self
            .store
            .batch_items(endpoint, batch, offset, limit)
            .await?
            .ok_or_else(|| self.refused(BatchRefusal::NotFound, endpoint, batch, 0))?;
        Ok(BatchPage {
            batch: batch_record,
            items,
        })
    }
}
