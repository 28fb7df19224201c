//! `llm`: a Llama-family text generator (Llama 2/3, Mistral, Qwen2)
//! computed in the guest with host tensor ops, reading a Hugging Face
//! model directory from the endpoint's model store: `config.json`,
//! safetensors weights (one file or shards with
//! `model.safetensors.index.json`; f32, f16 or bf16), `tokenizer.json`
//! and the chat template of `tokenizer_config.json`.
//!
//! Input: `{"prompt": "..."}` or `{"messages": [{"role": "user", "content":
//! "..."}]}`, with `max_tokens`, `temperature`, `top_p`, `top_k`, `seed`,
//! `stop`, `logprobs` and `ignore_eos`. Every token is streamed as a chunk
//! `{"text", "token", "index"}`; the output is `{"model", "text",
//! "finish_reason", "token_ids", "usage", "timings"}`.
//!
//! `config`, `tokenizer`, `chat`, `stop` and the sampling rules make no
//! host calls and are unit-tested on the build machine (`cargo test -p
//! example-llm`).

pub mod chat;
pub mod config;
pub mod decoder;
pub mod generate;
pub mod handler;
pub mod sampling;
pub mod session;
pub mod stop;
pub mod tokenizer;
pub mod weights;

// Only the component exports the handler; host-target builds (the unit
// tests) have no host to call.
#[cfg(target_family = "wasm")]
wasmpod_sdk::handler!(handler::handle, init = handler::init);
