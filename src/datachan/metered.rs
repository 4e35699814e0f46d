//! [`Metered`]: counts the bytes a data connection really carried, each way, so a transfer
//! that fails or is aborted is reported (audit, metrics) with what it moved rather than 0.
//!
//! Counted are the payload bytes read from, and accepted for writing by, the connection (after
//! TLS): for a download cut short that includes what the kernel's socket buffers still held,
//! which had left the server.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub struct Metered<S> {
    inner: S,
    read: u64,
    written: u64,
}

impl<S> Metered<S> {
    pub fn new(inner: S) -> Self {
        Metered {
            inner,
            read: 0,
            written: 0,
        }
    }

    /// Bytes read from the connection so far (an upload's).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Bytes written to the connection so far (a download's, a listing's).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.read += (buf.filled().len() - before) as u64;
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.written += n as u64;
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn counts_each_way() {
        let (a, b) = tokio::io::duplex(1024);
        let mut a = Metered::new(a);
        let mut b = Metered::new(b);
        a.write_all(b"hello").await.expect("write");
        let mut got = [0u8; 3];
        b.read_exact(&mut got).await.expect("read");
        assert_eq!((a.bytes_written(), a.bytes_read()), (5, 0));
        assert_eq!((b.bytes_written(), b.bytes_read()), (0, 3));
    }
}
