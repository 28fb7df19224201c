//! HTTP handlers (world `http-handler`, load-balancing endpoints): a
//! [`Router`] of routes to functions from a [`Request`] to a [`Response`],
//! registered with [`http_handler!`](crate::http_handler).
//!
//! ```no_run
//! use wasmpod_sdk::http::{Request, Response, Router};
//!
//! fn hello(req: Request) -> Response {
//!     Response::text(format!("hello, {}", req.param("name").unwrap_or("world")))
//! }
//!
//! fn app() -> Router {
//!     Router::new()
//!         .get("/ping", |_| Response::text("ok"))
//!         .get("/hello/:name", hello)
//!         .post("/echo", |mut req: Request| req.body().map(Response::bytes))
//! }
//!
//! wasmpod_sdk::http_handler!(app);
//! ```
//!
//! Bodies stream both ways: [`Request::body_reader`] reads the request
//! body as it arrives (`std::io::Read`), and [`Response::stream`] writes the
//! response body in pieces (`std::io::Write`), each sent to the client as it
//! is written. The host answers `GET /ping` itself only through the
//! handler: return 200 when ready (204 while still warming up); a handler
//! without a `/ping` route is treated as ready.

use std::cell::RefCell;
use std::fmt::Display;
use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::__wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse,
    ResponseOutparam,
};
use crate::__wasip2::io::streams::{InputStream, OutputStream, StreamError};
use crate::http_bindings::wasmpod::serverless::log as wit_log;

/// Severity of a log line of an HTTP handler.
pub use wit_log::Level as LogLevel;

/// Write a log line attributed to the request being served (to the worker
/// during `init`).
pub fn log(level: LogLevel, message: &str) {
    wit_log::log(level, message);
}

/// One HTTP request, as the route's function gets it: method, path (after
/// `/lb/{endpoint}`), query, headers, the route's path parameters, and the
/// body, read on demand.
pub struct Request {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, Vec<u8>)>,
    params: Vec<(String, String)>,
    incoming: Option<IncomingRequest>,
    /// The body's stream and the body it belongs to (dropped in this
    /// order: the stream is the body's child).
    body: Option<(InputStream, IncomingBody)>,
}

impl Request {
    fn new(incoming: IncomingRequest) -> Self {
        let method = method_name(&incoming.method());
        let full = incoming.path_with_query().unwrap_or_else(|| "/".into());
        let (path, query) = match full.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (full, None),
        };
        let headers = incoming.headers().entries();
        Self {
            method,
            path: if path.is_empty() { "/".into() } else { path },
            query,
            headers,
            params: Vec::new(),
            incoming: Some(incoming),
            body: None,
        }
    }

    /// The method, upper case ("GET", "POST", ...).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The path, starting with `/`, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The first value of a query parameter, percent-decoded (`+` is a
    /// space).
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.as_deref()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }

    /// The first value of a header (name case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// Every header, in order (names lower case).
    pub fn headers(&self) -> &[(String, Vec<u8>)] {
        &self.headers
    }

    /// A path parameter of the route (`:name` or `*name`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as it arrives, for large uploads; reading it through here
    /// and through [`Request::body`] are exclusive.
    pub fn body_reader(&mut self) -> BodyReader<'_> {
        if self.body.is_none()
            && let Some(incoming) = self.incoming.take()
            && let Ok(body) = incoming.consume()
            && let Ok(stream) = body.stream()
        {
            self.body = Some((stream, body));
        }
        BodyReader {
            stream: self.body.as_ref().map(|(s, _)| s),
        }
    }

    /// The whole body.
    pub fn body(&mut self) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        io::Read::read_to_end(&mut self.body_reader(), &mut out)
            .map_err(|e| HttpError::bad_request(format!("reading the request body: {e}")))?;
        Ok(out)
    }

    /// The body as UTF-8 text (400 if it is not).
    pub fn text(&mut self) -> Result<String, HttpError> {
        String::from_utf8(self.body()?)
            .map_err(|_| HttpError::bad_request("the request body is not UTF-8 text"))
    }

    /// The body parsed as JSON into `T` (400 saying why if it does not fit).
    pub fn json<T: DeserializeOwned>(&mut self) -> Result<T, HttpError> {
        let bytes = self.body()?;
        serde_json::from_slice(&bytes).map_err(|e| {
            HttpError::bad_request(format!("the request body is not the JSON expected: {e}"))
        })
    }
}

/// The request body as a `std::io::Read`: each read takes what has arrived.
pub struct BodyReader<'a> {
    stream: Option<&'a InputStream>,
}

impl io::Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(stream) = self.stream else {
            return Ok(0);
        };
        match stream.blocking_read(buf.len() as u64) {
            Ok(chunk) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(chunk.len())
            }
            Err(StreamError::Closed) => Ok(0),
            Err(StreamError::LastOperationFailed(e)) => Err(io::Error::other(e.to_debug_string())),
        }
    }
}

/// The response body as a `std::io::Write`: each write is sent to the client
/// before it returns.
pub struct BodyWriter<'a> {
    stream: &'a OutputStream,
}

impl io::Write for BodyWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_all(self.stream, buf).map_err(stream_error)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.blocking_flush().map_err(stream_error)
    }
}

fn stream_error(e: StreamError) -> io::Error {
    match e {
        StreamError::Closed => io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"),
        StreamError::LastOperationFailed(e) => io::Error::other(e.to_debug_string()),
    }
}

/// Write `data` as fast as the host takes it, then wait until it is sent.
fn write_all(stream: &OutputStream, mut data: &[u8]) -> Result<(), StreamError> {
    while !data.is_empty() {
        let room = stream.check_write()? as usize;
        if room == 0 {
            stream.subscribe().block();
            continue;
        }
        let n = room.min(data.len());
        stream.write(&data[..n])?;
        data = &data[n..];
    }
    stream.blocking_flush()
}

type StreamFn = Box<dyn FnOnce(&mut BodyWriter<'_>) -> io::Result<()>>;

enum Body {
    Bytes(Vec<u8>),
    Stream(StreamFn),
}

/// An HTTP response: status, headers, and a body of bytes or streamed.
pub struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Body,
}

impl Response {
    /// An empty response with `status`.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Body::Bytes(Vec::new()),
        }
    }

    /// 200 with a `text/plain` body.
    pub fn text(text: impl Into<String>) -> Self {
        Self::status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .with_body(text.into().into_bytes())
    }

    /// 200 with an `application/octet-stream` body.
    pub fn bytes(bytes: Vec<u8>) -> Self {
        Self::status(200)
            .header("content-type", "application/octet-stream")
            .with_body(bytes)
    }

    /// 200 with `value` as JSON (500 if it does not serialize).
    pub fn json(value: &impl Serialize) -> Self {
        match serde_json::to_vec(value) {
            Ok(bytes) => Self::status(200)
                .header("content-type", "application/json")
                .with_body(bytes),
            Err(e) => HttpError::internal(format!("the response could not be serialized: {e}"))
                .into_response(),
        }
    }

    /// 200 whose body `write` produces in pieces, each sent as it is
    /// written (e.g. tokens as a model generates them). The head goes out
    /// before `write` runs.
    pub fn stream(
        content_type: &str,
        write: impl FnOnce(&mut BodyWriter<'_>) -> io::Result<()> + 'static,
    ) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), content_type.as_bytes().to_vec())],
            body: Body::Stream(Box::new(write)),
        }
    }

    /// The same response with another status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Add a header.
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Replace the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = Body::Bytes(body);
        self
    }

    /// The status code.
    pub fn status_code(&self) -> u16 {
        self.status
    }
}

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    /// The HTTP status.
    pub status: u16,
    /// What was wrong and what to do.
    pub message: String,
}

impl HttpError {
    /// An error answer with any status.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, message)
    }
    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, message)
    }
}

impl Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl std::error::Error for HttpError {}

/// What a route's function may return.
pub trait IntoResponse {
    /// The response to send.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        Response::json(&body).with_status(self.status)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for serde_json::Value {
    fn into_response(self) -> Response {
        Response::json(&self)
    }
}

type RouteFn = Box<dyn Fn(Request) -> Response>;

/// One segment of a route pattern.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    /// `:name`: one segment.
    Param(String),
    /// `*name`: the rest of the path (last only).
    Rest(String),
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    pattern
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Some(name) = s.strip_prefix(':') {
                Segment::Param(name.to_string())
            } else if let Some(name) = s.strip_prefix('*') {
                Segment::Rest(name.to_string())
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

/// The path parameters if `path` fits `pattern`.
fn match_path(pattern: &[Segment], path: &str) -> Option<Vec<(String, String)>> {
    let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut params = Vec::new();
    for (i, seg) in pattern.iter().enumerate() {
        match seg {
            Segment::Rest(name) => {
                params.push((name.clone(), parts.get(i..).unwrap_or(&[]).join("/")));
                return Some(params);
            }
            Segment::Literal(lit) => {
                if parts.get(i) != Some(&lit.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => params.push((name.clone(), percent_decode(parts.get(i)?))),
        }
    }
    (parts.len() == pattern.len()).then_some(params)
}

/// Routes by method and path pattern: literal segments, `:name` (one
/// segment) and a final `*name` (the rest). The first route that fits
/// answers; a path no route fits is 404, a path that fits only other
/// methods is 405, both as `{"error": ...}`.
#[derive(Default)]
pub struct Router {
    routes: Vec<(String, Vec<Segment>, RouteFn)>,
}

impl Router {
    /// No routes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answer `method` requests on `pattern` with `f`. Method `*` is any.
    pub fn route<R: IntoResponse>(
        mut self,
        method: &str,
        pattern: &str,
        f: impl Fn(Request) -> R + 'static,
    ) -> Self {
        self.routes.push((
            method.to_ascii_uppercase(),
            parse_pattern(pattern),
            Box::new(move |req| f(req).into_response()),
        ));
        self
    }

    /// A GET route.
    pub fn get<R: IntoResponse>(self, pattern: &str, f: impl Fn(Request) -> R + 'static) -> Self {
        self.route("GET", pattern, f)
    }

    /// A POST route.
    pub fn post<R: IntoResponse>(self, pattern: &str, f: impl Fn(Request) -> R + 'static) -> Self {
        self.route("POST", pattern, f)
    }

    /// A PUT route.
    pub fn put<R: IntoResponse>(self, pattern: &str, f: impl Fn(Request) -> R + 'static) -> Self {
        self.route("PUT", pattern, f)
    }

    /// A DELETE route.
    pub fn delete<R: IntoResponse>(
        self,
        pattern: &str,
        f: impl Fn(Request) -> R + 'static,
    ) -> Self {
        self.route("DELETE", pattern, f)
    }

    /// Answer one request.
    pub fn handle(&self, mut req: Request) -> Response {
        let mut other_methods = Vec::new();
        for (method, pattern, f) in &self.routes {
            let Some(params) = match_path(pattern, &req.path) else {
                continue;
            };
            if method != "*" && *method != req.method {
                other_methods.push(method.clone());
                continue;
            }
            req.params = params;
            return f(req);
        }
        if other_methods.is_empty() {
            HttpError::not_found(format!("no route {} {}", req.method, req.path)).into_response()
        } else {
            HttpError::new(
                405,
                format!(
                    "{} takes {}, not {}",
                    req.path,
                    other_methods.join(", "),
                    req.method
                ),
            )
            .into_response()
            .header("allow", other_methods.join(", "))
        }
    }
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.to_ascii_uppercase(),
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

thread_local! {
    static ROUTER: RefCell<Option<std::rc::Rc<Router>>> = const { RefCell::new(None) };
}

/// Serve one request with the app's router (built on first use and kept
/// for the instance's life). Support for [`http_handler!`]; not a stable API.
#[doc(hidden)]
pub fn serve(app: fn() -> Router, request: IncomingRequest, out: ResponseOutparam) {
    let router = ROUTER.with(|r| {
        std::rc::Rc::clone(
            r.borrow_mut()
                .get_or_insert_with(|| std::rc::Rc::new(app())),
        )
    });
    let response = router.handle(Request::new(request));
    send(response, out);
}

/// Build the router during `init`, so the first request does not pay for it.
#[doc(hidden)]
pub fn prepare(app: fn() -> Router) {
    ROUTER.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(|| std::rc::Rc::new(app()));
    });
}

fn send(response: Response, out: ResponseOutparam) {
    let mut headers = response.headers;
    if let Body::Bytes(b) = &response.body
        && !headers.iter().any(|(k, _)| k == "content-length")
    {
        headers.push(("content-length".into(), b.len().to_string().into_bytes()));
    }
    let fields = match Fields::from_list(&headers) {
        Ok(f) => f,
        Err(e) => {
            let msg = format!("the handler's response headers are not valid: {e:?}");
            ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(msg))));
            return;
        }
    };
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(response.status).is_err() {
        let msg = format!(
            "the handler's status {} is not an HTTP status",
            response.status
        );
        ResponseOutparam::set(out, Err(ErrorCode::InternalError(Some(msg))));
        return;
    }
    let body = outgoing.body().expect("a new response has its body");
    ResponseOutparam::set(out, Ok(outgoing));
    let stream = body.write().expect("a new body has its stream");
    let written = match response.body {
        Body::Bytes(bytes) => write_all(&stream, &bytes).is_ok(),
        Body::Stream(write) => write(&mut BodyWriter { stream: &stream }).is_ok(),
    };
    drop(stream);
    if written {
        let _ = OutgoingBody::finish(body, None);
    }
    // Otherwise the client went away (or the streaming function failed):
    // dropping the body unfinished tells the host the response is cut off.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_literals_params_and_rest() {
        let p = parse_pattern("/users/:id/files/*path");
        assert_eq!(
            match_path(&p, "/users/7/files/a/b.txt"),
            Some(vec![
                ("id".into(), "7".into()),
                ("path".into(), "a/b.txt".into())
            ])
        );
        assert_eq!(match_path(&p, "/users/7"), None);
        let p = parse_pattern("/ping");
        assert_eq!(match_path(&p, "/ping"), Some(vec![]));
        assert_eq!(match_path(&p, "/ping/x"), None);
        assert_eq!(match_path(&parse_pattern("/"), "/"), Some(vec![]));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
