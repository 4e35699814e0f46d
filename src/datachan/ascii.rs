//! TYPE A (RFC 959 §3.1.1.1): line endings are CRLF on the wire and LF in storage.
//!
//! Downloads turn a lone LF into CRLF ([`ToCrlf`]); uploads turn CRLF into LF ([`FromCrlf`]).
//! Both keep one byte of state across buffers, because a CR and its LF may arrive in different
//! reads. Bare CRs are left alone either way. TYPE I moves bytes untouched.

use std::{
    io,
    pin::Pin,
    task::{ready, Context, Poll},
};

use tokio::io::{AsyncRead, ReadBuf};

/// LF → CRLF for downloads (an LF already preceded by CR is left as it is).
#[derive(Default)]
pub struct ToCrlf {
    last_was_cr: bool,
}

impl ToCrlf {
    /// Appends the converted `src` to `out`.
    pub fn convert(&mut self, src: &[u8], out: &mut Vec<u8>) {
        out.reserve(src.len() + src.len() / 16);
        for &b in src {
            if b == b'\n' && !self.last_was_cr {
                out.push(b'\r');
            }
            out.push(b);
            self.last_was_cr = b == b'\r';
        }
    }
}

/// CRLF → LF for uploads, as an `AsyncRead` adapter over the data connection.
pub struct FromCrlf<R> {
    inner: R,
    raw: Vec<u8>,
    out: Vec<u8>,
    pos: usize,
    cr_held: bool,
    eof: bool,
}

impl<R> FromCrlf<R> {
    pub fn new(inner: R) -> Self {
        FromCrlf {
            inner,
            raw: vec![0; 64 * 1024],
            out: Vec::with_capacity(64 * 1024),
            pos: 0,
            cr_held: false,
            eof: false,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for FromCrlf<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.pos);
                buf.put_slice(&this.out[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            this.out.clear();
            this.pos = 0;
            let mut rb = ReadBuf::new(&mut this.raw);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let data = rb.filled();
            if data.is_empty() {
                this.eof = true;
                if std::mem::take(&mut this.cr_held) {
                    this.out.push(b'\r');
                }
                continue;
            }
            for &b in data {
                if std::mem::take(&mut this.cr_held) && b != b'\n' {
                    this.out.push(b'\r');
                }
                if b == b'\r' {
                    this.cr_held = true;
                } else {
                    this.out.push(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    fn to_crlf(chunks: &[&[u8]]) -> Vec<u8> {
        let mut c = ToCrlf::default();
        let mut out = Vec::new();
        for ch in chunks {
            c.convert(ch, &mut out);
        }
        out
    }

    #[test]
    fn lone_lf_becomes_crlf_across_chunks() {
        assert_eq!(to_crlf(&[b"a\nb\r\nc"]), b"a\r\nb\r\nc");
        assert_eq!(to_crlf(&[b"a\r", b"\nb\n"]), b"a\r\nb\r\n");
    }

    async fn from_crlf(data: &[u8], chunk: usize) -> Vec<u8> {
        let (mut w, r) = tokio::io::duplex(chunk.max(1));
        let data = data.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for c in data.chunks(chunk.max(1)) {
                w.write_all(c).await.expect("write");
            }
        });
        let mut out = Vec::new();
        FromCrlf::new(r).read_to_end(&mut out).await.expect("read");
        writer.await.expect("writer");
        out
    }

    #[tokio::test]
    async fn crlf_becomes_lf_even_when_split() {
        assert_eq!(from_crlf(b"a\r\nb\r\n", 1).await, b"a\nb\n");
        assert_eq!(from_crlf(b"a\rb\r\r\n\r", 3).await, b"a\rb\r\n\r");
    }

    proptest! {
        #[test]
        fn upload_then_download_round_trips_unix_text(text in "[a-z\n]{0,200}", chunk in 1usize..17) {
            let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
            let wire = to_crlf(&[text.as_bytes()]);
            let back = rt.block_on(from_crlf(&wire, chunk));
            prop_assert_eq!(back, text.as_bytes());
        }
    }
}
