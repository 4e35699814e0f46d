//! The local-directory backend: [`Storage`] on a directory tree, for development and tests.
//!
//! Key `a/b.txt` is the file `root/a/b.txt`; directory `a` is the directory `root/a`; the empty
//! key is `root`. It keeps the S3 backend's promises with filesystem tools:
//! - Uploads write a temporary file and `rename(2)` it onto the key only at commit, so readers see
//!   the old file or the new one, never a partial one. `abort`, a failed copy, or dropping the
//!   upload deletes the temporary file.
//! - Parents are created as needed (S3 needs no parent for a key or a `dir/` marker; this
//!   mirrors it), so `make_dir("a/b/c")` works without `a`.
//! - Listings come in pages of [`PAGE_SIZE`] entries, read as the caller asks for them.
//!
//! Where temporary files live: `root/.ftps-s3\uploads`, a directory *inside* the root so that
//! the rename at commit stays on one filesystem and is atomic (a sibling of the root would break
//! when the root is itself a mount point, e.g. a Kubernetes volume). Its name contains a backslash,
//! which [`VirtualPath`](super::VirtualPath) refuses, so no client path can name it, and no key
//! can collide with it (a user may well create a directory `.ftps-s3-tmp`). As a second guard this
//! backend refuses any key with a backslash, NUL, or an empty, `.` or `..` segment, and the root
//! listing hides the directory. Temporary files left by a crash can be deleted by hand.
//!
//! Symbolic links inside the root are followed: the root's contents are the operator's choice.
//!
//! Appends (and resumes, which here are appends at the file's size: nothing is ever kept of a
//! failed upload, so `suspend` is `abort` and [`Storage::pending_upload_size`] is always `None`)
//! copy the old file into the temporary file first and add the new bytes, so the old file stays
//! whole until the rename. No metadata or digests are recorded (this backend is for development):
//! [`Storage::recorded_digests`] reports none. A directory rename is one `rename(2)`, after
//! counting what it holds against the limit.

use std::{
    io,
    path::{Path, PathBuf},
};

use async_trait::async_trait;
use futures::{stream, StreamExt};
use tokio::{
    fs::{self, File, OpenOptions, ReadDir},
    io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader},
};

use super::{
    check_dir_rename, Entry, EntryKind, ListPages, ObjectKey, ReadStream, RecordedDigests, Storage,
    StorageError, Upload, UploadError, UploadMode, UploadSpec,
};

/// The directory (under the root) that holds uploads in progress. See the module docs.
pub const TEMP_DIR_NAME: &str = ".ftps-s3\\uploads";

/// Entries per listing page, as S3 returns them.
pub const PAGE_SIZE: usize = 1000;

/// Read and write buffer size: large enough that each blocking file operation moves a useful
/// amount of data.
const IO_BUF_SIZE: usize = 256 * 1024;

/// A directory tree seen as a store.
#[derive(Clone, Debug)]
pub struct LocalStorage {
    root: PathBuf,
    temp_dir: PathBuf,
}

impl LocalStorage {
    /// Uses `root` (created if missing) as the store, and creates its uploads directory.
    pub fn new(root: PathBuf) -> io::Result<Self> {
        let temp_dir = root.join(TEMP_DIR_NAME);
        std::fs::create_dir_all(&temp_dir)?;
        Ok(LocalStorage { root, temp_dir })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where uploads in progress are written (empty when none is).
    pub fn temp_dir(&self) -> &Path {
        &self.temp_dir
    }

    /// The path of `key`, after checking it is a plain relative path (see the module docs).
    fn path(&self, key: &ObjectKey) -> Result<PathBuf, StorageError> {
        let k = key.as_str();
        if k.is_empty() {
            return Ok(self.root.clone());
        }
        let bad_segment = k.split('/').any(|s| s.is_empty() || s == "." || s == "..");
        if bad_segment || k.contains(['\\', '\0']) {
            return Err(StorageError::Io {
                key: k.to_string(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a valid key for local storage",
                ),
            });
        }
        Ok(self.root.join(k))
    }

    async fn metadata(&self, key: &ObjectKey) -> Result<std::fs::Metadata, StorageError> {
        let path = self.path(key)?;
        fs::metadata(&path)
            .await
            .map_err(|e| lookup_error(key.as_str(), e))
    }
}

#[async_trait]
impl Storage for LocalStorage {
    async fn stat(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        let meta = self.metadata(key).await?;
        Ok(entry(key.name(), &meta))
    }

    fn list(&self, dir: &ObjectKey) -> ListPages {
        let path = match self.path(dir) {
            Ok(path) => path,
            Err(e) => return stream::once(async { Err(e) }).boxed(),
        };
        let lister = Lister {
            key: dir.to_string(),
            hide_temp_dir: dir.as_str().is_empty(),
        };
        stream::unfold(Cursor::Start(path), move |cursor| {
            let lister = lister.clone();
            async move {
                let mut dir = match cursor {
                    Cursor::Done => return None,
                    Cursor::Reading(dir) => dir,
                    Cursor::Start(path) => match fs::read_dir(&path).await {
                        Ok(dir) => dir,
                        // A missing directory (or a file) lists as empty, as in S3.
                        Err(e) if is_absent(&e) => return None,
                        Err(e) => return Some((Err(io_error(&lister.key, e)), Cursor::Done)),
                    },
                };
                match lister.page(&mut dir).await {
                    Ok((page, true)) => Some((Ok(page), Cursor::Reading(dir))),
                    Ok((page, false)) if page.is_empty() => None,
                    Ok((page, false)) => Some((Ok(page), Cursor::Done)),
                    Err(e) => Some((Err(e), Cursor::Done)),
                }
            }
        })
        .boxed()
    }

    async fn read(&self, key: &ObjectKey, offset: u64) -> Result<ReadStream, StorageError> {
        let path = self.path(key)?;
        let mut file = File::open(&path)
            .await
            .map_err(|e| lookup_error(key.as_str(), e))?;
        let meta = file
            .metadata()
            .await
            .map_err(|e| io_error(key.as_str(), e))?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory(key.to_string()));
        }
        if offset > meta.len() {
            return Err(StorageError::InvalidRange(key.to_string()));
        }
        if offset > 0 {
            file.seek(io::SeekFrom::Start(offset))
                .await
                .map_err(|e| io_error(key.as_str(), e))?;
        }
        Ok(Box::new(BufReader::with_capacity(IO_BUF_SIZE, file)))
    }

    async fn begin_upload(
        &self,
        key: &ObjectKey,
        spec: UploadSpec,
    ) -> Result<Box<dyn Upload>, StorageError> {
        let target = self.path(key)?;
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        // The file to continue, if any, and the size it must have.
        let (keep_old, expected) = match spec.mode {
            UploadMode::Replace | UploadMode::Resume { offset: 0 } => (false, None),
            UploadMode::Append => (true, None),
            UploadMode::Resume { offset } => (true, Some(offset)),
        };
        let old_size = if keep_old {
            match fs::metadata(&target).await {
                Ok(meta) if meta.is_dir() => {
                    return Err(StorageError::IsADirectory(key.to_string()))
                }
                Ok(meta) => Some(meta.len()),
                Err(e) if is_absent(&e) => None,
                Err(e) => return Err(io_error(key.as_str(), e)),
            }
        } else {
            None
        };
        if let Some(requested) = expected {
            let held = old_size.unwrap_or(0);
            if held != requested {
                return Err(StorageError::ResumeMismatch {
                    key: key.to_string(),
                    held,
                    requested,
                });
            }
        }
        let temp = self
            .temp_dir
            .join(format!("{:016x}.part", rand::random::<u64>()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .await
            .map_err(|e| io_error(key.as_str(), e))?;
        let mut upload = LocalUpload {
            key: key.to_string(),
            target,
            temp: Some(temp),
            file: Some(file),
            total: 0,
        };
        if old_size.is_some() {
            if let Err(e) = upload.copy_old(expected).await {
                upload.discard().await;
                return Err(e);
            }
        }
        Ok(Box::new(upload))
    }

    async fn pending_upload_size(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        self.path(key)?;
        Ok(None)
    }

    async fn recorded_digests(&self, key: &ObjectKey) -> Result<RecordedDigests, StorageError> {
        if self.metadata(key).await?.is_dir() {
            return Err(StorageError::IsADirectory(key.to_string()));
        }
        Ok(RecordedDigests::default())
    }

    async fn delete_file(&self, key: &ObjectKey) -> Result<(), StorageError> {
        if self.metadata(key).await?.is_dir() {
            return Err(StorageError::IsADirectory(key.to_string()));
        }
        let path = self.path(key)?;
        fs::remove_file(&path)
            .await
            .map_err(|e| io_error(key.as_str(), e))
    }

    /// The file's own mtime (what `stat` and `list` read).
    async fn set_modified(
        &self,
        key: &ObjectKey,
        time: std::time::SystemTime,
    ) -> Result<(), StorageError> {
        if self.metadata(key).await?.is_dir() {
            return Err(StorageError::IsADirectory(key.to_string()));
        }
        let path = self.path(key)?;
        let file = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .await
            .map_err(|e| io_error(key.as_str(), e))?
            .into_std()
            .await;
        tokio::task::spawn_blocking(move || file.set_modified(time))
            .await
            .map_err(|e| io_error(key.as_str(), io::Error::other(e)))?
            .map_err(|e| io_error(key.as_str(), e))
    }

    async fn make_dir(&self, key: &ObjectKey) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match fs::metadata(&path).await {
            Ok(_) => return Err(StorageError::AlreadyExists(key.to_string())),
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(io_error(key.as_str(), e)),
        }
        fs::create_dir_all(&path)
            .await
            .map_err(|e| io_error(key.as_str(), e))
    }

    async fn remove_dir(&self, key: &ObjectKey) -> Result<(), StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::Unsupported(
                "the root directory cannot be removed",
            ));
        }
        if !self.metadata(key).await?.is_dir() {
            return Err(StorageError::NotADirectory(key.to_string()));
        }
        let path = self.path(key)?;
        fs::remove_dir(&path)
            .await
            .map_err(|e| io_error(key.as_str(), e))
    }

    async fn rename_file(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        if self.metadata(from).await?.is_dir() {
            return Err(StorageError::Unsupported(
                "a directory cannot be renamed as a file",
            ));
        }
        if from == to {
            return Ok(());
        }
        let (source, target) = (self.path(from)?, self.path(to)?);
        match fs::metadata(&target).await {
            Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory(to.to_string())),
            Ok(_) => {}
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(io_error(to.as_str(), e)),
        }
        create_parent(&target, to.as_str()).await?;
        fs::rename(&source, &target)
            .await
            .map_err(|e| io_error(from.as_str(), e))
    }

    async fn rename_dir(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        max_objects: usize,
    ) -> Result<(), StorageError> {
        check_dir_rename(from, to)?;
        if !self.metadata(from).await?.is_dir() {
            return Err(StorageError::NotADirectory(from.to_string()));
        }
        if from == to {
            return Ok(());
        }
        let (source, target) = (self.path(from)?, self.path(to)?);
        match fs::metadata(&target).await {
            Ok(_) => return Err(StorageError::AlreadyExists(to.to_string())),
            Err(e) if is_absent(&e) => {}
            Err(e) => return Err(io_error(to.as_str(), e)),
        }
        if count_entries(&source, max_objects)
            .await
            .map_err(|e| io_error(from.as_str(), e))?
            > max_objects
        {
            return Err(StorageError::TooManyObjects {
                key: from.to_string(),
                limit: max_objects,
            });
        }
        create_parent(&target, to.as_str()).await?;
        fs::rename(&source, &target)
            .await
            .map_err(|e| io_error(from.as_str(), e))
    }
}

/// Entries in the tree at `dir`, the directory itself included, counting no further than
/// `limit + 1`.
async fn count_entries(dir: &Path, limit: usize) -> io::Result<usize> {
    let mut count = 1;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let mut entries = fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            count += 1;
            if count > limit {
                return Ok(count);
            }
            if entry.file_type().await?.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(count)
}

/// Where a listing stream is.
enum Cursor {
    Start(PathBuf),
    Reading(ReadDir),
    Done,
}

#[derive(Clone)]
struct Lister {
    key: String,
    hide_temp_dir: bool,
}

impl Lister {
    /// Up to [`PAGE_SIZE`] entries, and whether the directory may hold more.
    async fn page(&self, dir: &mut ReadDir) -> Result<(Vec<Entry>, bool), StorageError> {
        let mut page = Vec::new();
        while let Some(child) = dir.next_entry().await.map_err(|e| io_error(&self.key, e))? {
            let Ok(name) = child.file_name().into_string() else {
                tracing::warn!(dir = %self.key, name = ?child.file_name(), "skipping a file name that is not UTF-8");
                continue;
            };
            if self.hide_temp_dir && name == TEMP_DIR_NAME {
                continue;
            }
            // Follows symbolic links, like `stat`. Gone since `readdir` (or a dangling link):
            // not listed.
            let meta = match fs::metadata(child.path()).await {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(&self.key, e)),
            };
            page.push(entry(&name, &meta));
            if page.len() == PAGE_SIZE {
                return Ok((page, true));
            }
        }
        Ok((page, false))
    }
}

/// An upload in progress: a temporary file in the uploads directory, renamed onto the key at
/// commit. While `temp` is set, the temporary file exists and `Drop` removes it.
struct LocalUpload {
    key: String,
    target: PathBuf,
    temp: Option<PathBuf>,
    file: Option<File>,
    total: u64,
}

impl LocalUpload {
    fn ended(&self) -> StorageError {
        StorageError::Io {
            key: self.key.clone(),
            source: io::Error::other("an earlier error ended this upload; nothing was stored"),
        }
    }

    /// Removes the temporary file; the key keeps what it held before.
    async fn discard(&mut self) {
        self.file = None;
        if let Some(temp) = self.temp.take() {
            if let Err(e) = fs::remove_file(&temp).await {
                tracing::warn!(path = %temp.display(), error = %e, "could not remove an upload's temporary file");
            }
        }
    }

    /// Copies the file at the key into the temporary file (append, resume); `expected`: the
    /// size it must have (a resume offset).
    async fn copy_old(&mut self, expected: Option<u64>) -> Result<(), StorageError> {
        let (Some(file), Some(temp)) = (self.file.as_mut(), self.temp.as_ref()) else {
            return Err(self.ended());
        };
        let io = |e| io_error(&self.key, e);
        let mut old = File::open(&self.target)
            .await
            .map_err(|e| lookup_error(&self.key, e))?;
        let copied = tokio::io::copy(&mut old, file).await.map_err(io)?;
        if expected.is_some_and(|n| n != copied) {
            return Err(StorageError::ResumeMismatch {
                key: self.key.clone(),
                held: copied,
                requested: expected.unwrap_or(0),
            });
        }
        tracing::debug!(key = %self.key, temp = %temp.display(), bytes = copied, "appending: old file copied");
        Ok(())
    }

    async fn finish(&mut self) -> Result<u64, StorageError> {
        let (Some(mut file), Some(temp)) = (self.file.take(), self.temp.clone()) else {
            return Err(self.ended());
        };
        let io = |e| io_error(&self.key, e);
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        drop(file);
        create_parent(&self.target, &self.key).await?;
        fs::rename(&temp, &self.target).await.map_err(io)?;
        self.temp = None;
        Ok(self.total)
    }
}

#[async_trait]
impl Upload for LocalUpload {
    async fn copy_from(
        &mut self,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, UploadError> {
        let Some(file) = self.file.as_mut() else {
            return Err(self.ended().into());
        };
        let mut buf = vec![0u8; IO_BUF_SIZE];
        let failure = loop {
            let n = match body.read(&mut buf).await {
                Ok(0) => return Ok(self.total),
                Ok(n) => n,
                Err(e) => break UploadError::Body(e),
            };
            if let Err(e) = file.write_all(&buf[..n]).await {
                break io_error(&self.key, e).into();
            }
            self.total += n as u64;
        };
        self.discard().await;
        Err(failure)
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        let result = self.finish().await;
        if result.is_err() {
            self.discard().await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) {
        self.discard().await;
    }

    /// Nothing is kept of a failed upload here (see the module docs).
    async fn suspend(mut self: Box<Self>) {
        self.discard().await;
    }
}

impl Drop for LocalUpload {
    /// Dropped without commit or abort (e.g. its task was cancelled): remove the temporary file.
    /// Synchronous, but unlinking one file is quick.
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = std::fs::remove_file(temp);
        }
    }
}

async fn create_parent(path: &Path, key: &str) -> Result<(), StorageError> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent)
            .await
            .map_err(|e| io_error(key, e)),
        None => Ok(()),
    }
}

fn entry(name: &str, meta: &std::fs::Metadata) -> Entry {
    let kind = if meta.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::File
    };
    Entry {
        name: name.to_string(),
        kind,
        size: if kind == EntryKind::Dir {
            0
        } else {
            meta.len()
        },
        modified: meta.modified().ok(),
    }
}

/// "Nothing there": the path or one of its parents is missing, or a parent is a file (S3 has no
/// parents, so `a.txt/x` is simply absent there too).
fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// An error looking up `key`: [`is_absent`] means `NotFound`.
fn lookup_error(key: &str, e: io::Error) -> StorageError {
    if is_absent(&e) {
        StorageError::NotFound(key.to_string())
    } else {
        io_error(key, e)
    }
}

/// The one place an I/O error becomes a [`StorageError`].
fn io_error(key: &str, e: io::Error) -> StorageError {
    let key = key.to_string();
    match e.kind() {
        io::ErrorKind::NotFound => StorageError::NotFound(key),
        io::ErrorKind::AlreadyExists => StorageError::AlreadyExists(key),
        io::ErrorKind::NotADirectory => StorageError::NotADirectory(key),
        io::ErrorKind::IsADirectory => StorageError::IsADirectory(key),
        io::ErrorKind::DirectoryNotEmpty => StorageError::NotEmpty(key),
        // ENAMETOOLONG: the same name will be refused again.
        io::ErrorKind::InvalidFilename => StorageError::NameRefused {
            key,
            reason: e.to_string(),
        },
        _ => StorageError::Io { key, source: e },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_could_escape_or_reach_the_uploads_dir_are_refused() {
        let storage = LocalStorage {
            root: PathBuf::from("/srv/files"),
            temp_dir: PathBuf::from("/srv/files").join(TEMP_DIR_NAME),
        };
        for key in ["a/../b", "..", "a//b", "./a", ".ftps-s3\\uploads", "a\0b"] {
            assert!(
                storage.path(&ObjectKey::from_trusted(key)).is_err(),
                "{key:?} must be refused"
            );
        }
        assert_eq!(
            storage
                .path(&ObjectKey::from_trusted("a/.ftps-s3-tmp"))
                .ok(),
            Some(PathBuf::from("/srv/files/a/.ftps-s3-tmp"))
        );
        assert_eq!(
            storage.path(&ObjectKey::from_trusted("")).ok(),
            Some(PathBuf::from("/srv/files"))
        );
    }
}
