//! Preparing a transfer: the handlers of RETR, STOR/APPE/STOU and LIST/NLST/MLSD check
//! permission, path and the data connection, and open the object to read or the upload to
//! write, all *before* `150`, so errors such as `550` come without opening a data connection.

use std::time::Duration;

use crate::audit;
use crate::auth::Permission;
use crate::quota::{ledger::UploadPlan, DataLimits, UploadHold};
use crate::session::command::TransferType;
use crate::session::handlers::storage_reply;
use crate::session::reply::Reply;
use crate::session::state::DataProtection;
use crate::session::{Located, Outcome, Resolved, Session, VirtualDir};
use crate::vfs::{Entry, EntryKind, StorageError, UploadMode, UploadSpec};

use super::job::{ListFormat, ListingSource, StoreKind, TransferJob, TransferKind, Work};

/// STOU's file name: the client's suggestion (if any) with a random suffix, so two uploads never
/// pick the same name.
fn unique_name(base: Option<&str>) -> String {
    let suffix: u64 = rand::random();
    match base.map(str::trim).filter(|b| !b.is_empty()) {
        Some(b) => format!("{b}.{suffix:016x}"),
        None => format!("ftps-s3-{suffix:016x}"),
    }
}

/// NLST's argument when it names something (not empty, not `.`): its lines are then paths as
/// the client wrote them.
fn nlst_dir_arg(arg: Option<&str>) -> Option<&str> {
    arg.map(str::trim).filter(|a| !a.is_empty() && *a != ".")
}

impl Session {
    /// 425/521 before a transfer: is there a data connection to use, protected as policy wants?
    pub(super) fn data_ready(&self) -> Result<(), Reply> {
        if self.state.data.is_none() {
            return Err(Reply::no_data_target());
        }
        // RFC 4217 §10: 521 when the PROT level is not acceptable for data.
        if self.env.policy.require_tls && self.state.protection != DataProtection::Private {
            return Err(Reply::new(
                521,
                "Data connections must be protected: send PBSZ 0 and PROT P",
            ));
        }
        Ok(())
    }

    /// What the user's account limits a transfer by (`upload`: its direction), with an
    /// upload's quota share.
    fn data_limits(&self, upload: bool, hold: Option<UploadHold>) -> DataLimits {
        match self.state.logged_in().and_then(|l| l.account.as_ref()) {
            Some(account) => account.data_limits(upload, hold),
            None => DataLimits::default(),
        }
    }

    /// The quota's say on an upload about to start at `r` (`existing`: the size of the file
    /// there; `announced`: an ALLO size): its share, `None` without a quota, or the `552`
    /// (audited) that refuses it.
    async fn quota_hold(
        &self,
        r: &Resolved,
        mode: UploadMode,
        existing: Option<u64>,
        announced: Option<u64>,
    ) -> Result<Option<UploadHold>, Outcome> {
        let Some(l) = self.state.logged_in() else {
            return Ok(None);
        };
        let Some(account) = l.account.as_ref().filter(|a| a.has_quota()) else {
            return Ok(None);
        };
        // Counted at login; again here if that failed or is older than quota_recount_secs.
        if let Err(e) = account.count(&l.quota_roots()).await {
            return Err(storage_reply("quota count", &e, &r.path));
        }
        let new_file = existing.is_none();
        let plan = match mode {
            UploadMode::Replace => UploadPlan {
                credit: existing.unwrap_or(0),
                new_file,
                ..UploadPlan::default()
            },
            UploadMode::Resume { offset } => UploadPlan {
                base: offset,
                credit: existing.unwrap_or(0),
                new_file,
                ..UploadPlan::default()
            },
            // APPE continues a kept upload if there is one (its parts are not counted yet),
            // else the file; either way the result replaces the file.
            UploadMode::Append => {
                let pending = match r.home.storage().pending_upload_size(&r.key).await {
                    Ok(p) => p,
                    Err(e) => return Err(storage_reply("upload", &e, &r.path)),
                };
                UploadPlan {
                    base: pending.or(existing).unwrap_or(0),
                    credit: existing.unwrap_or(0),
                    new_file,
                    ..UploadPlan::default()
                }
            }
        };
        let plan = UploadPlan {
            hint: announced,
            ..plan
        };
        account.start_upload(plan).map(Some).map_err(|e| {
            let refused = audit::Transfer {
                bytes: 0,
                duration: Duration::ZERO,
                sha256: None,
            };
            let why = audit::Outcome::Failed("quota_exceeded");
            audit::upload(self.actor(), r.object(), refused, why);
            Reply::quota_exceeded(&e, r.path.as_str()).into()
        })
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
                kind: TransferKind::Download,
                opening: None,
                path: r.path,
                work: Work::Download(reader),
                ascii: self.state.transfer_type == TransferType::Ascii,
                limits: self.data_limits(false, None),
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
        let announced = self.state.allo.take();
        if let Err(reply) = self.data_ready() {
            return reply.into();
        }
        let target = match (kind, arg) {
            (StoreKind::Unique, _) => unique_name(arg),
            (_, Some(a)) => a.to_string(),
            (_, None) => return Reply::syntax_error("A file name is needed").into(),
        };
        let r = match self.resolve(Permission::Write, &target) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.at_mount_point() {
            return Reply::is_a_directory(r.path.as_str()).into();
        }
        let existing = match r.stat().await {
            Ok(e) if e.kind == EntryKind::Dir => {
                return Reply::is_a_directory(r.path.as_str()).into()
            }
            Ok(e) => Some(e.size),
            Err(StorageError::NotFound(_)) => None,
            Err(e) => return storage_reply("stat", &e, &r.path),
        };
        let exists = existing.is_some();
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
        if changes_existing && !r.permissions.allows(Permission::Overwrite) {
            return Reply::may_not_overwrite(r.path.as_str()).into();
        }
        if let Err(reply) = r.parent_exists().await {
            return reply.into();
        }
        let hold = match self.quota_hold(&r, mode, existing, announced).await {
            Ok(hold) => hold,
            Err(outcome) => return outcome,
        };
        let limits = self.data_limits(true, hold);
        let storage = r.home.storage().clone();
        let spec = UploadSpec {
            mode,
            uploader: self.state.user_name().unwrap_or_default().to_string(),
            client_addr: self.state.client.ip(),
        };
        match storage.begin_upload(&r.key, spec).await {
            Ok(upload) => Outcome::Transfer(TransferJob {
                key: r.key.clone(),
                kind: TransferKind::Upload(kind),
                opening: match kind {
                    // RFC 1123 §4.1.2.9: STOU's 150 names the file.
                    StoreKind::Unique => Some(format!("FILE: {}", r.path)),
                    _ => None,
                },
                path: r.path,
                work: Work::Upload(upload),
                ascii: self.state.transfer_type == TransferType::Ascii,
                limits,
            }),
            Err(e) => storage_reply("upload", &e, &r.path),
        }
    }

    pub(in crate::session) async fn list(
        &mut self,
        arg: Option<&str>,
        format: ListFormat,
    ) -> Outcome {
        let r = match self.locate_to_list(arg.unwrap_or(".")) {
            Ok(Located::Mounted(r)) => r,
            Ok(Located::Virtual(d)) => return self.list_virtual(d, format, arg),
            Err(reply) => return reply.into(),
        };
        let perms = r.permissions;
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
        let named = nlst_dir_arg(arg);
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
                return Reply::syntax_error(format!("{}: Not a directory", r.path)).into()
            }
            EntryKind::File => ListingSource::Single(Entry {
                name: r.path.file_name().unwrap_or_default().to_string(),
                ..entry
            }),
        };
        Outcome::Transfer(TransferJob {
            key: r.key.clone(),
            opening: None,
            kind: TransferKind::Listing(format),
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
            limits: DataLimits::default(),
        })
    }

    /// LIST/NLST/MLSD of a directory above the user's folders: the folders (or the directories
    /// leading to them), from memory.
    fn list_virtual(&mut self, d: VirtualDir, format: ListFormat, arg: Option<&str>) -> Outcome {
        if let Err(reply) = self.data_ready() {
            return reply.into();
        }
        let nlst_prefix = match nlst_dir_arg(arg) {
            Some(a) if format == ListFormat::Nlst => format!("{}/", a.trim_end_matches('/')),
            _ => String::new(),
        };
        Outcome::Transfer(TransferJob {
            // No store behind it: the audit line shows an empty key.
            key: crate::vfs::ObjectKey::from_trusted(""),
            opening: None,
            kind: TransferKind::Listing(format),
            work: Work::Listing {
                source: ListingSource::Pages(d.pages()),
                format,
                perms: VirtualDir::permissions(),
                facts: self.state.mlst_facts,
                nlst_prefix,
            },
            path: d.path,
            ascii: false,
            limits: DataLimits::default(),
        })
    }
}
