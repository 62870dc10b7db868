//! The HTTP accept loop: HTTP/1.1 connections served by hyper with a bound
//! on open connections, a header-read timeout and a write-stall timeout,
//! shut down gracefully on a signal.
//!
//! - At most `max_connections` connections are open at once. The loop takes
//!   a permit *before* it accepts, so further clients wait in the kernel's
//!   accept backlog and cost this process nothing.
//! - A connection must deliver each request's head within
//!   `header_read_timeout`, counted from when the server starts waiting
//!   for it; the same bound closes idle keep-alive connections.
//! - A write that makes no progress for `write_stall_timeout` (a client
//!   that does not read its answer) closes the connection.
//! - On shutdown the loop stops accepting, idle connections close at once
//!   and busy ones after their current answer; the returned future
//!   completes when every connection has closed.

use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Sleep;

/// Connections the kernel may hold ready for `accept` (capped by
/// `net.core.somaxconn`): where clients over `max_connections` wait.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with a deep accept backlog.
pub fn bind(addr: std::net::SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std's bind does: a restarted server need not wait for TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub write_stall_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes and every open
/// connection has finished.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServeSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    // Dropping the receiver tells the loop and every connection to stop.
    let (signal_tx, signal_rx) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(signal_rx);
    });
    // Each connection holds a receiver; the sender sees when all are gone.
    let (close_tx, close_rx) = watch::channel(());
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);

    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = signal_tx.closed() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    drop(permit);
                    if !is_connection_error(&err) {
                        // Out of file descriptors, most likely: back off
                        // instead of spinning; clients wait in the backlog.
                        tracing::error!("accepting a connection failed: {err}; retrying in 100 ms");
                        tokio::select! {
                            () = tokio::time::sleep(Duration::from_millis(100)) => {}
                            () = signal_tx.closed() => break,
                        }
                    }
                    continue;
                }
            },
            () = signal_tx.closed() => break,
        };
        let io = TokioIo::new(StallGuard::new(stream, settings.write_stall_timeout));
        let connection = builder.serve_connection(io, TowerToHyperService::new(app.clone()));
        let signal_tx = signal_tx.clone();
        let close_rx = close_rx.clone();
        tokio::spawn(async move {
            {
                let mut connection = pin!(connection);
                let mut signal = pin!(signal_tx.closed());
                let mut stopping = false;
                loop {
                    tokio::select! {
                        result = connection.as_mut() => {
                            if let Err(err) = result {
                                tracing::debug!("HTTP connection ended: {err}");
                            }
                            break;
                        }
                        () = &mut signal, if !stopping => {
                            stopping = true;
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
                // The socket closes here, before its permit is returned.
            }
            drop(permit);
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
}

fn is_connection_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// A TCP stream whose writes fail with `TimedOut` once they have made no
/// progress for `limit`, so a client that never reads cannot hold its
/// connection (and its permit) forever.
struct StallGuard {
    stream: TcpStream,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(stream: TcpStream, limit: Duration) -> Self {
        Self {
            stream,
            limit,
            stalled: None,
        }
    }

    /// Passes a ready result through; a pending one starts (or checks) the
    /// stall timer.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading its answer",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}

/// Raises this process's soft limit on open files to at least `wanted`
/// (capped by the hard limit), so `max_connections` sockets fit next to the
/// state files. Returns the soft limit in force.
#[cfg(unix)]
pub fn raise_open_files_limit(wanted: u64) -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current?;
    if current >= wanted {
        return Some(current);
    }
    let raised = limit.maximum.map_or(wanted, |max| wanted.min(max));
    if raised <= current {
        return Some(current);
    }
    match setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(raised),
            maximum: limit.maximum,
        },
    ) {
        Ok(()) => Some(raised),
        Err(_) => Some(current),
    }
}

#[cfg(not(unix))]
pub fn raise_open_files_limit(_wanted: u64) -> Option<u64> {
    None
}
