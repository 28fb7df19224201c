//! Load-balancing endpoints: each HTTP request goes straight to a ready
//! worker's HTTP handler, no queue. A worker of such an endpoint, once its
//! instances started, answers the handler's `GET /ping` with 200 (204 keeps
//! it initializing) and then takes up to `concurrency` requests at once;
//! requests pick the least-loaded ready worker. A request that finds no
//! free worker waits (counted as demand, so the autoscaler adds workers,
//! from zero too) up to a bound, then is answered 503 with Retry-After. On
//! a hot swap, outdated workers take no new requests and finish the ones in
//! flight on the old version. The HTTP edge calls [`App::lb_forward`]; the
//! bytes travel over the executor's HTTP link, streamed both ways.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::sync::Notify;

use super::App;
use super::pool::{PoolShared, WorkerShared, WorkerSpec, WorkerStage};
use super::worker::WorkerExit;
use crate::executor::ExecutorProcess;
use crate::executor::http::{LinkBody, REQUEST_HEADER, TIMEOUT_HEADER, WORKER_HEADER};
use crate::runtime::ERROR_HEADER;
use crate::store::EndpointKind;

/// Why a request could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LbError {
    #[error("no endpoint {0:?}; list endpoints with GET /v1/endpoints")]
    NotFound(String),
    #[error(
        "endpoint {0:?} is a queue endpoint; send it jobs with POST /v2/{0}/run or /runsync, or make it \"type\": \"load_balancer\" with an HTTP handler"
    )]
    NotLoadBalancer(String),
    #[error("endpoint {0:?} is paused (max_workers is 0); raise max_workers to serve requests")]
    Paused(String),
    #[error(
        "no worker of endpoint {endpoint:?} could take the request within {waited:?} ({state}); retry after {retry_after_s} s, or raise max_workers or concurrency"
    )]
    NoCapacity {
        endpoint: String,
        waited: Duration,
        state: String,
        retry_after_s: u64,
    },
    #[error("the worker's executor failed while serving the request: {0}; retry it")]
    Executor(String),
    #[error(
        "the worker did not answer within the request timeout of {0:?}; raise request_timeout_ms or answer sooner"
    )]
    Timeout(Duration),
}

impl LbError {
    /// Seconds a client should wait before trying again, when it should.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            LbError::NoCapacity { retry_after_s, .. } => Some(*retry_after_s),
            LbError::Paused(_) => Some(30),
            LbError::Executor(_) => Some(1),
            _ => None,
        }
    }
}

/// A ready worker requests can go to.
struct Target {
    worker: Arc<WorkerShared>,
    exec: Arc<ExecutorProcess>,
    concurrency: usize,
}

/// Request counts of one endpoint, for `/health` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestCounts {
    /// Requests a worker took.
    pub served: u64,
    /// Of those, ones the runtime answered for the handler: it trapped,
    /// ran past the request timeout or returned no response.
    pub failed: u64,
    /// Requests answered 503 because no worker could take them in time.
    pub rejected: u64,
    /// Requests on a worker now.
    pub in_flight: u64,
    /// Requests waiting for a worker now.
    pub waiting: u64,
}

/// The ready workers of one load-balancing endpoint and the requests
/// waiting for them.
#[derive(Default)]
pub struct LbRoutes {
    targets: Mutex<Vec<Target>>,
    waiting: AtomicUsize,
    /// A worker became ready or finished a request.
    changed: Notify,
    served: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
}

impl LbRoutes {
    /// Requests waiting for a worker (the autoscaler's queue).
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn counts(&self) -> RequestCounts {
        let in_flight = self
            .targets
            .lock()
            .expect("lb lock")
            .iter()
            .map(|t| t.worker.busy() as u64)
            .sum();
        RequestCounts {
            served: self.served.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            in_flight,
            waiting: self.waiting() as u64,
        }
    }

    fn add(&self, target: Target) {
        self.targets.lock().expect("lb lock").push(target);
        self.changed.notify_waiters();
    }

    fn remove(&self, worker_id: &str) {
        self.targets
            .lock()
            .expect("lb lock")
            .retain(|t| t.worker.id != worker_id);
    }

    /// A place on the least-loaded worker with room, if any.
    fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        let targets = self.targets.lock().expect("lb lock");
        let target = targets
            .iter()
            .filter(|t| !t.worker.is_retiring() && t.exec.is_alive())
            .filter(|t| t.worker.busy() < t.concurrency)
            .min_by_key(|t| t.worker.busy())?;
        target.worker.job_started();
        Some(Slot {
            worker: Arc::clone(&target.worker),
            exec: Arc::clone(&target.exec),
            routes: Arc::clone(self),
        })
    }
}

/// One request's place on a worker, given back when its response body ends
/// (or is dropped).
struct Slot {
    worker: Arc<WorkerShared>,
    exec: Arc<ExecutorProcess>,
    routes: Arc<LbRoutes>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.worker.job_ended();
        self.routes.changed.notify_waiters();
    }
}

/// Counts a request as waiting while it lives.
struct Waiting<'a>(&'a LbRoutes);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body from a worker; holds the request's place until it ends.
pub struct LbBody {
    inner: Incoming,
    slot: Option<Slot>,
}

impl Body for LbBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // The body is done: the worker's place is free for the next one.
            self.slot = None;
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

/// How often a starting worker's `/ping` is asked again while it answers
/// 204 (initializing).
const PING_EVERY: Duration = Duration::from_millis(100);
/// How long a worker may answer 204 before its start counts as failed.
const PING_PATIENCE: Duration = Duration::from_secs(600);
/// Past the request timeout, how long the host waits for the executor's
/// answer (the executor enforces the timeout itself) before giving up.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

fn link_request(
    method: hyper::Method,
    path: &str,
    worker: &str,
    timeout: Duration,
) -> hyper::Request<LinkBody> {
    use http_body_util::BodyExt;
    let mut req = hyper::Request::new(
        http_body_util::Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *req.method_mut() = method;
    *req.uri_mut() = hyper::Uri::builder()
        .scheme("http")
        .authority("worker")
        .path_and_query(path)
        .build()
        .expect("a valid path");
    set_link_headers(&mut req, worker, "health-check", timeout);
    req
}

fn set_link_headers<B>(req: &mut hyper::Request<B>, worker: &str, id: &str, timeout: Duration) {
    let headers = req.headers_mut();
    for (name, value) in [
        (WORKER_HEADER, worker.to_string()),
        (REQUEST_HEADER, id.to_string()),
        (TIMEOUT_HEADER, timeout.as_millis().to_string()),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
}

/// Ask the worker's handler `GET /ping` until it is ready: 200 (or 404, a
/// handler without a health route) is ready, 204 is still initializing,
/// anything else fails the start.
async fn wait_healthy(exec: &ExecutorProcess, worker: &str) -> Result<(), String> {
    let started = Instant::now();
    loop {
        let req = link_request(hyper::Method::GET, "/ping", worker, Duration::from_secs(30));
        let status = match exec.http().send(req).await {
            Ok(resp) => resp.status(),
            Err(e) => return Err(format!("asking the handler's /ping: {e}")),
        };
        match status.as_u16() {
            200 | 404 => return Ok(()),
            204 if started.elapsed() < PING_PATIENCE => tokio::time::sleep(PING_EVERY).await,
            204 => {
                return Err(format!(
                    "the handler's /ping answered 204 (initializing) for {PING_PATIENCE:?}"
                ));
            }
            other => {
                return Err(format!(
                    "the handler's /ping answered {other}; it must answer 200 when ready (204 while initializing)"
                ));
            }
        }
    }
}

/// A started worker of a load-balancing endpoint: once its handler's
/// `/ping` says ready it takes requests until it is retired; then it takes
/// no new ones and returns when those in flight have finished.
pub(super) async fn serve_requests(
    spec: &WorkerSpec,
    me: &Arc<WorkerShared>,
    pool: &Arc<PoolShared>,
    exec: &Arc<ExecutorProcess>,
) -> Result<(), WorkerExit> {
    let died = || {
        WorkerExit::ExecutorDied(format!(
            "the executor for slice {} (pid {}) died",
            exec.slice().id,
            exec.pid()
        ))
    };
    tokio::select! {
        healthy = wait_healthy(exec, &me.id) => healthy.map_err(WorkerExit::StartFailed)?,
        _ = exec.died() => return Err(died()),
    }
    me.set_stage(WorkerStage::Ready);
    pool.lb.add(Target {
        worker: Arc::clone(me),
        exec: Arc::clone(exec),
        concurrency: spec.concurrency.max(1) as usize,
    });
    loop {
        let stopped = me.stop.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        if me.is_retiring() {
            break;
        }
        tokio::select! {
            _ = &mut stopped => {}
            _ = exec.died() => {
                pool.lb.remove(&me.id);
                return Err(died());
            }
        }
    }
    // Retired (scale-down, hot swap, shutdown): no new requests; the ones in
    // flight finish here, on this version.
    pool.lb.remove(&me.id);
    while me.busy() > 0 && exec.is_alive() {
        let changed = pool.lb.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        if me.busy() == 0 {
            break;
        }
        tokio::select! {
            _ = &mut changed => {}
            _ = exec.died() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
    Ok(())
}

impl App {
    /// Serve one HTTP request of a load-balancing endpoint: `request`'s path
    /// is the one the handler sees (after `/lb/{endpoint}`); its body
    /// streams to the handler and the answer's body streams back.
    pub async fn lb_forward(
        &self,
        endpoint_id: &str,
        mut request: hyper::Request<LinkBody>,
    ) -> Result<hyper::Response<LbBody>, LbError> {
        let endpoint = self
            .pools
            .endpoint(endpoint_id)
            .ok_or_else(|| LbError::NotFound(endpoint_id.to_string()))?;
        if endpoint.config.kind != EndpointKind::LoadBalancer {
            return Err(LbError::NotLoadBalancer(endpoint_id.to_string()));
        }
        let shared = self
            .pools
            .shared(endpoint_id)
            .ok_or_else(|| LbError::NotFound(endpoint_id.to_string()))?;
        if shared.is_paused() {
            return Err(LbError::Paused(endpoint_id.to_string()));
        }
        let slot = self.lb_slot(endpoint_id, &shared).await?;
        let timeout = Duration::from_millis(endpoint.config.request_timeout_ms);
        let id = uuid::Uuid::new_v4().simple().to_string();
        set_link_headers(&mut request, &slot.worker.id, &id, timeout);
        let exec = Arc::clone(&slot.exec);
        let answer = tokio::time::timeout(timeout + ANSWER_GRACE, exec.http().send(request)).await;
        let lb = &shared.lb;
        let response = match answer {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                lb.failed.fetch_add(1, Ordering::Relaxed);
                let why = if exec.is_alive() {
                    e.to_string()
                } else {
                    format!("the executor for slice {} died", exec.slice().id)
                };
                return Err(LbError::Executor(why));
            }
            Err(_) => {
                lb.failed.fetch_add(1, Ordering::Relaxed);
                return Err(LbError::Timeout(timeout));
            }
        };
        lb.served.fetch_add(1, Ordering::Relaxed);
        if response.headers().contains_key(ERROR_HEADER) {
            lb.failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(response.map(|inner| LbBody {
            inner,
            slot: Some(slot),
        }))
    }

    /// A place on a worker of the endpoint: at once if one has room, else
    /// waiting (counted as demand, so the pool grows) up to the start bound.
    async fn lb_slot(&self, endpoint_id: &str, shared: &PoolShared) -> Result<Slot, LbError> {
        let lb = &shared.lb;
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.config.lb_start_wait;
        let mut waiting = None;
        loop {
            let changed = lb.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(slot) = lb.try_acquire() {
                return Ok(slot);
            }
            if waiting.is_none() {
                lb.waiting.fetch_add(1, Ordering::SeqCst);
                waiting = Some(Waiting(lb));
                shared.wake.notify_waiters();
            }
            tokio::select! {
                _ = &mut changed => {}
                // A safety net: capacity that appeared without a notice.
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    lb.rejected.fetch_add(1, Ordering::Relaxed);
                    let counts = shared.counts();
                    let state = format!(
                        "{} ready and busy, {} initializing, {} throttled",
                        counts.ready, counts.initializing, counts.throttled
                    );
                    // About one start's time: when a worker should be up.
                    let retry_after_s = shared
                        .last_boot()
                        .map(|b| (b.boot.init_ms / 1000.0).ceil() as u64)
                        .unwrap_or(5)
                        .clamp(1, 60);
                    return Err(LbError::NoCapacity {
                        endpoint: endpoint_id.to_string(),
                        waited: started.elapsed(),
                        state,
                        retry_after_s,
                    });
                }
            }
        }
    }

    /// Request counts of a load-balancing endpoint.
    pub fn lb_counts(&self, endpoint_id: &str) -> Option<RequestCounts> {
        let endpoint = self.pools.endpoint(endpoint_id)?;
        if endpoint.config.kind != EndpointKind::LoadBalancer {
            return None;
        }
        Some(self.pools.shared(endpoint_id)?.lb.counts())
    }

    /// The load-balancing endpoint a `Host:` name routes to, if any: one
    /// listing it in `hostnames`, or `{id}.{lb_domain}`.
    pub fn lb_endpoint_for_host(&self, host: &str) -> Option<String> {
        let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
        if let Some(id) = self.pools.endpoint_for_host(&host) {
            return Some(id);
        }
        let domain = self.config.lb_domain.as_deref()?;
        let id = host.strip_suffix(domain)?.strip_suffix('.')?;
        let endpoint = self.pools.endpoint(id)?;
        (!id.contains('.') && endpoint.config.kind == EndpointKind::LoadBalancer)
            .then(|| id.to_string())
    }
}
