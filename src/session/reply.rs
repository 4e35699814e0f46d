//! Replies: a code and one or more lines of text, formatted as RFC 959 §4.2 says.
//!
//! Every reply used in more than one place, and each code family used often, has a constructor
//! here; a reply used once may still be written with [`Reply::new`] where it is used. Storage
//! errors and parse errors become replies in exactly one function each ([`Reply::storage_error`],
//! [`Reply::parse_error`]), so "550 or 451?" is decided once.

use std::fmt::Write as _;

use crate::session::command::ParseError;
use crate::vfs::{PathError, StorageError};

/// One reply. `lines` has at least one element; more make a multi-line reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Self {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply: `code-first`, then the middle lines indented by one space (so a line
    /// that starts with digits cannot be mistaken for the end), then `code last`.
    pub fn multi(code: u16, lines: Vec<String>) -> Self {
        debug_assert!(!lines.is_empty());
        Reply { code, lines }
    }

    /// The bytes on the wire. Control characters inside a text (CR, LF, escape sequences: from
    /// a storage error, say) are sent as `?`, so no text can add a line or inject a reply.
    pub fn to_wire(&self) -> Vec<u8> {
        let lines: Vec<String> = self
            .lines
            .iter()
            .map(|l| {
                l.chars()
                    .map(|c| if c.is_control() { '?' } else { c })
                    .collect()
            })
            .collect();
        let mut out = String::new();
        match lines.as_slice() {
            [] => {
                let _ = write!(out, "{}\r\n", self.code);
            }
            [only] => {
                let _ = write!(out, "{} {}\r\n", self.code, only);
            }
            [first, middle @ .., last] => {
                let _ = write!(out, "{}-{}\r\n", self.code, first);
                for l in middle {
                    let _ = write!(out, " {}\r\n", l);
                }
                let _ = write!(out, "{} {}\r\n", self.code, last);
            }
        }
        out.into_bytes()
    }

    // --- Common replies, by family (RFC 959 §4.2.1). ---

    pub fn ok(text: impl Into<String>) -> Self {
        Reply::new(200, text)
    }

    pub fn file_ok(text: impl Into<String>) -> Self {
        Reply::new(250, text)
    }

    pub fn pending(text: impl Into<String>) -> Self {
        Reply::new(350, text)
    }

    pub fn not_logged_in() -> Self {
        Reply::new(530, "Please log in with USER and PASS first")
    }

    pub fn bad_sequence(text: impl Into<String>) -> Self {
        Reply::new(503, text)
    }

    pub fn permission_denied() -> Self {
        Reply::new(550, "Permission denied")
    }

    pub fn not_implemented(verb: &str) -> Self {
        Reply::new(502, format!("{verb} not implemented"))
    }

    /// RFC 4217 §5/§9: security policy refuses the request.
    pub fn tls_required(text: impl Into<String>) -> Self {
        Reply::new(534, text)
    }

    /// 213: a file's status (SIZE, MDTM, HASH, STAT's last line).
    pub fn file_status(text: impl Into<String>) -> Self {
        Reply::new(213, text)
    }

    /// 421: the server closes the control connection.
    pub fn closing(text: impl Into<String>) -> Self {
        Reply::new(421, text)
    }

    pub fn control_connection_failed() -> Self {
        Reply::closing("Control connection failed")
    }

    /// 425 before a transfer: no PORT/EPRT/PASV/EPSV since the last one.
    pub fn no_data_target() -> Self {
        Reply::new(425, "Use PORT, EPRT, PASV or EPSV first")
    }

    /// 501: the arguments are wrong.
    pub fn syntax_error(text: impl Into<String>) -> Self {
        Reply::new(501, text)
    }

    /// 504: the command is known, this argument is not supported.
    pub fn parameter_not_supported(text: impl Into<String>) -> Self {
        Reply::new(504, text)
    }

    /// 550 for a path that names a directory where a file is needed.
    pub fn is_a_directory(path: &str) -> Self {
        Reply::new(550, format!("{path}: Is a directory"))
    }

    /// 550 for a path that is not a plain file (SIZE, MDTM, HASH of a directory).
    pub fn not_a_plain_file(path: &str) -> Self {
        Reply::new(550, format!("{path}: not a plain file"))
    }

    /// 550 for a path outside every folder of a user with folders: as if nothing were there.
    pub fn outside_folders(path: &str) -> Self {
        Reply::new(550, format!("{path}: No such file or directory"))
    }

    /// 550 for a change in (or a file read of) a virtual directory, one above a user's folders.
    pub fn virtual_directory(path: &str) -> Self {
        Reply::new(
            550,
            format!("{path}: virtual directory, read-only: use one of its folders"),
        )
    }

    /// 550 for removing, renaming or writing over a mount point (the home, a folder).
    pub fn mount_point(path: &str) -> Self {
        Reply::new(
            550,
            format!("{path}: the root of the home or of a folder cannot be changed"),
        )
    }

    /// 553 for a rename between folders in different buckets (a server-side copy cannot cross).
    pub fn across_buckets(to: &str) -> Self {
        Reply::new(
            553,
            format!("{to}: cannot rename across folders in different buckets"),
        )
    }

    pub fn file_exists(path: &str) -> Self {
        Reply::new(550, format!("{path}: File exists"))
    }

    /// 550: the user lacks the `overwrite` permission for a file that exists.
    pub fn may_not_overwrite(path: &str) -> Self {
        Reply::new(
            550,
            format!("{path}: File exists and may not be overwritten"),
        )
    }

    /// 552 (RFC 959: "Requested file action aborted. Exceeded storage allocation"): an upload
    /// refused by the user's quota, before it started or during the transfer.
    pub fn quota_exceeded(e: &crate::quota::Exceeded, path: &str) -> Self {
        Reply::new(552, format!("{path}: Exceeded storage allocation: {e}"))
    }

    pub fn transfer_complete() -> Self {
        Reply::new(226, "Transfer complete")
    }

    pub fn transfer_aborted(why: &str) -> Self {
        Reply::new(426, format!("Connection closed; transfer aborted: {why}"))
    }

    /// The one place a parse error becomes a reply.
    pub fn parse_error(e: &ParseError) -> Self {
        let code = match e {
            ParseError::Empty | ParseError::Unrecognized(_) => 500,
            ParseError::NotUtf8 | ParseError::MissingArgument(_) | ParseError::BadArgument(_) => {
                501
            }
            ParseError::UnsupportedParameter("EPSV" | "EPRT", _) => 522,
            ParseError::UnsupportedParameter(..) => 504,
        };
        let text = match e {
            ParseError::UnsupportedParameter("EPSV" | "EPRT", _) => {
                "Network protocol not supported, use (1,2)".to_string()
            }
            e => e.to_string(),
        };
        Reply::new(code, text)
    }

    /// A client path that cannot name a key (NUL, backslash): RFC 959 553, file name not allowed.
    pub fn path_error(e: &PathError) -> Self {
        Reply::new(553, format!("File name not allowed: {e}"))
    }

    /// The one place a storage error becomes a reply. `path` is the client's view of the name:
    /// replies never show keys (they would reveal the user's prefix).
    pub fn storage_error(e: &StorageError, path: &str) -> Self {
        match e {
            StorageError::NotFound(_) => {
                Reply::new(550, format!("{path}: No such file or directory"))
            }
            StorageError::IsADirectory(_) => Reply::new(550, format!("{path}: Is a directory")),
            StorageError::NotADirectory(_) => Reply::new(550, format!("{path}: Not a directory")),
            StorageError::AlreadyExists(_) => Reply::new(550, format!("{path}: File exists")),
            StorageError::NotEmpty(_) => Reply::new(550, format!("{path}: Directory not empty")),
            // RFC 3659 §5.5 / RFC 1123: an unusable restart marker.
            StorageError::InvalidRange(_) => Reply::new(
                554,
                format!("{path}: Restart offset is past the end of the file"),
            ),
            StorageError::Unsupported(what) => Reply::new(550, format!("{path}: {what}")),
            // RFC 1123 §4.1.3.4: a restart marker the server cannot honour.
            StorageError::ResumeMismatch {
                held, requested, ..
            } => Reply::new(
                554,
                format!(
                    "{path}: cannot resume at byte {requested}: {held} bytes are stored; \
                     send REST {held}, or REST 0 to start over"
                ),
            ),
            StorageError::TooManyObjects { limit, .. } => Reply::new(
                550,
                format!("{path}: more than {limit} objects, too many to rename"),
            ),
            // RFC 959 553: the name is not allowed, and never will be (no "try again").
            StorageError::NameRefused { .. } => Reply::new(
                553,
                format!("{path}: File name not allowed by the storage (too long?)"),
            ),
            // A permanent refusal: a 5xx so that clients do not retry what cannot pass.
            // EntityTooLarge is RFC 959's 552 (exceeded storage allocation).
            StorageError::Refused { code, .. } if code == "EntityTooLarge" => {
                Reply::new(552, format!("{path}: File too large for the storage"))
            }
            StorageError::Refused { .. } => {
                Reply::new(550, format!("{path}: Refused by the storage"))
            }
            // Details (bucket, S3 code) go to the log, not to the client. 451: may pass on a
            // retry.
            StorageError::Backend { .. } | StorageError::Io { .. } => Reply::new(
                451,
                "Local error in processing: storage unavailable, try again",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        assert_eq!(Reply::new(200, "OK").to_wire(), b"200 OK\r\n");
    }

    #[test]
    fn multi_line_indents_middle_lines() {
        let r = Reply::multi(211, vec!["Features:".into(), "UTF8".into(), "End".into()]);
        assert_eq!(r.to_wire(), b"211-Features:\r\n UTF8\r\n211 End\r\n");
    }

    #[test]
    fn newlines_in_text_cannot_inject_a_reply() {
        let r = Reply::new(550, "x\r\n230 Logged in\x1b[2J\u{85}");
        assert_eq!(r.to_wire(), "550 x??230 Logged in?[2J?\r\n".as_bytes());
        let wire = String::from_utf8(r.to_wire()).expect("utf8");
        assert!(!wire.lines().any(|l| l.starts_with("230")));
    }

    /// The named replies say exactly what the handlers wrote inline before (clients and tests
    /// compare texts).
    #[test]
    fn named_replies_keep_their_texts() {
        let wire = |r: Reply| String::from_utf8(r.to_wire()).unwrap_or_default();
        let cases = [
            (
                Reply::no_data_target(),
                "425 Use PORT, EPRT, PASV or EPSV first\r\n",
            ),
            (
                Reply::control_connection_failed(),
                "421 Control connection failed\r\n",
            ),
            (Reply::is_a_directory("/a"), "550 /a: Is a directory\r\n"),
            (
                Reply::not_a_plain_file("/d"),
                "550 /d: not a plain file\r\n",
            ),
            (Reply::file_exists("/a"), "550 /a: File exists\r\n"),
            (
                Reply::may_not_overwrite("/a"),
                "550 /a: File exists and may not be overwritten\r\n",
            ),
            (Reply::file_status("3"), "213 3\r\n"),
            (Reply::syntax_error("x"), "501 x\r\n"),
            (Reply::parameter_not_supported("x"), "504 x\r\n"),
            (Reply::closing("x"), "421 x\r\n"),
        ];
        for (reply, want) in cases {
            assert_eq!(wire(reply), want);
        }
    }

    #[test]
    fn storage_errors_map_once() {
        let r = Reply::storage_error(&StorageError::NotFound("k".into()), "/a");
        assert_eq!(r.code, 550);
        assert!(!r.lines[0].contains('k'));
        let r = Reply::storage_error(
            &StorageError::Backend {
                op: "GetObject",
                key: "secret/prefix/a".into(),
                code: "SlowDown".into(),
                message: "m".into(),
            },
            "/a",
        );
        assert_eq!(r.code, 451);
        assert!(!r.lines[0].contains("secret"));
        let r = Reply::storage_error(
            &StorageError::NameRefused {
                key: "secret/prefix/a".into(),
                reason: "KeyTooLongError".into(),
            },
            "/a",
        );
        assert_eq!(r.code, 553);
        assert!(!r.lines[0].contains("secret"));
        let r = Reply::storage_error(
            &StorageError::Refused {
                op: "PutObject",
                key: "secret/prefix/a".into(),
                code: "AccessDenied".into(),
                message: "m".into(),
            },
            "/a",
        );
        assert_eq!(r.code, 550);
        assert!(!r.lines[0].contains("secret"));
    }
}
