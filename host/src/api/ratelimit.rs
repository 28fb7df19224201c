//! Rate limits per endpoint and operation, RunPod's published table by
//! default: `/run` 1000 requests per 10 s and 200 at once, `/runsync` 2000
//! and 400, `/status` and `/stream` (one budget) 2000 and 400, `/cancel`
//! 100 and 20, `/purge-queue` 2 per 10 s. Operations RunPod publishes no
//! limit for get ours: `/retry` and the batch changes (create, add,
//! change, remove, finalize, cancel: one budget) as `/cancel`, reading a
//! batch as `/status`, `/lb` as `/runsync`;
//! `/health` none. An endpoint's `rate_limits`
//! setting replaces an operation's default; `wasmpod serve
//! --no-rate-limits` turns the defaults off. Past a limit the answer is 429
//! with Retry-After, and the rejection is counted (`/health`, `/metrics`).
//!
//! The request rate is a GCRA (governor) with a burst of the whole window's
//! budget; the concurrency cap is a semaphore whose permit the caller holds
//! until its answer is done.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiState;
use super::error::ApiError;
use crate::store::RateLimit;

/// The operations limits apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Run,
    Runsync,
    /// `/status` and `/stream` share one budget, as in RunPod.
    Status,
    Cancel,
    Retry,
    PurgeQueue,
    Health,
    /// Requests to a load-balancing endpoint.
    Lb,
    /// The batch changes (create, add, change, remove, finalize, cancel),
    /// one budget; reading a batch counts as `Status`.
    Batch,
}

impl Operation {
    /// The name in `rate_limits`, `/health` and `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Run => "run",
            Operation::Runsync => "runsync",
            Operation::Status => "status",
            Operation::Cancel => "cancel",
            Operation::Retry => "retry",
            Operation::PurgeQueue => "purge-queue",
            Operation::Health => "health",
            Operation::Lb => "lb",
            Operation::Batch => "batch",
        }
    }

    /// The default limit (RunPod's table where it has one).
    pub fn default_limit(self) -> RateLimit {
        let limit = |requests, concurrent| RateLimit {
            requests,
            window_s: 10,
            concurrent,
        };
        match self {
            Operation::Run => limit(1000, 200),
            Operation::Runsync | Operation::Status | Operation::Lb => limit(2000, 400),
            Operation::Cancel | Operation::Retry | Operation::Batch => limit(100, 20),
            Operation::PurgeQueue => limit(2, 0),
            Operation::Health => limit(0, 0),
        }
    }
}

/// One (endpoint, operation)'s limiters, built from the endpoint's
/// settings of one generation.
struct Limiters {
    generation: i64,
    limit: RateLimit,
    rate: Option<Arc<DefaultDirectRateLimiter>>,
    concurrent: Option<Arc<Semaphore>>,
}

impl Limiters {
    fn new(generation: i64, limit: RateLimit) -> Self {
        let rate = NonZeroU32::new(limit.requests).map(|n| {
            let period = Duration::from_secs(u64::from(limit.window_s)) / n.get();
            let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                .expect("a non-zero period")
                .allow_burst(n);
            Arc::new(DefaultDirectRateLimiter::direct(quota))
        });
        let concurrent =
            (limit.concurrent > 0).then(|| Arc::new(Semaphore::new(limit.concurrent as usize)));
        Self {
            generation,
            limit,
            rate,
            concurrent,
        }
    }
}

/// The limiters of every endpoint and operation in use.
pub struct RateLimits {
    /// Apply RunPod's table where an endpoint sets nothing.
    defaults: bool,
    limiters: Mutex<HashMap<(String, Operation), Limiters>>,
}

impl RateLimits {
    pub fn new(defaults: bool) -> Self {
        Self {
            defaults,
            limiters: Mutex::default(),
        }
    }
}

/// What a request holds while it runs: its place under the concurrency cap.
pub struct Admitted(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

fn too_many(message: String, retry_after: Duration) -> ApiError {
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, message).with_retry_after(retry_after)
}

/// Admit a request to `endpoint`'s `op`, or refuse it (429, counted).
/// An unknown endpoint is admitted: its handler answers 404.
pub fn admit(state: &ApiState, endpoint: &str, op: Operation) -> Result<Admitted, ApiError> {
    let Some((generation, configured)) = state.app.pools.inspect(endpoint, |e| {
        (e.generation, e.config.rate_limits.get(op.name()).copied())
    }) else {
        return Ok(Admitted(None));
    };
    let limits = &state.limits;
    let Some(limit) = configured.or(limits.defaults.then(|| op.default_limit())) else {
        return Ok(Admitted(None));
    };
    let (rate, concurrent) = {
        let mut map = limits.limiters.lock().expect("limits lock");
        let entry = map
            .entry((endpoint.to_string(), op))
            .or_insert_with(|| Limiters::new(generation, limit));
        if entry.generation != generation && entry.limit != limit {
            *entry = Limiters::new(generation, limit);
        }
        entry.generation = generation;
        (entry.rate.clone(), entry.concurrent.clone())
    };
    if let Some(rate) = rate
        && let Err(not_until) = rate.check()
    {
        state.app.rate_limited(endpoint, op.name());
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        return Err(too_many(
            format!(
                "endpoint {endpoint:?} allows {} {} requests per {} s; slow down and retry after the Retry-After seconds",
                limit.requests,
                op.name(),
                limit.window_s
            ),
            wait,
        ));
    }
    let permit = match concurrent {
        None => None,
        Some(sem) => match sem.try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                state.app.rate_limited(endpoint, op.name());
                return Err(too_many(
                    format!(
                        "endpoint {endpoint:?} allows {} {} requests at once; wait for some to finish and retry",
                        limit.concurrent,
                        op.name()
                    ),
                    Duration::from_secs(1),
                ));
            }
        },
    };
    Ok(Admitted(permit))
}

/// A response body that keeps its request's admission until it ends (a
/// streamed answer counts against the concurrency cap while it streams).
pub struct Held<B> {
    inner: B,
    admitted: Option<Admitted>,
}

impl<B: Body + Unpin> Body for Held<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.admitted = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `response` with `admitted` held until its body ends.
pub fn hold(response: Response, admitted: Admitted) -> Response {
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        axum::body::Body::new(Held {
            inner: body,
            admitted: Some(admitted),
        }),
    )
}

impl ApiError {
    /// The same error with a Retry-After of `after` (whole seconds, at
    /// least 1).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after.as_secs_f64().ceil().max(1.0) as u64);
        self
    }
}
