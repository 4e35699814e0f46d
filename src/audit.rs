//! The audit log: one line per thing a user did (login, upload, download, delete, rename,
//! mkdir, rmdir), with one stable schema, so a log pipeline can keep, search and alert on it.
//!
//! Audit lines are ordinary tracing events with target `audit` at level `info`, so they go
//! wherever the logs go (JSON lines with `log.format = "json"`) and can be routed by target.
//! [`crate::telemetry`] keeps them on whatever `log.level` says, unless the filter names
//! `audit` itself. The schema is documented in README ("Observability"); change it only by
//! adding fields.
//!
//! | field | on | value |
//! | --- | --- | --- |
//! | `event` | all | `login`, `upload`, `download`, `delete`, `rename`, `mkdir`, `rmdir` |
//! | `result` | all | `ok`, `failed`, `aborted` |
//! | `user` | all | the FTP user name (for a failed login: the name given) |
//! | `client_addr` | all | the client's `ip:port` (control connection; with `listeners.proxy_protocol`, from the PROXY header) |
//! | `session_id` | all | the session's number, as in every log line of the session |
//! | `path` | all but login | the client's path, absolute (`/in/a.csv`) |
//! | `key` | all but login | the storage key (`partners/acme/in/a.csv`) |
//! | `to_path`, `to_key` | rename | where it was renamed to |
//! | `bytes` | upload, download | bytes moved over the data connection |
//! | `sha256` | upload | SHA-256 of the stored content, lowercase hex, when known |
//! | `duration_ms` | upload, download | from `150` to the final reply |
//! | `reason` | result ≠ ok | why, in words |
//! | `client_cert_cn` | login | the subject CN of the verified client certificate, when one was presented |

use std::time::Duration;

use crate::net::ClientAddr;

/// The `target` of every audit event.
pub const TARGET: &str = "audit";

/// Who did it: the same three fields on every audit line.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub session_id: u64,
    pub client_addr: ClientAddr,
    /// The logged-in user, or for a login the name given with USER.
    pub user: &'a str,
}

/// A file or directory acted on: the path the client sees and the key in the store.
#[derive(Clone, Copy, Debug)]
pub struct Object<'a> {
    pub path: &'a str,
    pub key: &'a str,
}

/// What a finished upload or download moved.
#[derive(Clone, Copy, Debug)]
pub struct Transfer<'a> {
    pub bytes: u64,
    pub duration: Duration,
    /// SHA-256 of the content, lowercase hex (uploads, when the store computed it).
    pub sha256: Option<&'a str>,
}

/// How it ended. The reason is for people: short, no secrets (never a password).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    Ok,
    Failed(&'a str),
    /// Stopped before the end: ABOR, the client went away, server shutdown.
    Aborted(&'a str),
}

impl<'a> Outcome<'a> {
    pub fn result(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed(_) => "failed",
            Outcome::Aborted(_) => "aborted",
        }
    }

    pub fn reason(&self) -> Option<&'a str> {
        match *self {
            Outcome::Ok => None,
            Outcome::Failed(r) | Outcome::Aborted(r) => Some(r),
        }
    }
}

/// A login attempt ended (PASS, or USER answered `232`). `client_cert_cn`: the CN of the
/// session's verified client certificate, if any, so a certificate login names its certificate
/// and a refused one shows what was presented.
pub fn login(actor: Actor<'_>, outcome: Outcome<'_>, client_cert_cn: Option<&str>) {
    emit("login", actor, outcome, None, None, None, client_cert_cn);
}

/// A STOR (or APPE) ended: committed (`Ok`), or not (nothing new is visible at `key`).
pub fn upload(actor: Actor<'_>, file: Object<'_>, transfer: Transfer<'_>, outcome: Outcome<'_>) {
    emit(
        "upload",
        actor,
        outcome,
        Some(file),
        None,
        Some(transfer),
        None,
    );
}

/// A RETR ended.
pub fn download(actor: Actor<'_>, file: Object<'_>, transfer: Transfer<'_>, outcome: Outcome<'_>) {
    emit(
        "download",
        actor,
        outcome,
        Some(file),
        None,
        Some(transfer),
        None,
    );
}

/// A DELE ended.
pub fn delete(actor: Actor<'_>, file: Object<'_>, outcome: Outcome<'_>) {
    emit("delete", actor, outcome, Some(file), None, None, None);
}

/// An RNFR + RNTO ended.
pub fn rename(actor: Actor<'_>, from: Object<'_>, to: Object<'_>, outcome: Outcome<'_>) {
    emit("rename", actor, outcome, Some(from), Some(to), None, None);
}

/// A MKD ended.
pub fn mkdir(actor: Actor<'_>, dir: Object<'_>, outcome: Outcome<'_>) {
    emit("mkdir", actor, outcome, Some(dir), None, None, None);
}

/// An RMD ended.
pub fn rmdir(actor: Actor<'_>, dir: Object<'_>, outcome: Outcome<'_>) {
    emit("rmdir", actor, outcome, Some(dir), None, None, None);
}

/// The one place an audit line is written (so every line has the same shape). Fields that do
/// not apply are `None` and left out of the line.
fn emit(
    event: &'static str,
    actor: Actor<'_>,
    outcome: Outcome<'_>,
    object: Option<Object<'_>>,
    to: Option<Object<'_>>,
    transfer: Option<Transfer<'_>>,
    client_cert_cn: Option<&str>,
) {
    tracing::info!(
        target: TARGET,
        event,
        result = outcome.result(),
        user = actor.user,
        client_addr = %actor.client_addr,
        session_id = actor.session_id,
        path = object.map(|o| o.path),
        key = object.map(|o| o.key),
        to_path = to.map(|o| o.path),
        to_key = to.map(|o| o.key),
        bytes = transfer.map(|t| t.bytes),
        sha256 = transfer.and_then(|t| t.sha256),
        duration_ms = transfer.map(|t| u64::try_from(t.duration.as_millis()).unwrap_or(u64::MAX)),
        reason = outcome.reason(),
        client_cert_cn,
        "audit"
    );
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON lines `f` logs, as the server's JSON format writes them.
    fn json_lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buffer.0.lock().expect("buffer").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    fn actor() -> Actor<'static> {
        Actor {
            session_id: 7,
            client_addr: ClientAddr::direct("203.0.113.7:51234".parse().expect("addr")),
            user: "acme",
        }
    }

    #[test]
    fn upload_line_has_the_documented_fields() {
        let lines = json_lines(|| {
            upload(
                actor(),
                Object {
                    path: "/in/a.csv",
                    key: "partners/acme/in/a.csv",
                },
                Transfer {
                    bytes: 1234,
                    duration: Duration::from_millis(56),
                    sha256: Some("ab12"),
                },
                Outcome::Ok,
            )
        });
        let l = &lines[0];
        assert_eq!(l["target"], "audit");
        assert_eq!(l["level"], "INFO");
        assert_eq!(l["event"], "upload");
        assert_eq!(l["result"], "ok");
        assert_eq!(l["user"], "acme");
        assert_eq!(l["client_addr"], "203.0.113.7:51234");
        assert_eq!(l["session_id"], 7);
        assert_eq!(l["path"], "/in/a.csv");
        assert_eq!(l["key"], "partners/acme/in/a.csv");
        assert_eq!(l["bytes"], 1234);
        assert_eq!(l["sha256"], "ab12");
        assert_eq!(l["duration_ms"], 56);
        assert!(l.get("reason").is_none(), "{l}");
        assert!(l.get("to_path").is_none(), "{l}");
    }

    #[test]
    fn failures_carry_a_reason_and_renames_both_names() {
        let lines = json_lines(|| {
            login(actor(), Outcome::Failed("wrong password"), None);
            login(actor(), Outcome::Ok, Some("partner.example"));
            rename(
                actor(),
                Object {
                    path: "/a",
                    key: "partners/acme/a",
                },
                Object {
                    path: "/b",
                    key: "partners/acme/b",
                },
                Outcome::Ok,
            );
        });
        assert_eq!(lines[0]["event"], "login");
        assert_eq!(lines[0]["result"], "failed");
        assert_eq!(lines[0]["reason"], "wrong password");
        assert!(lines[0].get("path").is_none());
        assert!(lines[0].get("client_cert_cn").is_none());
        assert_eq!(lines[1]["client_cert_cn"], "partner.example");
        assert_eq!(lines[2]["event"], "rename");
        assert_eq!(lines[2]["path"], "/a");
        assert_eq!(lines[2]["to_key"], "partners/acme/b");
    }
}
