//! `http-hello`: an HTTP handler for a load-balancing endpoint, in a few
//! routes. Try it locally with `wasmpod run --http 127.0.0.1:8080
//! target/wasm32-wasip2/release/example_http_hello.wasm`, then
//! `curl localhost:8080/hello/ada`.
//!
//! - `GET /ping`: the host's health check: 204 (still warming up) for the
//!   first `WARMUP_PINGS` asks (env, default 0), then 200 `ok`;
//! - `GET /hello/:name`: a greeting (and the `VERSION` env var, if set);
//! - `POST /echo`: the request body back, streamed as it arrives;
//! - `GET /stream?n=N&ms=M`: N lines, one every M ms, each sent as written;
//! - `POST /matmul`: `{"a": [[..]], "b": [[..]]}` multiplied with host tensors;
//! - `GET /devices`: the worker's slice (kind and name of each device);
//! - `GET /sleep/:ms`: answers after `ms` milliseconds (with the version);
//! - `GET /crash`: panics (the instance is replaced; others keep serving).

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use wasmpod_sdk::Tensor;
use wasmpod_sdk::http::{HttpError, Request, Response, Router};

/// " (version V)" when the `VERSION` env var is set.
fn version() -> String {
    std::env::var("VERSION")
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default()
}

fn hello(req: Request) -> Response {
    let name = req.param("name").unwrap_or("world");
    Response::text(format!("hello, {name}{}", version()))
}

thread_local! {
    static PINGS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A handler that needs a while before it can serve (say, a model it
/// loads lazily) answers 204 until it is ready; the host routes nothing to
/// it until /ping answers 200.
fn ping(_: Request) -> Response {
    let warmup: u64 = std::env::var("WARMUP_PINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let seen = PINGS.with(|p| {
        p.set(p.get() + 1);
        p.get()
    });
    if seen <= warmup {
        Response::status(204)
    } else {
        Response::text("ok")
    }
}

/// Streams the request body back as it arrives: the response head goes out
/// first, then each piece read is written at once, so neither side is ever
/// held in full.
fn echo(mut req: Request) -> Response {
    let content_type = req
        .header("content-type")
        .unwrap_or("application/octet-stream")
        .to_string();
    Response::stream(&content_type, move |out| {
        std::io::copy(&mut req.body_reader(), out)?;
        Ok(())
    })
}

fn stream(req: Request) -> Result<Response, HttpError> {
    let number = |name: &str, default: u64| -> Result<u64, HttpError> {
        match req.query_param(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| HttpError::bad_request(format!("{name}={v:?} is not a number"))),
        }
    };
    let n = number("n", 5)?;
    let ms = number("ms", 100)?;
    Ok(Response::stream("text/plain", move |out| {
        for i in 0..n {
            if i > 0 {
                std::thread::sleep(Duration::from_millis(ms));
            }
            writeln!(out, "chunk {i}")?;
        }
        Ok(())
    }))
}

#[derive(Deserialize)]
struct MatmulInput {
    a: Vec<Vec<f32>>,
    b: Vec<Vec<f32>>,
}

fn matrix(rows: &[Vec<f32>], name: &str) -> Result<Tensor, HttpError> {
    let cols = rows.first().map_or(0, Vec::len);
    if rows.iter().any(|r| r.len() != cols) {
        return Err(HttpError::bad_request(format!(
            "{name}'s rows differ in length"
        )));
    }
    Tensor::from_f32(&[rows.len() as u32, cols as u32], &rows.concat())
        .map_err(|e| HttpError::bad_request(e.to_string()))
}

fn matmul(mut req: Request) -> Result<Response, HttpError> {
    let input: MatmulInput = req.json()?;
    let a = matrix(&input.a, "a")?;
    let b = matrix(&input.b, "b")?;
    let product = a
        .matmul(&b)
        .map_err(|e| HttpError::bad_request(e.to_string()))?;
    let shape = product.shape();
    let values = product
        .to_vec_f32()
        .map_err(|e| HttpError::internal(e.to_string()))?;
    let rows: Vec<&[f32]> = values.chunks(shape[1].max(1) as usize).collect();
    Ok(Response::json(
        &serde_json::json!({ "product": rows, "shape": shape }),
    ))
}

fn devices(_: Request) -> Response {
    let devices: Vec<_> = wasmpod_sdk::devices()
        .into_iter()
        .map(|d| {
            let kind = match d.kind {
                wasmpod_sdk::DeviceKind::Cpu => "cpu",
                wasmpod_sdk::DeviceKind::Cuda => "cuda",
            };
            serde_json::json!({"index": d.index, "kind": kind, "name": d.name})
        })
        .collect();
    Response::json(&serde_json::json!({ "devices": devices }))
}

fn sleep(req: Request) -> Result<Response, HttpError> {
    let ms: u64 = req
        .param("ms")
        .unwrap_or_default()
        .parse()
        .map_err(|_| HttpError::bad_request("/sleep/:ms takes a number of milliseconds"))?;
    std::thread::sleep(Duration::from_millis(ms));
    Ok(Response::text(format!("slept {ms} ms{}", version())))
}

fn app() -> Router {
    Router::new()
        .get("/ping", ping)
        .get("/hello/:name", hello)
        .post("/echo", echo)
        .get("/stream", stream)
        .post("/matmul", matmul)
        .get("/devices", devices)
        .get("/sleep/:ms", sleep)
        .get("/crash", |_| -> Response { panic!("crash requested") })
}

wasmpod_sdk::http_handler!(app);
