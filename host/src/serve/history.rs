//! What the admin API shows of an endpoint's work: its retained jobs, one
//! job whole (input, output, progress, every stream chunk, its log lines),
//! its log stream, and its latency over a window.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::App;
use super::latency::WindowStats;
use crate::store::{JobRecord, JobStatus, JobSummary, LogFilter, LogLine, StoreError};

/// A job with everything it produced.
#[derive(Debug, Clone)]
pub struct JobDetail {
    pub record: JobRecord,
    /// Every stream chunk of its latest attempt (read or not), in order.
    pub stream: Vec<String>,
    pub logs: Vec<LogLine>,
}

/// Log lines of a job shown with it at most.
const JOB_LOG_LINES: i64 = 1000;

impl App {
    pub async fn list_jobs(
        &self,
        endpoint: &str,
        status: Option<JobStatus>,
        limit: i64,
    ) -> Result<Vec<JobSummary>, StoreError> {
        self.store.list_jobs(endpoint, status, limit).await
    }

    pub async fn job_detail(
        &self,
        endpoint: &str,
        job: &str,
    ) -> Result<Option<JobDetail>, StoreError> {
        let Some(record) = self.store.get_job(endpoint, job).await? else {
            return Ok(None);
        };
        let stream = self.store.stream_chunks(job).await?;
        let logs = self
            .logs(&LogFilter {
                endpoint_id: endpoint.to_string(),
                job_id: Some(job.to_string()),
                limit: JOB_LOG_LINES,
                ..Default::default()
            })
            .await?;
        Ok(Some(JobDetail {
            record,
            stream,
            logs,
        }))
    }

    /// Stored log lines matching `filter`.
    pub async fn logs(&self, filter: &LogFilter) -> Result<Vec<LogLine>, StoreError> {
        self.ctx().logs.query(filter).await
    }

    /// Every line stored from now on (filter them with
    /// [`LogFilter::matches`]).
    pub fn follow_logs(&self) -> broadcast::Receiver<Arc<LogLine>> {
        self.ctx().logs.subscribe()
    }

    /// An endpoint's latency percentiles, cold starts and series over the
    /// last `window`.
    pub fn latency(&self, endpoint: &str, window: Duration) -> WindowStats {
        self.ctx().meter.latency.window(endpoint, window)
    }
}
