//! Sessions driven in-process over `tokio::io::duplex`: the server's own session engine
//! (`session::serve`, as `session::run` calls it after the TCP parts) with the in-memory store,
//! the real users file and real TLS (AUTH TLS upgrades the pipe), and no control socket. With
//! `#[tokio::test(start_paused = true)]` the clock moves only when every task waits, so the
//! session's timeouts are tested exactly and in milliseconds of real time.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use ftps_s3::{
    auth::UserStore,
    config::Config,
    net::{ClientAddr, ListenerKind},
    server::Server,
    session::{self, SessionEnv},
    tls::TlsAcceptors,
    vfs::{memory::MemoryStorage, Stores},
};
use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, DuplexStream},
    task::JoinHandle,
};
use tokio_rustls::client::TlsStream;

use super::raw::{close_tls, connector, take_reply, Reply};
use super::server::base_config;

/// Bytes the pipe buffers each way; a reply larger than this just waits for the reader.
const PIPE: usize = 64 * 1024;

/// How long the client waits for a reply. On the paused clock a server that never answers costs
/// no real time: the clock jumps here and the test fails.
const REPLY_WAIT: Duration = Duration::from_secs(24 * 3600);

/// What sessions share (users, stores, policy), from the tests' usual config.
pub struct DuplexServer {
    env: Arc<SessionEnv>,
    /// The store every user's home lives in (`partners/<user>/`).
    pub storage: MemoryStorage,
    next_id: u64,
    /// Keeps the bound listeners (never accepting) and the users file alive.
    _server: Server,
    _dir: tempfile::TempDir,
}

impl DuplexServer {
    /// The tests' base config (TLS required, users acme/other/drop), changed by `change`.
    pub async fn start_with(change: impl FnOnce(&mut Config)) -> DuplexServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = base_config(dir.path(), "");
        config.storage.backend = ftps_s3::config::Backend::Local;
        change(&mut config);
        config.validate().expect("valid test config");
        let tls = TlsAcceptors::load(&config.tls).expect("tls");
        let users = UserStore::load(&config.auth.users_file).expect("users");
        let storage = MemoryStorage::new();
        let stores = Stores::single(Arc::new(storage.clone()));
        let server = Server::bind_with(config, tls, users, stores)
            .await
            .expect("server binds");
        DuplexServer {
            env: server.session_env(),
            storage,
            next_id: 1,
            _server: server,
            _dir: dir,
        }
    }

    /// What the server does on SIGTERM: idle sessions answer `421` and close.
    pub fn shut_down(&self) {
        self.env.shutdown.cancel();
    }

    /// A new session on the explicit listener from 127.0.0.1, before its greeting is read.
    pub fn connect(&mut self) -> LineClient {
        self.connect_to(ListenerKind::Explicit)
    }

    /// A new session as the `kind` listener would start it (implicit: TLS first, not done yet).
    pub fn connect_to(&mut self, kind: ListenerKind) -> LineClient {
        let (client_end, server_end) = tokio::io::duplex(PIPE);
        let peer: SocketAddr = "127.0.0.1:50000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:21".parse().expect("addr");
        let id = self.next_id;
        self.next_id += 1;
        let task = tokio::spawn(session::serve(
            self.env.clone(),
            server_end,
            ClientAddr::direct(peer),
            local,
            kind,
            id,
        ));
        LineClient {
            stream: Pipe::Plain(client_end),
            buf: Vec::new(),
            session: task,
        }
    }

    /// A session past its greeting (asserted `220`).
    pub async fn greeted(&mut self) -> LineClient {
        let mut c = self.connect();
        let greeting = c.reply().await;
        assert_eq!(greeting.code, 220, "{}", greeting.text);
        c
    }

    /// A session logged in as `user` (AUTH TLS, USER, PASS).
    pub async fn login(&mut self, user: &str, password: &str) -> LineClient {
        let mut c = self.greeted().await;
        c.expect("AUTH TLS", 234).await;
        c.handshake().await;
        c.expect(&format!("USER {user}"), 331).await;
        c.expect(&format!("PASS {password}"), 230).await;
        c
    }
}

enum Pipe {
    Plain(DuplexStream),
    Tls(Box<TlsStream<DuplexStream>>),
    Gone,
}

/// The client end of one session: command lines out, replies in.
pub struct LineClient {
    stream: Pipe,
    buf: Vec<u8>,
    session: JoinHandle<()>,
}

impl LineClient {
    /// The TLS handshake over the pipe: after AUTH TLS's `234`, or first thing on the implicit
    /// listener.
    pub async fn handshake(&mut self) {
        let plain = match std::mem::replace(&mut self.stream, Pipe::Gone) {
            Pipe::Plain(p) => p,
            _ => panic!("not plain"),
        };
        let name = ServerName::try_from("localhost").expect("name");
        let tls = connector(true, None)
            .connect(name, plain)
            .await
            .expect("TLS handshake over the pipe");
        self.stream = Pipe::Tls(Box::new(tls));
    }

    /// Ends TLS and goes on in the clear over the same pipe (after CCC's `200`, REIN's `220`).
    pub async fn end_tls(&mut self) {
        let tls = match std::mem::replace(&mut self.stream, Pipe::Gone) {
            Pipe::Tls(t) => t,
            _ => panic!("not TLS"),
        };
        self.buf.clear();
        self.stream = Pipe::Plain(close_tls(*tls, REPLY_WAIT).await);
    }

    pub async fn send_line(&mut self, line: &str) {
        let bytes = format!("{line}\r\n");
        let r = match &mut self.stream {
            Pipe::Plain(s) => s.write_all(bytes.as_bytes()).await,
            Pipe::Tls(s) => s.write_all(bytes.as_bytes()).await,
            Pipe::Gone => panic!("no stream"),
        };
        r.expect("write to the session");
        if let Pipe::Tls(s) = &mut self.stream {
            s.flush().await.expect("flush");
        }
    }

    /// The next reply (all its lines), or `None` if the session closed the pipe.
    pub async fn try_reply(&mut self) -> Option<Reply> {
        loop {
            if let Some(r) = take_reply(&mut self.buf) {
                return Some(r);
            }
            let mut chunk = [0u8; 4096];
            let read = async {
                match &mut self.stream {
                    Pipe::Plain(s) => s.read(&mut chunk).await,
                    Pipe::Tls(s) => s.read(&mut chunk).await,
                    Pipe::Gone => Ok(0),
                }
            };
            let n = tokio::time::timeout(REPLY_WAIT, read)
                .await
                .expect("the session neither answered nor closed")
                .ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    pub async fn reply(&mut self) -> Reply {
        self.try_reply()
            .await
            .expect("session closed before a reply")
    }

    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_line(line).await;
        self.reply().await
    }

    /// Sends `line` and asserts the reply code.
    pub async fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line).await;
        assert_eq!(r.code, code, "{line} -> {}", r.text);
        r
    }

    /// Sends each command and compares reply codes; panics listing every mismatch.
    pub async fn table(&mut self, rows: &[(&str, u16)]) {
        let mut wrong = Vec::new();
        for (line, code) in rows {
            let r = self.cmd(line).await;
            if r.code != *code {
                wrong.push(format!("{line}: expected {code}, got {}", r.text));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of {} rows:\n{}",
            wrong.len(),
            rows.len(),
            wrong.join("\n")
        );
    }

    /// Waits for the session to end (it closed its end), and asserts it did.
    pub async fn closed(self) {
        let LineClient {
            mut stream,
            session,
            ..
        } = self;
        tokio::time::timeout(REPLY_WAIT, session)
            .await
            .expect("session did not end")
            .expect("session task panicked");
        let mut rest = [0u8; 64];
        let n = match &mut stream {
            Pipe::Plain(s) => s.read(&mut rest).await.unwrap_or(0),
            Pipe::Tls(s) => s.read(&mut rest).await.unwrap_or(0),
            Pipe::Gone => 0,
        };
        assert_eq!(n, 0, "bytes after the session ended");
    }
}
