//! The autoscaling policy of one endpoint, as a pure function of what the
//! pool looks like now: keep `min_workers` warm, add workers while jobs wait
//! (up to `max_workers`) by queue depth or by queue delay, retire idle ones
//! after `idle_timeout`, and replace outdated ones (hot swap) once they are
//! idle.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A worker's state, as `/health` and the admin API report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerState {
    /// Starting: executor spawning, handler loading, `init` running.
    Initializing,
    /// Ready, no job.
    Idle,
    /// Running at least one job.
    Running,
    /// Wanted, but no slice is free for it.
    Throttled,
    /// Running an older handler version; finishes its jobs, then retires.
    Outdated,
    /// Its executor died or init failed; being replaced.
    Unhealthy,
}

/// When to add workers (RunPod's two scaler types).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scaler {
    /// One worker per `jobs_per_worker` jobs queued or running.
    RequestCount { jobs_per_worker: u32 },
    /// Add a worker (one per evaluation) while the oldest queued job has
    /// waited longer than `delay`; an endpoint at zero workers still gets
    /// its first one at once.
    QueueDelay { delay: Duration },
}

/// The endpoint settings the policy reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePolicy {
    pub min_workers: u32,
    pub max_workers: u32,
    pub idle_timeout: Duration,
    /// Jobs one worker runs at once.
    pub concurrency: u32,
    pub scaler: Scaler,
}

/// One worker as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerView {
    pub id: String,
    pub state: WorkerState,
    /// Jobs it is running now.
    pub busy: u32,
    /// How long it has been idle (zero when busy).
    pub idle_for: Duration,
}

/// What to change now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalePlan {
    /// Workers to start.
    pub start: u32,
    /// Workers to stop, by id.
    pub stop: Vec<String>,
}

/// Decide how to move the pool toward what `queued` waiting jobs need.
///
/// Throttled workers are wanted workers still waiting for a slice: they
/// count toward the target (so a pool that cannot be placed does not grow
/// without bound) and are the first to go when fewer are wanted.
/// `oldest_wait` is how long the oldest queued job has waited.
pub fn plan(
    policy: &ScalePolicy,
    workers: &[WorkerView],
    queued: usize,
    oldest_wait: Duration,
) -> ScalePlan {
    let per_worker = policy.concurrency.max(1) as usize;
    let max = policy.max_workers.max(policy.min_workers) as usize;
    let mut stop = Vec::new();

    // Outdated and unhealthy workers never count toward capacity. Outdated
    // ones retire as soon as they are idle; unhealthy ones at once.
    for w in workers {
        match w.state {
            WorkerState::Outdated if w.busy == 0 => stop.push(w.id.clone()),
            WorkerState::Unhealthy => stop.push(w.id.clone()),
            _ => {}
        }
    }
    let current: Vec<&WorkerView> = workers
        .iter()
        .filter(|w| !matches!(w.state, WorkerState::Outdated | WorkerState::Unhealthy))
        .collect();
    let running: usize = current.iter().map(|w| w.busy as usize).sum();
    // Never more workers than the work can keep busy at once.
    let busy_bound = (queued + running).div_ceil(per_worker);
    let needed = match policy.scaler {
        Scaler::RequestCount { jobs_per_worker } => {
            (queued + running).div_ceil(jobs_per_worker.max(1) as usize)
        }
        Scaler::QueueDelay { delay } => {
            let waited = queued > 0 && (current.is_empty() || oldest_wait >= delay);
            (current.len() + usize::from(waited)).min(busy_bound)
        }
    };
    let target = needed.clamp(policy.min_workers as usize, max);
    // Outdated workers still hold slices while they drain.
    let draining = workers
        .iter()
        .filter(|w| w.state == WorkerState::Outdated && w.busy > 0)
        .count();
    let room = max.saturating_sub(current.len() + draining);
    let start = target.saturating_sub(current.len()).min(room) as u32;

    if current.len() > target {
        let mut surplus = current.len() - target;
        // Throttled first: they hold nothing and serve nobody yet.
        for w in current.iter().filter(|w| w.state == WorkerState::Throttled) {
            if surplus == 0 {
                break;
            }
            stop.push(w.id.clone());
            surplus -= 1;
        }
        let mut idle: Vec<&&WorkerView> = current
            .iter()
            .filter(|w| {
                w.state == WorkerState::Idle && w.busy == 0 && w.idle_for >= policy.idle_timeout
            })
            .collect();
        idle.sort_by_key(|w| std::cmp::Reverse(w.idle_for));
        stop.extend(idle.into_iter().take(surplus).map(|w| w.id.clone()));
    }
    ScalePlan { start, stop }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32, max: u32) -> ScalePolicy {
        ScalePolicy {
            min_workers: min,
            max_workers: max,
            idle_timeout: Duration::from_secs(5),
            concurrency: 1,
            scaler: Scaler::RequestCount { jobs_per_worker: 1 },
        }
    }

    fn w(id: &str, state: WorkerState, busy: u32, idle_s: u64) -> WorkerView {
        WorkerView {
            id: id.into(),
            state,
            busy,
            idle_for: Duration::from_secs(idle_s),
        }
    }

    #[test]
    fn scales_from_zero_up_to_max_with_the_queue() {
        assert_eq!(
            plan(&policy(0, 4), &[], 0, Duration::ZERO),
            ScalePlan::default()
        );
        assert_eq!(plan(&policy(0, 4), &[], 2, Duration::ZERO).start, 2);
        assert_eq!(plan(&policy(0, 4), &[], 100, Duration::ZERO).start, 4);
        let two = [
            w("a", WorkerState::Running, 1, 0),
            w("b", WorkerState::Initializing, 0, 0),
        ];
        assert_eq!(plan(&policy(0, 4), &two, 100, Duration::ZERO).start, 2);
    }

    #[test]
    fn keeps_min_warm_and_retires_idle_after_timeout() {
        assert_eq!(plan(&policy(2, 4), &[], 0, Duration::ZERO).start, 2);
        let idle = [
            w("a", WorkerState::Idle, 0, 10),
            w("b", WorkerState::Idle, 0, 1),
            w("c", WorkerState::Idle, 0, 7),
        ];
        // min 1: the two idle past the timeout go, longest idle first.
        assert_eq!(
            plan(&policy(1, 4), &idle, 0, Duration::ZERO).stop,
            vec!["a".to_string(), "c".to_string()]
        );
        // Scale to zero.
        let p = plan(&policy(0, 4), &idle, 0, Duration::ZERO);
        assert_eq!(p.stop.len(), 2, "b is not idle long enough yet: {p:?}");
    }

    #[test]
    fn concurrency_packs_jobs_per_worker() {
        let mut p = policy(0, 8);
        p.concurrency = 4;
        p.scaler = Scaler::RequestCount { jobs_per_worker: 4 };
        assert_eq!(plan(&p, &[], 9, Duration::ZERO).start, 3);
    }

    #[test]
    fn outdated_workers_drain_then_retire_and_are_replaced() {
        let ws = [
            w("old1", WorkerState::Outdated, 1, 0),
            w("old2", WorkerState::Outdated, 0, 0),
        ];
        let p = plan(&policy(1, 2), &ws, 1, Duration::ZERO);
        assert_eq!(p.stop, vec!["old2".to_string()]);
        // One slot is held by the draining worker; one new-version worker starts.
        assert_eq!(p.start, 1);
    }

    #[test]
    fn throttled_workers_count_as_wanted_and_go_first() {
        let ws = [
            w("a", WorkerState::Running, 1, 0),
            w("t1", WorkerState::Throttled, 0, 0),
            w("t2", WorkerState::Throttled, 0, 0),
        ];
        // Three wanted, three there (two waiting for slices): start none.
        assert_eq!(plan(&policy(0, 4), &ws, 2, Duration::ZERO).start, 0);
        // The queue drained: the throttled ones go, not the busy one.
        let p = plan(&policy(0, 4), &ws, 0, Duration::ZERO);
        assert_eq!(p.stop, vec!["t1".to_string(), "t2".to_string()]);
    }

    #[test]
    fn queue_delay_adds_one_worker_at_a_time_once_jobs_wait_too_long() {
        let mut p = policy(0, 4);
        p.scaler = Scaler::QueueDelay {
            delay: Duration::from_secs(4),
        };
        let short = Duration::from_secs(1);
        let long = Duration::from_secs(5);
        // From zero the first worker starts at once.
        assert_eq!(plan(&p, &[], 10, Duration::ZERO).start, 1);
        let one = [w("a", WorkerState::Running, 1, 0)];
        assert_eq!(plan(&p, &one, 10, short).start, 0, "not waited long enough");
        assert_eq!(plan(&p, &one, 10, long).start, 1);
        // Never past what the work can use, nor max_workers.
        assert_eq!(plan(&p, &one, 0, long).start, 0);
        let four = [
            w("a", WorkerState::Running, 1, 0),
            w("b", WorkerState::Running, 1, 0),
            w("c", WorkerState::Running, 1, 0),
            w("d", WorkerState::Running, 1, 0),
        ];
        assert_eq!(plan(&p, &four, 10, long).start, 0);
        // Idle workers beyond the work retire after idle_timeout as usual.
        let idle = [w("a", WorkerState::Idle, 0, 10)];
        assert_eq!(
            plan(&p, &idle, 0, Duration::ZERO).stop,
            vec!["a".to_string()]
        );
    }

    #[test]
    fn unhealthy_workers_are_replaced() {
        let ws = [w("dead", WorkerState::Unhealthy, 0, 0)];
        let p = plan(&policy(1, 1), &ws, 0, Duration::ZERO);
        assert_eq!((p.start, p.stop), (1, vec!["dead".to_string()]));
    }
}
