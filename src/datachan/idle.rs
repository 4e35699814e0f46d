//! [`IdleTimeout`]: fails a read or write that makes no progress for a while, so a stalled or
//! slowloris data connection cannot hold a transfer (and its memory, and its multipart upload)
//! open forever.
//!
//! The clock runs only while an operation waits on the connection: it restarts when a read or
//! write begins after the previous one completed. Time the server spends not reading (an upload
//! waiting for the memory budget, or for its parts to reach S3) is the server's stall, not the
//! client's, and must not end the transfer.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::{Instant, Sleep},
};

pub struct IdleTimeout<S> {
    inner: S,
    limit: Duration,
    /// Fires at or before `started + limit`; moved only when it fires early (see `check`).
    timer: Pin<Box<Sleep>>,
    /// When the current wait began.
    started: Instant,
    /// The last operation completed: the next poll starts a new wait, with a fresh clock.
    fresh: bool,
}

impl<S> IdleTimeout<S> {
    pub fn new(inner: S, limit: Duration) -> Self {
        IdleTimeout {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            started: Instant::now(),
            fresh: false,
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Progress was made: the clock restarts when the next operation has to wait.
    fn progressed(&mut self) {
        self.fresh = true;
    }

    /// Pending: has the clock run out?
    ///
    /// A new wait only notes its start: resetting the timer on every wait (every few TLS
    /// records of a fast upload) cost a timer-wheel update each. The timer keeps the deadline
    /// of an earlier wait, which is never later than this one's; when it fires early it is
    /// moved to this wait's deadline, so it fires at most about once per `limit`.
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.fresh {
            self.fresh = false;
            self.started = Instant::now();
        }
        loop {
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Ok(()),
                Poll::Ready(()) => {
                    let deadline = self.started + self.limit;
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "data connection idle for too long",
                        ));
                    }
                    self.timer.as_mut().reset(deadline);
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                this.progressed();
                Poll::Ready(r)
            }
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => match this.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_silent_reader_times_out() {
        let (a, _b) = tokio::io::duplex(64);
        let mut r = IdleTimeout::new(a, Duration::from_millis(50));
        let mut buf = [0u8; 8];
        let e = r.read(&mut buf).await.expect_err("must time out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }

    /// The clock runs only while a read waits for the client: an upload that stops reading for
    /// longer than the limit (waiting for the memory budget, or for its parts to reach S3) and
    /// then reads again is not the client's stall.
    #[tokio::test]
    async fn time_spent_not_reading_is_not_idle() {
        use tokio::io::AsyncWriteExt;
        let (a, mut b) = tokio::io::duplex(64);
        let mut r = IdleTimeout::new(a, Duration::from_millis(50));
        b.write_all(b"x").await.expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).await.expect("first read"), 1);
        // The reader is busy elsewhere for twice the limit.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            b.write_all(b"y").await.expect("write");
            b
        });
        assert_eq!(r.read(&mut buf).await.expect("the next read waits"), 1);
        drop(writer.await);
    }
}
