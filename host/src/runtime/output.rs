//! Guest stdout/stderr: echoed to the host's stderr if asked, and the tail
//! kept so that a trap can be reported with the guest's last words (a Rust
//! panic message, a Python traceback).

use std::collections::VecDeque;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

const TAIL_BYTES: usize = 8 * 1024;

/// One guest output stream (stdout or stderr). Cloning shares it.
#[derive(Clone, Default)]
pub struct GuestOutput {
    tail: Arc<Mutex<VecDeque<u8>>>,
    echo: bool,
}

impl GuestOutput {
    /// `echo`: also copy everything to the host's stderr as it arrives.
    pub fn new(echo: bool) -> Self {
        Self {
            tail: Arc::default(),
            echo,
        }
    }

    /// The last few KiB written, lossily decoded.
    pub fn tail(&self) -> String {
        let tail = self.tail.lock().expect("output tail lock");
        let (a, b) = tail.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Forget what was written (between jobs).
    pub fn clear(&self) {
        self.tail.lock().expect("output tail lock").clear();
    }

    fn write(&self, buf: &[u8]) {
        if self.echo {
            let _ = std::io::stderr().write_all(buf);
        }
        let mut tail = self.tail.lock().expect("output tail lock");
        tail.extend(buf.iter().rev().take(TAIL_BYTES).rev());
        let excess = tail.len().saturating_sub(TAIL_BYTES);
        tail.drain(..excess);
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
