//! One control connection, from accept to close.
//!
//! [`serve`] owns the loop: read a line ([`codec`]), parse it ([`command`]), let [`Session::gate`]
//! refuse what the state does not allow, then hand the command to its handler (`handlers/`, by
//! family). Handlers return an [`Outcome`]: usually a [`Reply`], sometimes a reply plus a change
//! of the control socket (AUTH, CCC, REIN, QUIT) or a transfer for [`transfer`] to run. The loop
//! writes the replies, runs the transfers and writes `STAT <path>`'s listing ([`status`]), so
//! each rule about the socket lives here once.
//!
//! [`run`] takes a TCP connection (addresses, PROXY header) and hands it to [`serve`], which
//! takes any [`ControlIo`]: tests drive the same session over an in-memory pipe.

pub mod codec;
pub mod command;
mod env;
mod handlers;
mod policy;
pub mod reply;
pub mod state;
mod status;
mod transfer;

use std::{collections::VecDeque, net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpStream;
use tracing::{debug, info, warn, Instrument, Span};

use crate::auth::{Permission, Permissions};
use crate::net::ControlIo;
use crate::proxy::ClientAddr;
use crate::tls::SessionTls;
use crate::vfs::{Entry, EntryKind, Home, ObjectKey, Place, StorageError, VirtualPath};
use codec::{Connection, Line};
use command::Command;
use reply::Reply;
use state::{ListenerKind, SessionState};
use status::StatusListing;
use transfer::TransferJob;

pub use env::SessionEnv;
pub use policy::{SessionCaps, SessionPolicy};

/// What a handler asks the loop to do.
pub(crate) enum Outcome {
    Reply(Reply),
    /// Reply, then start TLS on the control connection (AUTH TLS/SSL, RFC 4217 §4).
    StartTls(Reply),
    /// Reply, then end the control connection's TLS session (CCC, REIN on explicit).
    EndTls(Reply),
    /// Reply, end TLS, then behave as a new implicit connection (REIN on implicit, MS-FTPS
    /// §3.2.5.3).
    RestartImplicit(Reply),
    /// Reply, then close (QUIT).
    Close(Reply),
    /// Reply 150 and run a transfer on the data connection.
    Transfer(TransferJob),
    /// Write `STAT <path>`'s multi-line 213 on the control connection, page by page.
    Status(StatusListing),
}

impl Outcome {
    /// The reply this outcome sends first, for the command span (a transfer records its final
    /// reply itself).
    fn reply_code(&self) -> Option<u16> {
        match self {
            Outcome::Reply(r)
            | Outcome::StartTls(r)
            | Outcome::EndTls(r)
            | Outcome::RestartImplicit(r)
            | Outcome::Close(r) => Some(r.code),
            Outcome::Transfer(_) => None,
            Outcome::Status(_) => Some(213),
        }
    }
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Self {
        Outcome::Reply(r)
    }
}

/// Whether the control connection is (or was) protected. Policy (`require_tls`) looks at this,
/// not at the socket: after an allowed CCC the socket is plain but the login was protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ControlSecurity {
    Plain,
    Tls,
    /// TLS was ended by CCC after it protected the login.
    Cleared,
}

pub(crate) struct Session {
    /// The session id in logs and audit lines.
    id: u64,
    conn: Connection,
    /// This session's TLS acceptors (resumption bound to this control connection).
    tls: SessionTls,
    state: SessionState,
    security: ControlSecurity,
    /// What every session shares: handles and the typed policy.
    env: Arc<SessionEnv>,
    /// Lines that arrived while a transfer ran, answered after it (RFC 959 allows pipelining).
    pending: VecDeque<Line>,
    /// The session's span: facts learnt later (user, TLS) are recorded on it, not on the
    /// command span that is current when they are learnt.
    span: Span,
}

/// Serves one TCP control connection until QUIT, EOF, timeout or server shutdown: what is TCP's
/// (addresses, `TCP_NODELAY`, the PROXY header), then [`serve`].
pub async fn run(env: Arc<SessionEnv>, mut tcp: TcpStream, kind: ListenerKind, id: u64) {
    let (tcp_peer, local) = match (tcp.peer_addr(), tcp.local_addr()) {
        (Ok(p), Ok(l)) => (p, l),
        _ => return,
    };
    let _ = tcp.set_nodelay(true);
    // Before anything is sent or read: the header comes first on the wire, and every rule
    // below (limits, logs) needs the client's address from it.
    let client = match &env.proxy {
        None => ClientAddr::direct(tcp_peer),
        Some(policy) => match policy.client_of(&mut tcp, tcp_peer).await {
            Ok(client) => client,
            Err(e) => {
                warn!(
                    session_id = id,
                    tcp_peer = %tcp_peer,
                    listener = kind.name(),
                    error = %e,
                    "connection refused: PROXY protocol"
                );
                return;
            }
        },
    };
    serve(env, tcp, client, local, kind, id).await
}

/// Serves one control connection over `stream`, from `client` to the listener at `local`, until
/// QUIT, EOF, timeout or server shutdown: the session limits, then the session. The server
/// calls it through [`run`]; tests call it with an in-memory pipe, and get the same rules.
pub async fn serve(
    env: Arc<SessionEnv>,
    stream: impl ControlIo,
    client: ClientAddr,
    local: SocketAddr,
    kind: ListenerKind,
    id: u64,
) {
    let span = tracing::info_span!(
        "session",
        session_id = id,
        client_addr = %client,
        proxy_addr = tracing::field::Empty,
        listener = kind.name(),
        user = tracing::field::Empty,
        tls_version = tracing::field::Empty,
        tls_cipher = tracing::field::Empty,
    );
    let session_span = span.clone();
    if let Some(proxy) = client.via() {
        span.record("proxy_addr", tracing::field::display(proxy));
    }
    async move {
        // Held for the whole session; dropping it frees the slot however the session ends.
        let _permit = match env.limits.admit(client) {
            Ok(p) => p,
            Err(hit) => {
                info!(reason = %hit, "connection refused: limit reached");
                refuse(stream, kind, hit).await;
                return;
            }
        };
        let _counted = crate::metrics::session_started(kind.name());
        let conn = Connection::new(stream, env.policy.max_line_length);
        let tls = env.tls.for_session(id);
        let mut session = Session {
            id,
            conn,
            tls,
            state: SessionState::new(kind, client, local),
            security: ControlSecurity::Plain,
            env,
            pending: VecDeque::new(),
            span: session_span,
        };
        info!("connected");
        session.serve().await;
        session.conn.shutdown().await;
        info!("disconnected");
    }
    .instrument(span)
    .await
}

impl Session {
    async fn serve(&mut self) {
        if self.state.listener == ListenerKind::Implicit && !self.implicit_handshake().await {
            return;
        }
        if self.send(&greeting()).await.is_err() {
            return;
        }
        loop {
            let line = match self.next_line().await {
                Some(line) => line,
                None => return,
            };
            let (outcome, span) = match line {
                Line::Eof => return,
                Line::TooLong => (Reply::new(500, "Line too long").into(), Span::none()),
                Line::Text(bytes) => match Command::parse(&bytes) {
                    Ok(cmd) => {
                        // One span per command, transfer included; never the argument (PASS).
                        let span = tracing::info_span!(
                            "command",
                            command = cmd.verb(),
                            reply_code = tracing::field::Empty,
                        );
                        debug!(parent: &span, "command");
                        (self.handle(cmd).instrument(span.clone()).await, span)
                    }
                    Err(e) => (Reply::parse_error(&e).into(), Span::none()),
                },
            };
            if let Some(code) = outcome.reply_code() {
                span.record("reply_code", code);
            }
            if !self.apply(outcome).instrument(span).await {
                return;
            }
        }
    }

    /// MS-FTPS §3.2.5.1: TLS first, nothing sent before it; then implicit PBSZ 0 + PROT P.
    async fn implicit_handshake(&mut self) -> bool {
        let timeout = self.env.policy.tls_handshake_timeout;
        match self.conn.start_tls(&self.tls.control, timeout).await {
            Ok(()) => {
                self.security = ControlSecurity::Tls;
                self.state.apply_implicit_protection();
                self.record_tls();
                true
            }
            Err(e) => {
                info!(error = %e, "implicit TLS handshake failed");
                false
            }
        }
    }

    fn record_tls(&self) {
        if let Some((version, cipher)) = self.conn.tls_info() {
            self.span.record("tls_version", version.as_str());
            self.span.record("tls_cipher", cipher.as_str());
        }
    }

    /// The next line: a pipelined one first, else from the socket, bounded by the idle timeout
    /// and interrupted by server shutdown. `None` means the session is over (already answered).
    async fn next_line(&mut self) -> Option<Line> {
        if let Some(line) = self.pending.pop_front() {
            return Some(line);
        }
        let idle = self.env.policy.control_idle_timeout;
        let shutdown = self.env.shutdown.clone();
        tokio::select! {
            r = tokio::time::timeout(idle, self.conn.read_line()) => match r {
                Ok(Ok(line)) => Some(line),
                Ok(Err(e)) => {
                    debug!(error = %e, "control connection read failed");
                    None
                }
                Err(_) => {
                    let _ = self.send(&Reply::closing("Idle timeout, closing control connection")).await;
                    None
                }
            },
            _ = shutdown.cancelled() => {
                let _ = self.send(&Reply::closing("Server shutting down, try again later")).await;
                None
            }
        }
    }

    async fn send(&mut self, reply: &Reply) -> std::io::Result<()> {
        self.conn.send(reply).await
    }

    /// Carries out an outcome. `false` ends the session.
    async fn apply(&mut self, outcome: Outcome) -> bool {
        let timeout = self.env.policy.tls_handshake_timeout;
        match outcome {
            Outcome::Reply(r) => self.send(&r).await.is_ok(),
            Outcome::Close(r) => {
                let _ = self.send(&r).await;
                false
            }
            Outcome::StartTls(r) => {
                if self.send(&r).await.is_err() {
                    return false;
                }
                match self.conn.start_tls(&self.tls.control, timeout).await {
                    Ok(()) => {
                        self.security = ControlSecurity::Tls;
                        self.record_tls();
                        true
                    }
                    Err(e) => {
                        info!(error = %e, "AUTH TLS handshake failed");
                        false
                    }
                }
            }
            Outcome::EndTls(r) => {
                if self.send(&r).await.is_err() {
                    return false;
                }
                match self.conn.end_tls(timeout).await {
                    Ok(()) => true,
                    Err(e) => {
                        info!(error = %e, "ending the control TLS session failed");
                        false
                    }
                }
            }
            Outcome::RestartImplicit(r) => {
                if self.send(&r).await.is_err() {
                    return false;
                }
                if let Err(e) = self.conn.end_tls(timeout).await {
                    info!(error = %e, "ending the control TLS session failed");
                    return false;
                }
                self.security = ControlSecurity::Plain;
                self.implicit_handshake().await && self.send(&greeting()).await.is_ok()
            }
            Outcome::Transfer(job) => self.run_transfer(job).await,
            Outcome::Status(status) => self.write_status(status).await,
        }
    }

    /// Access rules that do not depend on the command's argument, in one place.
    fn gate(&self, cmd: &Command) -> Option<Reply> {
        // RFC 4217 §4 + policy: on a TLS-required explicit listener, only what it takes to get
        // to TLS is allowed in the clear.
        let pre_tls = matches!(
            cmd,
            Command::Auth(_) | Command::Feat | Command::Quit | Command::Host(_)
        );
        if self.security == ControlSecurity::Plain && self.env.policy.require_tls && !pre_tls {
            return Some(Reply::new(
                530,
                "This server requires TLS: send AUTH TLS first",
            ));
        }
        let pre_login = pre_tls
            || matches!(
                cmd,
                Command::User(_)
                    | Command::Pass(_)
                    | Command::Acct
                    | Command::Pbsz(_)
                    | Command::Prot(_)
                    | Command::Ccc
                    | Command::Rein
                    | Command::Syst
                    | Command::Help(_)
                    | Command::Noop
                    | Command::Opts(_)
                    | Command::Abor
                    | Command::Stat(None)
                    | Command::Allo(_)
                    | Command::NotImplemented(_)
            );
        if self.state.logged_in().is_none() && !pre_login {
            return Some(Reply::not_logged_in());
        }
        None
    }

    async fn handle(&mut self, cmd: Command) -> Outcome {
        if let Some(refusal) = self.gate(&cmd) {
            return refusal.into();
        }
        // RFC 959 §4.1.3: RNFR must be followed at once by RNTO; anything else forgets it.
        let rename_from = self.state.rename_from.take();
        match cmd {
            Command::User(name) => self.user(name).await,
            Command::Pass(pw) => self.pass(pw).await,
            Command::Acct => Reply::new(202, "ACCT not needed").into(),
            Command::Auth(mech) => self.auth(mech),
            Command::Pbsz(arg) => self.pbsz(&arg),
            Command::Prot(level) => self.prot(level),
            Command::Ccc => self.ccc(),
            Command::Rein => self.rein(),
            Command::Quit => Outcome::Close(Reply::new(221, "Goodbye")),
            Command::Host(_) => self.host(),
            Command::Pwd => self.pwd(),
            Command::Cwd(p) => self.cwd(&p).await,
            Command::Cdup => self.cwd("..").await,
            Command::Type(t) => self.set_type(t),
            Command::Mode(_) => Reply::ok("Mode set to S").into(),
            Command::Stru(_) => Reply::ok("Structure set to F").into(),
            Command::Pasv => self.pasv().await,
            Command::Epsv(arg) => self.epsv(arg).await,
            Command::Port(target) | Command::Eprt(target) => self.active(target),
            Command::Rest(n) => self.rest(n),
            Command::Retr(p) => self.retr(&p).await,
            Command::Stor(p) => self.store(Some(&p), transfer::StoreKind::Store).await,
            Command::Appe(p) => self.store(Some(&p), transfer::StoreKind::Append).await,
            Command::Stou(p) => self.store(p.as_deref(), transfer::StoreKind::Unique).await,
            Command::List(p) => self.list(p.as_deref(), transfer::ListFormat::List).await,
            Command::Nlst(p) => self.list(p.as_deref(), transfer::ListFormat::Nlst).await,
            Command::Mlsd(p) => self.list(p.as_deref(), transfer::ListFormat::Mlsd).await,
            Command::Abor => self.abor_idle(),
            Command::Dele(p) => self.dele(&p).await,
            Command::Mkd(p) => self.mkd(&p).await,
            Command::Rmd(p) => self.rmd(&p).await,
            Command::Rnfr(p) => self.rnfr(&p).await,
            Command::Rnto(p) => self.rnto(rename_from, &p).await,
            Command::Size(p) => self.size(&p).await,
            Command::Mdtm(p) => self.mdtm(&p).await,
            Command::SetTime { verb, time, path } => self.set_time(verb, time, &path).await,
            Command::Hash(p) => self.hash(&p).await,
            Command::Mlst(p) => self.mlst(p.as_deref()).await,
            Command::Syst => Reply::new(215, "UNIX Type: L8").into(),
            Command::Feat => self.feat(),
            Command::Opts(arg) => self.opts(&arg),
            Command::Help(_) => self.help(),
            Command::Noop => Reply::ok("NOOP ok").into(),
            Command::Stat(None) => self.stat(),
            Command::Stat(Some(p)) => self.stat_path(&p).await,
            Command::Allo(size) => {
                // Kept for the next upload, which checks it against the user's quota.
                self.state.allo = size;
                Reply::new(202, "No storage allocation necessary").into()
            }
            Command::Site(arg) => self.site(&arg),
            Command::NotImplemented(verb) => Reply::not_implemented(&verb).into(),
        }
    }

    // --- Helpers shared by handlers. ---

    /// Where a client path leads, resolved against the current directory: into one of the
    /// user's mounts (their home, or a folder), or to a virtual directory above folders. A path
    /// outside all of them is refused here, before any store is asked.
    fn locate(&self, arg: &str) -> Result<Located, Reply> {
        let l = self.state.logged_in().ok_or_else(Reply::not_logged_in)?;
        let path = VirtualPath::resolve(&self.state.cwd, arg).map_err(|e| Reply::path_error(&e))?;
        match l.mounts.locate(&path) {
            Place::Mounted { mount, rel, key } => {
                // S3 keys are at most 1024 bytes (and a directory listing adds a `/`): refuse
                // longer names as names, not as a storage failure.
                if key.as_str().len() >= MAX_KEY_BYTES {
                    return Err(Reply::new(553, "File name too long"));
                }
                Ok(Located::Mounted(Resolved {
                    path,
                    rel,
                    key,
                    home: mount.home.clone(),
                    permissions: mount.permissions,
                }))
            }
            Place::Virtual(entries) => Ok(Located::Virtual(VirtualDir { path, entries })),
            Place::Outside => Err(Reply::outside_folders(path.as_str())),
        }
    }

    /// As [`Session::locate`], for commands that look (CWD, listings, MLST, STAT): inside a
    /// mount the path needs that mount's `list`; virtual directories can always be looked at.
    fn locate_to_list(&self, arg: &str) -> Result<Located, Reply> {
        match self.locate(arg)? {
            Located::Mounted(r) if !r.permissions.allows(Permission::List) => {
                Err(Reply::permission_denied())
            }
            located => Ok(located),
        }
    }

    /// Resolves a client path to a place in a store where the user has permission `p` (the
    /// permissions of the folder it is in). Virtual directories are refused: nothing is stored
    /// there; commands that can look at them use [`Session::locate`].
    fn resolve(&self, p: Permission, arg: &str) -> Result<Resolved, Reply> {
        match self.locate(arg)? {
            Located::Mounted(r) if r.permissions.allows(p) => Ok(r),
            Located::Mounted(_) => Err(Reply::permission_denied()),
            Located::Virtual(d) => Err(Reply::virtual_directory(d.path.as_str())),
        }
    }

    /// The client, as every rule sees it (see `proxy.rs`).
    fn client(&self) -> ClientAddr {
        self.state.client
    }

    /// Who is acting, for audit lines.
    fn actor(&self) -> crate::audit::Actor<'_> {
        crate::audit::Actor {
            session_id: self.id,
            client_addr: self.state.client,
            user: self.state.user_name().unwrap_or(""),
        }
    }
}

/// S3's limit on key length, in bytes of UTF-8.
const MAX_KEY_BYTES: usize = 1024;

/// Where a client path leads, for one command.
pub(crate) enum Located {
    Mounted(Resolved),
    Virtual(VirtualDir),
}

/// A directory above a user's folders: it holds only them (as directories) and nothing can be
/// stored in it.
pub(crate) struct VirtualDir {
    pub path: VirtualPath,
    /// The next segment of each folder below it, sorted.
    pub entries: Vec<Entry>,
}

impl VirtualDir {
    /// Virtual directories can be entered and listed, nothing else.
    pub fn permissions() -> Permissions {
        Permissions::from_list(&[Permission::List])
    }

    /// Its listing, as a store's pages.
    pub fn pages(&self) -> crate::vfs::ListPages {
        futures::StreamExt::boxed(futures::stream::iter([Ok(self.entries.clone())]))
    }
}

/// A client path resolved for one command, inside one of the user's mounts.
pub(crate) struct Resolved {
    pub path: VirtualPath,
    /// The path as seen from its mount: `/` is the mount point (the home, or a folder).
    pub rel: VirtualPath,
    pub key: ObjectKey,
    pub home: Home,
    /// The permissions of the mount (the user's, or the folder's).
    pub permissions: Permissions,
}

impl Resolved {
    /// The path and key, for audit lines.
    pub fn object(&self) -> crate::audit::Object<'_> {
        crate::audit::Object {
            path: self.path.as_str(),
            key: self.key.as_str(),
        }
    }

    /// Whether the path is a mount point (the home, a folder): it cannot be removed, renamed or
    /// written over.
    pub fn at_mount_point(&self) -> bool {
        self.rel.is_root()
    }

    /// What is at the path. A mount point always exists, even before anything is stored in
    /// it (in S3 an empty prefix is nothing at all).
    pub async fn stat(&self) -> Result<Entry, StorageError> {
        if self.at_mount_point() {
            return Ok(Entry {
                name: String::new(),
                kind: EntryKind::Dir,
                size: 0,
                modified: None,
            });
        }
        self.home.storage().stat(&self.key).await
    }

    /// Whether the directory the path is in exists. STOR, MKD and RNTO go into existing
    /// directories only, as on any filesystem (RFC 959 servers answer `550`): a typo in a path
    /// should fail, not create directories. `Err` is the reply.
    pub async fn parent_exists(&self) -> Result<(), Reply> {
        let parent = self.path.parent();
        let rel_parent = self.rel.parent();
        if self.at_mount_point() || rel_parent.is_root() {
            return Ok(());
        }
        match self.home.storage().stat(&self.home.key(&rel_parent)).await {
            Ok(e) if e.kind == EntryKind::Dir => Ok(()),
            Ok(_) | Err(StorageError::NotFound(_)) => {
                Err(Reply::new(550, format!("{parent}: No such directory")))
            }
            Err(e) => {
                log_storage_error("stat", &e);
                Err(Reply::storage_error(&e, parent.as_str()))
            }
        }
    }
}

/// Turns a connection away at a limit: `421` in the clear on the explicit port; on the implicit
/// port the client expects TLS first and a handshake is exactly the work a limit should save, so
/// the connection is just closed.
async fn refuse(mut stream: impl ControlIo, kind: ListenerKind, hit: crate::limits::LimitHit) {
    use tokio::io::AsyncWriteExt;
    if kind == ListenerKind::Explicit {
        let reply = Reply::closing(hit.to_string()).to_wire();
        let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&reply)).await;
    }
    let _ = stream.shutdown().await;
}

fn greeting() -> Reply {
    Reply::new(220, "ftps-s3 ready")
}

/// Logs a storage failure that is the store's fault (the client sees only a short reply);
/// "no such file" and the like are the client's business and not worth a warning.
pub(crate) fn log_storage_error(op: &str, e: &StorageError) {
    if matches!(
        e,
        StorageError::Backend { .. } | StorageError::Refused { .. } | StorageError::Io { .. }
    ) {
        warn!(op, error = %e, "storage operation failed");
    } else {
        debug!(op, error = %e, "storage refused");
    }
}
