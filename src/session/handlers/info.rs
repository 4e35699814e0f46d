//! Information: SIZE, MDTM, MLST (RFC 3659), FEAT, OPTS (RFC 2389, RFC 2640), HELP, STAT.

use std::time::SystemTime;

use crate::auth::Permission;
use crate::listing;
use crate::session::handlers::files::storage_reply;
use crate::session::reply::Reply;
use crate::session::{Outcome, Session};
use crate::vfs::EntryKind;

impl Session {
    /// RFC 3659 §4: the size of a file, in bytes of the stored object.
    pub(in crate::session) async fn size(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::List, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        match r.stat().await {
            Ok(e) if e.kind == EntryKind::File => Reply::new(213, e.size.to_string()).into(),
            Ok(_) => Reply::new(550, format!("{}: not a plain file", r.path)).into(),
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
                Reply::new(213, listing::mdtm(t)).into()
            }
            Ok(_) => Reply::new(550, format!("{}: not a plain file", r.path)).into(),
            Err(e) => storage_reply("stat", &e, &r.path),
        }
    }

    /// RFC 3659 §7.2: facts about one path, on the control connection.
    pub(in crate::session) async fn mlst(&mut self, arg: Option<&str>) -> Outcome {
        let r = match self.resolve(Permission::List, arg.unwrap_or(".")) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        let perms = match self.state.logged_in() {
            Some(l) => l.user.permissions,
            None => return Reply::not_logged_in().into(),
        };
        match r.stat().await {
            Ok(entry) => Reply::multi(
                250,
                vec![
                    format!("Listing {}", r.path),
                    format!("{} {}", listing::mlsx_facts(&entry, perms), r.path),
                    "End".to_string(),
                ],
            )
            .into(),
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
                "PROT C;P;",
                "UTF8",
                "SIZE",
                "MDTM",
                "REST STREAM",
                "EPSV",
                "HOST",
                "MLST type*;size*;modify*;perm*;",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        if self.ctx.config.tls.allow_ccc {
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
            _ => Reply::new(501, format!("OPTS {option} not supported")).into(),
        }
    }

    pub(in crate::session) fn help(&self) -> Outcome {
        Reply::multi(
            214,
            vec![
                "The following commands are recognized:".to_string(),
                "ABOR ACCT AUTH CCC CDUP CWD DELE EPSV FEAT HELP HOST LIST MDTM MKD".to_string(),
                "MLSD MLST MODE NLST NOOP OPTS PASS PASV PBSZ PROT PWD QUIT REIN REST".to_string(),
                "RETR RMD RNFR RNTO SIZE STAT STOR STRU SYST TYPE USER".to_string(),
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
                format!("Connected from {}", self.peer()),
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
