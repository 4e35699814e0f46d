//! Where the user is: PWD, CWD, CDUP (RFC 959 §4.1.1).

use crate::session::reply::Reply;
use crate::session::{log_storage_error, Located, Outcome, Session};
use crate::vfs::EntryKind;

impl Session {
    pub(in crate::session) fn pwd(&self) -> Outcome {
        Reply::new(
            257,
            format!(
                "{} is the current directory",
                quote(self.state.cwd.as_str())
            ),
        )
        .into()
    }

    /// CWD (and CDUP as `CWD ..`): the target must be an existing directory.
    pub(in crate::session) async fn cwd(&mut self, arg: &str) -> Outcome {
        let r = match self.locate_to_list(arg) {
            Ok(Located::Mounted(r)) => r,
            // Above folders: a directory that always exists.
            Ok(Located::Virtual(d)) => {
                self.state.cwd = d.path;
                return Reply::file_ok(format!("Directory changed to {}", self.state.cwd)).into();
            }
            Err(reply) => return reply.into(),
        };
        if !r.at_mount_point() {
            match r.stat().await {
                Ok(e) if e.kind == EntryKind::Dir => {}
                Ok(_) => return Reply::new(550, format!("{}: Not a directory", r.path)).into(),
                Err(e) => {
                    log_storage_error("stat", &e);
                    return Reply::storage_error(&e, r.path.as_str()).into();
                }
            }
        }
        self.state.cwd = r.path;
        Reply::file_ok(format!("Directory changed to {}", self.state.cwd)).into()
    }
}

/// RFC 959 Appendix II: a path in a 257 reply is quoted, with embedded quotes doubled.
pub(in crate::session) fn quote(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_are_doubled() {
        assert_eq!(super::quote("/a\"b"), "\"/a\"\"b\"");
    }
}
