//! Information: SIZE, MDTM, MLST (RFC 3659), FEAT, OPTS (RFC 2389, RFC 2640), HELP, STAT.

use std::time::SystemTime;

use crate::auth::Permission;
use crate::listing::{self, MlstFacts};
use crate::session::handlers::files::storage_reply;
use crate::session::reply::Reply;
use crate::session::state::HashAlgorithm;
use crate::session::status::{StatusListing, StatusSource};
use crate::session::{Located, Outcome, Session, VirtualDir};
use crate::vfs::{EntryKind, ObjectKey, Storage, StorageError};

impl Session {
    /// RFC 3659 §4: the size of a file, in bytes of the stored object. For a key with a kept
    /// (interrupted) upload newer than any file there, the bytes that upload holds: that is
    /// where a client resuming with `REST n` + `STOR` must continue (lftp `put -c`, curl `-C -`).
    pub(in crate::session) async fn size(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::List, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if !r.at_mount_point() {
            match r.home.storage().pending_upload_size(&r.key).await {
                Ok(Some(held)) => return Reply::file_status(held.to_string()).into(),
                Ok(None) => {}
                Err(e) => return storage_reply("stat", &e, &r.path),
            }
        }
        match r.stat().await {
            Ok(e) if e.kind == EntryKind::File => Reply::file_status(e.size.to_string()).into(),
            Ok(_) => Reply::not_a_plain_file(r.path.as_str()).into(),
            Err(e) => storage_reply("stat", &e, &r.path),
        }
    }

    /// RFC 3659 §3: last modification time, UTC.
    pub(in crate::session) async fn mdtm(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::List, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        match r.stat().await {
            Ok(e) if e.kind == EntryKind::File => {
                let t = e.modified.unwrap_or(SystemTime::UNIX_EPOCH);
                Reply::file_status(listing::mdtm(t)).into()
            }
            Ok(_) => Reply::not_a_plain_file(r.path.as_str()).into(),
            Err(e) => storage_reply("stat", &e, &r.path),
        }
    }

    /// draft-somers-ftp-mfxx §3 MFMT (`213 Modify=YYYYMMDDHHMMSS; path`), and MDTM with a time
    /// (vsftpd's form: `213` and the time). Needs `write`: it changes no content, and a client
    /// that may upload sets the times of what it uploads (rclone, lftp after every put).
    pub(in crate::session) async fn set_time(
        &mut self,
        verb: &str,
        time: SystemTime,
        arg: &str,
    ) -> Outcome {
        let r = match self.resolve(Permission::Write, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        match r.home.storage().set_modified(&r.key, time).await {
            Ok(()) if verb == "MFMT" => {
                Reply::file_status(format!("Modify={}; {arg}", listing::mdtm(time))).into()
            }
            Ok(()) => Reply::file_status(listing::mdtm(time)).into(),
            Err(e) => storage_reply("set time", &e, &r.path),
        }
    }

    /// draft-bryan-ftpext-hash §3: `213 <algorithm> 0-<size> <digest> <path>`. The digest
    /// recorded when the file was uploaded is answered without reading the file; files without
    /// one (stored by other means) are read through once and hashed as they stream.
    pub(in crate::session) async fn hash(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::List, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        let entry = match r.stat().await {
            Ok(e) if e.kind == EntryKind::File => e,
            Ok(_) => return Reply::not_a_plain_file(r.path.as_str()).into(),
            Err(e) => return storage_reply("stat", &e, &r.path),
        };
        let algorithm = self.state.hash_algorithm;
        let storage = r.home.storage().clone();
        let recorded = match storage.recorded_digests(&r.key).await {
            Ok(d) => match algorithm {
                HashAlgorithm::Sha256 => d.sha256,
                HashAlgorithm::Crc32 => d.crc32.map(|c| format!("{c:08x}")),
            },
            Err(e) => return storage_reply("stat", &e, &r.path),
        };
        let digest = match recorded {
            Some(d) => d,
            None => match digest_by_reading(&storage, &r.key, algorithm).await {
                Ok(d) => d,
                Err(e) => return storage_reply("read", &e, &r.path),
            },
        };
        Reply::file_status(format!(
            "{} 0-{} {digest} {}",
            algorithm.name(),
            entry.size,
            r.path
        ))
        .into()
    }

    /// RFC 3659 §7.2: facts about one path, on the control connection.
    pub(in crate::session) async fn mlst(&mut self, arg: Option<&str>) -> Outcome {
        let r = match self.locate_to_list(arg.unwrap_or(".")) {
            Ok(Located::Mounted(r)) => r,
            Ok(Located::Virtual(d)) => {
                let entry = crate::vfs::Entry::dir("");
                let facts =
                    listing::mlsx_facts(&entry, VirtualDir::permissions(), self.state.mlst_facts);
                return mlst_reply(&d.path, facts);
            }
            Err(reply) => return reply.into(),
        };
        match r.stat().await {
            Ok(entry) => {
                let facts = listing::mlsx_facts(&entry, r.permissions, self.state.mlst_facts);
                mlst_reply(&r.path, facts)
            }
            Err(e) => storage_reply("stat", &e, &r.path),
        }
    }

    /// RFC 2389 §3; MS-FTPS §3.2.5.5 (`AUTH TLS;SSL;`).
    pub(in crate::session) fn feat(&self) -> Outcome {
        let mut lines = vec!["Extensions supported:".to_string()];
        lines.extend(
            [
                "AUTH TLS;SSL;",
                "PBSZ",
                // What PROT accepts (handlers/auth.rs): C only where clear data is allowed.
                if self.env.policy.require_tls {
                    "PROT P;"
                } else {
                    "PROT C;P;"
                },
                "UTF8",
                "SIZE",
                "MDTM",
                "REST STREAM",
                "EPSV",
                "HOST",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        // MFMT only where listings report what it sets: a client that sets times and then
        // sees other ones in LIST/MLSD (S3 with s3.listing_times off) uploads everything again.
        if self.env.policy.mfmt {
            lines.push("MFMT".to_string());
        }
        lines.push(self.state.mlst_facts.feat_line());
        lines.push(self.state.hash_algorithm.feat_line());
        if self.env.policy.allow_ccc {
            lines.push("CCC".to_string());
        }
        lines.push("End".to_string());
        Reply::multi(211, lines).into()
    }

    /// RFC 2640 §3.1 `OPTS UTF8 ON`: names are always UTF-8 here, so ON and OFF both succeed
    /// (OFF changes nothing: we never reinterpret bytes).
    pub(in crate::session) fn opts(&mut self, arg: &str) -> Outcome {
        let mut words = arg.split_whitespace();
        let option = words.next().unwrap_or("").to_ascii_uppercase();
        match option.as_str() {
            "UTF8" | "UTF-8" => Reply::ok("UTF8 mode is always on").into(),
            // draft-bryan-ftpext-hash §4.
            "HASH" => match words.next() {
                None => Reply::ok(self.state.hash_algorithm.name()).into(),
                Some(name) => match HashAlgorithm::parse(name) {
                    Some(a) => {
                        self.state.hash_algorithm = a;
                        Reply::ok(a.name()).into()
                    }
                    None => {
                        Reply::parameter_not_supported(format!("Unknown hash algorithm {name}"))
                            .into()
                    }
                },
            },
            // RFC 3659 §7.9: `OPTS MLST fact;fact;` selects facts; unknown ones are dropped.
            "MLST" => {
                self.state.mlst_facts = MlstFacts::parse(words.next().unwrap_or(""));
                Reply::ok(format!("MLST OPTS {}", self.state.mlst_facts.selected())).into()
            }
            _ => Reply::syntax_error(format!("OPTS {option} not supported")).into(),
        }
    }

    /// SITE: only HELP; other SITE commands (CHMOD, UTIME, …) have no meaning for objects.
    pub(in crate::session) fn site(&self, arg: &str) -> Outcome {
        let sub = arg
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match sub.as_str() {
            "HELP" => Reply::multi(
                214,
                vec![
                    "SITE commands recognized:".to_string(),
                    "HELP".to_string(),
                    "End".to_string(),
                ],
            )
            .into(),
            _ => Reply::parameter_not_supported(format!("SITE {sub} not supported")).into(),
        }
    }

    /// RFC 959 STAT with a path: the LIST of it, on the control connection (213), which the
    /// session loop writes (see `session/status.rs`).
    pub(in crate::session) async fn stat_path(&mut self, arg: &str) -> Outcome {
        let r = match self.locate_to_list(arg) {
            Ok(Located::Mounted(r)) => r,
            Ok(Located::Virtual(d)) => {
                return Outcome::Status(StatusListing {
                    source: StatusSource::Pages(d.pages()),
                    path: d.path,
                })
            }
            Err(reply) => return reply.into(),
        };
        let entry = match r.stat().await {
            Ok(e) => e,
            Err(e) => return storage_reply("stat", &e, &r.path),
        };
        let source = match entry.kind {
            EntryKind::File => StatusSource::Single(crate::vfs::Entry {
                name: r.path.file_name().unwrap_or_default().to_string(),
                ..entry
            }),
            EntryKind::Dir => StatusSource::Pages(r.home.storage().list(&r.key)),
        };
        Outcome::Status(StatusListing {
            path: r.path,
            source,
        })
    }

    pub(in crate::session) fn help(&self) -> Outcome {
        Reply::multi(
            214,
            vec![
                "The following commands are recognized:".to_string(),
                "ABOR ACCT ALLO APPE AUTH CCC CDUP CWD DELE EPRT EPSV FEAT HASH HELP".to_string(),
                "HOST LIST MDTM MFMT MKD MLSD MLST MODE NLST NOOP OPTS PASS PASV PBSZ PORT"
                    .to_string(),
                "PROT PWD QUIT REIN REST RETR RMD RNFR RNTO SITE SIZE STAT STOR STOU".to_string(),
                "STRU SYST TYPE USER XCUP XCWD XMKD XPWD XRMD".to_string(),
                "Help OK".to_string(),
            ],
        )
        .into()
    }

    /// RFC 959 STAT without an argument: the session's status on the control connection.
    pub(in crate::session) fn stat(&self) -> Outcome {
        let user = self
            .state
            .user_name()
            .unwrap_or("(not logged in)")
            .to_string();
        let tls = match self.conn.tls_info() {
            Some((v, c)) => format!("{v}, {c}"),
            None => "none".to_string(),
        };
        Reply::multi(
            211,
            vec![
                "ftps-s3 status:".to_string(),
                format!("Connected from {}", self.client()),
                format!("Logged in as {user}"),
                format!("Control connection TLS: {tls}"),
                format!("Data protection: {:?}", self.state.protection),
                format!("TYPE: {:?}", self.state.transfer_type),
                "End of status".to_string(),
            ],
        )
        .into()
    }
}

/// MLST's 250: the facts of one path.
fn mlst_reply(path: &crate::vfs::VirtualPath, facts: String) -> Outcome {
    Reply::multi(
        250,
        vec![
            format!("Listing {path}"),
            format!("{facts} {path}"),
            "End".to_string(),
        ],
    )
    .into()
}

/// One STAT line: a LIST line, indented by one space (names with control characters never
/// get here: `listing::listable_entries`).
/// Reads a whole file once and digests it (for files stored without a recorded digest).
async fn digest_by_reading(
    storage: &std::sync::Arc<dyn Storage>,
    key: &ObjectKey,
    algorithm: HashAlgorithm,
) -> Result<String, StorageError> {
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
    let mut body = storage.read(key, 0).await?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut sha = sha2::Sha256::new();
    let mut crc = crc32fast::Hasher::new();
    loop {
        let n = body
            .read(&mut buf)
            .await
            .map_err(|source| StorageError::Io {
                key: key.to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        match algorithm {
            HashAlgorithm::Sha256 => sha.update(&buf[..n]),
            HashAlgorithm::Crc32 => crc.update(&buf[..n]),
        }
    }
    Ok(match algorithm {
        HashAlgorithm::Sha256 => sha.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        HashAlgorithm::Crc32 => format!("{:08x}", crc.finalize()),
    })
}
