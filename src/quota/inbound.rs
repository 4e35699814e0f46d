//! [`Inbound`]: an upload's data connection as its store reads it, with the user's limits
//! applied on the way: every byte that arrives is reserved against the quota (past it the read
//! fails with [`Exceeded`] inside an `io::Error`, see [`super::exceeded_in`]), and the upload
//! rate is paced. Bytes stay in the store's own buffer: nothing is copied here.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Sleep;

use super::{DataLimits, Exceeded};

pub struct Inbound<'a, R> {
    inner: R,
    limits: &'a mut DataLimits,
    /// The pacing wait owed for the bytes already read.
    wait: Option<Pin<Box<Sleep>>>,
}

impl<'a, R> Inbound<'a, R> {
    pub fn new(inner: R, limits: &'a mut DataLimits) -> Self {
        Inbound {
            inner,
            limits,
            wait: None,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Inbound<'_, R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(wait) = &mut this.wait {
            ready!(wait.as_mut().poll(cx));
            this.wait = None;
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let n = buf.filled().len() - before;
        if n == 0 {
            return Poll::Ready(Ok(()));
        }
        if let Some(hold) = &mut this.limits.hold {
            hold.reserve(n as u64).map_err(Exceeded::into_io)?;
        }
        if let Some(rate) = &this.limits.rate {
            let owed = rate.charge(n);
            if !owed.is_zero() {
                this.wait = Some(Box::pin(tokio::time::sleep(owed)));
            }
        }
        Poll::Ready(Ok(()))
    }
}
