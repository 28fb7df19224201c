//! Request bodies: reading them under a size limit (413 past it), parsing
//! JSON with errors that say what to send instead, and what happens to a
//! body a route does not read to its end.
//!
//! An answer given before the body is read (a 413 on its Content-Length, a
//! 401, a 404) would otherwise close the connection under a client still
//! sending, which then sees a broken pipe or a reset instead of the answer.
//! [`drain_unread`] reads and discards the rest, up to [`DRAIN_BOUND`]
//! bytes or [`DRAIN_TIME`], before the answer goes out, so ordinary clients
//! (Python's requests and http.client send the whole body before reading)
//! read it. A client that sends `Expect: 100-continue` (curl does for large
//! bodies) is answered before it sends anything: its body is not drained.
//! Past the bound the connection is closed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use http_body::{Body as _, Frame, SizeHint};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

/// The most of an unread body drained before answering.
pub const DRAIN_BOUND: u64 = 1 << 30;
/// And for how long at most.
pub const DRAIN_TIME: Duration = Duration::from_secs(60);

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than the {} MB limit of {what}; send large data by reference (e.g. a URL in the input) instead",
            limit >> 20
        ),
    )
}

/// The body's declared length, if it has a valid Content-Length.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The whole body, refusing (413) past `limit` bytes. A body declared
/// larger is refused without reading it.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> ApiResult<Vec<u8>> {
    if declared_length(headers).is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit, what));
    }
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(too_large(limit, what));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Parse a JSON body.
pub fn parse_json<'a, T: Deserialize<'a>>(bytes: &'a [u8], example: &str) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(format!(
            "the request body is empty; send a JSON object such as {example}"
        )));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let kind = if e.is_syntax() || e.is_eof() {
            "is not valid JSON"
        } else {
            "has the wrong shape"
        };
        ApiError::bad_request(format!(
            "the request body {kind} ({e}); send a JSON object such as {example}"
        ))
    })
}

/// A small admin JSON body (1 MiB at most).
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    example: &str,
) -> ApiResult<T> {
    let bytes = read_limited(headers, body, 1 << 20, "this route").await?;
    parse_json(&bytes, example)
}

/// Where a route's unread body goes back when the route drops it.
type Slot = Arc<Mutex<Option<(Body, bool)>>>;

/// The body a route sees: the request's, handing what is left of it back
/// to [`drain_unread`] when dropped before its end.
struct Reclaimed {
    inner: Option<Body>,
    started: bool,
    slot: Slot,
}

impl http_body::Body for Reclaimed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        this.started = true;
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // Read to its end (or broken): nothing to drain.
            this.inner = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for Reclaimed {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take()
            && !inner.is_end_stream()
        {
            *self.slot.lock().expect("body slot") = Some((inner, self.started));
        }
    }
}

/// Middleware: drain what a route left of its request body (see the
/// module doc) before its answer goes out.
pub async fn drain_unread(request: Request, next: Next) -> Response {
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    let slot: Slot = Arc::default();
    let request = request.map(|body| {
        Body::new(Reclaimed {
            inner: Some(body),
            started: false,
            slot: Arc::clone(&slot),
        })
    });
    let response = next.run(request).await;
    let unread = slot.lock().expect("body slot").take();
    if let Some((body, started)) = unread
        && (started || !expects_continue)
    {
        drain(body).await;
    }
    response
}

async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut seen = 0u64;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > DRAIN_BOUND {
                break;
            }
        }
    })
    .await;
}
