//! The HTTP link between the host and an executor, for load-balancing
//! endpoints: HTTP/2 over a Unix socket the executor listens on. The host
//! names the socket (under the temp dir, created with mode 0600 and removed
//! once the host is connected, so no other process can reach it), sends each
//! request of a worker down the one multiplexed connection with the worker
//! named in [`WORKER_HEADER`], and streams the response back; bodies stream
//! both ways. Control (starting and stopping workers) stays on the
//! JSON-lines pipe of [`super::protocol`].

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{UnixListener, UnixStream};

use crate::runtime::HttpBody;

/// The worker a request is for.
pub const WORKER_HEADER: &str = "x-wasmpod-worker";
/// The request's id (for the handler's log lines).
pub const REQUEST_HEADER: &str = "x-wasmpod-request";
/// How long the handler may take, in milliseconds.
pub const TIMEOUT_HEADER: &str = "x-wasmpod-timeout-ms";

/// A request body the host sends: anything that streams bytes.
pub type LinkBody = UnsyncBoxBody<Bytes, Box<dyn StdError + Send + Sync>>;

/// HTTP/2 windows: large enough that one stream moves megabytes per round
/// trip over the local socket (the defaults, 64 KiB, would throttle big
/// bodies); adaptive on top.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 16 << 20;

/// A fresh socket path for one executor (short: Unix socket paths are
/// limited to about 100 bytes).
pub fn socket_path() -> PathBuf {
    let id = uuid::Uuid::new_v4().simple().to_string();
    std::env::temp_dir().join(format!("wasmpod-exec-{}.sock", &id[..16]))
}

/// Executor side: bind the link's socket at `path` (mode 0600). The
/// executor does this before it sandboxes itself, so the sandbox need not
/// let it make sockets anywhere; [`listen`] then serves on it.
pub fn bind(path: &Path) -> io::Result<std::os::unix::net::UnixListener> {
    let _ = std::fs::remove_file(path);
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Executor side: answer every request on every connection to `listener`
/// (from [`bind`]) with `serve`.
pub fn listen<F, Fut>(listener: std::os::unix::net::UnixListener, serve: F) -> io::Result<()>
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = hyper::Response<HttpBody>> + Send + 'static,
{
    let listener = UnixListener::from_std(listener)?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let serve = serve.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let answer = serve(req);
                    async move { Ok::<_, std::convert::Infallible>(answer.await) }
                });
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder
                    .initial_stream_window_size(STREAM_WINDOW)
                    .initial_connection_window_size(CONNECTION_WINDOW)
                    .adaptive_window(true)
                    .max_concurrent_streams(None);
                if let Err(e) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("executor HTTP link closed: {e}");
                }
            });
        }
    });
    Ok(())
}

/// Host side: the connection to one executor's socket.
#[derive(Clone)]
pub struct HttpLink {
    sender: hyper::client::conn::http2::SendRequest<LinkBody>,
}

impl HttpLink {
    /// Connect to the executor listening on `path`, then remove the socket
    /// file (the connection stays).
    pub async fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path).await?;
        let _ = std::fs::remove_file(path);
        let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .adaptive_window(true);
        let (sender, connection) = builder
            .handshake(TokioIo::new(stream))
            .await
            .map_err(io::Error::other)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("executor HTTP link closed: {e}");
            }
        });
        Ok(Self { sender })
    }

    /// Send one request; the answer's body streams as the handler writes.
    pub async fn send(
        &self,
        request: hyper::Request<LinkBody>,
    ) -> Result<hyper::Response<Incoming>, hyper::Error> {
        self.sender.clone().send_request(request).await
    }
}
