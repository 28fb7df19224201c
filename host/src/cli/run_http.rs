//! `wasmpod run --http ADDR handler.wasm`: try an HTTP handler (world
//! http-handler) locally. Serves HTTP/1.1 on ADDR with up to
//! `--concurrency` instances (one request at a time each; the first is made
//! before listening, so an `init` error shows at once), printing one line
//! per request to stderr. Ctrl-C stops it.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use wasmpod::runtime::{
    FlashBoot, Handler, HttpBody, Instance, InstanceConfig, error_response, respond,
};
use wasmtime_wasi_http::io::TokioIo;

/// How another instance is made.
pub enum Starter {
    Plain(Handler),
    FlashBoot(FlashBoot, Arc<Vec<u8>>),
}

impl Starter {
    pub async fn make(&self, config: &InstanceConfig) -> anyhow::Result<Instance> {
        Ok(match self {
            Starter::Plain(h) => h.instantiate(config).await?,
            Starter::FlashBoot(f, wasm) => f.start(wasm, config).await?.0,
        })
    }
}

struct Local {
    starter: Starter,
    config: InstanceConfig,
    idle: Mutex<Vec<Instance>>,
    slots: Arc<Semaphore>,
    timeout: Duration,
    served: AtomicU64,
}

impl Local {
    async fn handle(
        self: Arc<Self>,
        request: hyper::Request<hyper::body::Incoming>,
    ) -> Result<hyper::Response<HttpBody>, std::convert::Infallible> {
        let started = Instant::now();
        let line = format!("{} {}", request.method(), request.uri());
        let id = format!("local-{}", self.served.fetch_add(1, Ordering::Relaxed) + 1);
        let permit = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let idle = self.idle.lock().expect("idle lock").pop();
        let instance = match idle {
            Some(i) => i,
            None => match self.starter.make(&self.config).await {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{line} -> 503: starting an instance failed: {e:#}");
                    return Ok(error_response(
                        hyper::StatusCode::SERVICE_UNAVAILABLE,
                        "start-failed",
                        &format!("starting an instance failed: {e:#}"),
                    ));
                }
            },
        };
        let (response, done) = respond(instance, id, request, self.timeout).await;
        eprintln!(
            "{line} -> {} ({:?})",
            response.status().as_u16(),
            started.elapsed()
        );
        let this = Arc::clone(&self);
        tokio::spawn(async move {
            if let Ok((instance, result)) = done.await {
                if let Err(e) = &result {
                    eprintln!("request ended: {e}");
                }
                // A lost instance (trap, timeout) is dropped; the next
                // request makes a fresh one.
                if !instance.is_lost() {
                    this.idle.lock().expect("idle lock").push(instance);
                }
            }
            drop(permit);
        });
        Ok(response)
    }
}

/// Serve `first` (and more instances like it) on `addr` until Ctrl-C.
pub async fn serve(
    addr: SocketAddr,
    starter: Starter,
    config: InstanceConfig,
    first: Instance,
    concurrency: u32,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))?;
    let local = Arc::new(Local {
        starter,
        config,
        idle: Mutex::new(vec![first]),
        slots: Arc::new(Semaphore::new(concurrency.max(1) as usize)),
        timeout,
        served: AtomicU64::new(0),
    });
    // Tests and scripts read the address (port 0 picks a free one).
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        };
        let local = Arc::clone(&local);
        tokio::spawn(async move {
            let service = service_fn(move |req| Arc::clone(&local).handle(req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection: {e}");
            }
        });
    }
}
