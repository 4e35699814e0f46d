//! TLS configuration: rustls server configs for the control and data connections.
//!
//! Both configs share one certificate and one session cache, so a client can resume its control
//! connection's TLS session on each data connection (RFC 4217 §10 recommends it; curl, lftp and
//! FileZilla do it). They differ in one way: data connections send no TLS 1.3 session tickets.
//! A ticket the client never reads sits in its socket when it closes an upload; its kernel then
//! answers with a reset, and ours may discard upload bytes not yet read (TESTING.md, "TLS 1.3
//! upload trap"). Tickets from the control connection are all a client needs to resume.
//!
//! Resumption is bound to the control connection: each session sees the shared cache through its
//! own tag (`BoundSessions`), so a data connection can only resume a TLS session that its own
//! control connection created, and `tls.require_session_reuse` can insist that it does.
//!
//! rustls supports TLS 1.2 and 1.3 only, so SSLv3/TLS 1.0/1.1 ClientHellos are refused by design.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ServerSessionMemoryCache, StoresServerSessions},
    ServerConfig,
};
use tokio_rustls::TlsAcceptor;

/// Session cache entries (TLS 1.2 session ids and TLS 1.3 stateful tickets).
const SESSION_CACHE_SIZE: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key}: cannot read {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {path}: {reason}")]
    Invalid {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "tls.cert_file / tls.key_file: the key does not match the certificate, or is unusable: {0}"
    )]
    Rustls(#[from] rustls::Error),
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The TLS configuration of the whole server. Each session gets its own pair of acceptors from
/// [`TlsAcceptors::for_session`], bound to that session's TLS sessions.
#[derive(Clone)]
pub struct TlsAcceptors {
    control: Arc<ServerConfig>,
    data: Arc<ServerConfig>,
    cache: Arc<ServerSessionMemoryCache>,
}

/// One control connection's acceptors.
#[derive(Clone)]
pub struct SessionTls {
    /// The control connection (AUTH TLS, implicit port).
    pub control: TlsAcceptor,
    /// Its data connections under PROT P.
    pub data: TlsAcceptor,
}

impl TlsAcceptors {
    /// Loads the certificate chain and key (config keys `tls.cert_file`, `tls.key_file`).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let certs = load_certs(cert_file)?;
        let key = load_key(key_file)?;
        Self::from_parts(certs, key)
    }

    pub fn from_parts(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let control = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let mut data = control.clone();
        data.send_tls13_tickets = 0;
        Ok(TlsAcceptors {
            control: Arc::new(control),
            data: Arc::new(data),
            cache: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
        })
    }

    /// Acceptors for session `tag` (unique per control connection): TLS sessions its control
    /// connection creates can be resumed only by its own data connections (RFC 4217 §10's
    /// binding of data to control), never by another session's.
    pub fn for_session(&self, tag: u64) -> SessionTls {
        let store: Arc<dyn StoresServerSessions> = Arc::new(BoundSessions {
            cache: self.cache.clone(),
            tag,
        });
        let mut control = (*self.control).clone();
        control.session_storage = store.clone();
        let mut data = (*self.data).clone();
        data.session_storage = store;
        SessionTls {
            control: TlsAcceptor::from(Arc::new(control)),
            data: TlsAcceptor::from(Arc::new(data)),
        }
    }
}

/// One session's view of the shared session cache: entries are stored with the session's tag in
/// front and only entries with the same tag are found.
#[derive(Debug)]
struct BoundSessions {
    cache: Arc<ServerSessionMemoryCache>,
    tag: u64,
}

impl StoresServerSessions for BoundSessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        let mut tagged = self.tag.to_be_bytes().to_vec();
        tagged.extend_from_slice(&value);
        self.cache.put(key, tagged)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let tagged = self.cache.get(key)?;
        let (tag, value) = tagged.split_at_checked(8)?;
        (tag == self.tag.to_be_bytes()).then(|| value.to_vec())
    }

    /// rustls takes TLS 1.3 tickets (single use). Data connections send no tickets of their own
    /// (see the module comment), so a client resumes every data connection with a ticket from the
    /// control connection: tickets must stay valid. Reuse only matters for 0-RTT replay, and
    /// early data is off.
    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.get(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(|source| TlsError::Read {
        key: "tls.cert_file",
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            key: "tls.cert_file",
            path: path.to_path_buf(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            key: "tls.cert_file",
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = fs::read(path).map_err(|source| TlsError::Read {
        key: "tls.key_file",
        path: path.to_path_buf(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::Invalid {
        key: "tls.key_file",
        path: path.to_path_buf(),
        reason: format!("no usable PEM private key: {e}"),
    })
}

/// Makes a self-signed certificate for `localhost`/`127.0.0.1`/`::1` in `dir` (`cert.pem`,
/// `key.pem`) unless both exist already; returns their paths. For the development default only.
pub fn ensure_self_signed(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.is_file() && key_path.is_file() {
        return Ok((cert_path, key_path));
    }
    let names = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    let cert =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    fs::create_dir_all(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_private(&key_path, cert.key_pair.serialize_pem().as_bytes())?;
    fs::write(&cert_path, cert.cert.pem()).map_err(|source| TlsError::Write {
        path: cert_path.clone(),
        source,
    })?;
    Ok((cert_path, key_path))
}

/// Writes a file only its owner can read (a private key).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let err = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trip_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, k) = ensure_self_signed(dir.path()).expect("generate");
        let before = fs::read(&c).expect("cert");
        TlsAcceptors::load(&c, &k).expect("load");
        // A second call keeps the existing certificate.
        ensure_self_signed(dir.path()).expect("again");
        assert_eq!(fs::read(&c).expect("cert"), before);
    }

    #[test]
    fn missing_certificate_names_the_key() {
        let e = TlsAcceptors::load(Path::new("/nonexistent/c.pem"), Path::new("/nonexistent/k"))
            .err()
            .expect("must fail")
            .to_string();
        assert!(
            e.starts_with("tls.cert_file: cannot read /nonexistent/c.pem"),
            "{e}"
        );
    }

    #[test]
    fn garbage_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, _) = ensure_self_signed(dir.path()).expect("generate");
        let bad = dir.path().join("bad.pem");
        fs::write(&bad, "not a key").expect("write");
        let e = TlsAcceptors::load(&c, &bad)
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.starts_with("tls.key_file:"), "{e}");
    }
}

/// A TCP connection that is either plain or TLS: the control connection switches between the two
/// (AUTH TLS, CCC, REIN) and a data connection is one or the other by PROT level.
pub enum MaybeTls {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>),
}

impl MaybeTls {
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

    impl AsyncRead for MaybeTls {
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

    impl AsyncWrite for MaybeTls {
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
