//! TLS configuration: rustls server configs for the control and data connections.
//!
//! Both configs share one certificate and one session cache, so a client can resume its control
//! connection's TLS session on each data connection (RFC 4217 §10 recommends it; curl, lftp and
//! FileZilla do it). They differ in one way: data connections send no TLS 1.3 session tickets.
//! A ticket the client never reads sits in its socket when it closes an upload; its kernel then
//! answers with a reset, and ours may discard upload bytes not yet read (docs/TESTING.md, "TLS 1.3
//! upload trap"). Tickets from the control connection are all a client needs to resume.
//!
//! Resumption is bound to the control connection: each session sees the shared cache through its
//! own tag (`BoundSessions`), so a data connection can only resume a TLS session that its own
//! control connection created, and `tls.require_session_reuse` can insist that it does.
//!
//! Client certificates (`tls.client_auth`): rustls' webpki verifier checks them against
//! `tls.client_ca_file` during the handshake, on control and data connections alike; the
//! session reads the verified certificate's subject CN ([`common_name`]) to match users'
//! `certificate_cn`. A resumed handshake carries the certificate of the session it resumes.
//!
//! The configs can be swapped while the server runs ([`TlsAcceptors::replace`], driven by
//! `crate::reload`): new sessions get the new ones, running sessions keep theirs.
//!
//! rustls supports TLS 1.2 and 1.3 only, so SSLv3/TLS 1.0/1.1 ClientHellos are refused by design.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier},
    RootCertStore, ServerConfig,
};
use tokio_rustls::TlsAcceptor;

use crate::config::{self, ClientAuth};

/// Moved to `net::stream`; this path stays for existing imports.
pub use crate::net::MaybeTls;

/// Session cache entries (TLS 1.2 session ids and TLS 1.3 stateful tickets), at least.
const SESSION_CACHE_SIZE: usize = 16 * 1024;

/// Cache entries to keep per allowed session: a TLS 1.3 control connection stores the two
/// tickets rustls sends, a TLS 1.2 one its session id; with room to spare, a full server's
/// live sessions never evict each other's entries (an evicted entry means a data connection
/// cannot resume, which `tls.require_session_reuse` turns into a `522`).
const CACHE_ENTRIES_PER_SESSION: usize = 4;

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

/// The contents of the files a TLS configuration is built from. The reloader compares them
/// byte for byte with what it saw last, and builds from exactly the bytes it compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    cert: Vec<u8>,
    key: Vec<u8>,
    /// The client CA bundle, when `tls.client_auth` is not `none`.
    client_ca: Option<Vec<u8>>,
}

impl TlsFiles {
    /// Reads `tls.cert_file`, `tls.key_file` and (client auth on) `tls.client_ca_file`.
    pub fn read(settings: &config::Tls) -> Result<TlsFiles, TlsError> {
        let read = |key: &'static str, path: &Path| {
            fs::read(path).map_err(|source| TlsError::Read {
                key,
                path: path.to_path_buf(),
                source,
            })
        };
        let client_ca = match (settings.client_auth, &settings.client_ca_file) {
            (ClientAuth::None, _) => None,
            (_, Some(path)) => Some(read("tls.client_ca_file", path)?),
            (_, None) => {
                return Err(TlsError::Invalid {
                    key: "tls.client_ca_file",
                    path: PathBuf::new(),
                    reason: "must be set when client certificates are asked for".into(),
                })
            }
        };
        Ok(TlsFiles {
            cert: read("tls.cert_file", &settings.cert_file)?,
            key: read("tls.key_file", &settings.key_file)?,
            client_ca,
        })
    }
}

/// The TLS configuration of the whole server. Each session gets its own pair of acceptors from
/// [`TlsAcceptors::for_session`], bound to that session's TLS sessions.
///
/// The configuration can be replaced while the server runs ([`TlsAcceptors::replace`], used by
/// the reloader): sessions made after that use the new certificate, key and client CA bundle,
/// sessions in progress keep the acceptors they were given. Swapping whole configs (rather than
/// only the certificate behind a `ResolvesServerCert`) changes the certificate and the client
/// CA bundle in one step, and sessions are already given configs of their own.
pub struct TlsAcceptors {
    current: RwLock<Arc<Configs>>,
    cache: Arc<ServerSessionMemoryCache>,
    /// The settings and files it was loaded from; `None` when built in code (nothing to reload).
    source: Option<(config::Tls, TlsFiles)>,
}

/// Control and data configs built from one set of files.
struct Configs {
    control: Arc<ServerConfig>,
    data: Arc<ServerConfig>,
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
    /// Loads the certificate chain, key and client CA bundle that `settings` name
    /// (`tls.cert_file`, `tls.key_file`, `tls.client_ca_file` with `tls.client_auth`).
    pub fn load(settings: &config::Tls) -> Result<Self, TlsError> {
        let files = TlsFiles::read(settings)?;
        let configs = build(settings, &files)?;
        Ok(Self::new(configs, Some((settings.clone(), files))))
    }

    fn new(configs: Configs, source: Option<(config::Tls, TlsFiles)>) -> Self {
        TlsAcceptors {
            current: RwLock::new(Arc::new(configs)),
            cache: ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
            source,
        }
    }

    /// Sizes the session cache for `max_sessions` concurrent sessions (`limits.max_sessions`).
    /// Entries of sessions that have ended are evicted first-in first-out as new ones arrive.
    pub fn sized_for(mut self, max_sessions: usize) -> Self {
        let entries = max_sessions
            .saturating_mul(CACHE_ENTRIES_PER_SESSION)
            .max(SESSION_CACHE_SIZE);
        self.cache = ServerSessionMemoryCache::new(entries);
        self
    }

    /// The settings and file contents it was loaded from (`None` if built in code): where the
    /// reloader starts.
    pub fn source(&self) -> Option<&(config::Tls, TlsFiles)> {
        self.source.as_ref()
    }

    /// Builds a configuration from `files` (read with `settings`) and, if it builds, makes it
    /// the one new sessions get. On error the current one stays.
    pub fn replace(&self, settings: &config::Tls, files: &TlsFiles) -> Result<(), TlsError> {
        let configs = Arc::new(build(settings, files)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = configs;
        Ok(())
    }

    /// Acceptors for session `tag` (unique per control connection): TLS sessions its control
    /// connection creates can be resumed only by its own data connections (RFC 4217 §10's
    /// binding of data to control), never by another session's.
    pub fn for_session(&self, tag: u64) -> SessionTls {
        let configs = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let store: Arc<dyn StoresServerSessions> = Arc::new(BoundSessions {
            cache: self.cache.clone(),
            tag,
        });
        let mut control = (*configs.control).clone();
        control.session_storage = store.clone();
        let mut data = (*configs.data).clone();
        data.session_storage = store;
        SessionTls {
            control: TlsAcceptor::from(Arc::new(control)),
            data: TlsAcceptor::from(Arc::new(data)),
        }
    }
}

fn build(settings: &config::Tls, files: &TlsFiles) -> Result<Configs, TlsError> {
    let certs = parse_certs(&files.cert, "tls.cert_file", &settings.cert_file)?;
    let key = parse_key(&files.key, &settings.key_file)?;
    let verifier = match (&files.client_ca, settings.client_auth) {
        (Some(pem), ClientAuth::Optional | ClientAuth::Required) => {
            let path = settings.client_ca_file.clone().unwrap_or_default();
            Some(client_verifier(pem, &path, settings.client_auth)?)
        }
        _ => None,
    };
    configs_from(certs, key, verifier)
}

/// Control and data configs. Data connections ask for a client certificate as the control
/// connection does: a resumed handshake (the default, `tls.require_session_reuse`) carries the
/// control connection's certificate, and a full one must present a certificate of its own when
/// `tls.client_auth = "required"`.
fn configs_from(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
) -> Result<Configs, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder =
        ServerConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    // Checks that the key belongs to the certificate (rustls' CertifiedKey::keys_match).
    let mut control = builder.with_single_cert(certs, key)?;
    // The server's cipher order (rustls': AES-256-GCM first), not the client's: compliance
    // scanners (testssl) rate "no server cipher order" high.
    control.ignore_client_order = true;
    let mut data = control.clone();
    data.send_tls13_tickets = 0;
    Ok(Configs {
        control: Arc::new(control),
        data: Arc::new(data),
    })
}

/// A verifier for client certificates issued by the CAs in `pem` (webpki: chain, validity
/// dates, client-auth key usage). `optional` lets handshakes without a certificate through.
fn client_verifier(
    pem: &[u8],
    path: &Path,
    mode: ClientAuth,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let invalid = |reason: String| TlsError::Invalid {
        key: "tls.client_ca_file",
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(pem, "tls.client_ca_file", path)? {
        roots
            .add(cert)
            .map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if mode == ClientAuth::Optional {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|e| invalid(e.to_string()))
}

/// The subject common name (CN) of a DER certificate, when it has exactly one: a certificate
/// naming two CNs names nobody in particular, and is not taken for either.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let mut names = subject.iter_common_name();
    let first = names.next()?;
    if names.next().is_some() {
        return None;
    }
    first.as_str().ok().map(str::to_owned)
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

fn parse_certs(
    pem: &[u8],
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            key,
            path: path.to_path_buf(),
            reason: format!("not a PEM certificate chain: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            key,
            path: path.to_path_buf(),
            reason: "no CERTIFICATE block found".into(),
        });
    }
    Ok(certs)
}

fn parse_key(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Invalid {
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

    fn settings(cert: &Path, key: &Path) -> config::Tls {
        let mut tls = config::Config::default().tls;
        tls.cert_file = cert.to_path_buf();
        tls.key_file = key.to_path_buf();
        tls
    }

    #[test]
    fn self_signed_round_trip_loads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, k) = ensure_self_signed(dir.path()).expect("generate");
        let before = fs::read(&c).expect("cert");
        TlsAcceptors::load(&settings(&c, &k)).expect("load");
        // A second call keeps the existing certificate.
        ensure_self_signed(dir.path()).expect("again");
        assert_eq!(fs::read(&c).expect("cert"), before);
    }

    #[test]
    fn the_session_cache_holds_entries_for_every_allowed_session() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, k) = ensure_self_signed(dir.path()).expect("generate");
        // The oldest session's entry survives 3 more per session for 10,000 sessions only
        // when the cache is sized for them.
        let entries: u64 = 10_000 * 3;
        for (max_sessions, kept) in [(1000, false), (10_000, true)] {
            let tls = TlsAcceptors::load(&settings(&c, &k))
                .expect("load")
                .sized_for(max_sessions);
            let first = BoundSessions {
                cache: tls.cache.clone(),
                tag: 0,
            };
            first.put(b"first".to_vec(), b"state".to_vec());
            for i in 1..=entries {
                let other = BoundSessions {
                    cache: tls.cache.clone(),
                    tag: i,
                };
                other.put(i.to_be_bytes().to_vec(), b"state".to_vec());
            }
            assert_eq!(first.get(b"first").is_some(), kept, "{max_sessions}");
        }
    }

    #[test]
    fn missing_certificate_names_the_key() {
        let e = TlsAcceptors::load(&settings(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k"),
        ))
        .err()
        .expect("must fail")
        .to_string();
        assert!(
            e.starts_with("tls.cert_file: cannot read /nonexistent/c.pem"),
            "{e}"
        );
    }

    fn cert_with_cns(cns: &[&str]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
        // rcgen keeps one value per attribute type, so a two-CN subject cannot be made here.
        params.distinguished_name = rcgen::DistinguishedName::new();
        for cn in cns {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, *cn);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().clone()
    }

    #[test]
    fn common_name_is_the_single_cn() {
        assert_eq!(
            common_name(&cert_with_cns(&["partner.example"])).as_deref(),
            Some("partner.example")
        );
        assert_eq!(common_name(&cert_with_cns(&[])), None);
        assert_eq!(common_name(&CertificateDer::from(vec![0x30, 0x03])), None);
    }

    #[test]
    fn a_failed_replace_keeps_the_certificate_and_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, k) = ensure_self_signed(dir.path()).expect("generate");
        let tls = settings(&c, &k);
        let acceptors = TlsAcceptors::load(&tls).expect("load");
        let (_, good) = acceptors.source().expect("loaded from files").clone();
        // Another key: the pair does not match.
        let other = tempfile::tempdir().expect("tempdir");
        let (_, other_key) = ensure_self_signed(other.path()).expect("generate");
        let mismatched = TlsFiles {
            key: fs::read(other_key).expect("key"),
            ..good.clone()
        };
        let e = acceptors
            .replace(&tls, &mismatched)
            .expect_err("mismatch")
            .to_string();
        assert!(e.contains("does not match"), "{e}");
        acceptors.replace(&tls, &good).expect("the good files");

        let mut with_ca = tls.clone();
        with_ca.client_auth = ClientAuth::Required;
        with_ca.client_ca_file = Some(dir.path().join("ca.pem"));
        fs::write(dir.path().join("ca.pem"), "garbage").expect("write");
        let e = TlsAcceptors::load(&with_ca)
            .err()
            .expect("no CA")
            .to_string();
        assert!(e.starts_with("tls.client_ca_file:"), "{e}");
        fs::copy(&c, dir.path().join("ca.pem")).expect("copy");
        TlsAcceptors::load(&with_ca).expect("a CA bundle that parses");
    }

    #[test]
    fn garbage_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, _) = ensure_self_signed(dir.path()).expect("generate");
        let bad = dir.path().join("bad.pem");
        fs::write(&bad, "not a key").expect("write");
        let e = TlsAcceptors::load(&settings(&c, &bad))
            .err()
            .expect("must fail")
            .to_string();
        assert!(e.starts_with("tls.key_file:"), "{e}");
    }
}
