//! Reading request bodies under a size limit (413 past it) and parsing JSON
//! with errors that say what to send instead.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::{ApiError, ApiResult};

fn too_large(limit: usize, what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the request body is larger than the {} MB limit of {what}; send large data by reference (e.g. a URL in the input) instead",
            limit >> 20
        ),
    )
}

/// The whole body, refusing (413) past `limit` bytes.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    what: &str,
) -> ApiResult<Vec<u8>> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut stream = body.into_data_stream();
    if declared.is_some_and(|len| len > limit as u64) {
        drain(&mut stream, limit).await;
        return Err(too_large(limit, what));
    }
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?;
        if out.len() + chunk.len() > limit {
            drain(&mut stream, limit).await;
            return Err(too_large(limit, what));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads and discards the rest of an oversized body (up to a few times the
/// limit), so the client, still sending, reads the 413 instead of a broken
/// pipe; a body larger than that is cut off.
async fn drain(stream: &mut axum::body::BodyDataStream, limit: usize) {
    let cap = limit.saturating_mul(4).max(64 << 20);
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > cap {
            break;
        }
    }
}

/// Parse a JSON body; an empty body is `{}` when `empty_ok`.
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
