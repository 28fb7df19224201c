//! OpenAI-compatible routes of every endpoint, as RunPod's vLLM workers
//! expose them: `POST /v2/{endpoint}/openai/v1/chat/completions`, `POST
//! /v2/{endpoint}/openai/v1/completions` and `GET
//! /v2/{endpoint}/openai/v1/models`, for a handler speaking the `llm`
//! example's input and stream (`examples/llm`).
//!
//! A thin adapter: each request becomes an ordinary durable job (its id is
//! the completion's `id`, so `/status/{id}` and `/cancel/{id}` work on
//! it); `stream: true` answers with server-sent events in OpenAI's chunk
//! shape, one per stream chunk as soon as it is stored, then `data:
//! [DONE]`; a client that goes away cancels its job. Errors are in
//! OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`.

mod error;
mod request;
mod response;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::auth::Caller;
use super::body::read_limited;
use super::error::ApiError;
use crate::serve::{App, Watch};
use crate::store::{EndpointKind, EndpointRecord, JobRecord, JobStatus, NewJob};
use error::job_error;
pub use error::{OpenAiError, OpenAiErrorBody, OpenAiErrorDetail};
use request::prepare;
use response::{Shape, event, output_of};

type Result<T> = std::result::Result<T, OpenAiError>;

/// Which of the two generation routes a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Completion,
}

fn seconds_now() -> i64 {
    crate::store::now_ms() / 1000
}

/// Cancels the job when dropped before it finished: the client went away.
struct CancelOnDrop {
    app: App,
    endpoint: String,
    job: String,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (app, endpoint, job) = (self.app.clone(), self.endpoint.clone(), self.job.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                match app.cancel(&endpoint, &job).await {
                    Ok(_) => tracing::info!(job = %job, "the client went away; job cancelled"),
                    Err(e) => tracing::warn!(job = %job, "cancelling the job of a client that went away: {e}"),
                }
            });
        }
    }
}

/// What the job did next.
enum Next {
    Chunks(Arc<[String]>),
    Final(Box<JobRecord>),
}

/// How often a waiting request looks at the job itself, in case a notice
/// was missed (a re-queued job, another host).
const SAFETY_NET: Duration = Duration::from_secs(2);

async fn next(app: &App, endpoint: &str, watch: &mut Watch) -> Result<Next> {
    loop {
        let ended = tokio::select! {
            batch = watch.next() => match batch {
                Some(b) => return Ok(Next::Chunks(b)),
                None => true,
            },
            _ = tokio::time::sleep(SAFETY_NET) => false,
        };
        let record = app.job(endpoint, watch.job_id()).await?.ok_or_else(|| {
            OpenAiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request's job disappeared (purged) before it finished",
            )
        })?;
        if record.status.is_final() {
            // Every chunk was handed over before the job became final: any
            // still queued goes first.
            if let Some(b) = watch.try_next() {
                return Ok(Next::Chunks(b));
            }
            return Ok(Next::Final(Box::new(record)));
        }
        if ended {
            // The watch ended yet the job is not final here (re-queued):
            // keep looking at the job.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Check the caller and the endpoint; the endpoint's settings.
async fn authorize(
    state: &ApiState,
    caller: std::result::Result<Caller, ApiError>,
    endpoint: &str,
) -> Result<EndpointRecord> {
    let caller = caller?;
    // Checked like every route's id before anything else (400).
    super::validate::endpoint_id(endpoint)?;
    caller.require_invoke(endpoint)?;
    let record = state
        .app
        .endpoint(endpoint)
        .await?
        .ok_or_else(|| OpenAiError {
            code: Some("endpoint_not_found"),
            ..OpenAiError::new(
                StatusCode::NOT_FOUND,
                format!("no endpoint {endpoint:?}; list endpoints with GET /v1/endpoints"),
            )
        })?;
    // These routes are jobs, which a load balancer has no queue for (a job
    // would wait out its ttl).
    if record.config.kind == EndpointKind::LoadBalancer {
        return Err(OpenAiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "endpoint {endpoint:?} is a load balancer: it runs no jobs; its HTTP handler answers its own routes at /lb/{endpoint}/<path>"
            ),
        ));
    }
    Ok(record)
}

async fn generate(
    state: ApiState,
    caller: std::result::Result<Caller, ApiError>,
    endpoint: String,
    headers: HeaderMap,
    body: Body,
    route: Route,
) -> Result<Response> {
    authorize(&state, caller, &endpoint).await?;
    let app = state.app.clone();
    let bytes = read_limited(&headers, body, app.config.run_body_limit, "/openai/v1").await?;
    let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
        OpenAiError::new(
            StatusCode::BAD_REQUEST,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    let prepared = prepare(route, body)?;
    if prepared.model != endpoint {
        return Err(OpenAiError {
            code: Some("model_not_found"),
            param: Some("model"),
            ..OpenAiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "the model {:?} does not exist here; this endpoint serves {endpoint:?} (GET /v2/{endpoint}/openai/v1/models)",
                    prepared.model
                ),
            )
        });
    }
    // Time-ordered like /run's ids (see api/jobs.rs).
    let job = NewJob {
        id: uuid::Uuid::now_v7().to_string(),
        endpoint_id: endpoint.clone(),
        input: prepared.input.to_string(),
        webhook: None,
        execution_timeout_ms: None,
        ttl_ms: app.config.default_ttl.as_millis() as i64,
        low_priority: false,
        // Kept like a /runsync job's: the answer already carries the result.
        sync: true,
        accepted_at: None,
        handed_at: None,
    };
    let job_id = job.id.clone();
    let mut watch = app.submit_watched(job).await?;
    let mut guard = CancelOnDrop {
        app: app.clone(),
        endpoint: endpoint.clone(),
        job: job_id.clone(),
        armed: true,
    };
    let shape = Shape {
        route,
        id: job_id.clone(),
        model: prepared.model.clone(),
        created: seconds_now(),
        logprobs: prepared.logprobs,
    };
    if !prepared.stream {
        let record = loop {
            if let Next::Final(record) = next(&app, &endpoint, &mut watch).await? {
                break record;
            }
        };
        guard.armed = false;
        if record.status != JobStatus::Completed {
            return Err(job_error(&record));
        }
        return Ok(Json(shape.full(&output_of(&record))).into_response());
    }

    // The answer starts with the job's first chunk, so a request the
    // handler refuses before generating still gets a plain error status.
    let first = next(&app, &endpoint, &mut watch).await?;
    if let Next::Final(record) = &first
        && record.status != JobStatus::Completed
    {
        guard.armed = false;
        return Err(job_error(record));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(64);
    tokio::spawn(async move {
        let mut guard = guard;
        let mut text_offset = 0usize;
        let mut pending = Some(first);
        if let Some(role) = shape.role()
            && tx.send(event(&role)).await.is_err()
        {
            return;
        }
        loop {
            let step = match pending.take() {
                Some(step) => Ok(step),
                None => tokio::select! {
                    step = next(&app, &endpoint, &mut watch) => step,
                    // The client went away: the guard cancels the job.
                    _ = tx.closed() => return,
                },
            };
            match step {
                Ok(Next::Chunks(batch)) => {
                    for chunk in batch.iter() {
                        let chunk: Value = serde_json::from_str(chunk).unwrap_or(Value::Null);
                        if let Some(delta) = shape.delta(&chunk, &mut text_offset)
                            && tx.send(event(&delta)).await.is_err()
                        {
                            return;
                        }
                    }
                }
                Ok(Next::Final(record)) => {
                    guard.armed = false;
                    let mut events = Vec::new();
                    if record.status == JobStatus::Completed {
                        let output = output_of(&record);
                        events.push(event(&shape.finish(&output)));
                        if prepared.include_usage {
                            events.push(event(&shape.usage(&output)));
                        }
                    } else {
                        events.push(event(&json!(job_error(&record).body())));
                    }
                    events.push(Event::default().data("[DONE]"));
                    for e in events {
                        if tx.send(e).await.is_err() {
                            return;
                        }
                    }
                    return;
                }
                Err(e) => {
                    let _ = tx.send(event(&json!(e.body()))).await;
                    let _ = tx.send(Event::default().data("[DONE]")).await;
                    return;
                }
            }
        }
    });
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events).into_response())
}

/// A chat completion (OpenAI's `POST /v1/chat/completions`).
#[utoipa::path(post, path = "/v2/{endpoint_id}/openai/v1/chat/completions", tag = "openai",
    params(("endpoint_id" = String, Path)),
    request_body(content = Object, description = "OpenAI's chat completion request: model (the endpoint id), messages, max_tokens, temperature, top_p, top_k, seed, stop, stream, stream_options, logprobs, top_logprobs, ignore_eos"),
    responses(
        (status = 200, description = "A chat.completion object, or with stream: true server-sent chat.completion.chunk events then [DONE]", content_type = "application/json", body = Object),
        (status = 400, body = OpenAiErrorBody), (status = 401, body = OpenAiErrorBody),
        (status = 403, body = OpenAiErrorBody), (status = 404, body = OpenAiErrorBody),
        (status = 413, body = OpenAiErrorBody), (status = 500, body = OpenAiErrorBody)),
    security(("api_key" = [])))]
pub async fn chat_completions(
    State(state): State<ApiState>,
    caller: std::result::Result<Caller, ApiError>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(state, caller, endpoint, headers, body, Route::Chat)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// A text completion (OpenAI's legacy `POST /v1/completions`).
#[utoipa::path(post, path = "/v2/{endpoint_id}/openai/v1/completions", tag = "openai",
    params(("endpoint_id" = String, Path)),
    request_body(content = Object, description = "OpenAI's completion request: model (the endpoint id), prompt, max_tokens (default 16), temperature, top_p, top_k, seed, stop, stream, stream_options, logprobs, ignore_eos"),
    responses(
        (status = 200, description = "A text_completion object, or with stream: true server-sent text_completion events then [DONE]", content_type = "application/json", body = Object),
        (status = 400, body = OpenAiErrorBody), (status = 401, body = OpenAiErrorBody),
        (status = 403, body = OpenAiErrorBody), (status = 404, body = OpenAiErrorBody),
        (status = 413, body = OpenAiErrorBody), (status = 500, body = OpenAiErrorBody)),
    security(("api_key" = [])))]
pub async fn completions(
    State(state): State<ApiState>,
    caller: std::result::Result<Caller, ApiError>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(state, caller, endpoint, headers, body, Route::Completion)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// The model this endpoint serves (its id), as OpenAI's `GET /v1/models`
/// lists models.
#[utoipa::path(get, path = "/v2/{endpoint_id}/openai/v1/models", tag = "openai",
    params(("endpoint_id" = String, Path)),
    responses(
        (status = 200, description = "{\"object\": \"list\", \"data\": [{\"id\", \"object\": \"model\", \"created\", \"owned_by\"}]}", body = Object),
        (status = 400, description = "A malformed endpoint id, or a load-balancing endpoint", body = OpenAiErrorBody),
        (status = 401, body = OpenAiErrorBody), (status = 403, body = OpenAiErrorBody),
        (status = 404, body = OpenAiErrorBody)),
    security(("api_key" = [])))]
pub async fn models(
    State(state): State<ApiState>,
    caller: std::result::Result<Caller, ApiError>,
    Path(endpoint): Path<String>,
) -> Response {
    let created = match authorize(&state, caller, &endpoint).await {
        Ok(e) => e.created_at / 1000,
        Err(e) => return e.into_response(),
    };
    Json(json!({
        "object": "list",
        "data": [{"id": endpoint, "object": "model", "created": created, "owned_by": "wasmpod"}],
    }))
    .into_response()
}
