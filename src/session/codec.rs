//! The control connection: bytes ↔ lines, over a stream that may switch between plain and TLS
//! (TCP in the server, any [`ControlIo`] in tests).
//!
//! - Lines end at LF (CRLF or a bare LF, as lenient servers accept); at most `max_line` bytes. A
//!   longer line is discarded up to its end and reported as [`Line::TooLong`], so the session can
//!   answer `500` and carry on (bounded memory whatever the client sends).
//! - Telnet IAC sequences (RFC 959 §4.1.3: clients send `IAC IP IAC DM` before ABOR) are removed
//!   here, so the parser only ever sees command text.
//! - [`Connection::start_tls`] upgrades the socket after `AUTH TLS` (RFC 4217 §4) and
//!   [`Connection::end_tls`] returns to plain TCP (CCC, REIN). Bytes buffered before an upgrade
//!   are discarded: a client may not pipeline commands past AUTH, and honouring them would let a
//!   man in the middle inject plaintext commands into the TLS session (the STARTTLS injection
//!   flaw).
//! - Reads are cancel-safe (`read_buf` into our buffer), so the session can `select!` on the next
//!   line while a transfer runs.

use std::{
    io::{self, Read},
    time::Duration,
};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

use crate::net::{ControlIo, ControlStream, MaybeTls};

use super::reply::Reply;

/// What reading the next line gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// One line, without IAC sequences, with its line ending.
    Text(Vec<u8>),
    /// A line longer than the limit; its bytes were dropped.
    TooLong,
    /// The client closed the connection.
    Eof,
}

pub struct Connection {
    /// `None` only for the instant of a switch between plain and TLS.
    stream: Option<MaybeTls<ControlStream>>,
    buf: BytesMut,
    max_line: usize,
    /// Set while discarding the rest of an overlong line.
    skipping: bool,
}

impl Connection {
    /// A connection in the clear over `stream` (TLS comes later, by [`Connection::start_tls`]).
    pub fn new(stream: impl ControlIo, max_line: usize) -> Self {
        let stream: ControlStream = Box::new(stream);
        Connection {
            stream: Some(MaybeTls::Plain(stream)),
            buf: BytesMut::with_capacity(1024),
            max_line,
            skipping: false,
        }
    }

    pub fn is_tls(&self) -> bool {
        self.stream.as_ref().is_some_and(MaybeTls::is_tls)
    }

    /// `(protocol version, cipher suite)` once the connection is TLS.
    pub fn tls_info(&self) -> Option<(String, String)> {
        self.stream.as_ref().and_then(MaybeTls::tls_info)
    }

    /// The subject CN of the client certificate verified in this connection's TLS handshake;
    /// `None` in plain TCP, without a certificate, or with a certificate that has no single CN.
    pub fn client_cert_cn(&self) -> Option<String> {
        crate::tls::common_name(self.stream.as_ref()?.peer_certificate()?)
    }

    fn stream(&mut self) -> io::Result<&mut MaybeTls<ControlStream>> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }

    /// Reads the next line. Cancel-safe.
    pub async fn read_line(&mut self) -> io::Result<Line> {
        loop {
            if let Some(line) = self.take_line() {
                return Ok(line);
            }
            if self.buf.len() >= self.max_line {
                // No LF within the limit: drop what we have and skip to the next LF.
                self.buf.clear();
                self.skipping = true;
            }
            let stream = self.stream.as_mut().ok_or(io::ErrorKind::NotConnected)?;
            let n = stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// A complete line from the buffer, if there is one.
    fn take_line(&mut self) -> Option<Line> {
        let end = self.buf.iter().position(|&b| b == b'\n')?;
        let raw = self.buf.split_to(end + 1);
        if std::mem::take(&mut self.skipping) || raw.len() > self.max_line {
            return Some(Line::TooLong);
        }
        Some(Line::Text(strip_telnet(&raw)))
    }

    /// Sends one reply.
    pub async fn send(&mut self, reply: &Reply) -> io::Result<()> {
        let stream = self.stream()?;
        stream.write_all(&reply.to_wire()).await?;
        stream.flush().await
    }

    /// Writes bytes as they are: for replies built line by line (STAT of a directory), where
    /// the caller keeps the multi-line format.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream()?;
        stream.write_all(bytes).await?;
        stream.flush().await
    }

    /// Upgrades to TLS (after `234`, or at once on the implicit port). Discards buffered input.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        self.buf.clear();
        self.skipping = false;
        let tcp = match self.stream.take() {
            Some(MaybeTls::Plain(tcp)) => tcp,
            other => {
                self.stream = other;
                return Err(io::Error::other("control connection is not plain TCP"));
            }
        };
        let tls = tokio::time::timeout(timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.stream = Some(MaybeTls::Tls(Box::new(tls)));
        Ok(())
    }

    /// Ends the TLS session and continues in the clear on the same stream (RFC 4217 §6 CCC,
    /// MS-FTPS §3.2.5.3 REIN): send close_notify, read to the client's close_notify, keep the
    /// stream under TLS.
    pub async fn end_tls(&mut self, timeout: Duration) -> io::Result<()> {
        self.buf.clear();
        self.skipping = false;
        let mut tls = match self.stream.take() {
            Some(MaybeTls::Tls(tls)) => tls,
            other => {
                self.stream = other;
                return Ok(());
            }
        };
        tls.get_mut().1.send_close_notify();
        tls.flush().await?;
        match tokio::time::timeout(timeout, read_to_close_notify(&mut tls)).await {
            Ok(Ok(())) => {
                let (stream, _) = tls.into_inner();
                self.stream = Some(MaybeTls::Plain(stream));
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client did not close the TLS session",
            )),
        }
    }

    /// Closes politely: close_notify on TLS, then FIN.
    pub async fn shutdown(&mut self) {
        if let Some(s) = self.stream.as_mut() {
            let _ = s.shutdown().await;
        }
    }
}

/// Reads the client's TLS records up to its close_notify, one whole record at a time from the
/// stream: reading ahead (as the TLS stream's own reads do) would swallow what the client sends
/// right after it, the first command in the clear or REIN's new ClientHello, into the ended
/// session's buffer, and the client would wait for an answer forever. Application data before
/// the close_notify is discarded, so no TLS record is left to be misread as a command.
async fn read_to_close_notify(tls: &mut TlsStream<ControlStream>) -> io::Result<()> {
    let (stream, conn) = tls.get_mut();
    let mut record = Vec::new();
    let mut sink = [0u8; 512];
    loop {
        // Records read before CCC/REIN was answered may already hold the close_notify.
        let state = conn.process_new_packets().map_err(io::Error::other)?;
        if state.plaintext_bytes_to_read() > 0 {
            while matches!(conn.reader().read(&mut sink), Ok(n) if n > 0) {}
        }
        if state.peer_has_closed() {
            return Ok(());
        }
        // A record: 5-byte header (type, version, length), then `length` bytes.
        let mut header = [0u8; 5];
        stream.read_exact(&mut header).await?;
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        record.clear();
        record.extend_from_slice(&header);
        record.resize(header.len() + len, 0);
        stream.read_exact(&mut record[header.len()..]).await?;
        let mut rest = &record[..];
        while !rest.is_empty() {
            if conn.read_tls(&mut rest)? == 0 {
                return Err(io::Error::other("TLS record not taken"));
            }
        }
    }
}

/// Removes Telnet IAC sequences (RFC 854): `IAC IAC` is a literal 0xFF, `IAC WILL/WONT/DO/DONT x`
/// is three bytes, any other `IAC x` two.
fn strip_telnet(raw: &[u8]) -> Vec<u8> {
    const IAC: u8 = 0xFF;
    if !raw.contains(&IAC) {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != IAC {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        match raw.get(i + 1) {
            Some(&IAC) => {
                out.push(IAC);
                i += 2;
            }
            Some(0xFB..=0xFE) => i += 3,
            Some(_) => i += 2,
            None => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn pair(max_line: usize) -> (Connection, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = l.accept().await.expect("accept");
        (Connection::new(server, max_line), client)
    }

    #[test]
    fn telnet_sequences_are_removed() {
        assert_eq!(strip_telnet(b"\xff\xf4\xff\xf2ABOR\r\n"), b"ABOR\r\n");
        assert_eq!(strip_telnet(b"\xff\xfb\x01NOOP\r\n"), b"NOOP\r\n");
        assert_eq!(strip_telnet(b"a\xff\xffb"), b"a\xffb");
    }

    #[tokio::test]
    async fn pipelined_lines_come_out_one_by_one() {
        let (mut conn, mut client) = pair(4096).await;
        client
            .write_all(b"NOOP\r\nSYST\nPWD\r\n")
            .await
            .expect("write");
        assert_eq!(
            conn.read_line().await.expect("read"),
            Line::Text(b"NOOP\r\n".to_vec())
        );
        assert_eq!(
            conn.read_line().await.expect("read"),
            Line::Text(b"SYST\n".to_vec())
        );
        assert_eq!(
            conn.read_line().await.expect("read"),
            Line::Text(b"PWD\r\n".to_vec())
        );
        drop(client);
        assert_eq!(conn.read_line().await.expect("read"), Line::Eof);
    }

    #[tokio::test]
    async fn overlong_line_is_reported_once_and_session_continues() {
        let (mut conn, mut client) = pair(512).await;
        let long = vec![b'A'; 5000];
        client.write_all(b"STOR ").await.expect("write");
        client.write_all(&long).await.expect("write");
        client.write_all(b"\r\nNOOP\r\n").await.expect("write");
        assert_eq!(conn.read_line().await.expect("read"), Line::TooLong);
        assert_eq!(
            conn.read_line().await.expect("read"),
            Line::Text(b"NOOP\r\n".to_vec())
        );
    }
}
