//! `http-embeddings`: all-MiniLM-L6-v2 sentence embeddings served over HTTP
//! by a load-balancing endpoint. The model code (tokenizer, encoder, the
//! batching handler) is the `embeddings` example's, compiled in here from
//! its sources: the queue handler and this HTTP handler serve the same
//! model, one through `/run`, the other through `/lb/{endpoint}/embed`.
//!
//! - `GET /ping`: 200 once `init` loaded the model;
//! - `POST /embed`: `{"sentences": ["...", ...]}` or `{"sentence": "..."}`
//!   → `{"embeddings": [[f32; 384], ...], "dim": 384, "tokens": [n, ...]}`
//!   (400 for a body of another shape).
//!
//! The endpoint's model store needs the `all-MiniLM-L6-v2` directory, as
//! for the `embeddings` example.

#[path = "../../embeddings/src/config.rs"]
pub mod config;
#[path = "../../embeddings/src/encoder.rs"]
pub mod encoder;
#[path = "../../embeddings/src/handler.rs"]
pub mod handler;
#[path = "../../embeddings/src/tokenizer.rs"]
pub mod tokenizer;

use wasmpod_sdk::http::{HttpError, Request, Response, Router};

fn embed(mut req: Request) -> Result<Response, HttpError> {
    let input: handler::Input = req.json()?;
    match handler::handle(input) {
        Ok(output) => Ok(Response::json(&output)),
        // The input's shape is the caller's to fix; the rest is ours.
        Err(e @ handler::HandlerError::Input(_)) => Err(HttpError::bad_request(e.to_string())),
        Err(e) => Err(HttpError::internal(e.to_string())),
    }
}

fn app() -> Router {
    Router::new().get("/ping", |_| "ok").post("/embed", embed)
}

wasmpod_sdk::http_handler!(app, init = handler::init);
