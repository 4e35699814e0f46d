//! File operations: DELE, MKD, RMD, RNFR, RNTO (RFC 959 §4.1.3).

use std::sync::Arc;

use crate::audit;
use crate::auth::Permission;
use crate::session::handlers::navigation::quote;
use crate::session::reply::Reply;
use crate::session::{log_storage_error, Located, Outcome, Session};
use crate::vfs::{EntryKind, StorageError, VirtualPath};

impl Session {
    pub(in crate::session) async fn dele(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Delete, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.at_mount_point() {
            return Reply::is_a_directory(r.path.as_str()).into();
        }
        // With a quota, the size the delete frees (one HEAD more; the store's delete says none).
        let account = self.quota_account();
        let size = match &account {
            Some(_) => match r.stat().await {
                Ok(e) => Some(e.size),
                Err(e) => return storage_reply("delete", &e, &r.path),
            },
            None => None,
        };
        match r.home.storage().delete_file(&r.key).await {
            Ok(()) => {
                if let (Some(account), Some(size)) = (account, size) {
                    account.removed(size);
                }
                audit::delete(self.actor(), r.object(), audit::Outcome::Ok);
                self.env.events.deleted(self.actor(), &r.home, r.object());
                Reply::file_ok(format!("{} deleted", r.path)).into()
            }
            Err(e) => {
                audit::delete(
                    self.actor(),
                    r.object(),
                    audit::Outcome::Failed(&e.to_string()),
                );
                storage_reply("delete", &e, &r.path)
            }
        }
    }

    pub(in crate::session) async fn mkd(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Mkdir, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.at_mount_point() {
            return Reply::file_exists(r.path.as_str()).into();
        }
        if let Err(reply) = r.parent_exists().await {
            return reply.into();
        }
        match r.home.storage().make_dir(&r.key).await {
            Ok(()) => {
                audit::mkdir(self.actor(), r.object(), audit::Outcome::Ok);
                Reply::new(257, format!("{} created", quote(r.path.as_str()))).into()
            }
            Err(e) => {
                audit::mkdir(
                    self.actor(),
                    r.object(),
                    audit::Outcome::Failed(&e.to_string()),
                );
                storage_reply("mkdir", &e, &r.path)
            }
        }
    }

    pub(in crate::session) async fn rmd(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Delete, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.at_mount_point() {
            return Reply::mount_point(r.path.as_str()).into();
        }
        match r.home.storage().remove_dir(&r.key).await {
            Ok(()) => {
                audit::rmdir(self.actor(), r.object(), audit::Outcome::Ok);
                Reply::file_ok(format!("{} removed", r.path)).into()
            }
            Err(e) => {
                audit::rmdir(
                    self.actor(),
                    r.object(),
                    audit::Outcome::Failed(&e.to_string()),
                );
                storage_reply("rmdir", &e, &r.path)
            }
        }
    }

    /// RNFR: the source must exist; RNTO must follow.
    pub(in crate::session) async fn rnfr(&mut self, arg: &str) -> Outcome {
        let r = match self.resolve(Permission::Rename, arg) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        if r.at_mount_point() {
            return Reply::mount_point(r.path.as_str()).into();
        }
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
        // RNFR checked the source; it is looked up again since it is kept as a path.
        let from = match self.resolve(Permission::Rename, from.as_str()) {
            Ok(r) => r,
            Err(reply) => return reply.into(),
        };
        let to = match self.locate(arg) {
            // Between folders only within one store (bucket): a rename is a server-side copy.
            Ok(Located::Mounted(to)) if !Arc::ptr_eq(from.home.storage(), to.home.storage()) => {
                return Reply::across_buckets(to.path.as_str()).into()
            }
            Ok(Located::Mounted(to)) if to.permissions.allows(Permission::Rename) => to,
            Ok(Located::Mounted(_)) => return Reply::permission_denied().into(),
            Ok(Located::Virtual(d)) => return Reply::virtual_directory(d.path.as_str()).into(),
            Err(reply) => return reply.into(),
        };
        if from.at_mount_point() || to.at_mount_point() {
            return Reply::mount_point(to.path.as_str()).into();
        }
        let storage = to.home.storage().clone();
        let (from_key, from) = (from.key, from.path);
        let source = match storage.stat(&from_key).await {
            Ok(e) => e,
            Err(e) => return storage_reply("stat", &e, &from),
        };
        // The size of the file the rename replaces, if any (the quota frees it).
        let replaced = match to.stat().await {
            // Renaming onto an existing file replaces it: that is overwriting.
            Ok(e) if e.kind == EntryKind::File && source.kind == EntryKind::File => {
                if !to.permissions.allows(Permission::Overwrite) {
                    return Reply::may_not_overwrite(to.path.as_str()).into();
                }
                Some(e.size)
            }
            Ok(_) => return Reply::file_exists(to.path.as_str()).into(),
            Err(StorageError::NotFound(_)) => None,
            Err(e) => return storage_reply("stat", &e, &to.path),
        };
        if let Err(reply) = to.parent_exists().await {
            return reply.into();
        }
        let renamed = match source.kind {
            EntryKind::File => storage.rename_file(&from_key, &to.key).await,
            EntryKind::Dir => {
                let limit = self.env.policy.max_rename_objects;
                storage.rename_dir(&from_key, &to.key, limit).await
            }
        };
        match renamed {
            Ok(()) => {
                if let (Some(account), Some(size)) = (self.quota_account(), replaced) {
                    account.removed(size);
                }
                let from_obj = audit::Object {
                    path: from.as_str(),
                    key: from_key.as_str(),
                };
                audit::rename(self.actor(), from_obj, to.object(), audit::Outcome::Ok);
                let (kind, size) = (source.kind, source.size);
                (self.env.events).renamed(
                    self.actor(),
                    &to.home,
                    from_obj,
                    to.object(),
                    kind,
                    size,
                );
                Reply::file_ok("Rename successful").into()
            }
            Err(e) => {
                let from_obj = audit::Object {
                    path: from.as_str(),
                    key: from_key.as_str(),
                };
                let why = e.to_string();
                audit::rename(
                    self.actor(),
                    from_obj,
                    to.object(),
                    audit::Outcome::Failed(&why),
                );
                storage_reply("rename", &e, &from)
            }
        }
    }
}

impl Session {
    /// The logged-in user's account when a byte or file quota applies to them.
    fn quota_account(&self) -> Option<std::sync::Arc<crate::quota::UserAccount>> {
        let l = self.state.logged_in()?;
        l.account.clone().filter(|a| a.has_quota())
    }
}

/// A storage error as a reply, logged when it is the store's fault rather than the client's.
pub(in crate::session) fn storage_reply(op: &str, e: &StorageError, path: &VirtualPath) -> Outcome {
    log_storage_error(op, e);
    Reply::storage_error(e, path.as_str()).into()
}
