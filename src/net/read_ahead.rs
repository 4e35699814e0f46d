//! [`ReadAhead`]: a read buffer under a data connection's TLS session.
//!
//! rustls asks its transport for at most 4 KiB of ciphertext per read, so without a buffer an
//! upload costs a `recv` system call (and a readiness check) per 4 KiB. With one, a single call
//! fills the buffer and rustls' reads are copies from cache-hot memory. Only data connections
//! get it: the control connection must not read past the client's close_notify at CCC/REIN
//! (see `session::codec::read_to_close_notify`), and its stream type has no room for one.

use std::{io, pin::Pin, task};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How much one read from the socket may bring in.
pub const DATA_READ_AHEAD: usize = 64 * 1024;

/// A stream whose reads go through a buffer of [`DATA_READ_AHEAD`] bytes; writes go straight
/// through. A read at least as large as the buffer bypasses it.
pub struct ReadAhead<S> {
    inner: S,
    ahead: Box<[u8]>,
    /// `ahead[pos..end]` was read from the socket and not handed out yet.
    pos: usize,
    end: usize,
}

impl<S> ReadAhead<S> {
    pub fn new(inner: S) -> ReadAhead<S> {
        ReadAhead::with_capacity(inner, DATA_READ_AHEAD)
    }

    fn with_capacity(inner: S, capacity: usize) -> ReadAhead<S> {
        ReadAhead {
            inner,
            ahead: vec![0; capacity].into_boxed_slice(),
            pos: 0,
            end: 0,
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> task::Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.end {
            if buf.remaining() >= this.ahead.len() {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut ahead = ReadBuf::new(&mut this.ahead);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut ahead))?;
            this.pos = 0;
            this.end = ahead.filled().len();
        }
        let n = buf.remaining().min(this.end - this.pos);
        buf.put_slice(&this.ahead[this.pos..this.pos + n]);
        this.pos += n;
        task::Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &[u8],
    ) -> task::Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> task::Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> task::Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
    ) -> task::Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sent() -> Vec<u8> {
        (0..1000u32).map(|i| (i % 251) as u8).collect()
    }

    /// Small reads (through the buffer) and large ones (past it) see every byte in order.
    #[tokio::test]
    async fn reads_of_any_size_see_every_byte_in_order() {
        for chunk in [1, 7, 64, 100] {
            let (client, server) = tokio::io::duplex(300);
            let mut io = ReadAhead::with_capacity(server, 64);
            let writer = tokio::spawn(async move {
                let mut client = client;
                client.write_all(&sent()).await.expect("write");
            });
            let mut got = Vec::new();
            let mut buf = vec![0u8; chunk];
            loop {
                let n = io.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            writer.await.expect("writer");
            assert_eq!(got, sent(), "reads of {chunk}");
        }
    }

    /// One socket read serves many small reads.
    #[tokio::test]
    async fn small_reads_are_served_from_the_buffer() {
        let (mut client, server) = tokio::io::duplex(300);
        let mut io = ReadAhead::with_capacity(server, 64);
        client.write_all(&sent()[..64]).await.expect("write");
        let mut one = [0u8; 4];
        io.read_exact(&mut one).await.expect("first read");
        // The rest of what was written is buffered: reads succeed with the writer silent.
        let mut rest = [0u8; 60];
        io.read_exact(&mut rest).await.expect("buffered");
        assert_eq!(&rest[..], &sent()[4..64]);
        assert_eq!((io.pos, io.end), (64, 64));
    }
}
