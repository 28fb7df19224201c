//! Latency over time windows, as RunPod's console shows it: P70, P90 and
//! P98 of delay time, execution time and cold-start time per endpoint, the
//! cold-start count, and per-step series (throughput, P90s, queue depth)
//! for charts. Samples of the last [`KEEP`] are kept in memory per endpoint
//! (at most [`MAX_SAMPLES`] of each kind, oldest dropped first); a window's
//! percentiles are computed exactly from them when asked (nearest rank).
//! The Prometheus histograms in [`super::meter`] cover scrapers.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::now_ms;

/// How far back samples are kept: the longest window.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// Samples of one kind kept per endpoint at most.
pub const MAX_SAMPLES: usize = 100_000;
/// Queue depth is kept as the largest seen per step of this length.
const DEPTH_STEP_MS: i64 = 10_000;
/// Points of a window's series.
const SERIES_POINTS: i64 = 60;

#[derive(Debug, Clone, Copy)]
struct JobSample {
    at: i64,
    delay_ms: Option<i64>,
    execution_ms: Option<i64>,
    ok: bool,
}

#[derive(Debug, Clone, Copy)]
struct ColdSample {
    at: i64,
    ms: f64,
}

#[derive(Default)]
struct Recent {
    jobs: VecDeque<JobSample>,
    cold: VecDeque<ColdSample>,
    /// (step start, largest depth seen in it).
    depth: VecDeque<(i64, i64)>,
}

fn bound<T>(q: &mut VecDeque<T>, at: impl Fn(&T) -> i64, now: i64) {
    let oldest = now - KEEP.as_millis() as i64;
    while q.front().is_some_and(|s| at(s) < oldest) || q.len() > MAX_SAMPLES {
        q.pop_front();
    }
}

/// Recent samples of every endpoint.
#[derive(Default)]
pub struct Latency {
    recent: Mutex<BTreeMap<String, Recent>>,
}

/// Percentiles of one measure over a window (milliseconds).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Percentiles {
    pub count: usize,
    pub p70: Option<f64>,
    pub p90: Option<f64>,
    pub p98: Option<f64>,
    pub max: Option<f64>,
}

/// Nearest-rank percentiles of `values`.
pub fn percentiles(mut values: Vec<f64>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let rank = |p: f64| values[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
    Percentiles {
        count: n,
        p70: Some(rank(70.0)),
        p90: Some(rank(90.0)),
        p98: Some(rank(98.0)),
        max: values.last().copied(),
    }
}

/// One step of a window's series.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SeriesPoint {
    /// Start of the step, ms since the epoch.
    pub t: i64,
    pub completed: usize,
    pub failed: usize,
    pub delay_p90_ms: Option<f64>,
    pub execution_p90_ms: Option<f64>,
    /// The deepest the queue was in the step (None: not sampled).
    pub queue_depth: Option<i64>,
}

/// An endpoint's latency over a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WindowStats {
    pub endpoint: String,
    pub window_s: u64,
    /// The window, ms since the epoch: `[since, until)`.
    pub since: i64,
    pub until: i64,
    /// Jobs that finished in the window (COMPLETED, and the rest).
    pub completed: usize,
    pub failed: usize,
    /// Finished jobs per minute over the window.
    pub throughput_per_min: f64,
    /// Time from submission to start.
    pub delay_ms: Percentiles,
    /// Time from start to the end.
    pub execution_ms: Percentiles,
    /// Time from placing a worker to its instances being ready.
    pub cold_start_ms: Percentiles,
    pub cold_starts: usize,
    /// Step length of `series`, ms.
    pub step_ms: i64,
    pub series: Vec<SeriesPoint>,
}

impl Latency {
    pub fn job_finished(
        &self,
        endpoint: &str,
        ok: bool,
        delay_ms: Option<i64>,
        execution_ms: Option<i64>,
    ) {
        let now = now_ms();
        let mut recent = self.recent.lock().expect("latency lock");
        let r = recent.entry(endpoint.to_string()).or_default();
        r.jobs.push_back(JobSample {
            at: now,
            delay_ms,
            execution_ms,
            ok,
        });
        bound(&mut r.jobs, |s| s.at, now);
    }

    pub fn cold_start(&self, endpoint: &str, time: Duration) {
        let now = now_ms();
        let mut recent = self.recent.lock().expect("latency lock");
        let r = recent.entry(endpoint.to_string()).or_default();
        r.cold.push_back(ColdSample {
            at: now,
            ms: time.as_secs_f64() * 1e3,
        });
        bound(&mut r.cold, |s| s.at, now);
    }

    /// The queue depth seen now (the supervisor samples it every tick).
    pub fn queue_depth(&self, endpoint: &str, depth: i64) {
        let now = now_ms();
        let step = now - now.rem_euclid(DEPTH_STEP_MS);
        let mut recent = self.recent.lock().expect("latency lock");
        let r = recent.entry(endpoint.to_string()).or_default();
        match r.depth.back_mut() {
            Some((t, d)) if *t == step => *d = (*d).max(depth),
            _ => r.depth.push_back((step, depth)),
        }
        bound(&mut r.depth, |(t, _)| *t, now);
    }

    pub fn forget(&self, endpoint: &str) {
        self.recent.lock().expect("latency lock").remove(endpoint);
    }

    /// `endpoint`'s stats over the last `window` (at most [`KEEP`]).
    pub fn window(&self, endpoint: &str, window: Duration) -> WindowStats {
        let window = window.min(KEEP).max(Duration::from_secs(1));
        let until = now_ms() + 1;
        let window_ms = window.as_millis() as i64;
        let since = until - window_ms;
        let step_ms = (window_ms / SERIES_POINTS).max(DEPTH_STEP_MS);
        // Copy out under the lock; sort outside it.
        let (jobs, cold, depth) = {
            let recent = self.recent.lock().expect("latency lock");
            match recent.get(endpoint) {
                None => (Vec::new(), Vec::new(), Vec::new()),
                Some(r) => (
                    r.jobs
                        .iter()
                        .filter(|s| s.at >= since)
                        .copied()
                        .collect::<Vec<_>>(),
                    r.cold
                        .iter()
                        .filter(|s| s.at >= since)
                        .copied()
                        .collect::<Vec<_>>(),
                    r.depth
                        .iter()
                        .filter(|(t, _)| *t + DEPTH_STEP_MS > since)
                        .copied()
                        .collect::<Vec<_>>(),
                ),
            }
        };
        let completed = jobs.iter().filter(|s| s.ok).count();
        let first_step = since - since.rem_euclid(step_ms);
        let steps = ((until - first_step) + step_ms - 1) / step_ms;
        let series = (0..steps)
            .map(|i| {
                let t = first_step + i * step_ms;
                let in_step: Vec<&JobSample> = jobs
                    .iter()
                    .filter(|s| s.at >= t && s.at < t + step_ms)
                    .collect();
                let p90 = |f: fn(&JobSample) -> Option<i64>| {
                    percentiles(
                        in_step
                            .iter()
                            .filter_map(|s| f(s))
                            .map(|v| v as f64)
                            .collect(),
                    )
                    .p90
                };
                SeriesPoint {
                    t,
                    completed: in_step.iter().filter(|s| s.ok).count(),
                    failed: in_step.iter().filter(|s| !s.ok).count(),
                    delay_p90_ms: p90(|s| s.delay_ms),
                    execution_p90_ms: p90(|s| s.execution_ms),
                    queue_depth: depth
                        .iter()
                        .filter(|(d, _)| *d >= t && *d < t + step_ms)
                        .map(|(_, n)| *n)
                        .max(),
                }
            })
            .collect();
        WindowStats {
            endpoint: endpoint.to_string(),
            window_s: window.as_secs(),
            since,
            until,
            completed,
            failed: jobs.len() - completed,
            throughput_per_min: jobs.len() as f64 / (window_ms as f64 / 60_000.0),
            delay_ms: percentiles(
                jobs.iter()
                    .filter_map(|s| s.delay_ms)
                    .map(|v| v as f64)
                    .collect(),
            ),
            execution_ms: percentiles(
                jobs.iter()
                    .filter_map(|s| s.execution_ms)
                    .map(|v| v as f64)
                    .collect(),
            ),
            cold_start_ms: percentiles(cold.iter().map(|s| s.ms).collect()),
            cold_starts: cold.len(),
            step_ms,
            series,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = percentiles((1..=100).map(f64::from).collect());
        assert_eq!(p.count, 100);
        assert_eq!(
            (p.p70, p.p90, p.p98, p.max),
            (Some(70.0), Some(90.0), Some(98.0), Some(100.0))
        );
        let one = percentiles(vec![5.0]);
        assert_eq!((one.p70, one.p98), (Some(5.0), Some(5.0)));
        assert_eq!(percentiles(Vec::new()).p90, None);
    }

    #[test]
    fn a_window_counts_jobs_cold_starts_and_queue_depth() {
        let l = Latency::default();
        for i in 0..50 {
            l.job_finished("e", i % 10 != 0, Some(i), Some(100 + i));
        }
        l.cold_start("e", Duration::from_millis(250));
        l.queue_depth("e", 3);
        l.queue_depth("e", 7);
        let w = l.window("e", Duration::from_secs(300));
        assert_eq!((w.completed, w.failed), (45, 5));
        assert_eq!(w.delay_ms.count, 50);
        // Nearest rank: P98 of 50 samples is the 49th.
        assert_eq!(w.execution_ms.p98, Some(148.0));
        assert_eq!(w.cold_starts, 1);
        assert_eq!(w.cold_start_ms.p90, Some(250.0));
        assert_eq!(w.series.iter().filter_map(|p| p.queue_depth).max(), Some(7));
        assert_eq!(
            w.series
                .iter()
                .map(|p| p.completed + p.failed)
                .sum::<usize>(),
            50
        );
        assert_eq!(l.window("other", Duration::from_secs(60)).completed, 0);
    }
}
