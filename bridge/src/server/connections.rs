//! Counting the connections open on the socket, so shutdown knows when daprd has gone.
//!
//! daprd keeps one connection per Component open for its whole life. Once none is open, no
//! Publish can come any more and the shutdown grace period can end early.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::watch;
use tonic::transport::server::{Connected, UdsConnectInfo};

/// The number of open connections.
#[derive(Clone)]
pub(crate) struct Connections {
    open: Arc<watch::Sender<usize>>,
}

impl Default for Connections {
    fn default() -> Self {
        Self { open: Arc::new(watch::Sender::new(0)) }
    }
}

impl Connections {
    /// Wraps accepted sockets so each counts while it is open.
    pub(crate) fn track(
        &self,
        incoming: impl Stream<Item = io::Result<UnixStream>> + Send + 'static,
    ) -> impl Stream<Item = io::Result<Tracked>> + Send + 'static {
        let open = self.open.clone();
        incoming.map(move |accepted| {
            accepted.map(|stream| {
                open.send_modify(|n| *n += 1);
                Tracked { stream, open: open.clone() }
            })
        })
    }

    /// Resolves once no connection is open.
    pub(crate) async fn none_open(&self) {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
    }
}

/// An accepted connection that counts itself until it drops.
pub(crate) struct Tracked {
    stream: UnixStream,
    open: Arc<watch::Sender<usize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Connected for Tracked {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
