//! OpenAI's response shapes built from the `llm` handler's output and
//! stream chunks: `chat.completion` and `text_completion` bodies, their
//! streamed chunks, usage, and log-probabilities in each route's format.

use axum::response::sse::Event;
use serde_json::{Map, Value, json};

use super::Route;
use crate::store::JobRecord;

/// The handler's output of a completed job.
pub(super) fn output_of(record: &JobRecord) -> Value {
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
pub(super) struct Shape {
    pub(super) route: Route,
    pub(super) id: String,
    pub(super) model: String,
    pub(super) created: i64,
    pub(super) logprobs: bool,
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
    pub(super) fn full(&self, output: &Value) -> Value {
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
    pub(super) fn delta(&self, chunk: &Value, text_offset: &mut usize) -> Option<Value> {
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
    pub(super) fn role(&self) -> Option<Value> {
        (self.route == Route::Chat).then(|| {
            self.envelope(
                true,
                vec![json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null})],
            )
        })
    }

    pub(super) fn finish(&self, output: &Value) -> Value {
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

    pub(super) fn usage(&self, output: &Value) -> Value {
        let mut body = self.envelope(true, Vec::new());
        body["usage"] = usage_of(output);
        body
    }
}

pub(super) fn event(value: &Value) -> Event {
    Event::default().data(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
