//! The job side: `init` opens the model (config, tokenizer, chat template,
//! weights) once per instance; each job turns its `prompt` or `messages`
//! into tokens, checks its parameters and runs the generation loop on the
//! instance's own KV cache.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};
use wasmpod_sdk::{Model, ModelError};

use crate::chat::{ChatError, ChatTemplate, Message};
use crate::config::{ConfigError, LlamaConfig};
use crate::decoder::{Decoder, DecoderError};
use crate::generate::{self, GenerateError, Generation, Request};
use crate::sampling::SamplingParams;
use crate::session::{self, Session};
use crate::tokenizer::{Tokenizer, TokenizerError};
use crate::weights::{WeightError, Weights};

/// The environment variable naming the model, when the endpoint's model
/// directory holds more than one.
pub const MODEL_ENV: &str = "LLM_MODEL";
/// Tokens generated when a request gives no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 256;
/// Most alternatives a request may ask log-probabilities of (OpenAI's
/// `top_logprobs` limit).
const MAX_LOGPROBS: u32 = 20;

/// Why the handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("model {model}: {source}")]
    Model { model: String, source: ModelError },
    #[error("model {0}: {1}")]
    Config(String, ConfigError),
    #[error("model {0}: {1}")]
    Weights(String, WeightError),
    #[error("model {0}: {1}")]
    Decoder(String, DecoderError),
    #[error("{0}")]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    Chat(#[from] ChatError),
    #[error("{0}")]
    Generate(#[from] GenerateError),
    #[error("{0}")]
    Choose(String),
    /// The request is not one this model can answer; says what to change.
    #[error("invalid request: {0}")]
    Input(String),
    #[error("the handler was not initialised (init did not run or failed)")]
    NotInitialised,
}

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// A job's input.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// Text to continue (tokenized with the tokenizer's special tokens,
    /// e.g. Llama's BOS).
    pub prompt: Option<String>,
    /// A chat, rendered with the model's chat template.
    pub messages: Option<Vec<Message>>,
    pub max_tokens: Option<usize>,
    /// 0 is greedy; default 1.
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    /// 0 (default) keeps every token.
    pub top_k: Option<u32>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    /// Keep generating past end tokens (benchmarks of a fixed length).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Report the log-probability of each token and of this many most
    /// likely alternatives (0 to 20).
    pub logprobs: Option<u32>,
}

/// A job's output: the generation plus the model's name.
#[derive(Debug, Serialize)]
pub struct Output {
    pub model: String,
    #[serde(flatten)]
    pub generation: Generation,
}

/// Everything `init` prepares.
struct Llm {
    name: String,
    tokenizer: Tokenizer,
    chat: ChatTemplate,
    decoder: Decoder,
    /// This instance's KV cache and recorded decode step; other instances
    /// have their own.
    session: Session,
}

thread_local! {
    // The guest is single-threaded and resource handles are not `Sync`.
    static LLM: RefCell<Option<Llm>> = const { RefCell::new(None) };
}

/// The model to serve: `LLM_MODEL`, else the only one there is.
fn choose_model() -> Result<String, HandlerError> {
    if let Ok(name) = std::env::var(MODEL_ENV) {
        return Ok(name);
    }
    let models = Model::list();
    match models.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(HandlerError::Choose(
            "the endpoint's model directory holds no model; give it a directory with a Hugging Face model (config.json, tokenizer.json, *.safetensors)".into(),
        )),
        many => Err(HandlerError::Choose(format!(
            "the endpoint's model directory holds {} models ({}); set {MODEL_ENV} to the one to serve",
            many.len(),
            many.join(", ")
        ))),
    }
}

/// Open the model and fetch its weights.
pub fn init() -> Result<(), HandlerError> {
    let name = choose_model()?;
    let model_err = |source| HandlerError::Model {
        model: name.clone(),
        source,
    };
    let model = Model::open(&name).map_err(model_err)?;
    let files = model.files();
    let optional = |path: &str| -> Result<Option<String>, HandlerError> {
        if files.iter().any(|f| f == path) {
            model.read_to_string(path).map(Some).map_err(model_err)
        } else {
            Ok(None)
        }
    };
    let config = LlamaConfig::parse(
        &model.read_to_string("config.json").map_err(model_err)?,
        optional("generation_config.json")?.as_deref(),
    )
    .map_err(|e| HandlerError::Config(name.clone(), e))?;
    let tokenizer = Tokenizer::from_json(&model.read_file("tokenizer.json").map_err(model_err)?)?;
    let chat = match optional("tokenizer_config.json")? {
        Some(json) => ChatTemplate::parse(&json, optional("chat_template.jinja")?)?,
        None => ChatTemplate::default(),
    };
    let weights = Weights::open(&model).map_err(|e| HandlerError::Weights(name.clone(), e))?;
    let decoder =
        Decoder::load(&weights, config).map_err(|e| HandlerError::Decoder(name.clone(), e))?;
    let session = Session::new(
        &decoder,
        session::INITIAL_CAPACITY.min(decoder.config().context_length()),
    )
    .map_err(|e| HandlerError::Decoder(name.clone(), e))?;
    wasmpod_sdk::info!(
        "model {name}: {} layers, hidden {}, {} heads ({} kv), vocab {}, {:?}",
        decoder.config().num_hidden_layers,
        decoder.config().hidden_size,
        decoder.config().num_attention_heads,
        decoder.config().num_key_value_heads,
        decoder.config().vocab_size,
        decoder.dtype()
    );
    LLM.with(|cell| {
        *cell.borrow_mut() = Some(Llm {
            name,
            tokenizer,
            chat,
            decoder,
            session,
        })
    });
    Ok(())
}

/// Generate for one job.
pub fn handle(input: Input) -> Result<Output, HandlerError> {
    LLM.with(|cell| {
        let mut llm = cell.borrow_mut();
        let llm = llm.as_mut().ok_or(HandlerError::NotInitialised)?;
        let request = llm.request(input)?;
        let generation =
            generate::generate(&llm.decoder, &llm.tokenizer, &mut llm.session, &request)?;
        Ok(Output {
            model: llm.name.clone(),
            generation,
        })
    })
}

impl Llm {
    /// Check the input and turn it into a generation request.
    fn request(&self, input: Input) -> Result<Request, HandlerError> {
        let bad = |m: String| HandlerError::Input(m);
        let prompt = match (input.prompt, input.messages) {
            (Some(p), None) => self.tokenizer.encode(&p, true)?,
            (None, Some(m)) => {
                if m.is_empty() {
                    return Err(bad(
                        "\"messages\" is empty; give at least one message".into()
                    ));
                }
                self.tokenizer.encode(&self.chat.render(&m)?, false)?
            }
            (Some(_), Some(_)) => {
                return Err(bad(
                    "give either \"prompt\" (text to continue) or \"messages\" (a chat), not both"
                        .into(),
                ));
            }
            (None, None) => {
                return Err(bad(
                    "the input needs \"prompt\": \"...\" or \"messages\": [{\"role\": \"user\", \"content\": \"...\"}]".into(),
                ));
            }
        };
        if prompt.is_empty() {
            return Err(bad(
                "the prompt is empty after tokenizing; give some text".into()
            ));
        }
        let vocab = self.decoder.config().vocab_size;
        if let Some(&id) = prompt.iter().find(|&&id| id as usize >= vocab) {
            return Err(bad(format!(
                "the tokenizer produced token {id}, outside the model's vocabulary of {vocab}; tokenizer.json does not belong to this model"
            )));
        }
        let context = self.decoder.config().context_length();
        let room = context.saturating_sub(prompt.len());
        let max_tokens = match input.max_tokens {
            Some(0) => return Err(bad("max_tokens must be at least 1".into())),
            Some(n) if n > room => {
                return Err(bad(format!(
                    "this model's context is {context} tokens, and the prompt has {} tokens, so at most {room} more can be generated; max_tokens was {n}",
                    prompt.len()
                )));
            }
            Some(n) => n,
            None if room == 0 => {
                return Err(bad(format!(
                    "the prompt has {} tokens and fills this model's context of {context} tokens",
                    prompt.len()
                )));
            }
            None => DEFAULT_MAX_TOKENS.min(room),
        };
        let sampling = SamplingParams {
            temperature: input.temperature.unwrap_or(1.0),
            top_p: input.top_p.unwrap_or(1.0),
            top_k: input.top_k.unwrap_or(0),
        };
        sampling.validate().map_err(bad)?;
        if let Some(n) = input.logprobs
            && n > MAX_LOGPROBS
        {
            return Err(bad(format!(
                "logprobs must be between 0 and {MAX_LOGPROBS}, got {n}"
            )));
        }
        let stop = match input.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        };
        if stop.len() > 16 {
            return Err(bad(format!("at most 16 stop strings, got {}", stop.len())));
        }
        Ok(Request {
            prompt,
            max_tokens,
            sampling,
            seed: input.seed,
            stop,
            ignore_eos: input.ignore_eos,
            logprobs: input.logprobs,
        })
    }
}
