//! Guest stdout/stderr. Each complete line goes to the instance's current
//! sink (the running job's, else the worker's, see [`JobSink::output`]);
//! everything is echoed to the host's stderr if asked, and the last few KiB
//! are kept so that a trap can be reported with the guest's last words (a
//! Rust panic message, a Python traceback).

use std::collections::VecDeque;
use std::io::Write;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::job::{JobSink, OutputStream};

const TAIL_BYTES: usize = 8 * 1024;
/// A line longer than this is passed on in pieces of this size, so a guest
/// writing without newlines cannot grow the buffer without bound.
const MAX_LINE_BYTES: usize = 16 * 1024;

#[derive(Default)]
struct Shared {
    /// Both streams interleaved, as a person at a terminal would see them.
    tail: VecDeque<u8>,
    sink: Option<Arc<dyn JobSink>>,
    /// What was written after the last newline, per stream.
    partial: [Vec<u8>; 2],
}

/// An instance's stdout and stderr. Cloning shares them.
#[derive(Clone)]
pub struct GuestOutput {
    shared: Arc<Mutex<Shared>>,
    echo: bool,
}

/// One of the two streams, as WASI sees it.
#[derive(Clone)]
pub struct GuestStream {
    output: GuestOutput,
    stream: OutputStream,
}

fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

fn emit(sink: &dyn JobSink, stream: OutputStream, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    sink.output(stream, text.trim_end_matches('\r'));
}

impl GuestOutput {
    /// `echo`: also copy everything to the host's stderr as it arrives.
    pub fn new(echo: bool) -> Self {
        Self {
            shared: Arc::default(),
            echo,
        }
    }

    pub fn stream(&self, stream: OutputStream) -> GuestStream {
        GuestStream {
            output: self.clone(),
            stream,
        }
    }

    /// The last few KiB written, lossily decoded.
    pub fn tail(&self) -> String {
        let shared = self.shared.lock().expect("output lock");
        let (a, b) = shared.tail.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Forget the tail (between jobs).
    pub fn clear(&self) {
        self.shared.lock().expect("output lock").tail.clear();
    }

    /// Send lines to `sink` from now on; an unfinished line written so far
    /// goes to the previous sink.
    pub fn set_sink(&self, sink: Option<Arc<dyn JobSink>>) {
        let mut shared = self.shared.lock().expect("output lock");
        let old = std::mem::replace(&mut shared.sink, sink);
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let rest = std::mem::take(&mut shared.partial[index(stream)]);
            if let (Some(old), false) = (&old, rest.is_empty()) {
                emit(old.as_ref(), stream, &rest);
            }
        }
    }

    fn write(&self, stream: OutputStream, buf: &[u8]) {
        if self.echo {
            let _ = std::io::stderr().write_all(buf);
        }
        let mut guard = self.shared.lock().expect("output lock");
        let shared = &mut *guard;
        shared.tail.extend(buf.iter().rev().take(TAIL_BYTES).rev());
        let excess = shared.tail.len().saturating_sub(TAIL_BYTES);
        shared.tail.drain(..excess);
        let Some(sink) = shared.sink.clone() else {
            return;
        };
        let partial = &mut shared.partial[index(stream)];
        for piece in buf.split_inclusive(|b| *b == b'\n') {
            if let Some(line) = piece.strip_suffix(b"\n") {
                partial.extend_from_slice(line);
                emit(sink.as_ref(), stream, partial);
                partial.clear();
            } else {
                partial.extend_from_slice(piece);
                while partial.len() >= MAX_LINE_BYTES {
                    let rest = partial.split_off(MAX_LINE_BYTES);
                    emit(sink.as_ref(), stream, partial);
                    *partial = rest;
                }
            }
        }
    }
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::LogLevel;

    #[derive(Default)]
    struct Lines(Mutex<Vec<(OutputStream, String)>>);

    impl JobSink for Lines {
        fn progress(&self, _: serde_json::Value) {}
        fn stream(&self, _: serde_json::Value) {}
        fn log(&self, _: LogLevel, _: &str) {}
        fn output(&self, stream: OutputStream, line: &str) {
            self.0.lock().unwrap().push((stream, line.to_string()));
        }
    }

    #[test]
    fn lines_go_to_the_current_sink_and_a_partial_line_to_the_one_it_was_written_for() {
        let out = GuestOutput::new(false);
        let job = Arc::new(Lines::default());
        let worker = Arc::new(Lines::default());
        out.set_sink(Some(job.clone()));
        out.write(OutputStream::Stdout, b"one\ntw");
        out.write(OutputStream::Stderr, b"err\r\n");
        out.write(OutputStream::Stdout, b"o\nthree");
        out.set_sink(Some(worker.clone()));
        out.write(OutputStream::Stdout, b"idle\n");
        let got = job.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                (OutputStream::Stdout, "one".into()),
                (OutputStream::Stderr, "err".into()),
                (OutputStream::Stdout, "two".into()),
                (OutputStream::Stdout, "three".into()),
            ]
        );
        assert_eq!(
            worker.0.lock().unwrap().clone(),
            vec![(OutputStream::Stdout, "idle".into())]
        );
        assert!(out.tail().contains("three"));
    }

    #[test]
    fn a_line_without_end_is_cut_into_bounded_pieces() {
        let out = GuestOutput::new(false);
        let sink = Arc::new(Lines::default());
        out.set_sink(Some(sink.clone()));
        out.write(OutputStream::Stdout, &vec![b'x'; MAX_LINE_BYTES * 2 + 5]);
        let got = sink.0.lock().unwrap().clone();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|(_, l)| l.len() == MAX_LINE_BYTES));
    }
}
