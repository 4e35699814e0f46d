//! The virtual filesystem: what a logged-in user sees, and how it maps onto storage.
//!
//! Three layers, each with one job:
//! - [`VirtualPath`] (`src/vpath.rs`, below both `vfs` and `auth`): a client path, normalised and
//!   jailed to `/`. It can only be built by [`VirtualPath::resolve`], so no code can hand storage
//!   an unchecked wire string.
//! - [`Home`]: a root in a store (a user's home, or one of their folders); turns a
//!   `VirtualPath` into an [`ObjectKey`].
//! - [`Mounts`] (in `mounts.rs`): a user's namespace, the homes at their virtual paths with
//!   their permissions (one at `/`, or one per logical folder under a virtual `/`).
//! - [`Storage`]: the backend contract (S3 in `s3/`, a local directory in `local.rs`, a map in
//!   `memory.rs` for tests). Backends speak in keys and know their own mapping rules (S3
//!   directory markers, temp files + rename), so the session engine never does.

pub mod budget;
pub mod local;
pub mod memory;
mod mounts;
pub mod s3;

use std::{io, net::IpAddr, sync::Arc, time::SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::io::AsyncRead;

pub use mounts::{Mount, Mounts, Place};
// Defined below both storage and users (folders name client paths too); re-exported here,
// where storage takes them.
pub use crate::vpath::{PathError, VirtualPath};

/// A key in a store: `home` + the virtual path without its leading `/`. Never starts or ends with
/// `/`; the empty key is the store's root. Directories are keys too (`in` for `/in`); a backend
/// adds whatever suffix it needs (S3: `in/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// The key as the backend should use it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of a directory's children listing in a store that uses `/` as delimiter: `""` for
    /// the root, `key/` otherwise.
    pub fn dir_prefix(&self) -> String {
        if self.0.is_empty() {
            String::new()
        } else {
            format!("{}/", self.0)
        }
    }

    /// The last segment (`""` for the root): the name a listing or `stat` shows.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// Only for backends' own tests and helpers; sessions get keys from [`Home::key`].
    pub fn from_trusted(key: impl Into<String>) -> Self {
        ObjectKey(key.into())
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A user's root inside a store: the store and the key prefix every path lives under.
#[derive(Clone)]
pub struct Home {
    storage: Arc<dyn Storage>,
    /// Without leading or trailing `/`; empty means the store's root.
    prefix: String,
    /// The S3 bucket, for events; `None` on the local backend.
    bucket: Option<String>,
}

impl Home {
    /// `prefix` is the users file's `home` (`partners/acme/`); slashes at either end are ignored.
    pub fn new(storage: Arc<dyn Storage>, prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/').to_string();
        Home {
            storage,
            prefix,
            bucket: None,
        }
    }

    /// The same home, naming the bucket it lives in.
    pub fn in_bucket(mut self, bucket: &str) -> Self {
        self.bucket = Some(bucket.to_string());
        self
    }

    /// The S3 bucket this home lives in; `None` on the local backend.
    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// The key prefix, without slashes at either end; empty is the store's root.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store this home lives in.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The key for a virtual path. `/` is the home itself.
    pub fn key(&self, path: &VirtualPath) -> ObjectKey {
        let rel = path.as_str().trim_start_matches('/');
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => ObjectKey(rel.to_string()),
            (false, true) => ObjectKey(self.prefix.clone()),
            (false, false) => ObjectKey(format!("{}/{}", self.prefix, rel)),
        }
    }
}

/// What a directory listing or a stat says about one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The last path segment (no `/`).
    pub name: String,
    pub kind: EntryKind,
    /// Bytes; 0 for directories.
    pub size: u64,
    /// Last modification, when the store knows it (S3 common prefixes have none).
    pub modified: Option<SystemTime>,
}

impl Entry {
    /// A directory named `name` (directories have no size, and no time in S3).
    pub fn dir(name: &str) -> Self {
        Entry {
            name: name.to_string(),
            kind: EntryKind::Dir,
            size: 0,
            modified: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// Pages of a directory listing, yielded as the store returns them, so a listing of any size
/// streams to the client without being held in memory.
pub type ListPages = BoxStream<'static, Result<Vec<Entry>, StorageError>>;

/// An object's bytes, streamed.
pub type ReadStream = Box<dyn AsyncRead + Send + Unpin>;

/// The backend contract. Every method takes keys made by [`Home::key`].
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// What is at `key`: a file, a directory, or [`StorageError::NotFound`]. Where a store holds
    /// both a file `a` and keys under `a/`, the file wins. The empty key is always a directory.
    async fn stat(&self, key: &ObjectKey) -> Result<Entry, StorageError>;

    /// The children of directory `dir`, one level deep (files and subdirectories), in pages as
    /// they arrive. A directory's own marker is not listed. A missing directory lists as empty:
    /// callers that care `stat` first.
    fn list(&self, dir: &ObjectKey) -> ListPages;

    /// The bytes of file `key` from `offset` on. [`StorageError::InvalidRange`] when `offset` is
    /// past the end; an offset equal to the size yields an empty stream.
    async fn read(&self, key: &ObjectKey, offset: u64) -> Result<ReadStream, StorageError>;

    /// Starts writing file `key` as `spec.mode` says: replacing it, continuing from a restart
    /// offset, or appending to it. Nothing is visible at `key` until [`Upload::commit`]
    /// succeeds; until then readers see what was there before.
    ///
    /// [`UploadMode::Resume`] fails with [`StorageError::ResumeMismatch`] when the offset is not
    /// what [`Storage::pending_upload_size`] reports (or, without a kept upload, the file's size).
    async fn begin_upload(
        &self,
        key: &ObjectKey,
        spec: UploadSpec,
    ) -> Result<Box<dyn Upload>, StorageError>;

    /// The bytes a [`UploadMode::Resume`] of `key` would continue from when they are *not* the
    /// file's own size: the completed parts of a kept upload (see [`Upload::suspend`]) that was
    /// started after the file at `key` was last written, or while there is no file. `None`:
    /// there is no such upload, and a resume continues the file itself (so SIZE should report
    /// `stat`'s size).
    ///
    /// Why "started after the file": a STOR that replaces a file and is cut off leaves the old
    /// file visible (S3 replaces atomically), but on a disk the old file would be gone. A client
    /// resuming asks SIZE; answering with the old file's size would make it append the rest of
    /// the new file onto the old one.
    async fn pending_upload_size(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError>;

    /// Digests of file `key`'s content recorded when it was stored, read without reading the
    /// content (HASH). Fields are `None` where nothing was recorded (see the backend's docs for
    /// which uploads record what). `NotFound` / `IsADirectory` as for [`Storage::read`].
    async fn recorded_digests(&self, key: &ObjectKey) -> Result<RecordedDigests, StorageError>;

    /// Sets file `key`'s modification time (MFMT) to `time`, leaving its content alone: what
    /// `stat` and `list` report from then on, kept by a rename, replaced by the next write.
    /// `NotFound` / `IsADirectory` as for [`Storage::read`].
    async fn set_modified(&self, key: &ObjectKey, time: SystemTime) -> Result<(), StorageError> {
        let _ = (key, time);
        Err(StorageError::Unsupported(
            "this store cannot set modification times",
        ))
    }

    /// Removes file `key`; [`StorageError::NotFound`] if there is none, `IsADirectory` for a dir.
    async fn delete_file(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Creates directory `key`; `AlreadyExists` if a file or directory is there.
    async fn make_dir(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Removes directory `key` if it is empty (`NotEmpty` otherwise, `NotFound` if absent).
    async fn remove_dir(&self, key: &ObjectKey) -> Result<(), StorageError>;

    /// Renames file `from` to `to`, replacing `to` if it is a file. `from` must be a file:
    /// directories give [`StorageError::Unsupported`] (use [`Storage::rename_dir`]).
    async fn rename_file(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError>;

    /// Renames directory `from`, with everything under it, to `to`, which must not exist
    /// (`AlreadyExists`) and must not be inside `from` (`Unsupported`). A directory holding more
    /// than `max_objects` objects is refused with [`StorageError::TooManyObjects`] before
    /// anything is changed (S3: every key under it, files and directory markers; on disk: every
    /// file and directory in the tree, itself included). `NotFound` if `from` is
    /// absent, `NotADirectory` if it is a file. Not atomic on S3 (see `s3.rs`).
    async fn rename_dir(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        max_objects: usize,
    ) -> Result<(), StorageError>;

    /// Bytes and files under directory `dir`, at any depth (quotas). Directory markers are not
    /// files; kept uploads are not counted. A missing directory holds nothing. This default
    /// walks [`Storage::list`]; S3 lists every key under the prefix in pages instead.
    async fn usage(&self, dir: &ObjectKey) -> Result<Usage, StorageError> {
        let mut total = Usage::default();
        let mut dirs = vec![dir.clone()];
        while let Some(d) = dirs.pop() {
            let mut pages = self.list(&d);
            while let Some(page) = pages.next().await {
                for e in page? {
                    match e.kind {
                        EntryKind::File => {
                            total.bytes += e.size;
                            total.files += 1;
                        }
                        EntryKind::Dir => {
                            dirs.push(ObjectKey(format!("{}{}", d.dir_prefix(), e.name)))
                        }
                    }
                }
            }
        }
        Ok(total)
    }
}

/// What a user stores: bytes and files (see [`Storage::usage`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub files: u64,
}

/// The rules every backend applies before renaming a directory: not the root (on either side),
/// and not into itself.
pub(crate) fn check_dir_rename(from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
    if from.as_str().is_empty() || to.as_str().is_empty() {
        return Err(StorageError::Unsupported(
            "the root directory cannot be renamed",
        ));
    }
    if to.as_str().starts_with(&from.dir_prefix()) {
        return Err(StorageError::Unsupported(
            "a directory cannot be moved into itself",
        ));
    }
    Ok(())
}

/// How an upload treats what is already stored at its key, and who is uploading (recorded with
/// the object where the backend keeps metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadSpec {
    pub mode: UploadMode,
    /// The FTP user name.
    pub uploader: String,
    /// The client's address (the control connection's peer).
    pub client_addr: IpAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// STOR: the upload replaces whatever is at the key.
    Replace,
    /// REST `offset` + STOR: the client sends its file from `offset` on. The store continues
    /// what it holds for the key, which must be exactly `offset` bytes (else
    /// [`StorageError::ResumeMismatch`]): see [`UploadMode::Append`]. `offset` 0 is
    /// [`UploadMode::Replace`].
    Resume { offset: u64 },
    /// APPE: what the store holds for the key, followed by the new bytes. What it holds is the
    /// kept upload [`Storage::pending_upload_size`] reports, if any (the file as it would be on
    /// a disk after an interrupted STOR), else the file at the key, else nothing.
    Append,
}

/// What a backend recorded about an object's content when it was stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordedDigests {
    /// SHA-256 of the whole content, lowercase hex.
    pub sha256: Option<String>,
    /// CRC-32 (IEEE 802.3, as zlib and S3's `CRC32`) of the whole content.
    pub crc32: Option<u32>,
}

/// An upload in progress. Exactly one of `commit` or `abort` ends it; a backend also cleans up if
/// it is dropped without either (e.g. its task was cancelled), so nothing half-written remains.
#[async_trait]
pub trait Upload: Send {
    /// Reads `body` to its end into the pending object, returning the bytes read so far in total.
    /// Backpressure: it reads no faster than the store accepts (bounded memory).
    async fn copy_from(
        &mut self,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, UploadError>;

    /// Makes the object visible at its key with everything copied so far. Returns the bytes
    /// read from the bodies (what this transfer received; for a resume or an append the object
    /// is larger). After a failed `copy_from` it fails and stores nothing (the contract test
    /// `cut_off_upload_leaves_no_object_and_keeps_the_old_one` checks every backend).
    async fn commit(self: Box<Self>) -> Result<u64, StorageError>;

    /// SHA-256 of the whole content so far (lowercase hex), when every byte of it passed
    /// through this upload; `None` otherwise (a resume, an append by copy, a store that does not
    /// hash). Asked after the last `copy_from`, for the audit line.
    fn sha256(&self) -> Option<String> {
        None
    }

    /// Discards everything; the key keeps what it held before.
    async fn abort(self: Box<Self>);

    /// Ends an upload that cannot be committed (its data connection failed) but keeps what the
    /// store has durably received, so that a later [`UploadMode::Resume`] can continue it (S3:
    /// the multipart upload stays open with its completed parts; the partial part in memory is
    /// dropped). Where nothing can be kept (the backend or its configuration does not keep
    /// uploads, or no part was completed) this is [`Upload::abort`]. The key keeps what it held
    /// before either way.
    async fn suspend(self: Box<Self>);
}

/// Why an upload's copy stopped: the client side (data connection) or the store.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("reading the data connection: {0}")]
    Body(io::Error),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What can go wrong in a store, in terms the session turns into FTP replies (in exactly one
/// place: `session::reply::storage_error`).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: is a directory")]
    IsADirectory(String),
    #[error("{0}: not a directory")]
    NotADirectory(String),
    #[error("{0}: already exists")]
    AlreadyExists(String),
    #[error("{0}: directory not empty")]
    NotEmpty(String),
    #[error("{0}: offset is past the end of the file")]
    InvalidRange(String),
    #[error("{0}")]
    Unsupported(&'static str),
    /// A resume at `requested` bytes, when the store holds `held` bytes it could continue
    /// (a kept upload's completed parts, or the file; 0 when there is neither).
    #[error(
        "{key}: cannot resume at byte {requested}: the store holds {held} bytes to continue from"
    )]
    ResumeMismatch {
        key: String,
        held: u64,
        requested: u64,
    },
    /// A directory too large to rename (`s3.max_rename_objects`); nothing was changed.
    #[error("{key}: more than {limit} objects to rename")]
    TooManyObjects { key: String, limit: usize },
    /// The store refuses the name itself and always will (S3 `KeyTooLongError`, a file name
    /// too long for the disk): a retry cannot succeed.
    #[error("{key}: name refused by the store: {reason}")]
    NameRefused { key: String, reason: String },
    /// The store refuses the request and will refuse it again (S3 `AccessDenied`,
    /// `InvalidObjectState`, `EntityTooLarge`, …): unlike [`StorageError::Backend`], retrying
    /// cannot help. `code` is the store's error code.
    #[error("storage {op} {key}: refused: {code}: {message}")]
    Refused {
        op: &'static str,
        key: String,
        code: String,
        message: String,
    },
    /// The store failed or is unreachable, or said something that may pass on a retry. `code` is
    /// the store's error code (`SlowDown`, …).
    #[error("storage {op} {key}: {code}: {message}")]
    Backend {
        op: &'static str,
        key: String,
        code: String,
        message: String,
    },
    #[error("storage {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: io::Error,
    },
}

/// The `[s3]` settings plus the process-wide upload memory budget (`limits.upload_memory_mib`),
/// shared by every bucket's uploads.
fn s3_options(config: &crate::config::Config) -> s3::S3Options {
    let mut options = s3::S3Options::from_config(&config.s3);
    let mib = config.limits.upload_memory_mib;
    options.memory_budget =
        (mib > 0).then(|| budget::MemoryBudget::new(mib.saturating_mul(1 << 20)));
    options
}

/// The stores users' homes live in, built once at startup: one local directory, or one S3 client
/// with a [`s3::S3Storage`] per bucket in use (the default bucket and any per-user ones).
pub struct Stores {
    kind: StoresKind,
    /// `storage.local_root` when built from the config: what [`Stores::probe`] checks.
    local_root: Option<std::path::PathBuf>,
}

enum StoresKind {
    Local(Arc<dyn Storage>),
    S3 {
        client: aws_sdk_s3::Client,
        default_bucket: String,
        options: s3::S3Options,
        /// Per-user buckets, made on first login and kept (a handful at most).
        buckets: std::sync::Mutex<std::collections::HashMap<String, Arc<dyn Storage>>>,
    },
}

impl Stores {
    /// Builds the configured backend. S3 credentials come from the standard AWS chain.
    pub async fn from_config(config: &crate::config::Config) -> io::Result<Stores> {
        let mut local_root = None;
        let kind = match config.storage.backend {
            crate::config::Backend::Local => {
                local_root = Some(config.storage.local_root.clone());
                let local = local::LocalStorage::new(config.storage.local_root.clone())?;
                StoresKind::Local(Arc::new(local))
            }
            crate::config::Backend::S3 => StoresKind::S3 {
                client: s3::build_client(&config.s3).await,
                default_bucket: config.s3.bucket.clone(),
                options: s3_options(config),
                buckets: Default::default(),
            },
        };
        Ok(Stores { kind, local_root })
    }

    /// One store for every user (each in their home inside it): what the local backend does;
    /// tests give a [`memory::MemoryStorage`].
    pub fn single(storage: Arc<dyn Storage>) -> Stores {
        Stores {
            kind: StoresKind::Local(storage),
            local_root: None,
        }
    }

    /// S3 stores on a client built by the caller (tests use explicit credentials).
    pub fn s3_with_client(client: aws_sdk_s3::Client, config: &crate::config::Config) -> Stores {
        Stores {
            kind: StoresKind::S3 {
                client,
                default_bucket: config.s3.bucket.clone(),
                options: s3_options(config),
                buckets: Default::default(),
            },
            local_root: None,
        }
    }

    /// Runs the stores' background work (aborts, abort retries, listing prefetch) on
    /// `background`, which the server stops and waits for at shutdown. Before any home is
    /// handed out: stores made earlier keep the tracker they have.
    pub fn with_background(mut self, background: crate::background::Background) -> Stores {
        if let StoresKind::S3 { options, .. } = &mut self.kind {
            options.background = background;
        }
        self
    }

    /// What `user` sees: their home at `/` with their permissions, or, for a user with folders,
    /// each folder's bucket and prefix at its path with its permissions.
    pub fn mounts_for(&self, user: &crate::auth::User) -> Mounts {
        if user.folders.is_empty() {
            return Mounts::single(self.home_for(user), user.permissions);
        }
        let mounts = user
            .folders
            .iter()
            .map(|f| Mount {
                path: f.path.clone(),
                home: self.home_in(f.bucket.as_deref(), &f.prefix),
                permissions: f.permissions,
            })
            .collect();
        Mounts::folders(mounts)
    }

    /// The home of `user` (without folders): their bucket (or the default one) and their key
    /// prefix.
    pub fn home_for(&self, user: &crate::auth::User) -> Home {
        self.home_in(user.bucket.as_deref(), &user.home)
    }

    /// `prefix` in `bucket` (`None`: the default bucket; ignored on the local backend).
    fn home_in(&self, bucket: Option<&str>, prefix: &str) -> Home {
        match &self.kind {
            StoresKind::Local(storage) => Home::new(storage.clone(), prefix),
            StoresKind::S3 {
                client,
                default_bucket,
                options,
                buckets,
            } => {
                let bucket = bucket.unwrap_or(default_bucket);
                let storage = bucket_storage(client, options, buckets, bucket);
                Home::new(storage, prefix).in_bucket(bucket)
            }
        }
    }

    /// Whether the default store answers, for `/readyz`: the local root is a directory, or one
    /// ListObjectsV2 of the default bucket's top level succeeds (a missing bucket or bad
    /// credentials fail it). `Err` says what went wrong.
    pub async fn probe(&self) -> Result<(), String> {
        if let Some(root) = &self.local_root {
            return match tokio::fs::metadata(root).await {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(format!("{} is not a directory", root.display())),
                Err(e) => Err(format!("{}: {e}", root.display())),
            };
        }
        let storage = match &self.kind {
            StoresKind::Local(storage) => storage.clone(),
            StoresKind::S3 {
                client,
                default_bucket,
                options,
                buckets,
            } => bucket_storage(client, options, buckets, default_bucket),
        };
        let mut pages = storage.list(&ObjectKey::from_trusted(""));
        match futures::StreamExt::next(&mut pages).await {
            Some(Err(e)) => Err(e.to_string()),
            Some(Ok(_)) | None => Ok(()),
        }
    }
}

/// The store of `bucket`, made on first use and kept.
fn bucket_storage(
    client: &aws_sdk_s3::Client,
    options: &s3::S3Options,
    buckets: &std::sync::Mutex<std::collections::HashMap<String, Arc<dyn Storage>>>,
    bucket: &str,
) -> Arc<dyn Storage> {
    let mut map = buckets
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.entry(bucket.to_string())
        .or_insert_with(|| {
            Arc::new(s3::S3Storage::new(
                client.clone(),
                bucket.to_string(),
                options.clone(),
            ))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_checks_the_local_root_is_a_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::config::Config::default();
        config.storage.backend = crate::config::Backend::Local;
        config.storage.local_root = dir.path().join("files");
        let stores = Stores::from_config(&config).await.expect("stores");
        assert_eq!(stores.probe().await, Ok(()));
        std::fs::remove_dir_all(&config.storage.local_root).expect("rm -r");
        let err = stores.probe().await.expect_err("root gone");
        assert!(err.contains("files"), "{err}");
        std::fs::write(&config.storage.local_root, b"x").expect("a file");
        let err = stores.probe().await.expect_err("root a file");
        assert!(err.ends_with("is not a directory"), "{err}");
        let memory = Stores::single(Arc::new(memory::MemoryStorage::new()));
        assert_eq!(memory.probe().await, Ok(()));
    }

    #[test]
    fn a_keys_name_is_its_last_segment() {
        assert_eq!(ObjectKey::from_trusted("a/b/c.txt").name(), "c.txt");
        assert_eq!(ObjectKey::from_trusted("c").name(), "c");
        assert_eq!(ObjectKey::from_trusted("").name(), "");
    }
}
