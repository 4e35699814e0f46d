//! A minimal FTPS client that speaks the protocol line by line, for conformance tests that need
//! exact reply codes and misbehaviour no real client would produce (cut uploads, pipelining,
//! hostile input). Certificates are not verified: the tests' servers use throwaway self-signed
//! ones, and what is under test is the server, not PKI.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime},
    DigitallySignedStruct, SignatureScheme,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpStream,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

const TIMEOUT: Duration = Duration::from_secs(20);

/// One reply: code and the text of every line.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

pub struct RawClient {
    stream: Stream,
    buf: Vec<u8>,
    pub addr: SocketAddr,
    connector: TlsConnector,
    /// How long a read of the control connection waits for the server.
    timeout: Duration,
    /// Presented in every TLS handshake, control and data.
    client_cert: Option<ClientCert>,
}

/// A client certificate chain (leaf first) and its PKCS#8 key, DER.
#[derive(Clone)]
pub struct ClientCert {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

/// TLS 1.2, so that data connections can resume the control connection's session as often as
/// they like: rustls clients use each TLS 1.3 ticket once, and a server that sends no tickets on
/// data connections (ours, on purpose) leaves them only the control connection's two. curl,
/// lftp (GnuTLS) and Python reuse a TLS 1.3 session freely; they cover TLS 1.3.
pub fn connector(resume: bool, client_cert: Option<&ClientCert>) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)));
    let mut config = match client_cert {
        Some(c) => builder
            .with_client_auth_cert(
                c.chain.clone(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key_pkcs8.clone())),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    TlsConnector::from(Arc::new(config))
}

impl RawClient {
    /// Connects in the clear (explicit port) and reads the greeting.
    pub async fn connect(addr: SocketAddr) -> (RawClient, Reply) {
        Self::connect_as(addr, None).await
    }

    /// Connects in the clear (explicit port); TLS handshakes will present `client_cert`.
    pub async fn connect_as(
        addr: SocketAddr,
        client_cert: Option<ClientCert>,
    ) -> (RawClient, Reply) {
        let mut c = Self::tcp(addr, client_cert, &[]).await;
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// As [`RawClient::connect`], sending `preamble` (a PROXY protocol header) first.
    pub async fn connect_after(addr: SocketAddr, preamble: &[u8]) -> (RawClient, Reply) {
        let mut c = Self::tcp(addr, None, preamble).await;
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// As [`RawClient::connect_implicit`], sending `preamble` (a PROXY protocol header) first.
    pub async fn connect_implicit_after(addr: SocketAddr, preamble: &[u8]) -> (RawClient, Reply) {
        let mut c = Self::tcp(addr, None, preamble).await;
        c.handshake().await.expect("implicit handshake");
        let greeting = c.reply().await;
        (c, greeting)
    }

    /// A TCP connection to `addr` that has sent `preamble`, not yet TLS.
    async fn tcp(addr: SocketAddr, client_cert: Option<ClientCert>, preamble: &[u8]) -> RawClient {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(preamble).await.expect("preamble");
        RawClient {
            stream: Stream::Plain(tcp),
            buf: Vec::new(),
            addr,
            connector: connector(true, client_cert.as_ref()),
            client_cert,
            timeout: TIMEOUT,
        }
    }

    /// Connects to the implicit port: TLS first, then the greeting.
    pub async fn connect_implicit(addr: SocketAddr) -> (RawClient, Reply) {
        Self::try_connect_implicit(addr, None)
            .await
            .expect("implicit handshake and greeting")
    }

    /// Connects to the implicit port presenting `client_cert`; `None` if the server refuses
    /// the handshake (with TLS 1.3 that shows only when the greeting never comes).
    pub async fn try_connect_implicit(
        addr: SocketAddr,
        client_cert: Option<ClientCert>,
    ) -> Option<(RawClient, Reply)> {
        let mut c = Self::tcp(addr, client_cert, &[]).await;
        c.handshake().await.ok()?;
        let greeting = c.try_reply().await?;
        Some((c, greeting))
    }

    /// The DER certificate the server presented in the control connection's handshake.
    pub fn server_certificate(&self) -> Option<Vec<u8>> {
        match &self.stream {
            Stream::Tls(s) => Some(s.get_ref().1.peer_certificates()?.first()?.to_vec()),
            _ => None,
        }
    }

    /// Explicit FTPS up to a logged-in session with PROT P.
    pub async fn login_explicit(addr: SocketAddr, user: &str, password: &str) -> RawClient {
        let (mut c, g) = Self::connect(addr).await;
        assert_eq!(g.code, 220);
        c.secure_login(user, password).await;
        c
    }

    /// After the greeting on the explicit port: AUTH TLS, login, PBSZ 0, PROT P, TYPE I.
    pub async fn secure_login(&mut self, user: &str, password: &str) {
        self.expect("AUTH TLS", 234).await;
        self.handshake().await.expect("handshake");
        self.expect(&format!("USER {user}"), 331).await;
        self.expect(&format!("PASS {password}"), 230).await;
        self.expect("PBSZ 0", 200).await;
        self.expect("PROT P", 200).await;
        self.expect("TYPE I", 200).await;
    }

    /// Waits up to `timeout` for each reply from now on (for replies that follow slow S3 retries).
    pub fn set_reply_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// From now on, TLS handshakes (data connections) never resume a session.
    pub fn without_resumption(&mut self) {
        self.connector = connector(false, self.client_cert.as_ref());
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// TLS handshake on the control connection (after 234, or at once on the implicit port).
    pub async fn handshake(&mut self) -> std::io::Result<()> {
        self.buf.clear();
        let tcp = match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Plain(t) => t,
            _ => panic!("not plain"),
        };
        let name = ServerName::try_from("localhost").expect("name");
        let tls = tokio::time::timeout(TIMEOUT, self.connector.connect(name, tcp))
            .await
            .map_err(|_| std::io::Error::other("handshake timeout"))??;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }

    /// Ends TLS on the control connection and keeps the TCP connection (CCC, REIN).
    pub async fn end_tls(&mut self) {
        let tls = match std::mem::replace(&mut self.stream, Stream::Gone) {
            Stream::Tls(t) => t,
            _ => panic!("not TLS"),
        };
        self.buf.clear();
        self.stream = Stream::Plain(close_tls(*tls, TIMEOUT).await);
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes).await.expect("write"),
            Stream::Tls(s) => {
                s.write_all(bytes).await.expect("write");
                s.flush().await.expect("flush");
            }
            Stream::Gone => panic!("gone"),
        }
    }

    async fn read_some(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 4096];
        let n = match &mut self.stream {
            Stream::Plain(s) => tokio::time::timeout(self.timeout, s.read(&mut chunk)).await,
            Stream::Tls(s) => tokio::time::timeout(self.timeout, s.read(&mut chunk)).await,
            Stream::Gone => return Ok(0),
        }
        .map_err(|_| std::io::Error::other("timed out waiting for a reply"))??;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one (possibly multi-line) reply. Panics if the connection closes first.
    pub async fn reply(&mut self) -> Reply {
        self.try_reply()
            .await
            .expect("connection closed before a reply")
    }

    /// A reply, or `None` if the server closed the connection.
    pub async fn try_reply(&mut self) -> Option<Reply> {
        loop {
            if let Some(r) = take_reply(&mut self.buf) {
                return Some(r);
            }
            match self.read_some().await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Sends `line` and asserts the reply code.
    pub async fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line).await;
        assert_eq!(r.code, code, "{line} -> {}", r.text);
        r
    }

    /// EPSV, then connects to the announced port (TLS if `tls`). Returns the data stream.
    pub async fn epsv(&mut self) -> u16 {
        let r = self.expect("EPSV", 229).await;
        let inner = r.text.split("|||").nth(1).expect("EPSV reply");
        inner
            .trim_end_matches([')', '|'])
            .trim_end_matches('|')
            .parse()
            .expect("port")
    }

    /// TLS client over a data connection the server opened (active mode).
    pub async fn tls_over(&self, tcp: TcpStream) -> DataStream {
        let name = ServerName::try_from("localhost").expect("name");
        let s = tokio::time::timeout(TIMEOUT, self.connector.connect(name, tcp))
            .await
            .expect("data TLS timeout")
            .expect("data TLS");
        DataStream::Tls(Box::new(s))
    }

    pub async fn data_connect(&self, port: u16, tls: bool) -> DataStream {
        self.try_data_connect_after(port, &[], tls)
            .await
            .expect("data TLS")
    }

    /// Opens a data connection that starts with `preamble` (a PROXY protocol header); under TLS
    /// the handshake's error is returned (a server that refuses the connection closes it).
    pub async fn try_data_connect_after(
        &self,
        port: u16,
        preamble: &[u8],
        tls: bool,
    ) -> std::io::Result<DataStream> {
        let mut tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((self.addr.ip(), port)))
            .await
            .expect("data connect timeout")
            .expect("data connect");
        tcp.write_all(preamble).await?;
        if !tls {
            return Ok(DataStream::Plain(tcp));
        }
        let name = ServerName::try_from("localhost").expect("name");
        let s = tokio::time::timeout(TIMEOUT, self.connector.connect(name, tcp))
            .await
            .expect("data TLS timeout")?;
        Ok(DataStream::Tls(Box::new(s)))
    }
}

/// A client data connection.
pub enum DataStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl DataStream {
    pub async fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            DataStream::Plain(s) => s.read_to_end(&mut out).await?,
            DataStream::Tls(s) => s.read_to_end(&mut out).await?,
        };
        Ok(out)
    }

    /// Reads exactly `n` bytes (a client that stops reading part-way).
    pub async fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut out = vec![0u8; n];
        match self {
            DataStream::Plain(s) => s.read_exact(&mut out).await?,
            DataStream::Tls(s) => s.read_exact(&mut out).await?,
        };
        Ok(out)
    }

    pub async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            DataStream::Plain(s) => s.write_all(b).await,
            DataStream::Tls(s) => s.write_all(b).await,
        }
    }

    /// Clean end of an upload: close_notify (TLS) and FIN.
    pub async fn finish(mut self) -> std::io::Result<()> {
        match &mut self {
            DataStream::Plain(s) => s.shutdown().await,
            DataStream::Tls(s) => s.shutdown().await,
        }
    }

    /// A TLS error mid-stream: `bytes` written straight onto the TCP connection under the TLS
    /// session (a record that fails to decrypt), then a FIN.
    pub async fn corrupt(self, bytes: &[u8]) -> std::io::Result<()> {
        let mut tcp = match self {
            DataStream::Plain(s) => s,
            DataStream::Tls(mut s) => {
                s.flush().await?;
                s.into_inner().0
            }
        };
        tcp.write_all(bytes).await?;
        tcp.shutdown().await
    }

    /// A truncated TLS stream: FIN without close_notify (what a client killed mid-send leaves, or
    /// a middlebox cutting the connection). The server must not take it for the end of the file.
    pub async fn close_without_notify(self) -> std::io::Result<()> {
        self.corrupt(&[]).await
    }

    /// Abrupt end: TCP reset, no close_notify.
    pub fn reset(self) {
        let tcp = match self {
            DataStream::Plain(s) => s,
            DataStream::Tls(s) => s.into_inner().0,
        };
        // SO_LINGER 0: close sends RST at once (no blocking: the linger time is zero).
        #[allow(deprecated)]
        let _ = tcp.set_linger(Some(Duration::ZERO));
        drop(tcp);
    }
}

/// Ends a client TLS session and keeps the stream under it (CCC, REIN): close_notify, then read
/// to the server's, waiting at most `wait`.
pub async fn close_tls<S: AsyncRead + AsyncWrite + Unpin>(
    mut tls: TlsStream<S>,
    wait: Duration,
) -> S {
    tls.get_mut().1.send_close_notify();
    tls.flush().await.expect("flush");
    let mut sink = [0u8; 256];
    loop {
        match tokio::time::timeout(wait, tls.read(&mut sink)).await {
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => continue,
            other => panic!("waiting for close_notify: {other:?}"),
        }
    }
    tls.into_inner().0
}

/// Takes one complete reply off the front of `buf`: `NNN text`, or `NNN-` … up to a line
/// starting `NNN `. `None` while it is incomplete. A first line without a code is a reply of its
/// own, with code 0 (no test expects one).
pub fn take_reply(buf: &mut Vec<u8>) -> Option<Reply> {
    let mut lines: Vec<String> = Vec::new();
    let mut pos = 0;
    loop {
        let end = pos + buf[pos..].iter().position(|&b| b == b'\n')?;
        lines.push(
            String::from_utf8_lossy(&buf[pos..end])
                .trim_end()
                .to_string(),
        );
        pos = end + 1;
        let first = &lines[0];
        let code = first.get(..3).and_then(|c| c.parse::<u16>().ok());
        let done = match code {
            None => true,
            Some(_) if first.as_bytes().get(3) != Some(&b'-') => true,
            Some(c) => lines.len() > 1 && lines[lines.len() - 1].starts_with(&format!("{c} ")),
        };
        if done {
            buf.drain(..pos);
            return Some(Reply {
                code: code.unwrap_or(0),
                text: lines.join("\n"),
            });
        }
    }
}

#[derive(Debug)]
pub struct AcceptAny(pub Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
