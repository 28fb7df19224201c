//! An OpenAI request body checked and turned into the `llm` handler's
//! input: known parameters validated, the ones the handler cannot honour
//! refused with the parameter named, unknown ones ignored (as OpenAI's
//! clients send extras).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::Route;
use super::error::OpenAiError;

type Result<T> = std::result::Result<T, OpenAiError>;

/// What a request asks for, checked, and the handler input it becomes.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) model: String,
    pub(super) input: Value,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
    /// Log-probabilities asked for (chat: `logprobs: true`; completions:
    /// `logprobs: n`).
    pub(super) logprobs: bool,
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
pub(super) fn prepare(route: Route, body: Value) -> Result<Prepared> {
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
}
