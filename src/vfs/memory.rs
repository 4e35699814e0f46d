//! An in-memory [`Storage`]: a bucket held in a map, for tests that need the storage contract
//! without SeaweedFS or a directory (the session rules, in-process).
//!
//! It follows S3's model, so it behaves as the S3 backend does where the contract leaves room: a
//! file is a key, a directory exists if its marker (made by `make_dir`) or any key under it
//! exists, and where both a file `a` and keys under `a/` exist, `stat` reports the file.
//! Listings come in pages of [`PAGE`] entries. Nothing is kept for a resume: `suspend` is
//! `abort`, and [`Storage::pending_upload_size`] is always `None`. Every upload records the
//! SHA-256 and CRC32 of the whole content. [`MemoryStorage::open_uploads`] counts uploads begun
//! and not yet ended (committed, aborted, suspended or dropped), for cleanup checks.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::Cursor,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::SystemTime,
};

use async_trait::async_trait;
use bytes::Bytes;
use futures::{stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{
    check_dir_rename, Entry, EntryKind, ListPages, ObjectKey, ReadStream, RecordedDigests, Storage,
    StorageError, Upload, UploadError, UploadMode, UploadSpec, Usage,
};

/// Entries per listing page (as S3's `ListObjectsV2`).
pub const PAGE: usize = 1000;

/// Bytes read from an upload body at a time.
const READ_CHUNK: usize = 64 * 1024;

/// A bucket in memory. Cheap to clone; clones share the contents.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<State>>,
    open_uploads: Arc<AtomicUsize>,
    /// Calls of [`Storage::usage`], for tests that a count is made once.
    usage_counts: Arc<AtomicUsize>,
}

#[derive(Default)]
struct State {
    files: BTreeMap<String, File>,
    /// Directory markers, by directory key (no trailing `/`).
    markers: BTreeSet<String>,
}

struct File {
    data: Bytes,
    modified: SystemTime,
    sha256: String,
    crc32: u32,
}

impl MemoryStorage {
    pub fn new() -> Self {
        MemoryStorage::default()
    }

    /// Uploads begun and not yet committed, aborted, suspended or dropped.
    pub fn open_uploads(&self) -> usize {
        self.open_uploads.load(Ordering::SeqCst)
    }

    /// How many times [`Storage::usage`] was called.
    pub fn usage_counts(&self) -> usize {
        self.usage_counts.load(Ordering::SeqCst)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent maps (every change is one insert or
        // remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn stat(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        let key_str = key.as_str();
        if key_str.is_empty() {
            return Ok(Entry::dir(""));
        }
        if let Some(file) = self.files.get(key_str) {
            return Ok(Entry {
                name: key.name().to_string(),
                kind: EntryKind::File,
                size: file.data.len() as u64,
                modified: Some(file.modified),
            });
        }
        if self.markers.contains(key_str) || self.has_keys_under(&key.dir_prefix()) {
            return Ok(Entry::dir(key.name()));
        }
        Err(StorageError::NotFound(key.to_string()))
    }

    /// Whether any file or marker lies under `prefix` (`dir/`).
    fn has_keys_under(&self, prefix: &str) -> bool {
        let under = |k: &String| k.starts_with(prefix);
        self.files
            .range(prefix.to_string()..)
            .next()
            .is_some_and(|(k, _)| under(k))
            || self
                .markers
                .range(prefix.to_string()..)
                .next()
                .is_some_and(under)
    }

    fn files_under(&self, prefix: &str) -> Vec<String> {
        self.files
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    fn markers_under(&self, prefix: &str) -> Vec<String> {
        self.markers
            .range(prefix.to_string()..)
            .take_while(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn not_a_file(&self, key: &ObjectKey) -> StorageError {
        match self.stat(key) {
            Ok(_) => StorageError::IsADirectory(key.to_string()),
            Err(e) => e,
        }
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn stat(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        self.state().stat(key)
    }

    fn list(&self, dir: &ObjectKey) -> ListPages {
        let prefix = dir.dir_prefix();
        let state = self.state();
        let mut files = Vec::new();
        let mut dirs = BTreeSet::new();
        for key in state.files_under(&prefix) {
            let rest = &key[prefix.len()..];
            match rest.split_once('/') {
                Some((child, _)) => {
                    dirs.insert(child.to_string());
                }
                None => {
                    let file = &state.files[&key];
                    files.push(Entry {
                        name: rest.to_string(),
                        kind: EntryKind::File,
                        size: file.data.len() as u64,
                        modified: Some(file.modified),
                    });
                }
            }
        }
        for marker in state.markers_under(&prefix) {
            let rest = &marker[prefix.len()..];
            let child = rest.split('/').next().unwrap_or(rest);
            dirs.insert(child.to_string());
        }
        drop(state);
        dirs.remove("");
        let entries: Vec<Entry> = dirs
            .iter()
            .map(|name| Entry::dir(name))
            .chain(files)
            .collect();
        let mut pages: Vec<Result<Vec<Entry>, StorageError>> =
            entries.chunks(PAGE).map(|p| Ok(p.to_vec())).collect();
        if pages.is_empty() {
            pages.push(Ok(Vec::new()));
        }
        stream::iter(pages).boxed()
    }

    async fn read(&self, key: &ObjectKey, offset: u64) -> Result<ReadStream, StorageError> {
        let state = self.state();
        let Some(file) = state.files.get(key.as_str()) else {
            return Err(state.not_a_file(key));
        };
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if start > file.data.len() {
            return Err(StorageError::InvalidRange(key.to_string()));
        }
        Ok(Box::new(Cursor::new(file.data.slice(start..))))
    }

    async fn begin_upload(
        &self,
        key: &ObjectKey,
        spec: UploadSpec,
    ) -> Result<Box<dyn Upload>, StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        let held = self
            .state()
            .files
            .get(key.as_str())
            .map(|f| f.data.clone())
            .unwrap_or_default();
        let before = match spec.mode {
            UploadMode::Replace | UploadMode::Resume { offset: 0 } => Bytes::new(),
            UploadMode::Append => held,
            UploadMode::Resume { offset } if offset == held.len() as u64 => held,
            UploadMode::Resume { offset } => {
                return Err(StorageError::ResumeMismatch {
                    key: key.to_string(),
                    held: held.len() as u64,
                    requested: offset,
                })
            }
        };
        let mut sha256 = Sha256::new();
        let mut crc32 = crc32fast::Hasher::new();
        sha256.update(&before);
        crc32.update(&before);
        self.open_uploads.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MemoryUpload {
            storage: self.clone(),
            key: key.as_str().to_string(),
            content: before.to_vec(),
            received: 0,
            sha256,
            crc32,
            failed: false,
        }))
    }

    async fn pending_upload_size(&self, _key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }

    async fn recorded_digests(&self, key: &ObjectKey) -> Result<RecordedDigests, StorageError> {
        let state = self.state();
        match state.files.get(key.as_str()) {
            Some(file) => Ok(RecordedDigests {
                sha256: Some(file.sha256.clone()),
                crc32: Some(file.crc32),
            }),
            None => Err(state.not_a_file(key)),
        }
    }

    async fn delete_file(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let mut state = self.state();
        match state.stat(key)?.kind {
            EntryKind::Dir => Err(StorageError::IsADirectory(key.to_string())),
            EntryKind::File => {
                state.files.remove(key.as_str());
                Ok(())
            }
        }
    }

    async fn set_modified(&self, key: &ObjectKey, time: SystemTime) -> Result<(), StorageError> {
        let mut state = self.state();
        if state.stat(key)?.kind == EntryKind::Dir {
            return Err(StorageError::IsADirectory(key.to_string()));
        }
        if let Some(file) = state.files.get_mut(key.as_str()) {
            file.modified = time;
        }
        Ok(())
    }

    async fn make_dir(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let mut state = self.state();
        match state.stat(key) {
            Ok(_) => Err(StorageError::AlreadyExists(key.to_string())),
            Err(StorageError::NotFound(_)) => {
                state.markers.insert(key.as_str().to_string());
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn remove_dir(&self, key: &ObjectKey) -> Result<(), StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::Unsupported(
                "the root directory cannot be removed",
            ));
        }
        let mut state = self.state();
        if state.stat(key)?.kind == EntryKind::File {
            return Err(StorageError::NotADirectory(key.to_string()));
        }
        if state.has_keys_under(&key.dir_prefix()) {
            return Err(StorageError::NotEmpty(key.to_string()));
        }
        state.markers.remove(key.as_str());
        Ok(())
    }

    async fn rename_file(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        let mut state = self.state();
        if state.stat(from)?.kind == EntryKind::Dir {
            return Err(StorageError::Unsupported(
                "renaming directories needs rename_dir",
            ));
        }
        if from == to {
            return Ok(());
        }
        match state.stat(to) {
            Ok(Entry {
                kind: EntryKind::Dir,
                ..
            }) => return Err(StorageError::IsADirectory(to.to_string())),
            Ok(_) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        if let Some(file) = state.files.remove(from.as_str()) {
            state.files.insert(to.as_str().to_string(), file);
        }
        Ok(())
    }

    async fn usage(&self, dir: &ObjectKey) -> Result<Usage, StorageError> {
        self.usage_counts.fetch_add(1, Ordering::SeqCst);
        let state = self.state();
        let mut total = Usage::default();
        for key in state.files_under(&dir.dir_prefix()) {
            total.bytes += state.files[&key].data.len() as u64;
            total.files += 1;
        }
        Ok(total)
    }

    async fn rename_dir(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        max_objects: usize,
    ) -> Result<(), StorageError> {
        check_dir_rename(from, to)?;
        let mut state = self.state();
        if state.stat(from)?.kind == EntryKind::File {
            return Err(StorageError::NotADirectory(from.to_string()));
        }
        if from == to {
            return Ok(());
        }
        match state.stat(to) {
            Ok(_) => return Err(StorageError::AlreadyExists(to.to_string())),
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let (from_prefix, to_prefix) = (from.dir_prefix(), to.dir_prefix());
        let files = state.files_under(&from_prefix);
        let markers = state.markers_under(&from_prefix);
        let own_marker = state.markers.contains(from.as_str());
        // Counted as S3 counts keys: files, and markers (its own included).
        let objects = files.len() + markers.len() + usize::from(own_marker);
        if objects > max_objects {
            return Err(StorageError::TooManyObjects {
                key: from.to_string(),
                limit: max_objects,
            });
        }
        let target = |key: &str| format!("{to_prefix}{}", &key[from_prefix.len()..]);
        for key in files {
            if let Some(file) = state.files.remove(&key) {
                state.files.insert(target(&key), file);
            }
        }
        for marker in markers {
            state.markers.remove(&marker);
            state.markers.insert(target(&marker));
        }
        if state.markers.remove(from.as_str()) {
            state.markers.insert(to.as_str().to_string());
        }
        Ok(())
    }
}

/// An upload into a [`MemoryStorage`]: the content so far, visible at commit.
struct MemoryUpload {
    storage: MemoryStorage,
    key: String,
    /// What the key held before (append, resume) followed by the bytes received.
    content: Vec<u8>,
    received: u64,
    sha256: Sha256,
    crc32: crc32fast::Hasher,
    /// A copy failed: the upload can only be aborted, suspended or dropped.
    failed: bool,
}

impl MemoryUpload {
    fn ended(&self) -> StorageError {
        StorageError::Io {
            key: self.key.clone(),
            source: std::io::Error::other("an earlier error ended this upload; nothing was stored"),
        }
    }
}

#[async_trait]
impl Upload for MemoryUpload {
    async fn copy_from(
        &mut self,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, UploadError> {
        if self.failed {
            return Err(self.ended().into());
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match body.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) => {
                    self.failed = true;
                    self.content = Vec::new();
                    return Err(UploadError::Body(e));
                }
            };
            if n == 0 {
                return Ok(self.received);
            }
            self.sha256.update(&chunk[..n]);
            self.crc32.update(&chunk[..n]);
            self.content.extend_from_slice(&chunk[..n]);
            self.received += n as u64;
        }
    }

    fn sha256(&self) -> Option<String> {
        Some(hex(self.sha256.clone().finalize()))
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        if self.failed {
            return Err(self.ended());
        }
        let file = File {
            data: Bytes::from(std::mem::take(&mut self.content)),
            modified: SystemTime::now(),
            sha256: hex(self.sha256.clone().finalize()),
            crc32: self.crc32.clone().finalize(),
        };
        self.storage.state().files.insert(self.key.clone(), file);
        Ok(self.received)
    }

    async fn abort(self: Box<Self>) {}

    async fn suspend(self: Box<Self>) {}
}

impl Drop for MemoryUpload {
    /// Every ending (commit, abort, suspend, or a drop) passes here once.
    fn drop(&mut self) {
        self.storage.open_uploads.fetch_sub(1, Ordering::SeqCst);
    }
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
