//! HTTP handlers (world `http-handler`, or a plain `wasi:http/proxy`
//! component): the checked exports of such a component, and serving one
//! HTTP request on an instance of it with wasmtime's wasi:http host. An
//! instance serves one request at a time and is reused for the next one,
//! like a job instance (so `init`'s state, e.g. opened models, serves every
//! request); a trap, a memory-cap refusal or a timeout loses it.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::InstancePre;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use super::bindings::http::{HttpHandler, HttpHandlerPre};
use super::instance::{Exports, Instance, JobError};
use super::state::WorkerState;

/// The body of a response an HTTP handler sends (streamed as it writes).
pub type HttpBody = HyperOutgoingBody;

/// What a served request answers: the response head (its body streams on
/// as the handler writes it), or the handler's own error code.
pub type HttpResponse = Result<hyper::Response<HyperOutgoingBody>, ErrorCode>;

/// The checked exports of an HTTP handler component.
pub(crate) enum HttpPre {
    /// World `http-handler`: `init` and `wasi:http/incoming-handler`.
    World(HttpHandlerPre<WorkerState>),
    /// A plain `wasi:http/proxy` component: no `init`.
    Proxy(ProxyPre<WorkerState>),
}

impl HttpPre {
    pub(crate) fn new(pre: InstancePre<WorkerState>) -> wasmtime::Result<Self> {
        match HttpHandlerPre::new(pre.clone()) {
            Ok(p) => Ok(HttpPre::World(p)),
            Err(world_err) => ProxyPre::new(pre)
                .map(HttpPre::Proxy)
                .map_err(|_| world_err),
        }
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<WorkerState> {
        match self {
            HttpPre::World(p) => p.instance_pre(),
            HttpPre::Proxy(p) => p.instance_pre(),
        }
    }

    pub(crate) fn exports(
        &self,
        store: &mut Store<WorkerState>,
        raw: &wasmtime::component::Instance,
    ) -> wasmtime::Result<HttpExports> {
        Ok(match self {
            HttpPre::World(_) => HttpExports::World(HttpHandler::new(store, raw)?),
            HttpPre::Proxy(_) => {
                HttpExports::Proxy(wasmtime_wasi_http::p2::bindings::Proxy::new(store, raw)?)
            }
        })
    }
}

/// A live HTTP handler instance's exports.
pub(crate) enum HttpExports {
    World(HttpHandler),
    Proxy(wasmtime_wasi_http::p2::bindings::Proxy),
}

impl HttpExports {
    pub(crate) async fn call_init(
        &self,
        store: &mut Store<WorkerState>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            HttpExports::World(h) => h.call_init(store).await,
            // A plain proxy component has nothing to run before requests.
            HttpExports::Proxy(_) => Ok(Ok(())),
        }
    }

    async fn call_handle(
        &self,
        store: &mut Store<WorkerState>,
        request: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostIncomingRequest>,
        out: wasmtime::component::Resource<wasmtime_wasi_http::p2::types::HostResponseOutparam>,
    ) -> wasmtime::Result<()> {
        match self {
            HttpExports::World(h) => {
                h.wasi_http_incoming_handler()
                    .call_handle(store, request, out)
                    .await
            }
            HttpExports::Proxy(p) => {
                p.wasi_http_incoming_handler()
                    .call_handle(store, request, out)
                    .await
            }
        }
    }
}

impl Instance {
    /// True when this is an instance of an HTTP handler.
    pub fn is_http(&self) -> bool {
        matches!(&*self.exports(), Exports::Http(_))
    }

    /// Serve one HTTP request. The response head goes to `respond` as soon
    /// as the handler sets it, and its body streams while the handler runs;
    /// this returns when the handler returns (or traps, or runs past
    /// `timeout`, which loses the instance and cuts the body off). A handler
    /// that returns without setting a response drops `respond`.
    pub async fn serve_http<B>(
        &mut self,
        id: &str,
        request: hyper::Request<B>,
        respond: oneshot::Sender<HttpResponse>,
        timeout: Duration,
    ) -> Result<(), JobError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let respond = std::sync::Arc::new(std::sync::Mutex::new(Some(respond)));
        let exports = self.exports();
        let Exports::Http(exports) = &*exports else {
            return Err(JobError::Handler(
                "this is a queue handler (world handler): it runs jobs through /run and /runsync, not HTTP requests".into(),
            ));
        };
        if self.lost {
            return Err(JobError::InstanceLost);
        }
        self.ensure_paged_in().map_err(JobError::Trap)?;
        let (req, out) = {
            let data = self.store.data_mut();
            data.output.clear();
            data.limits.memory_refused = None;
            data.log.request = Some(id.to_string());
            let mut http = data.http();
            let req = http.new_incoming_request(Scheme::Http, request);
            let callback = std::sync::Arc::clone(&respond);
            let out = http.new_response_outparam_from_callback(move |response| {
                if let Some(tx) = callback.lock().expect("respond lock").take() {
                    let _ = tx.send(response);
                }
            });
            match (req, out) {
                (Ok(req), Ok(out)) => (req, out),
                (Err(e), _) | (_, Err(e)) => {
                    data.log.request = None;
                    return Err(JobError::Handler(format!(
                        "the request is not valid HTTP: {e:#}"
                    )));
                }
            }
        };
        let outcome =
            tokio::time::timeout(timeout, exports.call_handle(&mut self.store, req, out)).await;
        self.store.data_mut().log.request = None;
        // A handler that trapped or timed out before setting a response
        // leaves the out-param in its store: the waiting caller must hear
        // now that no response will come.
        respond.lock().expect("respond lock").take();
        let result = match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(trap)) => Err(self.describe_trap(&trap)),
            Err(_) => Err(JobError::Timeout(timeout)),
        };
        if let Err(e) = &result {
            self.lost |= e.instance_lost();
        }
        result
    }
}

/// Error answers the runtime gives for a request the handler did not
/// answer, with the reason in `x-wasmpod-error` (`trap`, `timeout`,
/// `no-response`, `handler-error`, `bad-request`) and `{"error": ...}`.
pub fn error_response(
    status: hyper::StatusCode,
    kind: &str,
    message: &str,
) -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = hyper::Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        headers.insert(ERROR_HEADER, v);
    }
    response
}

/// The header naming why the runtime (not the handler) answered.
pub const ERROR_HEADER: &str = "x-wasmpod-error";

/// The answer for a request whose handler ended without a response.
fn failure_response(result: Result<(), JobError>) -> hyper::Response<HyperOutgoingBody> {
    use hyper::StatusCode;
    match result {
        Ok(()) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no-response",
            "the handler returned without setting a response (response-outparam.set)",
        ),
        Err(e @ JobError::Timeout(_)) => error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            &format!("{e}; raise the endpoint's request timeout or answer sooner"),
        ),
        Err(e @ JobError::Handler(_)) => {
            error_response(StatusCode::BAD_REQUEST, "bad-request", &e.to_string())
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, "trap", &e.to_string()),
    }
}

/// Serve `request` on `instance` in a task of its own: answers with the
/// response head as soon as the handler sets it (its body streams on), or
/// with an error answer if the handler ends without one. The task hands
/// the instance back when the handler returns, with how the call ended
/// (a lost instance must be replaced, not reused).
pub async fn respond<B>(
    mut instance: Instance,
    id: String,
    request: hyper::Request<B>,
    timeout: Duration,
) -> (
    hyper::Response<HyperOutgoingBody>,
    tokio::task::JoinHandle<(Instance, Result<(), JobError>)>,
)
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let (tx, rx) = oneshot::channel();
    let mut task = tokio::spawn(async move {
        let result = instance.serve_http(&id, request, tx, timeout).await;
        (instance, result)
    });
    let response = match rx.await {
        Ok(Ok(response)) => response,
        Ok(Err(code)) => error_response(
            hyper::StatusCode::INTERNAL_SERVER_ERROR,
            "handler-error",
            &format!("the handler answered with the error {code:?}"),
        ),
        // The handler ended without a response: its result says why.
        Err(_) => {
            let (instance, result) = match (&mut task).await {
                Ok(done) => done,
                Err(join) => std::panic::resume_unwind(join.into_panic()),
            };
            let response = failure_response(result.clone());
            return (response, tokio::spawn(async move { (instance, result) }));
        }
    };
    (response, task)
}
