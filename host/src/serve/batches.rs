//! Batch jobs (RunPod's batch API) as use cases: create a batch (with
//! requests or empty), add and remove requests while it is a draft,
//! finalize it (its requests join the queue as low-priority jobs, behind
//! every real-time job and never on the pool's last free lane, see
//! [`super::worker_state::PoolShared`]), read its counts and pages of
//! results, cancel it. The limits (requests per batch, active batches and
//! queued batch requests per endpoint) are the host's settings.

use std::time::Duration;

use super::App;
use crate::store::{
    BatchItem, BatchRecord, BatchRefusal, BatchStatus, EndpointKind, MAX_DURATION_MS, NewJob,
    StoreError, now_ms,
};

/// The host's batch limits (RunPod's by default).
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Requests one batch holds at most (RunPod: 5,000).
    pub max_requests: usize,
    /// Drafts and batches with requests left to run, per endpoint (RunPod: 10).
    pub max_active: usize,
    /// Batch requests waiting in one endpoint's queue (RunPod: 50,000).
    pub max_queued: usize,
    /// How long a batch and its results are kept after its last request
    /// finished (a draft: after its last change).
    pub retention: Duration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_requests: 5000,
            max_active: 10,
            max_queued: 50_000,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a batch operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("no endpoint {0:?}; list endpoints with GET /v1/endpoints")]
    NoEndpoint(String),
    #[error(
        "endpoint {0:?} is a load balancer; batches run on queue endpoints (\"type\": \"queue\")"
    )]
    NotQueueEndpoint(String),
    #[error("no batch {batch:?} on endpoint {endpoint:?}; list them with GET /v2/{endpoint}/batch")]
    NotFound { endpoint: String, batch: String },
    #[error(
        "batch {batch:?} is {status}, not DRAFT: requests can be added or removed only before /finalize; create a new batch for more"
    )]
    NotDraft { batch: String, status: &'static str },
    #[error("batch {batch:?} is already {status}")]
    Over { batch: String, status: &'static str },
    #[error(
        "a batch holds at most {max} requests; this one has {has} and the call adds {adding}: split the work across batches"
    )]
    TooManyRequests { max: i64, has: i64, adding: usize },
    #[error(
        "endpoint {endpoint:?} has {max} active batches (drafts, or finalized with requests left), the most it may; finalize or cancel one, or wait for one to finish"
    )]
    TooManyActive { endpoint: String, max: usize },
    #[error(
        "endpoint {endpoint:?} has {queued} batch requests queued; {adding} more would pass the limit of {max}; wait for some to finish"
    )]
    QueueFull {
        endpoint: String,
        queued: i64,
        adding: i64,
        max: usize,
    },
    #[error("batch {0:?} has no requests; add some with POST .../requests before finalizing")]
    Empty(String),
    #[error("batch {batch:?} has no request {request:?}")]
    NoRequest { batch: String, request: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BatchError {
    fn refused(refusal: BatchRefusal, endpoint: &str, batch: &str, adding: usize) -> Self {
        match refusal {
            BatchRefusal::NotFound => BatchError::NotFound {
                endpoint: endpoint.to_string(),
                batch: batch.to_string(),
            },
            BatchRefusal::NotDraft(s) => BatchError::NotDraft {
                batch: batch.to_string(),
                status: s.as_str(),
            },
            BatchRefusal::TooMany { has, max } => BatchError::TooManyRequests { max, has, adding },
        }
    }
}

/// A page of a batch's requests.
pub struct BatchPage {
    pub batch: BatchRecord,
    pub items: Vec<BatchItem>,
    pub offset: i64,
    pub limit: i64,
}

impl App {
    fn batch_endpoint(&self, endpoint: &str) -> Result<(), BatchError> {
        match self.pools.inspect(endpoint, |e| e.config.kind) {
            None => Err(BatchError::NoEndpoint(endpoint.to_string())),
            Some(EndpointKind::LoadBalancer) => {
                Err(BatchError::NotQueueEndpoint(endpoint.to_string()))
            }
            Some(EndpointKind::Queue) => Ok(()),
        }
    }

    fn draft_retention_ms(&self) -> i64 {
        self.config.batch.retention.as_millis() as i64
    }

    /// Create a draft batch, with `inputs` (JSON texts) as its first
    /// requests.
    pub async fn create_batch(
        &self,
        endpoint: &str,
        name: Option<&str>,
        inputs: Vec<String>,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let limits = self.config.batch;
        if inputs.len() > limits.max_requests {
            return Err(BatchError::TooManyRequests {
                max: limits.max_requests as i64,
                has: 0,
                adding: inputs.len(),
            });
        }
        if self.store.active_batches(endpoint).await? >= limits.max_active as i64 {
            return Err(BatchError::TooManyActive {
                endpoint: endpoint.to_string(),
                max: limits.max_active,
            });
        }
        let id = format!("batch-{}", uuid::Uuid::new_v4().simple());
        self.store
            .create_batch(&id, endpoint, name, now_ms(), self.draft_retention_ms())
            .await?;
        if !inputs.is_empty() {
            return self.add_batch_requests(endpoint, &id, inputs).await;
        }
        self.batch(endpoint, &id).await
    }

    /// Add requests to a draft.
    pub async fn add_batch_requests(
        &self,
        endpoint: &str,
        batch: &str,
        inputs: Vec<String>,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let adding = inputs.len();
        let requests: Vec<(String, String)> = inputs
            .into_iter()
            .map(|input| (uuid::Uuid::new_v4().to_string(), input))
            .collect();
        self.store
            .add_batch_requests(
                endpoint,
                batch,
                &requests,
                self.config.batch.max_requests as i64,
                now_ms(),
                self.draft_retention_ms(),
            )
            .await?
            .map_err(|r| BatchError::refused(r, endpoint, batch, adding))?;
        self.batch(endpoint, batch).await
    }

    /// Remove one request from a draft.
    pub async fn remove_batch_request(
        &self,
        endpoint: &str,
        batch: &str,
        request: &str,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let removed = self
            .store
            .remove_batch_request(endpoint, batch, request, now_ms())
            .await?
            .map_err(|r| BatchError::refused(r, endpoint, batch, 0))?;
        if !removed {
            return Err(BatchError::NoRequest {
                batch: batch.to_string(),
                request: request.to_string(),
            });
        }
        self.batch(endpoint, batch).await
    }

    pub async fn rename_batch(
        &self,
        endpoint: &str,
        batch: &str,
        name: Option<&str>,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        if !self.store.rename_batch(endpoint, batch, name, now_ms()).await? {
            return Err(BatchError::refused(BatchRefusal::NotFound, endpoint, batch, 0));
        }
        self.batch(endpoint, batch).await
    }

    /// Lock a draft and queue its requests behind real-time jobs.
    pub async fn finalize_batch(
        &self,
        endpoint: &str,
        batch: &str,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let current = self.batch(endpoint, batch).await?;
        if current.status != BatchStatus::Draft {
            return Err(BatchError::refused(
                BatchRefusal::NotDraft(current.status),
                endpoint,
                batch,
                0,
            ));
        }
        if current.counts.total == 0 {
            return Err(BatchError::Empty(batch.to_string()));
        }
        let queued = self.store.queued_batch_requests(endpoint).await?;
        let max = self.config.batch.max_queued;
        if queued + current.counts.total > max as i64 {
            return Err(BatchError::QueueFull {
                endpoint: endpoint.to_string(),
                queued,
                adding: current.counts.total,
                max,
            });
        }
        let template = NewJob {
            id: String::new(),
            endpoint_id: endpoint.to_string(),
            input: String::new(),
            webhook: None,
            // The endpoint's execution timeout; queued as long as it takes.
            execution_timeout_ms: None,
            ttl_ms: MAX_DURATION_MS as i64,
            low_priority: true,
            sync: false,
        };
        self.store
            .finalize_batch(endpoint, batch, &template, now_ms())
            .await?
            .map_err(|r| BatchError::refused(r, endpoint, batch, 0))?;
        self.pools.wake(endpoint);
        self.batch(endpoint, batch).await
    }

    /// Cancel a batch: queued requests are cancelled, running ones finish.
    pub async fn cancel_batch(
        &self,
        endpoint: &str,
        batch: &str,
    ) -> Result<BatchRecord, BatchError> {
        self.batch_endpoint(endpoint)?;
        let ids = self
            .store
            .cancel_batch(
                endpoint,
                batch,
                now_ms(),
                self.config.retention.run.as_millis() as i64,
            )
            .await?
            .map_err(|r| match r {
                BatchRefusal::NotDraft(s) => BatchError::Over {
                    batch: batch.to_string(),
                    status: s.as_str(),
                },
                other => BatchError::refused(other, endpoint, batch, 0),
            })?;
        for id in &ids {
            self.ctx().events.finished(id);
        }
        self.batch(endpoint, batch).await
    }

    /// A batch with its counts.
    pub async fn batch(&self, endpoint: &str, batch: &str) -> Result<BatchRecord, BatchError> {
        self.store
            .get_batch(endpoint, batch)
            .await?
            .ok_or_else(|| BatchError::refused(BatchRefusal::NotFound, endpoint, batch, 0))
    }

    /// The endpoint's batches, newest first.
    pub async fn list_batches(&self, endpoint: &str) -> Result<Vec<BatchRecord>, BatchError> {
        self.batch_endpoint(endpoint)?;
        Ok(self.store.list_batches(endpoint).await?)
    }

    /// `limit` of a batch's requests from `offset`, in the order added.
    pub async fn batch_page(
        &self,
        endpoint: &str,
        batch: &str,
        offset: i64,
        limit: i64,
    ) -> Result<BatchPage, BatchError> {
        let record = self.batch(endpoint, batch).await?;
        let items = self.store.batch_items(&record, offset, limit).await?;
        Ok(BatchPage {
            batch: record,
            items,
            offset,
            limit,
        })
    }

    /// Is there room in the endpoint's queue for more real-time jobs?
    /// RunPod refuses a submission (429) once more than 50 jobs wait and
    /// more than `max_workers` × 500 (one of its published limits, off with
    /// the rate-limit defaults). Returns the queue depth when full.
    pub async fn queue_full(&self, endpoint: &str) -> Result<Option<i64>, StoreError> {
        if !self.config.rate_limits {
            return Ok(None);
        }
        let Some(max_workers) = self.pools.inspect(endpoint, |e| e.config.max_workers) else {
            return Ok(None);
        };
        let depth = self.store.realtime_queue_depth(endpoint).await?;
        let bound = 50i64.max(i64::from(max_workers) * 500);
        Ok((depth >= bound).then_some(depth))
    }
}
