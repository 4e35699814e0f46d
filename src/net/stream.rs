//! [`MaybeTls`]: a stream that is plain or TLS, read and written the same way; [`DataStream`]:
//! a data connection's, TLS reading through [`ReadAhead`]; [`ControlIo`]: what a control
//! connection runs on (TCP in the server, an in-memory pipe in tests).

use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::read_ahead::ReadAhead;

/// A connection that is either plain (over `S`) or TLS (over `T`): the control connection
/// switches between the two (AUTH TLS, CCC, REIN) over one [`ControlStream`]; a data connection
/// ([`DataStream`]) is one or the other by PROT level.
pub enum MaybeTls<S, T = S> {
    Plain(S),
    Tls(Box<tokio_rustls::server::TlsStream<T>>),
}

/// A data connection: TCP, under TLS read through a [`ReadAhead`] buffer (rustls reads 4 KiB at
/// a time); in the clear, reads go to the socket as they are (uploads read whole part buffers).
pub type DataStream = MaybeTls<TcpStream, ReadAhead<TcpStream>>;

/// The bytes a control connection runs on. The server gives it TCP; tests drive a session over
/// `tokio::io::duplex`, TLS upgrades included, with no socket.
pub trait ControlIo: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> ControlIo for T {}

/// A control connection's stream, whatever it is: one virtual call per read or write, nothing
/// next to a command's round trip, and the session stays one type.
pub type ControlStream = Box<dyn ControlIo>;

impl<S, T> MaybeTls<S, T> {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// Whether the TLS handshake resumed an earlier session (false for plain TCP).
    pub fn resumed(&self) -> bool {
        match self {
            MaybeTls::Tls(s) => {
                s.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
            }
            MaybeTls::Plain(_) => false,
        }
    }

    /// The client's certificate (the leaf), when it presented one and the verifier accepted it.
    /// On a resumed handshake it is the certificate of the session resumed.
    pub fn peer_certificate(&self) -> Option<&CertificateDer<'static>> {
        match self {
            MaybeTls::Tls(s) => s.get_ref().1.peer_certificates()?.first(),
            MaybeTls::Plain(_) => None,
        }
    }

    /// `(protocol version, cipher suite)` when TLS.
    pub fn tls_info(&self) -> Option<(String, String)> {
        match self {
            MaybeTls::Tls(s) => {
                let conn = s.get_ref().1;
                let version = conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                let suite = conn
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default();
                Some((version, suite))
            }
            MaybeTls::Plain(_) => None,
        }
    }
}

mod maybe_tls_io {
    use super::MaybeTls;
    use std::{io, pin::Pin, task};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    impl<S, T> AsyncRead for MaybeTls<S, T>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        T: AsyncRead + AsyncWrite + Unpin,
    {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut task::Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> task::Poll<io::Result<()>> {
            match self.get_mut() {
                MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
                MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            }
        }
    }

    impl<S, T> AsyncWrite for MaybeTls<S, T>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        T: AsyncRead + AsyncWrite + Unpin,
    {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut task::Context<'_>,
            buf: &[u8],
        ) -> task::Poll<io::Result<usize>> {
            match self.get_mut() {
                MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
                MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            }
        }

        fn poll_flush(
            self: Pin<&mut Self>,
            cx: &mut task::Context<'_>,
        ) -> task::Poll<io::Result<()>> {
            match self.get_mut() {
                MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
                MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            }
        }

        fn poll_shutdown(
            self: Pin<&mut Self>,
            cx: &mut task::Context<'_>,
        ) -> task::Poll<io::Result<()>> {
            match self.get_mut() {
                MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
                MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            }
        }
    }
}
