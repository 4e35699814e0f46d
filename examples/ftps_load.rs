//! Benchmark and load client: many FTPS sessions at once from one process (bench/run.sh,
//! bench/load.sh).
//!
//! ```text
//! ftps_load transfer  --port P --sessions N --transfers M --size BYTES --op stor|retr|both
//! ftps_load idle      --port P --sessions N --ready-file F     hold N sessions until SIGTERM
//! ftps_load handshake --port P --secs S --concurrency C [--resume]   implicit port only
//! ftps_load list      --port P --path DIR --repeat R            LIST: first byte, total
//! ftps_load datarate  --port P --secs S --concurrency C --size B  data connections per minute
//! ftps_load pget      --port P --path F --size BYTES --streams S   one file, S ranged RETRs
//! ftps_load hash      --password PW                             a cheap argon2id hash
//! ```
//!
//! Every session is a real FTPS session: TLS 1.3 (explicit `AUTH TLS` or implicit), USER/PASS,
//! `PBSZ 0`, `PROT P`, `TYPE I`; every data connection is EPSV + TLS resuming the control
//! connection's session (each session has its own resumption store, as the server binds data
//! to control). rustls uses each TLS 1.3 ticket once and the server sends two per control
//! connection, so a session here makes at most two data connections (one STOR, one RETR; LIST
//! opens a session per listing). Certificates are not verified (the bench uses a throw-away self-signed one), but
//! handshake signatures are, so a handshake costs what it costs a real client. Results are one
//! JSON object on stdout; the exit code is 1 if any session or transfer failed.

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::Arc,
    task::{Context as TaskContext, Poll},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        ClientSessionMemoryCache, Resumption,
    },
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{CertificateDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf},
    net::TcpStream,
    sync::Semaphore,
    task::JoinSet,
    time::timeout,
};
use tokio_rustls::{client::TlsStream, TlsConnector};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Mode {
    /// `AUTH TLS` after the greeting.
    Explicit,
    /// TLS from the first byte.
    Implicit,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Op {
    Stor,
    Retr,
    /// STOR, then RETR of the same files.
    Both,
}

#[derive(ClapArgs, Clone)]
struct Conn {
    #[arg(long, default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    #[arg(long)]
    port: u16,
    #[arg(long, value_enum, default_value = "explicit")]
    mode: Mode,
    #[arg(long, default_value = "bench")]
    user: String,
    #[arg(long)]
    password: String,
    /// Sessions connecting and logging in at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Limit for any one step (login, one transfer).
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// N sessions logged in, M of them moving SIZE bytes each at the same time.
    Transfer {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        sessions: usize,
        #[arg(long)]
        transfers: usize,
        /// Bytes per transfer.
        #[arg(long)]
        size: u64,
        #[arg(long, value_enum, default_value = "both")]
        op: Op,
        /// Directory (must exist, or be the home) the files go to.
        #[arg(long, default_value = "")]
        dir: String,
    },
    /// N sessions logged in and idle; writes `ready-file` once they are, quits them on SIGTERM.
    Idle {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        sessions: usize,
        #[arg(long)]
        ready_file: PathBuf,
    },
    /// TLS handshakes per second on the implicit port: connect, handshake, read the greeting.
    Handshake {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 10)]
        secs: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Offer to resume the worker's previous TLS session.
        #[arg(long)]
        resume: bool,
    },
    /// LIST of one directory, `repeat` times: time to the first data byte and to `226`.
    List {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        path: String,
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
    /// Data connections per minute: `concurrency` sessions (TLS 1.2, whose session a client
    /// may resume any number of times) each doing RETR of one small file back to back for
    /// `secs`; counts the data connections and the PASV refusals (`425`).
    Datarate {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 30)]
        secs: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Bytes of the file each RETR reads.
        #[arg(long, default_value_t = 1024)]
        size: u64,
    },
    /// Download throughput of one file: `streams` sessions at once, each `REST` + `RETR` of its
    /// share, as `lftp pget` does (1: a plain `RETR`). Bytes are counted and discarded; a share
    /// that is not the last is cut by closing the data connection once it has its bytes (the
    /// server then answers 426, as lftp sees). Timed from the first EPSV to the last byte and
    /// `226`; the logins before are timed apart (`login_seconds`).
    Pget {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        path: String,
        /// The file's size in bytes (the bytes received must add up to it).
        #[arg(long)]
        size: u64,
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Read buffer per stream, KiB.
        #[arg(long, default_value_t = 1024)]
        buf_kib: usize,
    },
    /// An argon2id hash with small parameters (m = 1 MiB, t = 1) for bench users, so that
    /// thousands of logins measure sessions rather than password hashing.
    Hash {
        #[arg(long)]
        password: String,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let out = match Cli::parse().cmd {
        Cmd::Transfer {
            conn,
            sessions,
            transfers,
            size,
            op,
            dir,
        } => transfer(conn, sessions, transfers, size, op, dir).await?,
        Cmd::Idle {
            conn,
            sessions,
            ready_file,
        } => idle(conn, sessions, ready_file).await?,
        Cmd::Handshake {
            conn,
            secs,
            concurrency,
            resume,
        } => handshakes(conn, secs, concurrency, resume).await?,
        Cmd::List { conn, path, repeat } => list(conn, &path, repeat).await?,
        Cmd::Datarate {
            conn,
            secs,
            concurrency,
            size,
        } => datarate(conn, secs, concurrency, size).await?,
        Cmd::Pget {
            conn,
            path,
            size,
            streams,
            buf_kib,
        } => pget(conn, &path, size, streams, buf_kib << 10).await?,
        Cmd::Hash { password } => {
            use argon2::{password_hash::SaltString, Argon2, Params, PasswordHasher};
            let params = Params::new(1024, 1, 1, None).map_err(|e| anyhow!("{e}"))?;
            let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            let hash = argon
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| anyhow!("{e}"))?;
            println!("{hash}");
            return Ok(());
        }
    };
    println!("{out}");
    if out["errors"].as_u64().unwrap_or(0) > 0 {
        std::process::exit(1);
    }
    Ok(())
}

// --- TLS -------------------------------------------------------------------------------------

/// Accepts any certificate but checks handshake signatures (see the module comment).
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
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
        verify_tls13_signature(
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

fn base_tls() -> Result<ClientConfig> {
    tls_with(&rustls::version::TLS13)
}

fn tls_with(version: &'static rustls::SupportedProtocolVersion) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// A connector with its own resumption store: the server lets a data connection resume only
/// its own control connection's session, so sessions must not share tickets.
fn session_connector(base: &ClientConfig) -> TlsConnector {
    let mut config = base.clone();
    config.resumption = Resumption::store(Arc::new(ClientSessionMemoryCache::new(4)));
    TlsConnector::from(Arc::new(config))
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("a valid DNS name")
}

// --- FTP control connection ------------------------------------------------------------------

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// While the plain stream is inside the `AUTH TLS` handshake.
    Upgrading,
}

fn upgrading() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "control connection is being secured",
    )
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

struct Session {
    stream: Stream,
    /// Bytes read past the last reply.
    pending: Vec<u8>,
    tls: TlsConnector,
    host: std::net::IpAddr,
}

impl Session {
    /// Connects, secures and logs in (PBSZ 0, PROT P, TYPE I).
    async fn open(c: &Conn, base: &ClientConfig) -> Result<Session> {
        let tls = session_connector(base);
        let tcp = TcpStream::connect(SocketAddr::new(c.host, c.port)).await?;
        let _ = tcp.set_nodelay(true);
        let stream = match c.mode {
            Mode::Implicit => Stream::Tls(Box::new(tls.connect(server_name(), tcp).await?)),
            Mode::Explicit => Stream::Plain(tcp),
        };
        let mut s = Session {
            stream,
            pending: Vec::new(),
            tls,
            host: c.host,
        };
        s.expect(220).await?;
        if c.mode == Mode::Explicit {
            s.command("AUTH TLS", 234).await?;
            let Stream::Plain(tcp) = std::mem::replace(&mut s.stream, Stream::Upgrading) else {
                bail!("control connection already secured");
            };
            s.stream = Stream::Tls(Box::new(s.tls.connect(server_name(), tcp).await?));
        }
        s.command(&format!("USER {}", c.user), 331).await?;
        s.command(&format!("PASS {}", c.password), 230).await?;
        s.command("PBSZ 0", 200).await?;
        s.command("PROT P", 200).await?;
        s.command("TYPE I", 200).await?;
        Ok(s)
    }

    /// Reads one (possibly multi-line) reply: its code and text.
    async fn reply(&mut self) -> Result<(u16, String)> {
        let mut text = String::new();
        let mut code = None;
        loop {
            let line = loop {
                if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = self.pending.drain(..=i).collect();
                    break String::from_utf8_lossy(&line).trim_end().to_string();
                }
                let mut buf = [0u8; 4096];
                let n = self.stream.read(&mut buf).await?;
                if n == 0 {
                    bail!("control connection closed (after {text:?})");
                }
                self.pending.extend_from_slice(&buf[..n]);
            };
            text.push_str(&line);
            text.push('\n');
            let head = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let first = *code.get_or_insert(head.ok_or_else(|| anyhow!("bad reply {line:?}"))?);
            // RFC 959 §4.2: a multi-line reply ends with its code followed by a space.
            if head == Some(first) && line.as_bytes().get(3) != Some(&b'-') {
                return Ok((first, text));
            }
        }
    }

    async fn expect(&mut self, want: u16) -> Result<String> {
        let (code, text) = self.reply().await?;
        if code != want {
            bail!("expected {want}, got {}", text.trim_end());
        }
        Ok(text)
    }

    async fn send(&mut self, line: &str) -> Result<()> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn command(&mut self, line: &str, want: u16) -> Result<String> {
        self.send(line).await?;
        self.expect(want)
            .await
            .with_context(|| line.split(' ').next().unwrap_or("").to_string())
    }

    /// EPSV, connect, send `command`, 150, then the data connection's TLS handshake (the server
    /// sends 150 before it opens the data channel). Returns the data stream and whether its
    /// handshake resumed the control session.
    async fn data(&mut self, command: &str) -> Result<(TlsStream<TcpStream>, bool)> {
        self.data_at(None, command).await
    }

    /// [`Session::data`] with `REST offset` sent right before `command` (RFC 3659 §5.3).
    async fn data_at(
        &mut self,
        rest: Option<u64>,
        command: &str,
    ) -> Result<(TlsStream<TcpStream>, bool)> {
        let text = self.command("EPSV", 229).await?;
        // "229 Entering Extended Passive Mode (|||port|)"
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|r| r.split('|').next())
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("no port in {text:?}"))?;
        let tcp = TcpStream::connect(SocketAddr::new(self.host, port)).await?;
        let _ = tcp.set_nodelay(true);
        if let Some(offset) = rest {
            self.command(&format!("REST {offset}"), 350).await?;
        }
        self.send(command).await?;
        let (code, text) = self.reply().await?;
        if code != 150 && code != 125 {
            bail!("{command}: {}", text.trim_end());
        }
        let tls = self.tls.connect(server_name(), tcp).await?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        Ok((tls, resumed))
    }

    async fn stor(&mut self, name: &str, size: u64) -> Result<()> {
        let (mut data, _) = self.data(&format!("STOR {name}")).await?;
        let pattern = pattern();
        let mut left = size;
        while left > 0 {
            let n = left.min(pattern.len() as u64) as usize;
            data.write_all(&pattern[..n]).await?;
            left -= n as u64;
        }
        // close_notify, then the server's 226 says the object is committed.
        data.shutdown().await?;
        self.expect(226).await?;
        Ok(())
    }

    async fn retr(&mut self, name: &str, size: u64) -> Result<()> {
        let (mut data, _) = self.data(&format!("RETR {name}")).await?;
        let pattern = pattern();
        let mut buf = vec![0u8; 256 * 1024];
        let mut got = 0u64;
        loop {
            let n = data.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            // The file was written as the pattern repeated: check every byte against it.
            let mut off = 0;
            while off < n {
                let at = ((got + off as u64) % pattern.len() as u64) as usize;
                let len = (n - off).min(pattern.len() - at);
                if buf[off..off + len] != pattern[at..at + len] {
                    bail!(
                        "RETR {name}: content differs near byte {}",
                        got + off as u64
                    );
                }
                off += len;
            }
            got += n as u64;
        }
        // Close our side at once, as curl does: the server waits (up to 2 s) for the client's
        // close before it sends 226.
        let _ = data.shutdown().await;
        drop(data);
        self.expect(226).await?;
        if got != size {
            bail!("RETR {name}: {got} bytes, expected {size}");
        }
        Ok(())
    }

    /// `RETR name` from `offset`, reading `len` bytes into a scratch buffer; with `to_end` the
    /// transfer runs to the server's EOF and `226`, otherwise the data connection is closed as
    /// soon as `len` bytes are in (and the server's 426 or 226 read). Returns the bytes of the
    /// range received and when the last of them (or the `226`) arrived.
    async fn retr_range(
        &mut self,
        name: &str,
        offset: u64,
        len: u64,
        to_end: bool,
        buf_len: usize,
    ) -> Result<(u64, Instant)> {
        let rest = (offset > 0).then_some(offset);
        let (mut data, _) = self.data_at(rest, &format!("RETR {name}")).await?;
        let mut buf = vec![0u8; buf_len.max(16 << 10)];
        let mut got = 0u64;
        while to_end || got < len {
            let n = data.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        if to_end {
            let _ = data.shutdown().await;
            drop(data);
            self.expect(226).await?;
            if got != len {
                bail!("RETR {name} from {offset}: {got} bytes, expected {len}");
            }
            return Ok((got, Instant::now()));
        }
        let done = Instant::now();
        drop(data);
        let (code, text) = self.reply().await?;
        if code != 226 && code != 426 {
            bail!("RETR {name} cut at {len}: {}", text.trim_end());
        }
        if got < len {
            bail!("RETR {name} from {offset}: {got} bytes, expected {len}");
        }
        Ok((len, done))
    }

    async fn quit(mut self) {
        let _ = timeout(Duration::from_secs(5), self.command("QUIT", 221)).await;
    }
}

/// 1 MiB of xorshift output: incompressible, the same in every process.
fn pattern() -> &'static [u8] {
    static PATTERN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        (0..(1 << 20) / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect()
    })
}

// --- modes -----------------------------------------------------------------------------------

/// Seconds at quantile `q` (nearest rank) of sorted `v`.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn errors_json(errors: &[String]) -> serde_json::Value {
    // The first few messages say what went wrong; the count says how often.
    serde_json::json!(errors.iter().take(5).collect::<Vec<_>>())
}

/// Opens `n` sessions, `connect_concurrency` at a time. Failures are returned as messages.
async fn open_sessions(c: &Conn, n: usize) -> Result<(Vec<Session>, Vec<String>, f64)> {
    let base = base_tls()?;
    let t0 = Instant::now();
    let slots = Arc::new(Semaphore::new(c.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let permit = slots.clone().acquire_owned().await?;
        let (c, base) = (c.clone(), base.clone());
        tasks.spawn(async move {
            let out = timeout(
                Duration::from_secs(c.timeout_secs),
                Session::open(&c, &base),
            )
            .await;
            drop(permit);
            match out {
                Ok(r) => r,
                Err(_) => Err(anyhow!("login timed out")),
            }
        });
    }
    let mut sessions = Vec::with_capacity(n);
    let mut errors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(s)) => sessions.push(s),
            Ok(Err(e)) => errors.push(format!("login: {e:#}")),
            Err(e) => errors.push(format!("login task: {e}")),
        }
    }
    Ok((sessions, errors, t0.elapsed().as_secs_f64()))
}

async fn quit_all(sessions: Vec<Session>) {
    let mut tasks = JoinSet::new();
    for s in sessions {
        tasks.spawn(s.quit());
    }
    while tasks.join_next().await.is_some() {}
}

async fn transfer(
    c: Conn,
    n: usize,
    m: usize,
    size: u64,
    op: Op,
    dir: String,
) -> Result<serde_json::Value> {
    let (mut sessions, mut errors, login_secs) = open_sessions(&c, n).await?;
    eprintln!(
        "ftps_load: {} sessions logged in in {login_secs:.1} s",
        sessions.len()
    );
    let movers: Vec<Session> = sessions.drain(..m.min(sessions.len())).collect();
    let ops: &[Op] = match op {
        Op::Both => &[Op::Stor, Op::Retr],
        Op::Stor => &[Op::Stor],
        Op::Retr => &[Op::Retr],
    };
    let mut results = serde_json::Map::new();
    let mut movers = movers;
    for &this in ops {
        let t0 = Instant::now();
        let mut tasks = JoinSet::new();
        for (i, mut s) in movers.drain(..).enumerate() {
            let name = if dir.is_empty() {
                format!("load-{i:05}.bin")
            } else {
                format!("{dir}/load-{i:05}.bin")
            };
            let limit = Duration::from_secs(c.timeout_secs);
            tasks.spawn(async move {
                let t = Instant::now();
                let r = match this {
                    Op::Stor => timeout(limit, s.stor(&name, size)).await,
                    _ => timeout(limit, s.retr(&name, size)).await,
                };
                let r = match r {
                    Ok(r) => r,
                    Err(_) => Err(anyhow!("{name}: timed out")),
                };
                (s, r.map(|_| t.elapsed().as_secs_f64()))
            });
        }
        let mut times = Vec::new();
        let mut op_errors = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((s, Ok(secs))) => {
                    times.push(secs);
                    movers.push(s);
                }
                Ok((_, Err(e))) => op_errors.push(format!("{e:#}")),
                Err(e) => op_errors.push(format!("task: {e}")),
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        let name = if this == Op::Stor { "stor" } else { "retr" };
        let ok = times.len();
        results.insert(
            name.into(),
            serde_json::json!({
                "transfers": ok,
                "errors": op_errors.len(),
                "error_samples": errors_json(&op_errors),
                "p50_seconds": quantile(&times, 0.5),
                "p99_seconds": quantile(&times, 0.99),
                "max_seconds": times.last().copied().unwrap_or(0.0),
                "wall_seconds": wall,
                "aggregate_mib_per_s": (ok as u64 * size) as f64 / (1 << 20) as f64 / wall,
            }),
        );
        errors.extend(op_errors);
    }
    let logged_in = sessions.len() + movers.len();
    sessions.extend(movers);
    quit_all(sessions).await;
    Ok(serde_json::json!({
        "mode": "transfer", "sessions_requested": n, "sessions_logged_in": logged_in,
        "login_seconds": login_secs, "transfers_per_op": m, "size_bytes": size,
        "ops": results, "errors": errors.len(), "error_samples": errors_json(&errors),
    }))
}

async fn idle(c: Conn, n: usize, ready_file: PathBuf) -> Result<serde_json::Value> {
    let (sessions, errors, login_secs) = open_sessions(&c, n).await?;
    let summary = serde_json::json!({
        "mode": "idle", "sessions_requested": n, "sessions_logged_in": sessions.len(),
        "login_seconds": login_secs, "errors": errors.len(), "error_samples": errors_json(&errors),
    });
    std::fs::write(&ready_file, summary.to_string())
        .with_context(|| format!("{}", ready_file.display()))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    // The sessions must still be alive: a server that dropped them would make the RSS figure
    // meaningless. NOOP each one before quitting.
    let mut alive = 0;
    let mut lost = Vec::new();
    let mut tasks = JoinSet::new();
    for mut s in sessions {
        tasks.spawn(async move {
            let r = timeout(Duration::from_secs(30), s.command("NOOP", 200)).await;
            s.quit().await;
            r
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(Ok(_))) => alive += 1,
            Ok(Ok(Err(e))) => lost.push(format!("NOOP: {e:#}")),
            Ok(Err(_)) => lost.push("NOOP timed out".into()),
            Err(e) => lost.push(format!("task: {e}")),
        }
    }
    let mut out = summary;
    out["alive_at_end"] = alive.into();
    out["errors"] = (errors.len() + lost.len()).into();
    let mut all = errors;
    all.extend(lost);
    out["error_samples"] = errors_json(&all);
    Ok(out)
}

async fn handshakes(
    c: Conn,
    secs: u64,
    concurrency: usize,
    resume: bool,
) -> Result<serde_json::Value> {
    if c.mode != Mode::Implicit {
        bail!("handshake mode needs --mode implicit (a handshake from the first byte)");
    }
    let base = base_tls()?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let connector = if resume {
            session_connector(&base)
        } else {
            TlsConnector::from(Arc::new(base.clone()))
        };
        let addr = SocketAddr::new(c.host, c.port);
        tasks.spawn(async move {
            let (mut ok, mut resumed, mut errors) = (0u64, 0u64, Vec::new());
            while Instant::now() < deadline {
                let one = async {
                    let tcp = TcpStream::connect(addr).await?;
                    let _ = tcp.set_nodelay(true);
                    let tls = connector.connect(server_name(), tcp).await?;
                    let kind = tls.get_ref().1.handshake_kind();
                    let mut s = Session {
                        stream: Stream::Tls(Box::new(tls)),
                        pending: Vec::new(),
                        tls: connector.clone(),
                        host: addr.ip(),
                    };
                    // The greeting proves the server finished its side too.
                    s.expect(220).await?;
                    anyhow::Ok(kind == Some(HandshakeKind::Resumed))
                };
                match timeout(Duration::from_secs(30), one).await {
                    Ok(Ok(r)) => {
                        ok += 1;
                        resumed += u64::from(r);
                    }
                    Ok(Err(e)) => errors.push(format!("{e:#}")),
                    Err(_) => errors.push("handshake timed out".into()),
                }
            }
            (ok, resumed, errors)
        });
    }
    let (mut ok, mut resumed, mut errors) = (0, 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (o, r, e) = done?;
        ok += o;
        resumed += r;
        errors.extend(e);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "mode": "handshake", "resume_offered": resume, "handshakes": ok, "resumed": resumed,
        "seconds": elapsed, "per_second": ok as f64 / elapsed, "concurrency": concurrency,
        "errors": errors.len(), "error_samples": errors_json(&errors),
    }))
}

async fn list(c: Conn, path: &str, repeat: usize) -> Result<serde_json::Value> {
    let base = base_tls()?;
    let mut runs = Vec::new();
    for _ in 0..repeat {
        // A session per LIST: the server sends two TLS 1.3 tickets on the control connection
        // and none on data connections, and a rustls client uses each ticket once, so a third
        // data connection in one session could not resume (the server then answers 522).
        let mut s = Session::open(&c, &base).await?;
        let t0 = Instant::now();
        let (mut data, _) = s.data(&format!("LIST {path}")).await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut first = None;
        let (mut bytes, mut lines) = (0u64, 0u64);
        loop {
            let n = data.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
            bytes += n as u64;
            lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        let _ = data.shutdown().await;
        drop(data);
        s.expect(226).await?;
        runs.push(serde_json::json!({
            "first_byte_seconds": first.unwrap_or_default(), "seconds": t0.elapsed().as_secs_f64(),
            "bytes": bytes, "lines": lines,
        }));
        s.quit().await;
    }
    Ok(serde_json::json!({ "mode": "list", "path": path, "runs": runs, "errors": 0 }))
}

async fn pget(
    c: Conn,
    path: &str,
    size: u64,
    streams: usize,
    buf_len: usize,
) -> Result<serde_json::Value> {
    let streams = streams.max(1);
    let (sessions, errors, login_secs) = open_sessions(&c, streams).await?;
    if !errors.is_empty() {
        bail!("login: {}", errors.join("; "));
    }
    let share = size.div_ceil(streams as u64).max(1);
    let limit = Duration::from_secs(c.timeout_secs);
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, mut s) in sessions.into_iter().enumerate() {
        let offset = (i as u64 * share).min(size);
        let len = share.min(size - offset);
        let to_end = offset + len == size;
        let name = path.to_string();
        tasks.spawn(async move {
            let r = timeout(limit, s.retr_range(&name, offset, len, to_end, buf_len)).await;
            s.quit().await;
            match r {
                Ok(r) => r,
                Err(_) => Err(anyhow!("RETR {name} from {offset}: timed out")),
            }
        });
    }
    let (mut got, mut last) = (0u64, t0);
    let mut errors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok((n, at))) => {
                got += n;
                last = last.max(at);
            }
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(e) => errors.push(format!("task: {e}")),
        }
    }
    if errors.is_empty() && got != size {
        errors.push(format!("received {got} bytes of {size}"));
    }
    let secs = (last - t0).as_secs_f64();
    Ok(serde_json::json!({
        "mode": "pget", "path": path, "streams": streams, "bytes": got, "seconds": secs,
        "mib_per_s": got as f64 / (1 << 20) as f64 / secs, "login_seconds": login_secs,
        "errors": errors.len(), "error_samples": errors_json(&errors),
    }))
}

async fn datarate(c: Conn, secs: u64, concurrency: usize, size: u64) -> Result<serde_json::Value> {
    // TLS 1.2: a rustls client resumes a TLS 1.2 session as often as it likes (a TLS 1.3
    // ticket only once), so one session can open data connections back to back.
    let base = tls_with(&rustls::version::TLS12)?;
    let name = "datarate.bin";
    let mut first = Session::open(&c, &base).await?;
    first.stor(name, size).await?;
    first.quit().await;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let t0 = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (c, base) = (c.clone(), base.clone());
        tasks.spawn(async move {
            let (mut ok, mut refused, mut errors) = (0u64, 0u64, Vec::new());
            let mut s = match Session::open(&c, &base).await {
                Ok(s) => s,
                Err(e) => return (ok, refused, vec![format!("login: {e:#}")]),
            };
            while Instant::now() < deadline {
                match timeout(Duration::from_secs(30), s.retr(name, size)).await {
                    Ok(Ok(())) => ok += 1,
                    Ok(Err(e)) => {
                        let e = format!("{e:#}");
                        if e.contains("425") {
                            refused += 1;
                        } else {
                            errors.push(e);
                            break;
                        }
                    }
                    Err(_) => {
                        errors.push("RETR timed out".into());
                        break;
                    }
                }
            }
            s.quit().await;
            (ok, refused, errors)
        });
    }
    let (mut ok, mut refused, mut errors) = (0, 0, Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (o, r, e) = done?;
        ok += o;
        refused += r;
        errors.extend(e);
    }
    let elapsed = t0.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "mode": "datarate", "data_connections": ok, "refused_425": refused, "seconds": elapsed,
        "per_minute": ok as f64 * 60.0 / elapsed, "concurrency": concurrency, "size_bytes": size,
        "errors": errors.len() as u64 + refused, "error_samples": errors_json(&errors),
    }))
}
