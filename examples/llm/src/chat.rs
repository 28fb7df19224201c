//! Chat messages to a prompt through the model's chat template (the Jinja
//! `chat_template` of `tokenizer_config.json`), rendered with minijinja the
//! way Hugging Face TGI renders it: Python string methods through
//! minijinja-contrib's `pycompat`, `raise_exception`, `strftime_now`, and
//! `bos_token`, `eos_token`, `add_generation_prompt` in the context.

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

/// Why a chat could not be turned into a prompt.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("tokenizer_config.json is not valid JSON: {0}")]
    Config(#[from] serde_json::Error),
    #[error(
        "the model has no chat template (tokenizer_config.json has no \"chat_template\"); send a \"prompt\" instead of \"messages\""
    )]
    NoTemplate,
    #[error("the chat template does not compile: {0:#}")]
    Compile(minijinja::Error),
    #[error("the chat template refused these messages: {0:#}")]
    Render(minijinja::Error),
}

type Result<T> = std::result::Result<T, ChatError>;

/// One chat message, as OpenAI's API sends it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Content,
}

/// A message's content: text, or OpenAI's list of parts (only text parts
/// reach a text model; they are joined with newlines, as vLLM does).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

impl Default for Content {
    fn default() -> Self {
        Content::Text(String::new())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Part {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

impl Content {
    fn text(&self) -> std::result::Result<String, String> {
        match self {
            Content::Text(t) => Ok(t.clone()),
            Content::Parts(parts) => {
                let mut texts = Vec::new();
                for p in parts {
                    match (p.kind.as_str(), &p.text) {
                        ("text", Some(t)) => texts.push(t.as_str()),
                        (kind, _) => {
                            return Err(format!(
                                "a content part of type {kind:?}: this model reads text parts only ({{\"type\": \"text\", \"text\": \"...\"}})"
                            ));
                        }
                    }
                }
                Ok(texts.join("\n"))
            }
        }
    }
}

/// The parts of `tokenizer_config.json` a chat needs.
#[derive(Debug, Default, Clone)]
pub struct ChatTemplate {
    template: Option<String>,
    bos_token: String,
    eos_token: String,
}

/// A special token as tokenizer_config.json writes it: text or an
/// `AddedToken` object.
fn token_text(value: Option<&serde_json::Value>) -> String {
    match value {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// From the text of `tokenizer_config.json`; `chat_template_jinja` is a
    /// separate `chat_template.jinja` file when the model has one (newer
    /// `transformers` writes the template there).
    pub fn parse(tokenizer_config: &str, chat_template_jinja: Option<String>) -> Result<Self> {
        let config: serde_json::Value = serde_json::from_str(tokenizer_config)?;
        let from_config = match config.get("chat_template") {
            Some(serde_json::Value::String(t)) => Some(t.clone()),
            // A list of named templates: "default" is the chat one.
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => None,
        };
        Ok(Self {
            template: chat_template_jinja.or(from_config),
            bos_token: token_text(config.get("bos_token")),
            eos_token: token_text(config.get("eos_token")),
        })
    }

    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// The prompt for `messages`, ending where the assistant's answer
    /// starts.
    pub fn render(&self, messages: &[Message]) -> Result<String> {
        let template = self.template.as_deref().ok_or(ChatError::NoTemplate)?;
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        // Templates written for Jinja2 trim blocks the way transformers'
        // renderer does.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_template("chat", template)
            .map_err(ChatError::Compile)?;
        let messages = messages
            .iter()
            .map(|m| {
                let content = m.content.text().map_err(|e| {
                    ChatError::Render(minijinja::Error::new(ErrorKind::InvalidOperation, e))
                })?;
                Ok(serde_json::json!({"role": m.role, "content": content}))
            })
            .collect::<Result<Vec<_>>>()?;
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos_token.clone(),
            eos_token => self.eos_token.clone(),
        };
        env.get_template("chat")
            .and_then(|t| t.render(ctx))
            .map_err(ChatError::Render)
    }
}

fn raise_exception(message: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`, which Llama 3.1+ templates call for the date
/// line. Only the directives such templates use (%d %m %Y %y %b %B %H %M
/// %S %%) are known; written here because a date library for one call
/// would outweigh it.
fn strftime_now(format: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    format_utc(secs, &format)
}

fn format_utc(secs: i64, format: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let name = MONTHS[(month - 1) as usize];
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&name[..3]),
            Some('B') => out.push_str(name),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama 3's template, as its tokenizer_config.json ships it.
    const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

    /// Qwen2's (ChatML) template, which calls Python string methods.
    const QWEN2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'].strip() + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    fn msg(role: &str, text: &str) -> Message {
        Message {
            role: role.into(),
            content: Content::Text(text.into()),
        }
    }

    fn config(template: &str) -> String {
        serde_json::json!({
            "chat_template": template,
            "bos_token": {"content": "<|begin_of_text|>", "lstrip": false},
            "eos_token": "<|eot_id|>"
        })
        .to_string()
    }

    #[test]
    fn renders_llama3_as_transformers_does() {
        let t = ChatTemplate::parse(&config(LLAMA3), None).unwrap();
        let prompt = t
            .render(&[msg("system", "Be brief."), msg("user", " Hi! ")])
            .unwrap();
        assert_eq!(
            prompt,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn python_string_methods_work_and_parts_are_joined() {
        let t = ChatTemplate::parse(&config(QWEN2), None).unwrap();
        let parts: Message = serde_json::from_str(
            r#"{"role": "user", "content": [{"type": "text", "text": " a"}, {"type": "text", "text": "b "}]}"#,
        )
        .unwrap();
        let prompt = t.render(&[parts]).unwrap();
        assert_eq!(
            prompt,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\na\nb<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    #[test]
    fn template_errors_and_missing_templates_are_explained() {
        let t = ChatTemplate::parse(
            &config("{{ raise_exception('Conversation roles must alternate') }}"),
            None,
        )
        .unwrap();
        let err = t.render(&[msg("user", "x")]).unwrap_err().to_string();
        assert!(err.contains("roles must alternate"), "{err}");
        let none = ChatTemplate::parse("{}", None).unwrap();
        assert!(
            none.render(&[])
                .unwrap_err()
                .to_string()
                .contains("send a \"prompt\"")
        );
        let image: Message = serde_json::from_str(
            r#"{"role": "user", "content": [{"type": "image_url", "text": null}]}"#,
        )
        .unwrap();
        let t = ChatTemplate::parse(&config(LLAMA3), None).unwrap();
        let err = t.render(&[image]).unwrap_err().to_string();
        assert!(err.contains("\"image_url\""), "{err}");
    }

    #[test]
    fn dates_for_the_template_clock() {
        // 2024-07-26 13:05:09 UTC
        assert_eq!(
            format_utc(1_722_000_309, "%d %b %Y %H:%M:%S %B %m %y %%"),
            "26 Jul 2024 13:25:09 July 07 24 %"
        );
    }
}
