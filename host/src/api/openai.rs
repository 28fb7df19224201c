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

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::ApiState;
use super::auth::Caller;
use super::body::read_limited;
use super::error::ApiError;
use crate::serve::{App, Watch};
use crate::store::{JobRecord, JobStatus, NewJob};

/// An error answer in OpenAI's shape.
#[derive(Debug)]
pub struct OpenAiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

/// OpenAI's error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorBody {
    pub error: OpenAiErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OpenAiErrorDetail {
    /// What went wrong and what to do.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `permission_error`,
    /// `not_found_error` or `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

impl OpenAiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn body(&self) -> OpenAiErrorBody {
        OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.message.clone(),
                kind: self.kind().into(),
                param: self.param.map(str::to_string),
                code: self.code.map(str::to_string),
            },
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            // Logged with its detail; the client is told what to do.
            tracing::error!(status = %e.status, "{}", e.message);
            return Self::new(
                e.status,
                "the server failed to handle the request; try again, and tell its operator if it persists",
            );
        }
        Self::new(e.status, e.message)
    }
}

impl From<crate::store::StoreError> for OpenAiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

type Result<T> = std::result::Result<T, OpenAiError>;

/// Which of the two generation routes a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Completion,
}

/// What a request asks for, checked, and the handler input it becomes.
#[derive(Debug)]
struct Prepared {
    model: String,
    input: Value,
    stream: bool,
    include_usage: bool,
    /// Log-probabilities asked for (chat: `logprobs: true`; completions:
    /// `logprobs: n`).
    logprobs: bool,
}

fn seconds_now() -> i64 {
    crate::store::now_ms() / 1000
}

/// A number field in range, or absent.
fn number(body: &Map<String, Value>, key: &'static str, min: f64, max: f64) -> Result<Option<f64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(OpenAiError::invalid(
                key,
                format!("{key} must be a number between {min} and {max}, got {v}"),
            )),
        },
    }
}

fn whole(body: &Map<String, Value>, key: &'static str, min: u64, max: u64) -> Result<Option<u64>> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(OpenAiError::invalid(
                key,
                format!("{key} must be a whole number between {min} and {max}, got {v}"),
            )),
        },
    }
}

fn flag(body: &Map<String, Value>, key: &'static str) -> Result<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(OpenAiError::invalid(
            key,
            format!("{key} must be true or false, got {v}"),
        )),
    }
}

/// Parameters the handler cannot honour are refused, not ignored.
fn refuse_unsupported(body: &Map<String, Value>) -> Result<()> {
    if let Some(n) = whole(body, "n", 1, 128)?
        && n != 1
    {
        return Err(OpenAiError::invalid(
            "n",
            "only n = 1 is supported; send several requests for several choices",
        ));
    }
    for key in ["presence_penalty", "frequency_penalty"] {
        if let Some(v) = body.get(key).and_then(Value::as_f64)
            && v != 0.0
        {
            return Err(OpenAiError::invalid(
                if key == "presence_penalty" {
                    "presence_penalty"
                } else {
                    "frequency_penalty"
                },
                format!("{key} is not supported; leave it out or send 0"),
            ));
        }
    }
    for key in ["tools", "functions", "logit_bias", "suffix"] {
        if body.get(key).is_some_and(|v| !v.is_null()) {
            return Err(OpenAiError::invalid(
                match key {
                    "tools" => "tools",
                    "functions" => "functions",
                    "logit_bias" => "logit_bias",
                    _ => "suffix",
                },
                format!("{key} is not supported by this endpoint; leave it out"),
            ));
        }
    }
    if let Some(format) = body.get("response_format")
        && !format.is_null()
        && format.get("type").and_then(Value::as_str) != Some("text")
    {
        return Err(OpenAiError::invalid(
            "response_format",
            "only response_format {\"type\": \"text\"} is supported",
        ));
    }
    if flag(body, "echo")? {
        return Err(OpenAiError::invalid(
            "echo",
            "echo is not supported; leave it out",
        ));
    }
    if let Some(b) = whole(body, "best_of", 1, 128)?
        && b != 1
    {
        return Err(OpenAiError::invalid(
            "best_of",
            "only best_of = 1 is supported",
        ));
    }
    Ok(())
}

/// Check an OpenAI request body and build the handler's input.
fn prepare(route: Route, body: Value) -> Result<Prepared> {
    let Value::Object(body) = body else {
        return Err(OpenAiError::new(
            StatusCode::BAD_REQUEST,
            "the request body must be a JSON object, e.g. {\"model\": \"<endpoint>\", \"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}",
        ));
    };
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        _ => {
            return Err(OpenAiError::invalid(
                "model",
                "\"model\" is required: the endpoint's id, as GET /openai/v1/models lists it",
            ));
        }
    };
    refuse_unsupported(&body)?;
    let mut input = Map::new();
    match route {
        Route::Chat => {
            let messages = body.get("messages").cloned().unwrap_or(Value::Null);
            let Value::Array(list) = &messages else {
                return Err(OpenAiError::invalid(
                    "messages",
                    "\"messages\" is required: a list such as [{\"role\": \"user\", \"content\": \"Hi\"}]",
                ));
            };
            if list.is_empty() {
                return Err(OpenAiError::invalid("messages", "\"messages\" is empty"));
            }
            for (i, m) in list.iter().enumerate() {
                let ok = m.get("role").is_some_and(Value::is_string)
                    && m.get("content")
                        .is_some_and(|c| c.is_string() || c.is_array() || c.is_null());
                if !ok {
                    return Err(OpenAiError::invalid(
                        "messages",
                        format!(
                            "messages[{i}] must be {{\"role\": \"...\", \"content\": \"...\"}}"
                        ),
                    ));
                }
            }
            // Only role and content reach the template.
            let messages: Vec<Value> = list
                .iter()
                .map(|m| {
                    json!({
                        "role": m["role"],
                        "content": if m["content"].is_null() { json!("") } else { m["content"].clone() },
                    })
                })
                .collect();
            input.insert("messages".into(), Value::Array(messages));
        }
        Route::Completion => {
            let prompt = match body.get("prompt") {
                Some(Value::String(p)) => p.clone(),
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                    a[0].as_str().unwrap_or_default().to_string()
                }
                _ => {
                    return Err(OpenAiError::invalid(
                        "prompt",
                        "\"prompt\" must be a string (or a list of one string); token-id prompts and batches are not supported",
                    ));
                }
            };
            input.insert("prompt".into(), Value::String(prompt));
        }
    }
    let max_tokens = match whole(&body, "max_completion_tokens", 1, u32::MAX.into())? {
        Some(n) => Some(n),
        None => whole(&body, "max_tokens", 1, u32::MAX.into())?,
    };
    // OpenAI's legacy completions default to 16 tokens; chat to the
    // handler's default.
    let max_tokens = max_tokens.or((route == Route::Completion).then_some(16));
    if let Some(n) = max_tokens {
        input.insert("max_tokens".into(), n.into());
    }
    if let Some(t) = number(&body, "temperature", 0.0, 2.0)? {
        input.insert("temperature".into(), t.into());
    }
    if let Some(p) = number(&body, "top_p", 0.0, 1.0)? {
        if p == 0.0 {
            return Err(OpenAiError::invalid("top_p", "top_p must be above 0"));
        }
        input.insert("top_p".into(), p.into());
    }
    // vLLM's extension: -1 (or 0) keeps every token.
    match body.get("top_k") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_i64() {
            Some(-1 | 0) => {}
            Some(k) if k > 0 && k <= i64::from(u32::MAX) => {
                input.insert("top_k".into(), k.into());
            }
            _ => {
                return Err(OpenAiError::invalid(
                    "top_k",
                    format!("top_k must be a whole number, -1 or 0 for no limit, got {v}"),
                ));
            }
        },
    }
    match body.get("seed") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_i64() {
            // Negative seeds are valid for OpenAI; the bits are the seed.
            Some(s) => {
                input.insert("seed".into(), (s as u64).into());
            }
            None => return Err(OpenAiError::invalid("seed", "seed must be an integer")),
        },
    }
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            input.insert("stop".into(), json!([s]));
        }
        Some(Value::Array(a)) if a.iter().all(Value::is_string) && a.len() <= 16 => {
            input.insert("stop".into(), Value::Array(a.clone()));
        }
        Some(_) => {
            return Err(OpenAiError::invalid(
                "stop",
                "stop must be a string or a list of at most 16 strings",
            ));
        }
    }
    if flag(&body, "ignore_eos")? {
        input.insert("ignore_eos".into(), true.into());
    }
    let logprobs = match route {
        Route::Chat => {
            let on = flag(&body, "logprobs")?;
            let top = whole(&body, "top_logprobs", 0, 20)?;
            if top.is_some() && !on {
                return Err(OpenAiError::invalid(
                    "top_logprobs",
                    "top_logprobs needs logprobs: true",
                ));
            }
            if on {
                input.insert("logprobs".into(), top.unwrap_or(0).into());
            }
            on
        }
        Route::Completion => match whole(&body, "logprobs", 0, 5)? {
            Some(n) => {
                input.insert("logprobs".into(), n.into());
                true
            }
            None => false,
        },
    };
    let stream = flag(&body, "stream")?;
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => o.get("include_usage").and_then(Value::as_bool) == Some(true),
        Some(_) => {
            return Err(OpenAiError::invalid(
                "stream_options",
                "stream_options must be an object such as {\"include_usage\": true}",
            ));
        }
    };
    Ok(Prepared {
        model,
        input: Value::Object(input),
        stream,
        include_usage,
        logprobs,
    })
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
            return Ok(Next::Final(Box::new(record)));
        }
        if ended {
            // The watch ended yet the job is not final here (re-queued):
            // keep looking at the job.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The error a job that did not complete answers with.
fn job_error(record: &JobRecord) -> OpenAiError {
    let message = record.error.clone().unwrap_or_default();
    match record.status {
        JobStatus::Cancelled => OpenAiError {
            code: Some("cancelled"),
            ..OpenAiError::new(
                StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
                format!("job {} was cancelled", record.id),
            )
        },
        JobStatus::TimedOut => OpenAiError {
            code: Some("timeout"),
            ..OpenAiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("job {} timed out: {message}", record.id),
            )
        },
        // The handler's own refusal of the request ("invalid request: ...",
        // or the SDK's "invalid input: ...") is the client's to fix.
        _ if message.starts_with("invalid request: ") || message.starts_with("invalid input: ") => {
            OpenAiError::new(StatusCode::BAD_REQUEST, message)
        }
        _ => OpenAiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("job {} failed: {message}", record.id),
        ),
    }
}

/// The handler's output of a completed job.
fn output_of(record: &JobRecord) -> Value {
    record
        .output
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or(Value::Null)
}

fn usage_of(output: &Value) -> Value {
    let u = &output["usage"];
    json!({
        "prompt_tokens": u["prompt_tokens"].as_u64().unwrap_or(0),
        "completion_tokens": u["completion_tokens"].as_u64().unwrap_or(0),
        "total_tokens": u["total_tokens"].as_u64().unwrap_or(0),
    })
}

fn bytes_of(text: &str) -> Value {
    Value::Array(text.bytes().map(Value::from).collect())
}

/// One token's log-probabilities (the handler's shape) in a chat
/// response's `logprobs.content` entry.
fn chat_logprob(step: &Value) -> Value {
    let text = step["text"].as_str().unwrap_or_default();
    let top: Vec<Value> = step["top"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| {
                    let tt = t["text"].as_str().unwrap_or_default();
                    json!({"token": tt, "logprob": t["logprob"], "bytes": bytes_of(tt)})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"token": text, "logprob": step["logprob"], "bytes": bytes_of(text), "top_logprobs": top})
}

/// Log-probabilities of several tokens in the legacy completions shape.
fn completion_logprobs(steps: &[Value], mut offset: usize) -> Value {
    let mut tokens = Vec::new();
    let mut token_logprobs = Vec::new();
    let mut top_logprobs = Vec::new();
    let mut text_offset = Vec::new();
    for step in steps {
        let text = step["text"].as_str().unwrap_or_default();
        tokens.push(Value::from(text));
        token_logprobs.push(step["logprob"].clone());
        let mut top = Map::new();
        for t in step["top"].as_array().into_iter().flatten() {
            top.insert(
                t["text"].as_str().unwrap_or_default().to_string(),
                t["logprob"].clone(),
            );
        }
        top_logprobs.push(Value::Object(top));
        text_offset.push(Value::from(offset));
        offset += text.len();
    }
    json!({"tokens": tokens, "token_logprobs": token_logprobs, "top_logprobs": top_logprobs, "text_offset": text_offset})
}

/// Builds the response shapes of one request.
struct Shape {
    route: Route,
    id: String,
    model: String,
    created: i64,
    logprobs: bool,
}

impl Shape {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.route, chunk) {
            (Route::Chat, false) => "chat.completion",
            (Route::Chat, true) => "chat.completion.chunk",
            (Route::Completion, _) => "text_completion",
        }
    }

    fn envelope(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        })
    }

    /// The one-body answer of a completed job.
    fn full(&self, output: &Value) -> Value {
        let text = output["text"].as_str().unwrap_or_default();
        let steps: Vec<Value> = output["logprobs"].as_array().cloned().unwrap_or_default();
        let finish = output["finish_reason"].clone();
        let choice = match self.route {
            Route::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": if self.logprobs {
                    json!({"content": steps.iter().map(chat_logprob).collect::<Vec<_>>()})
                } else { Value::Null },
                "finish_reason": finish,
            }),
            Route::Completion => json!({
                "index": 0,
                "text": text,
                "logprobs": if self.logprobs { completion_logprobs(&steps, 0) } else { Value::Null },
                "finish_reason": finish,
            }),
        };
        let mut body = self.envelope(false, vec![choice]);
        body["usage"] = usage_of(output);
        body
    }

    /// The chunk carrying one stream chunk of the handler, or `None` when
    /// it adds nothing (an empty text delta without log-probabilities).
    fn delta(&self, chunk: &Value, text_offset: &mut usize) -> Option<Value> {
        let text = chunk["text"].as_str().unwrap_or_default();
        let step = chunk
            .get("logprobs")
            .filter(|l| !l.is_null() && self.logprobs);
        if text.is_empty() && step.is_none() {
            return None;
        }
        let choice = match self.route {
            Route::Chat => json!({
                "index": 0,
                "delta": {"content": text},
                "logprobs": step.map(|s| json!({"content": [chat_logprob(s)]})),
                "finish_reason": null,
            }),
            Route::Completion => {
                let logprobs =
                    step.map(|s| completion_logprobs(std::slice::from_ref(s), *text_offset));
                json!({"index": 0, "text": text, "logprobs": logprobs, "finish_reason": null})
            }
        };
        *text_offset += text.len();
        Some(self.envelope(true, vec![choice]))
    }

    /// The chat stream's first chunk: the assistant's role.
    fn role(&self) -> Option<Value> {
        (self.route == Route::Chat).then(|| {
            self.envelope(
                true,
                vec![json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})],
            )
        })
    }

    fn finish(&self, output: &Value) -> Value {
        let choice = match self.route {
            Route::Chat => {
                json!({"index": 0, "delta": {}, "logprobs": null, "finish_reason": output["finish_reason"]})
            }
            Route::Completion => {
                json!({"index": 0, "text": "", "logprobs": null, "finish_reason": output["finish_reason"]})
            }
        };
        self.envelope(true, vec![choice])
    }

    fn usage(&self, output: &Value) -> Value {
        let mut body = self.envelope(true, Vec::new());
        body["usage"] = usage_of(output);
        body
    }
}

fn event(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

/// Check the caller, the endpoint and the model name.
fn authorize(
    state: &ApiState,
    caller: std::result::Result<Caller, ApiError>,
    endpoint: &str,
) -> Result<()> {
    caller?.require_invoke(endpoint)?;
    if state.app.endpoint(endpoint).is_none() {
        return Err(OpenAiError {
            code: Some("endpoint_not_found"),
            ..OpenAiError::new(
                StatusCode::NOT_FOUND,
                format!("no endpoint {endpoint:?}; list endpoints with GET /v1/endpoints"),
            )
        });
    }
    Ok(())
}

async fn generate(
    state: ApiState,
    caller: std::result::Result<Caller, ApiError>,
    endpoint: String,
    headers: HeaderMap,
    body: Body,
    route: Route,
) -> Result<Response> {
    authorize(&state, caller, &endpoint)?;
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
    let job = NewJob {
        id: uuid::Uuid::new_v4().to_string(),
        endpoint_id: endpoint.clone(),
        input: prepared.input.to_string(),
        webhook: None,
        execution_timeout_ms: None,
        ttl_ms: app.config.default_ttl.as_millis() as i64,
        low_priority: false,
        // Kept like a /runsync job's: the answer already carries the result.
        sync: true,
    };
    let mut watch = app.submit_watched(&job).await?;
    let mut guard = CancelOnDrop {
        app: app.clone(),
        endpoint: endpoint.clone(),
        job: job.id.clone(),
        armed: true,
    };
    let shape = Shape {
        route,
        id: job.id.clone(),
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
        (status = 401, body = OpenAiErrorBody), (status = 403, body = OpenAiErrorBody),
        (status = 404, body = OpenAiErrorBody)),
    security(("api_key" = [])))]
pub async fn models(
    State(state): State<ApiState>,
    caller: std::result::Result<Caller, ApiError>,
    Path(endpoint): Path<String>,
) -> Response {
    if let Err(e) = authorize(&state, caller, &endpoint) {
        return e.into_response();
    }
    let created = state
        .app
        .endpoint(&endpoint)
        .map(|e| e.created_at / 1000)
        .unwrap_or_else(seconds_now);
    Json(json!({
        "object": "list",
        "data": [{"id": endpoint, "object": "model", "created": created, "owned_by": "wasmpod"}],
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(body: Value) -> Result<Prepared> {
        prepare(Route::Chat, body)
    }

    #[test]
    fn a_chat_request_becomes_the_handlers_input() {
        let p = chat(json!({
            "model": "llm", "messages": [{"role": "user", "content": "Hi", "name": "ada"}],
            "max_completion_tokens": 8, "temperature": 0, "top_p": 0.9, "top_k": -1, "seed": -1,
            "stop": "END", "stream": true, "stream_options": {"include_usage": true},
            "logprobs": true, "top_logprobs": 2, "user": "ignored"
        }))
        .unwrap();
        assert!(p.stream && p.include_usage && p.logprobs);
        assert_eq!(
            p.input,
            json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0.0,
                   "top_p": 0.9, "seed": u64::MAX, "stop": ["END"], "logprobs": 2})
        );
    }

    #[test]
    fn legacy_completions_default_to_16_tokens() {
        let p = prepare(
            Route::Completion,
            json!({"model": "m", "prompt": ["once"], "logprobs": 3}),
        )
        .unwrap();
        assert_eq!(
            p.input,
            json!({"prompt": "once", "max_tokens": 16, "logprobs": 3})
        );
        let e = prepare(Route::Completion, json!({"model": "m", "prompt": [1, 2]})).unwrap_err();
        assert_eq!(e.param, Some("prompt"));
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_with_the_parameter_named() {
        let cases = [
            (json!({"messages": []}), "model"),
            (json!({"model": "m"}), "messages"),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}),
                "n",
            ),
            (
                json!({"model": "m", "messages": [{"content": "x"}]}),
                "messages",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
                "temperature",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": []}),
                "tools",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}),
                "top_logprobs",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
                "response_format",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "frequency_penalty": 0.5}),
                "frequency_penalty",
            ),
        ];
        for (body, param) in cases {
            let e = chat(body.clone()).unwrap_err();
            assert_eq!(e.param, Some(param), "{body}: {e:?}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert_eq!(e.body().error.kind, "invalid_request_error");
        }
    }

    #[test]
    fn handler_refusals_are_the_clients_and_other_failures_the_servers() {
        let mut record = JobRecord {
            id: "j".into(),
            endpoint_id: "e".into(),
            status: JobStatus::Failed,
            input: "{}".into(),
            output: None,
            error: Some("invalid request: max_tokens must be at least 1".into()),
            progress: None,
            webhook: None,
            execution_timeout_ms: None,
            ttl_ms: 0,
            low_priority: false,
            sync: true,
            retries: 0,
            created_at: 0,
            queued_at: 0,
            started_at: None,
            completed_at: None,
            delay_ms: None,
            execution_ms: None,
            expires_at: None,
            worker_id: None,
            handler: None,
            webhook_state: None,
            webhook_attempts: 0,
        };
        assert_eq!(job_error(&record).status, StatusCode::BAD_REQUEST);
        record.error = Some("tensor op: device fault".into());
        assert_eq!(job_error(&record).status, StatusCode::INTERNAL_SERVER_ERROR);
        record.status = JobStatus::TimedOut;
        assert_eq!(job_error(&record).status, StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn chunks_map_to_openai_deltas() {
        let shape = Shape {
            route: Route::Completion,
            id: "j".into(),
            model: "m".into(),
            created: 1,
            logprobs: true,
        };
        let mut offset = 0;
        let chunk = json!({"text": "ab", "token": 5, "index": 0,
            "logprobs": {"id": 5, "text": "ab", "logprob": -0.5, "top": [{"id": 5, "text": "ab", "logprob": -0.5}]}});
        let d = shape.delta(&chunk, &mut offset).unwrap();
        assert_eq!(d["choices"][0]["text"], "ab");
        assert_eq!(d["choices"][0]["logprobs"]["top_logprobs"][0]["ab"], -0.5);
        assert_eq!(offset, 2);
        let quiet = Shape {
            logprobs: false,
            ..shape
        };
        assert!(
            quiet
                .delta(&json!({"text": "", "token": 9}), &mut offset)
                .is_none()
        );
    }
}
