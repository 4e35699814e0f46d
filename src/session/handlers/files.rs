//! File operations: DELE, MKD, RMD, RNFR, RNTO (RFC 959 §4.1.3).

use crate::auth::Permission;
use crate::session::handlers::navigation::quote;
use crate::session::reply::Reply;
use crate::session::{log_storage_error, Outcome, Session};
use crate::vfs::{StorageError, VirtualPath};

impl Session {
    pub(in crate::session) async fn dele(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Delete, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        match r.home.storage().delete_file(&r.key).await {
            Ok(()) => {
                tracing::info!(event = "delete", path = %r.path, key = %r.key, "deleted");
                Reply::file_ok(format!("{} deleted", r.path)).into()
            }
            Err(e) => storage_reply("delete", &e, &r.path),
        }
    }

    pub(in crate::session) async fn mkd(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Mkdir, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.path.is_root() {
            return Reply::new(550, "/: File exists").into();
        }
        match r.home.storage().make_dir(&r.key).await {
            Ok(()) => {
                tracing::info!(event = "mkdir", path = %r.path, key = %r.key, "directory created");
                Reply::new(257, format!("{} created", quote(r.path.as_str()))).into()
            }
            Err(e) => storage_reply("mkdir", &e, &r.path),
        }
    }

    pub(in crate::session) async fn rmd(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Delete, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.path.is_root() {
            return Reply::new(550, "/: The home directory cannot be removed").into();
        }
        match r.home.storage().remove_dir(&r.key).await {
            Ok(()) => {
                tracing::info!(event = "rmdir", path = %r.path, key = %r.key, "directory removed");
                Reply::file_ok(format!("{} removed", r.path)).into()
            }
            Err(e) => storage_reply("rmdir", &e, &r.path),
        }
    }

    /// RNFR: the source must exist; RNTO must follow.
    pub(in crate::session) async fn rnfr(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Rename, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        match r.stat().await {
            Ok(_) => {
                self.state.rename_from = Some(r.path);
                Reply::pending("Ready for RNTO").into()
            }
            Err(e) => storage_reply("stat", &e, &r.path),
        }
    }

    pub(in crate::session) async fn rnto(
        &mut self,
        from: Option<VirtualPath>,
        arg: &str,
    ) -> Outcome {
        let Some(from) = from else {
            return Reply::bad_sequence("RNFR required first").into();
        };
        let to = match self.resolve(Permission::Rename, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        let from_key = to.home.key(&from);
        match to.home.storage().rename_file(&from_key, &to.key).await {
            Ok(()) => {
                tracing::info!(event = "rename", from = %from, to = %to.path, "renamed");
                Reply::file_ok("Rename successful").into()
            }
            Err(e) => storage_reply("rename", &e, &from),
        }
    }
}

/// A storage error as a reply, logged when it is the store's fault rather than the client's.
pub(in crate::session) fn storage_reply(op: &str, e: &StorageError, path: &VirtualPath) -> Outcome {
    log_storage_error(op, e);
    Reply::storage_error(e, path.as_str()).into()
}
