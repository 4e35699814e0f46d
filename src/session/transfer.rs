//! Transfers: RETR, STOR, LIST, NLST, MLSD, and ABOR while one runs.
//!
//! A transfer command is checked and prepared by its handler (permission, path, the object to read
//! or the upload to write) *before* `150` is sent, so errors such as `550` come without opening a
//! data connection. Then [`Session::run_transfer`] sends `150`, and runs the job — open the data
//! connection (peer check, TLS under PROT P), move the bytes, close — while still reading the
//! control connection, so that ABOR (or the client vanishing) cancels the job at once. Other
//! commands that arrive meanwhile are queued and answered after the transfer (RFC 959 allows
//! pipelining).
//!
//! Uploads end in exactly one of `commit` (everything read up to TLS close_notify, or EOF in
//! the clear) or `abort` (ABOR, reset, TLS error, timeout, store failure): a truncated file is
//! never committed.

use std::{io, net::IpAddr, time::Duration, time::Instant, time::SystemTime};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::audit;
use crate::auth::{Permission, Permissions};
use crate::datachan::ascii::{FromCrlf, ToCrlf};
use crate::datachan::{self, DataPlan, DataSecurity, IdleTimeout, Metered, OpenError};
use crate::listing::{self, MlstFacts};
use crate::session::codec::Line;
use crate::session::command::{Command, TransferType};
use crate::session::handlers::storage_reply;
use crate::session::reply::Reply;
use crate::session::state::{DataProtection, ListenerKind};
use crate::session::{Outcome, Session};
use crate::tls::MaybeTls;
use crate::vfs::{
    Entry, EntryKind, ListPages, ReadStream, StorageError, Upload, UploadError, VirtualPath,
};
use crate::vfs::{ObjectKey, UploadMode, UploadSpec};

/// How long a finished data connection waits for the client to close it (see [`linger`]).
const LINGER: Duration = Duration::from_secs(2);

/// Copy buffer for downloads: large enough for full TLS records, small enough to not matter.
const COPY_BUF: usize = 256 * 1024;
/// Lines queued during a transfer before we stop reading the control connection (backpressure).
const MAX_PENDING: usize = 64;

/// The three upload commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StoreKind {
    /// STOR (with REST n: a resume).
    Store,
    /// APPE.
    Append,
    /// STOU: a name the server picks.
    Unique,
}

impl StoreKind {
    fn verb(self) -> &'static str {
        match self {
            StoreKind::Store => "STOR",
            StoreKind::Append => "APPE",
            StoreKind::Unique => "STOU",
        }
    }
}

/// STOU's file name: the client's suggestion (if any) with a random suffix, so two uploads never
/// pick the same name.
fn unique_name(base: Option<&str>) -> String {
    let suffix: u64 = rand::random();
    match base.map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => format!("{b}.{suffix:016x}"),
        None => format!("ftps-s3-{suffix:016x}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListFormat {
    List,
    Nlst,
    Mlsd,
}

/// A prepared transfer, ready to run once the data connection is open.
pub(crate) struct TransferJob {
    verb: &'static str,
    key: ObjectKey,
    /// The 150 reply's text when it must say more than the default (STOU's file name).
    opening: Option<String>,
    path: VirtualPath,
    work: Work,
    /// TYPE A: convert line endings (RETR: LF → CRLF, STOR: CRLF → LF).
    ascii: bool,
}

enum Work {
    Download(ReadStream),
    Upload(Box<dyn Upload>),
    /// A directory's pages, or a single entry when the path named a file.
    Listing {
        source: ListingSource,
        format: ListFormat,
        perms: Permissions,
        facts: MlstFacts,
        /// NLST only: written before each name (`dir/` for `NLST dir`), see `listing::nlst_line`.
        nlst_prefix: String,
    },
}

enum ListingSource {
    Pages(ListPages),
    Single(Entry),
}

/// How a job ended.
enum JobResult {
    /// Bytes moved over the data connection; for an upload, the SHA-256 of the stored content
    /// when the store computed it.
    Done {
        bytes: u64,
        sha256: Option<String>,
    },
    Aborted,
    /// No data connection (timeout, handshake failure, no TLS resumption).
    NoDataConnection(OpenError),
    /// The data connection failed: reset, TLS error, timeout.
    Client(io::Error),
    Storage(StorageError),
}

impl Session {
    /// 425/521 before a transfer: is there a data connection to use, protected as policy wants?
    fn data_ready(&self) -> Result<(), Reply> {
        if self.state.data.is_none() {
            return Err(Reply::new(425, "Use PORT, EPRT, PASV or EPSV first"));
        }
        // RFC 4217 §10: 521 when the PROT level is not acceptable for data.
        if self.ctx.config.listeners.require_tls && self.state.protection != DataProtection::Private
        {
            return Err(Reply::new(
                521,
                "Data connections must be protected: send PBSZ 0 and PROT P",
            ));
        }
        Ok(())
    }

    pub(in crate::session) async fn retr(&mut self, arg: &str) -> Outcome {
        let offset = std::mem::take(&mut self.state.rest);
        let r = match self.resolve(Permission::Read, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if let Err(reply) = self.data_ready() {
            return reply.into();
        }
        match r.home.storage().read(&r.key, offset).await {
            Ok(reader) => Outcome::Transfer(TransferJob {
                key: r.key.clone(),
                verb: "RETR",
                opening: None,
                path: r.path,
                work: Work::Download(reader),
                ascii: self.state.transfer_type == TransferType::Ascii,
            }),
            Err(e) => storage_reply("read", &e, &r.path),
        }
    }

    /// STOR, APPE and STOU: checks permission and path, then starts the upload. Writing over
    /// an existing file (STOR onto it, APPE to it, a resume that continues it) needs the
    /// `overwrite` permission as well as `write`.
    pub(in crate::session) async fn store(
        &mut self,
        arg: Option<&str>,
        kind: StoreKind,
    ) -> Outcome {
        let offset = std::mem::take(&mut self.state.rest);
        if let Err(reply) = self.data_ready() {
            return reply.into();
        }
        let target = match (kind, arg) {
            (StoreKind::Unique, _) => unique_name(arg),
            (_, Some(a)) => a.to_string(),
            (_, None) => return Reply::new(501, "A file name is needed").into(),
        };
        let r = match self.resolve(Permission::Write, &target) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.path.is_root() {
            return Reply::new(550, "/: Is a directory").into();
        }
        let exists = match r.stat().await {
            Ok(e) if e.kind == EntryKind::Dir => {
                return Reply::new(550, format!("{}: Is a directory", r.path)).into()
            }
            Ok(_) => true,
            Err(StorageError::NotFound(_)) => false,
            Err(e) => return storage_reply("stat", &e, &r.path),
        };
        if kind == StoreKind::Unique && exists {
            return Reply::new(553, "Could not find a unique name, try again").into();
        }
        let mode = match kind {
            StoreKind::Append => UploadMode::Append,
            StoreKind::Store if offset > 0 => UploadMode::Resume { offset },
            _ => UploadMode::Replace,
        };
        // A resume of a kept upload adds to nothing visible; everything else that finds a
        // file there changes it.
        let changes_existing = exists && !matches!(mode, UploadMode::Resume { .. });
        if changes_existing && self.require(Permission::Overwrite).is_err() {
            return Reply::new(
                550,
                format!("{}: File exists and may not be overwritten", r.path),
            )
            .into();
        }
        if let Err(reply) = r.parent_exists().await {
            return reply.into();
        }
        let storage = r.home.storage().clone();
        let spec = UploadSpec {
            mode,
            uploader: self.state.user_name().unwrap_or_default().to_string(),
            client_addr: self.state.client.ip(),
        };
        match storage.begin_upload(&r.key, spec).await {
            Ok(upload) => Outcome::Transfer(TransferJob {
                key: r.key.clone(),
                verb: kind.verb(),
                opening: match kind {
                    // RFC 1123 §4.1.2.9: STOU's 150 names the file.
                    StoreKind::Unique => Some(format!("FILE: {}", r.path)),
                    _ => None,
                },
                path: r.path,
                work: Work::Upload(upload),
                ascii: self.state.transfer_type == TransferType::Ascii,
            }),
            Err(e) => storage_reply("upload", &e, &r.path),
        }
    }

    pub(in crate::session) async fn list(
        &mut self,
        arg: Option<&str>,
        format: ListFormat,
    ) -> Outcome {
        let r = match self.resolve(Permission::List, arg.unwrap_or(".")) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        let perms = match self.state.logged_in() {
            Some(l) => l.user.permissions,
            None => return Reply::not_logged_in().into(),
        };
        if let Err(reply) = self.data_ready() {
            return reply.into();
        }
        let storage = r.home.storage().clone();
        let entry = match r.stat().await {
            Ok(e) => e,
            Err(e) => return storage_reply("stat", &e, &r.path),
        };
        // NLST answers paths as the client wrote them (`NLST d` → `d/a.txt`), as vsftpd,
        // ProFTPD and Pure-FTPd do, so each line can be sent back in a RETR; without an
        // argument (or `.`) bare names.
        let named = arg.map(str::trim).filter(|a| !a.is_empty() && *a != ".");
        let nlst_prefix = match (format, entry.kind, named) {
            (ListFormat::Nlst, EntryKind::Dir, Some(a)) => format!("{}/", a.trim_end_matches('/')),
            _ => String::new(),
        };
        let source = match entry.kind {
            EntryKind::Dir => ListingSource::Pages(storage.list(&r.key)),
            EntryKind::File if format == ListFormat::Nlst => ListingSource::Single(Entry {
                name: named.map_or_else(
                    || r.path.file_name().unwrap_or_default().to_string(),
                    str::to_string,
                ),
                ..entry
            }),
            // RFC 3659 §7.2.1: MLSD of a file is an error (MLST is for that).
            EntryKind::File if format == ListFormat::Mlsd => {
                return Reply::new(501, format!("{}: Not a directory", r.path)).into()
            }
            EntryKind::File => ListingSource::Single(Entry {
                name: r.path.file_name().unwrap_or_default().to_string(),
                ..entry
            }),
        };
        Outcome::Transfer(TransferJob {
            key: r.key.clone(),
            opening: None,
            verb: match format {
                ListFormat::List => "LIST",
                ListFormat::Nlst => "NLST",
                ListFormat::Mlsd => "MLSD",
            },
            path: r.path,
            work: Work::Listing {
                source,
                format,
                perms,
                facts: self.state.mlst_facts,
                nlst_prefix,
            },
            // Listings are CRLF text already.
            ascii: false,
        })
    }

    /// Sends 150, runs `job` while watching the control connection, sends the final reply.
    /// `false` ends the session (the control connection is gone).
    pub(in crate::session) async fn run_transfer(&mut self, mut job: TransferJob) -> bool {
        let Some(plan) = self.state.data.take() else {
            if let Work::Upload(u) = job.work {
                u.abort().await;
            }
            return self
                .send(&Reply::new(425, "Use PORT, EPRT, PASV or EPSV first"))
                .await
                .is_ok();
        };
        let text = job
            .opening
            .take()
            .unwrap_or_else(|| format!("Opening data connection for {} {}", job.verb, job.path));
        let opening = Reply::new(150, text);
        if self.send(&opening).await.is_err() {
            if let Work::Upload(u) = job.work {
                u.abort().await;
            }
            return false;
        }
        let limits = &self.ctx.config.limits;
        let params = DataParams {
            local_ip: self.state.local.ip(),
            source_port: match self.state.listener {
                ListenerKind::Implicit => self.ctx.config.active.implicit_source_port,
                ListenerKind::Explicit => None,
            },
            tls: (self.state.protection == DataProtection::Private).then(|| self.tls.data.clone()),
            require_resumption: self.ctx.config.tls.require_session_reuse,
            keepalive_secs: self.ctx.config.listeners.tcp_keepalive_secs,
            connect_timeout: Duration::from_secs(limits.data_connect_timeout_secs),
            idle_timeout: Duration::from_secs(limits.data_idle_timeout_secs),
        };
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let info = JobInfo {
            verb: job.verb,
            path: job.path.clone(),
            key: job.key.clone(),
        };
        let path = job.path.clone();
        let fut = execute(plan, params, job.work, job.ascii, cancel.clone());
        tokio::pin!(fut);

        enum Event {
            Finished((JobResult, u64)),
            Control(io::Result<Line>),
            EndedByShutdown,
        }
        let mut control_open = true;
        let mut aborted = false;
        let mut ended_by_shutdown = false;
        let end_transfers = self.ctx.end_transfers.clone();
        let result = loop {
            let event = tokio::select! {
                r = &mut fut => Event::Finished(r),
                l = self.conn.read_line(), if control_open && self.pending.len() < MAX_PENDING => Event::Control(l),
                _ = end_transfers.cancelled(), if !ended_by_shutdown => Event::EndedByShutdown,
            };
            match event {
                Event::Finished(r) => break r,
                Event::EndedByShutdown => {
                    // The grace period is over: end the job through its own cleanup.
                    ended_by_shutdown = true;
                    cancel.cancel();
                }
                Event::Control(Ok(Line::Text(bytes))) => {
                    if Command::parse(&bytes) == Ok(Command::Abor) {
                        aborted = true;
                        cancel.cancel();
                    } else {
                        self.pending.push_back(Line::Text(bytes));
                    }
                }
                Event::Control(Ok(Line::TooLong)) => self.pending.push_back(Line::TooLong),
                Event::Control(Ok(Line::Eof) | Err(_)) => {
                    // The client is gone: stop the transfer and clean up (the job aborts uploads).
                    control_open = false;
                    cancel.cancel();
                }
            }
        };
        let (result, moved) = result;
        self.log_transfer(&info, &result, moved, started);
        if !control_open {
            return false;
        }
        let replies = match (result, aborted) {
            (JobResult::Done { .. }, _) => vec![Reply::transfer_complete()],
            (_, true) => vec![
                Reply::transfer_aborted("ABOR received"),
                Reply::new(226, "ABOR successful"),
            ],
            (JobResult::Aborted, false) if ended_by_shutdown => {
                vec![Reply::transfer_aborted("server shutting down")]
            }
            (JobResult::Aborted, false) => vec![Reply::transfer_aborted("cancelled")],
            // RFC 4217 §10: 522 when the data connection's TLS is not acceptable.
            (JobResult::NoDataConnection(e @ OpenError::NotResumed), false) => vec![Reply::new(
                522,
                format!("{e}: enable TLS session reuse in the client"),
            )],
            (JobResult::NoDataConnection(e), false) => {
                vec![Reply::new(425, format!("Cannot open data connection: {e}"))]
            }
            (JobResult::Client(e), false) => vec![Reply::transfer_aborted(&e.to_string())],
            (JobResult::Storage(e), false) => vec![Reply::storage_error(&e, path.as_str())],
        };
        if let Some(first) = replies.first() {
            tracing::Span::current().record("reply_code", first.code);
        }
        for r in &replies {
            if self.send(r).await.is_err() {
                return false;
            }
        }
        true
    }

    /// The transfer's metrics, and its audit line (uploads and downloads; listings only log).
    /// `moved`: the bytes the data connection carried, reported for a transfer that did not
    /// complete (a complete upload reports the bytes stored).
    fn log_transfer(&self, job: &JobInfo, result: &JobResult, moved: u64, started: Instant) {
        let duration = started.elapsed();
        let (outcome, bytes, detail) = match result {
            JobResult::Done { bytes, .. } => (audit::Outcome::Ok, *bytes, String::new()),
            JobResult::Aborted => (audit::Outcome::Aborted("abor"), moved, String::new()),
            JobResult::NoDataConnection(e) => (
                audit::Outcome::Failed("no_data_connection"),
                moved,
                e.to_string(),
            ),
            JobResult::Client(e) => (audit::Outcome::Failed("client"), moved, e.to_string()),
            JobResult::Storage(e) => (audit::Outcome::Failed("storage"), moved, e.to_string()),
        };
        crate::metrics::transfer_finished(job.verb, outcome.result(), bytes, duration);
        if matches!(result, JobResult::Storage(_)) {
            warn!(command = job.verb, path = %job.path, error = %detail, "transfer failed (storage)");
        } else if !detail.is_empty() {
            info!(command = job.verb, path = %job.path, error = %detail, "transfer failed");
        }
        let object = audit::Object {
            path: job.path.as_str(),
            key: job.key.as_str(),
        };
        let transfer = audit::Transfer {
            bytes,
            duration,
            sha256: match result {
                JobResult::Done { sha256, .. } => sha256.as_deref(),
                _ => None,
            },
        };
        match job.verb {
            "RETR" => audit::download(self.actor(), object, transfer, outcome),
            "STOR" | "APPE" | "STOU" => {
                audit::upload(self.actor(), object, transfer, outcome);
                if let (JobResult::Done { .. }, Some(l)) = (result, self.state.logged_in()) {
                    (self.ctx.events).upload_completed(self.actor(), &l.home, object, transfer);
                }
            }
            _ => {
                debug!(command = job.verb, path = %job.path, bytes, result = outcome.result(), "listing sent")
            }
        }
    }
}

/// What a finished job is reported as.
struct JobInfo {
    verb: &'static str,
    path: VirtualPath,
    key: ObjectKey,
}

struct DataParams {
    local_ip: IpAddr,
    source_port: Option<u16>,
    tls: Option<TlsAcceptor>,
    require_resumption: bool,
    keepalive_secs: u64,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

/// Opens the data connection and runs the work; every step stops at `cancel`. Owns everything
/// it needs, so the session can keep reading the control connection meanwhile. Also returns
/// the bytes the data connection carried in the work's direction, however the job ended.
async fn execute(
    mut plan: DataPlan,
    params: DataParams,
    work: Work,
    ascii: bool,
    cancel: CancellationToken,
) -> (JobResult, u64) {
    let security = DataSecurity {
        tls: params.tls.as_ref(),
        require_resumption: params.require_resumption,
        keepalive_secs: params.keepalive_secs,
    };
    let opening = datachan::open(
        &mut plan,
        params.local_ip,
        params.source_port,
        security,
        params.connect_timeout,
    );
    let opened = tokio::select! {
        r = opening => Some(r),
        _ = cancel.cancelled() => None,
    };
    drop(plan);
    let data = match opened {
        Some(Ok(d)) => d,
        other => {
            if let Work::Upload(u) = work {
                u.abort().await;
            }
            let result = match other {
                Some(Err(e)) => JobResult::NoDataConnection(e),
                _ => JobResult::Aborted,
            };
            return (result, 0);
        }
    };
    let mut data = Metered::new(IdleTimeout::new(data, params.idle_timeout));
    let inbound = matches!(work, Work::Upload(_));
    let result = match work {
        Work::Download(reader) => download(&mut data, reader, ascii, &cancel).await,
        Work::Upload(upload) => upload_to(&mut data, upload, ascii, &cancel).await,
        Work::Listing {
            source,
            format,
            perms,
            facts,
            nlst_prefix,
        } => {
            let format = Format {
                format,
                perms,
                facts,
                nlst_prefix,
            };
            send_listing(&mut data, source, &format, &cancel).await
        }
    };
    let moved = match inbound {
        true => data.bytes_read(),
        false => data.bytes_written(),
    };
    if matches!(result, JobResult::Done { .. }) {
        // Our side is closed (close_notify + FIN). Some clients close theirs only after the
        // 226: wait for that in the background, not before the reply.
        tokio::spawn(linger(data).in_current_span());
    }
    (result, moved)
}

type DataConn = Metered<IdleTimeout<MaybeTls>>;

async fn download(
    data: &mut DataConn,
    mut reader: ReadStream,
    ascii: bool,
    cancel: &CancellationToken,
) -> JobResult {
    let copy = async {
        let mut buf = vec![0u8; COPY_BUF];
        let mut to_crlf = ascii.then(|| (ToCrlf::default(), Vec::with_capacity(COPY_BUF * 2)));
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    return Err(JobResult::Storage(StorageError::Io {
                        key: "(download body)".into(),
                        source: e,
                    }))
                }
            };
            let out = match &mut to_crlf {
                Some((conv, out)) => {
                    out.clear();
                    conv.convert(&buf[..n], out);
                    &out[..]
                }
                None => &buf[..n],
            };
            data.write_all(out).await.map_err(JobResult::Client)?;
            total += out.len() as u64;
        }
        Ok(total)
    };
    let total = tokio::select! {
        r = copy => r,
        _ = cancel.cancelled() => return JobResult::Aborted,
    };
    match total {
        Ok(total) => match close(data).await {
            Ok(()) => JobResult::Done {
                bytes: total,
                sha256: None,
            },
            Err(e) => JobResult::Client(e),
        },
        Err(r) => r,
    }
}

async fn upload_to(
    data: &mut DataConn,
    mut upload: Box<dyn Upload>,
    ascii: bool,
    cancel: &CancellationToken,
) -> JobResult {
    let copy = async {
        match ascii {
            true => upload.copy_from(&mut FromCrlf::new(&mut *data)).await,
            false => upload.copy_from(&mut *data).await,
        }
    };
    let copied = tokio::select! {
        r = copy => Some(r),
        _ = cancel.cancelled() => None,
    };
    match copied {
        Some(Ok(_)) => {
            // Everything arrived (TLS: up to close_notify). Close our side, then publish.
            let _ = close(data).await;
            let sha256 = upload.sha256();
            match upload.commit().await {
                Ok(bytes) => JobResult::Done { bytes, sha256 },
                Err(e) => JobResult::Storage(e),
            }
        }
        // The client side failed (reset, TLS error, timeout): keep what the store holds so the
        // client can resume with REST + STOR (s3.resume_window_secs; 0 aborts instead).
        Some(Err(UploadError::Body(e))) => {
            upload.suspend().await;
            JobResult::Client(e)
        }
        Some(Err(UploadError::Storage(e))) => {
            upload.abort().await;
            JobResult::Storage(e)
        }
        // ABOR, or the control connection is gone: the same, the client may resume.
        None => {
            upload.suspend().await;
            JobResult::Aborted
        }
    }
}

/// How a listing's lines are written.
struct Format {
    format: ListFormat,
    perms: Permissions,
    facts: MlstFacts,
    nlst_prefix: String,
}

async fn send_listing(
    data: &mut DataConn,
    source: ListingSource,
    f: &Format,
    cancel: &CancellationToken,
) -> JobResult {
    let now = SystemTime::now();
    let line = |e: &Entry| match f.format {
        ListFormat::List => listing::list_line(e, now),
        ListFormat::Nlst => listing::nlst_line(&f.nlst_prefix, e),
        ListFormat::Mlsd => listing::mlsd_line(e, f.perms, f.facts),
    };
    let send = async {
        let mut total = 0u64;
        match source {
            ListingSource::Single(e) => {
                let text = line(&e);
                data.write_all(text.as_bytes())
                    .await
                    .map_err(JobResult::Client)?;
                total += text.len() as u64;
            }
            ListingSource::Pages(mut pages) => {
                // Each page goes out as soon as the store returns it.
                while let Some(page) = pages.next().await {
                    let page = page.map_err(JobResult::Storage)?;
                    let text: String = listing::listable_entries(&page).map(line).collect();
                    data.write_all(text.as_bytes())
                        .await
                        .map_err(JobResult::Client)?;
                    total += text.len() as u64;
                }
            }
        }
        Ok(total)
    };
    let sent = tokio::select! {
        r = send => r,
        _ = cancel.cancelled() => return JobResult::Aborted,
    };
    match sent {
        Ok(total) => match close(data).await {
            Ok(()) => JobResult::Done {
                bytes: total,
                sha256: None,
            },
            Err(e) => JobResult::Client(e),
        },
        Err(r) => r,
    }
}

/// Ends our side of a data connection cleanly: TLS close_notify, then FIN.
async fn close(data: &mut DataConn) -> io::Result<()> {
    data.shutdown().await
}

/// After [`close`]: a short wait for the client's own close before the socket is dropped, so
/// it is not closed with unread bytes, which would reset the connection under the client's
/// last reads.
async fn linger(mut data: DataConn) {
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(LINGER, async {
        while let Ok(n) = data.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}
