//! Metering and job statistics. Worker time (the billing basis) is added by
//! [`super::slices::Slices`] while workers hold slices, kept here until the
//! flush loop writes it to the store once a second (so a crash loses at
//! most a second of it), and read back per endpoint and slice type. Job
//! latencies are kept in memory as Prometheus histograms since the host
//! started, fed by the lifecycle's "finished" event (every final job,
//! whichever way it ended).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::latency::Latency;
use crate::store::{Store, UsageDelta, now_ms};

/// Upper bounds (seconds) of the latency histograms' buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// A cumulative histogram in Prometheus' shape.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    /// Counts per bucket of [`LATENCY_BUCKETS`] (not cumulative).
    pub buckets: [u64; LATENCY_BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// Latencies and outcomes of one endpoint's jobs.
#[derive(Debug, Clone, Default)]
pub struct JobStats {
    /// From submission (or re-queue) to start.
    pub queue_delay: Histogram,
    /// From start to the end.
    pub execution: Histogram,
    /// Finished jobs by final status.
    pub finished: BTreeMap<String, u64>,
    /// From placing a worker to its instances being ready.
    pub cold_start: Histogram,
    /// Worker starts by the FlashBoot layer that served them.
    pub cold_starts: BTreeMap<String, u64>,
}

#[derive(Default)]
pub struct Meter {
    /// (endpoint, slice type, minute) -> worker time not yet in the store.
    pending: Mutex<HashMap<(String, String, i64), Duration>>,
    jobs: Mutex<BTreeMap<String, JobStats>>,
    /// Recent samples for windowed percentiles.
    pub latency: Latency,
}

fn minute_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(60_000)
}

impl Meter {
    pub fn add_worker_time(&self, endpoint: &str, slice_type: &str, time: Duration) {
        if time.is_zero() {
            return;
        }
        let key = (
            endpoint.to_string(),
            slice_type.to_string(),
            minute_of(now_ms()),
        );
        *self
            .pending
            .lock()
            .expect("meter lock")
            .entry(key)
            .or_default() += time;
    }

    /// Worker time not yet written, per (endpoint, slice type), in seconds.
    pub fn pending_seconds(&self) -> HashMap<(String, String), f64> {
        let mut out: HashMap<(String, String), f64> = HashMap::new();
        for ((e, t, _), d) in self.pending.lock().expect("meter lock").iter() {
            *out.entry((e.clone(), t.clone())).or_default() += d.as_secs_f64();
        }
        out
    }

    /// A worker of `endpoint` became ready `time` after it was placed,
    /// started by FlashBoot layer `boot`.
    pub fn cold_start(&self, endpoint: &str, time: Duration, boot: &str) {
        self.latency.cold_start(endpoint, time);
        let mut jobs = self.jobs.lock().expect("meter lock");
        let stats = jobs.entry(endpoint.to_string()).or_default();
        stats.cold_start.observe(time.as_secs_f64());
        *stats.cold_starts.entry(boot.to_string()).or_default() += 1;
    }

    pub fn job_stats(&self) -> BTreeMap<String, JobStats> {
        self.jobs.lock().expect("meter lock").clone()
    }

    /// Write pending worker time to the store; on failure it stays pending.
    pub async fn flush(&self, store: &Store) {
        let taken: Vec<((String, String, i64), Duration)> =
            self.pending.lock().expect("meter lock").drain().collect();
        if taken.is_empty() {
            return;
        }
        let deltas: Vec<UsageDelta> = taken
            .iter()
            .filter(|(_, d)| d.as_millis() > 0)
            .map(|((e, t, m), d)| UsageDelta {
                endpoint_id: e.clone(),
                slice_type: t.clone(),
                minute: *m,
                worker_ms: d.as_millis() as i64,
            })
            .collect();
        if let Err(e) = store.add_usage(&deltas).await {
            tracing::warn!("writing metered worker time: {e}; keeping it for the next try");
            let mut pending = self.pending.lock().expect("meter lock");
            for (k, d) in taken {
                *pending.entry(k).or_default() += d;
            }
            return;
        }
        // Sub-millisecond remainders carry over so nothing is rounded away.
        let mut pending = self.pending.lock().expect("meter lock");
        for (k, d) in taken {
            let rest = d - Duration::from_millis(d.as_millis() as u64);
            if !rest.is_zero() {
                *pending.entry(k).or_default() += rest;
            }
        }
    }
}

impl super::events::FinishedListener for Meter {
    fn finished(&self, jobs: &[Arc<crate::store::FinalJob>]) {
        let mut stats = self.jobs.lock().expect("meter lock");
        for job in jobs {
            let s = match stats.get_mut(&job.endpoint_id) {
                Some(s) => s,
                None => stats.entry(job.endpoint_id.clone()).or_default(),
            };
            self.latency.job_finished(
                &job.endpoint_id,
                job.status == crate::store::JobStatus::Completed,
                job.delay_ms,
                job.execution_ms,
            );
            if let Some(d) = job.delay_ms {
                s.queue_delay.observe(d.max(0) as f64 / 1e3);
            }
            if let Some(e) = job.execution_ms {
                s.execution.observe(e.max(0) as f64 / 1e3);
            }
            match s.finished.get_mut(job.status.as_str()) {
                Some(n) => *n += 1,
                None => {
                    s.finished.insert(job.status.as_str().to_string(), 1);
                }
            }
        }
    }
}

/// Every second: accrue held slices' time and write it to the store, and
/// stop executors idle longer than `executor_idle` (`flashboot_keep` for
/// those holding parked FlashBoot workers).
pub async fn run(
    meter: Arc<Meter>,
    slices: Arc<super::slices::Slices>,
    store: Store,
    (executor_idle, flashboot_keep): (Duration, Duration),
    shutdown: Arc<Notify>,
) {
    loop {
        let stop = shutdown.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        slices.reap_idle(executor_idle, flashboot_keep);
        slices.accrue();
        meter.flush(&store).await;
        tokio::select! {
            _ = &mut stop => {
                slices.accrue();
                meter.flush(&store).await;
                return;
            }
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
