//! The S3 backend: [`Storage`] on a bucket of an S3 (or S3-compatible) store.
//!
//! S3 has no directories, only keys, so this file owns the rules that make a bucket look like a
//! filesystem (ARCHITECTURE.md, "Mapping FTP onto S3"):
//! - A file is an object at `key`. A directory `key` exists if the zero-byte marker `key/` exists
//!   or any object lives under `key/`; the empty key is the bucket root and always exists. Where a
//!   bucket holds both an object `a` and keys under `a/`, `stat` reports the file (the contract's
//!   "the file wins"); a listing shows both names, because that is what the bucket holds.
//! - Listings are `ListObjectsV2` with `delimiter=/`; each response page becomes one page of
//!   entries as soon as it arrives, so a directory of a million objects streams in pages of 1000
//!   and is never held in memory. Common prefixes are directories; the directory's own marker is
//!   not listed.
//! - Reads are `GetObject` with `Range: bytes=offset-`, the body streamed. S3 answers
//!   `InvalidRange` for an offset equal to the size of a non-empty object; the contract wants an
//!   empty stream there, so an `InvalidRange` is settled with a `HeadObject`.
//!
//! # Uploads
//! [`S3Upload`](upload::S3Upload) reads the body into part-sized buffers. A body shorter than
//! one part is a single `PutObject` at commit; a longer one is a multipart upload with at most
//! `upload_concurrency` parts in flight, so memory stays below `part_size × (concurrency + 1)`
//! whatever the file size. Every buffer is first reserved from the process-wide budget
//! ([`crate::vfs::budget`], `limits.upload_memory_mib`), waiting for it when it is spent.
//! Nothing is visible at the key until `CompleteMultipartUpload` succeeds. `abort`, a failed
//! commit or a drop (a cancelled task) end in `AbortMultipartUpload`, so a cut-off transfer never
//! becomes a truncated object; an abort that cannot reach S3 is tried again in the background.
//! `CreateMultipartUpload` runs as a task of its own, awaited again by whoever ends the upload:
//! a caller cancelled while S3 creates the upload (ABOR) would otherwise never learn its id.
//!
//! **Checksums.** With `s3.checksums = "when_supported"` every part carries a CRC32 that S3
//! verifies (`BadDigest` otherwise), and multipart uploads are created with checksum type
//! `FULL_OBJECT`: S3 combines the part CRCs into the CRC32 of the whole object, checks it
//! against the one this server computed while streaming (when it streamed every byte), and
//! returns it from `HeadObject`. `FULL_OBJECT` rather than the older `COMPOSITE` matters for
//! resuming: a composite upload must be completed with every part's checksum, and some stores
//! (SeaweedFS 4.48) do not return part checksums from `ListParts`, so a kept upload could not be
//! completed after a restart. With `"when_required"` no checksums are declared.
//!
//! **Metadata.** Every object gets `x-amz-meta-uploader` (the FTP user, percent-encoded where
//! not printable ASCII) and `x-amz-meta-client-addr`, set at `PutObject` or
//! `CreateMultipartUpload`. The SHA-256 of the content (and its CRC32) is computed while
//! streaming; where it is known it is recorded for HASH:
//! - single `PutObject`: as metadata `x-amz-meta-sha256` / `x-amz-meta-crc32`, atomically with
//!   the content;
//! - multipart: metadata is fixed at `CreateMultipartUpload`, before the digest is known, and
//!   rewriting the object to add it would copy every byte again (impossible in one request above
//!   5 GiB). So the digest becomes object *tags* `sha256` / `crc32`, set right after
//!   `CompleteMultipartUpload` (`PutObjectTagging`, which does not rewrite the object). To make
//!   sure the tags never describe another upload that completed at the same key in between, the
//!   tagging names the version (versioned buckets) or is checked with a `HeadObject` afterwards
//!   and removed if the ETag is no longer ours. A store without tagging (`NotImplemented`) is
//!   remembered and not asked again; the digest is then not recorded.
//! - resumed uploads and appends by `UploadPartCopy`: the earlier bytes never pass through this
//!   server, and SHA-256 cannot be extended from a digest, so no SHA-256 is recorded. The CRC32
//!   is still S3's full-object checksum.
//!
//! [`Storage::recorded_digests`] reads these with one `HeadObject` (checksum mode on), plus
//! `GetObjectTagging` only when the object has tags and the metadata lacked a digest.
//! `CopyObject` (renames) keeps metadata and tags.
//!
//! # Resuming (REST + STOR)
//! [`Upload::suspend`] leaves the multipart upload open with its completed parts (the partial
//! part in memory is dropped), when `s3.resume_window_secs` is not 0. A later resume finds it
//! with `ListMultipartUploads` (prefix = the key, the exact key only) and `ListParts`, so it works
//! after a restart and from another replica: the newest upload that has parts and is not older
//! than the window; what it holds is its parts 1..n without a gap (a part that failed while later
//! ones succeeded ends the run) and without a short part (a crash between the last part and
//! `CompleteMultipartUpload`). Uploads whose last activity (creation or newest part) is older
//! than the window are aborted when seen. A kept upload only counts if it was started after the
//! object at the key was last written: otherwise a newer STOR has replaced it. The uploader of a
//! kept upload cannot be checked: S3 returns no metadata for uploads in progress, and the
//! initiator is this server's own identity. Keys live in the user's home, so only users whose
//! homes overlap can continue each other's uploads (they can overwrite each other's files anyway);
//! the object then names the user who started it.
//!
//! # Appending (APPE)
//! An append continues what the key holds, as a resume does (a kept upload that supersedes the
//! object, so that clients resuming with APPE after SIZE get the same answer as with REST +
//! STOR), else the object. An object of at least 5 MiB (S3's smallest part) becomes the first part(s) of a multipart
//! upload by `UploadPartCopy` (at most 5 GiB per part, conditional on the ETag seen when the
//! append began), followed by the new data: the old bytes are not transferred again. A smaller
//! one is read (one part at most) and prefills the first part buffer. Either way the old object
//! stays as it is until the new one is complete.
//!
//! # Renames
//! Files: `CopyObject` then `DeleteObject`; above 5 GiB (`CopyObject`'s limit) a multipart copy
//! with `UploadPartCopy`, keeping metadata and tags. Directories: every key under the prefix
//! (marker included) is listed first and the rename refused above the limit before anything is
//! copied; then copied (a few at a time), then the originals deleted with `DeleteObjects`. A
//! failed copy deletes the copies made and leaves the source whole; a failure while deleting
//! leaves both names (reported as an error). S3 cannot do better: there is no atomic rename.
//!
//! Every SDK error becomes a [`StorageError`] in one function, [`error::s3_error`], which keeps
//! the S3 error code (`SlowDown`, `AccessDenied`, …) so logs and replies say what the store said.
//!
//! # Files
//! This file holds [`S3Storage`], its options and the [`Storage`] impl (each method a line or a
//! short rule; the work is in the file of its concern): `client` (SDK client from `[s3]`),
//! `bucket` (the client bound to the bucket),
//! `objects` (head, directory test, deletes), `listing`, `read`, `upload` (the upload engine),
//! `multipart` (`MultipartUpload`, parts), `resume` (kept uploads), `append`, `copy`,
//! `rename`, `metadata` (digests, tags), `abort` (aborts with background retries), `error`.

mod abort;
mod append;
mod bucket;
mod client;
mod copy;
mod error;
mod listing;
mod metadata;
mod mtime;
mod multipart;
mod objects;
mod read;
mod rename;
mod resume;
mod upload;

pub use client::{build_client, client_from_sdk_config};

use std::{
    sync::{atomic::AtomicBool, Arc},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_sdk_s3::{config::RequestChecksumCalculation, primitives::DateTime, Client};

use crate::background::Background;
use crate::config;
use crate::vfs::budget::MemoryBudget;
use crate::vfs::{
    Entry, EntryKind, ListPages, ObjectKey, ReadStream, RecordedDigests, Storage, StorageError,
    Upload, UploadMode, UploadSpec, Usage,
};

use self::bucket::Bucket;
use self::error::s3_error;

const MIB: u64 = 1024 * 1024;

/// S3 allows at most 10 000 parts per multipart upload: with 8 MiB parts, files up to 78 GiB.
const MAX_PARTS: i32 = 10_000;

/// The smallest part S3 accepts, except for the last one. Objects at least this large are
/// appended to by copying them as parts.
const MIN_PART_SIZE: u64 = 5 * MIB;

/// The largest object a single `CopyObject` can copy, and the largest `UploadPartCopy` part.
const MAX_COPY_SIZE: u64 = 5 * 1024 * MIB;

/// The smallest copy part size [`S3Options::copy_part_size`] may be: large enough that splitting
/// an object into equal pieces of at most this size never gives a piece below [`MIN_PART_SIZE`].
const MIN_COPY_PART_SIZE: u64 = 2 * MIN_PART_SIZE + 2;

/// How an [`S3Storage`] uploads, keeps and copies. [`S3Options::from_config`] reads the `[s3]`
/// section; the copy sizes are S3's limits and only tests change them (to exercise multipart
/// copies without 5 GiB objects).
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Multipart part size in bytes (S3 needs ≥ 5 MiB for all parts but the last).
    pub part_size: usize,
    /// Parts of one upload in flight at once (at least 1); also the copies in flight during a
    /// directory rename or a multipart copy.
    pub upload_concurrency: usize,
    /// How long a suspended upload stays resumable after its last activity; zero: never kept.
    pub resume_window: Duration,
    /// Objects above this size are copied with `UploadPartCopy` rather than `CopyObject`.
    pub max_copy_object_size: u64,
    /// The largest `UploadPartCopy` part (at least 10 MiB + 2 bytes, at most 5 GiB; clamped).
    pub copy_part_size: u64,
    /// Listings show kept uploads with the bytes they hold (`s3.list_kept_uploads`).
    pub list_kept_uploads: bool,
    /// The process-wide budget part buffers are taken from (`limits.upload_memory_mib`); `None`:
    /// only the per-upload bound.
    pub memory_budget: Option<Arc<MemoryBudget>>,
    /// Listings read each file's MFMT time (`s3.listing_times`; see `mtime.rs`).
    pub listing_times: bool,
    /// Send bodies as `UNSIGNED-PAYLOAD` (HTTPS endpoints with part checksums, `client.rs`).
    pub unsigned_payload: bool,
    /// Where aborts, abort retries and listing prefetches run: the server's, so its shutdown
    /// waits for them ([`Stores::with_background`](crate::vfs::Stores::with_background)); by
    /// default one nobody waits for.
    pub background: Background,
}

impl S3Options {
    pub fn from_config(cfg: &config::S3) -> Self {
        S3Options {
            part_size: usize::try_from(cfg.part_size_mib * MIB).unwrap_or(usize::MAX),
            upload_concurrency: cfg.upload_concurrency,
            resume_window: Duration::from_secs(cfg.resume_window_secs),
            max_copy_object_size: MAX_COPY_SIZE,
            copy_part_size: MAX_COPY_SIZE,
            list_kept_uploads: cfg.list_kept_uploads && cfg.resume_window_secs > 0,
            memory_budget: None,
            listing_times: cfg.listing_times,
            unsigned_payload: client::unsigned_payload(cfg),
            background: Background::default(),
        }
    }
}

/// A bucket seen as a filesystem. Cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct S3Storage {
    bucket: Bucket,
    part_size: usize,
    upload_concurrency: usize,
    resume_window: Duration,
    max_copy_object_size: u64,
    copy_part_size: u64,
    memory_budget: Option<Arc<MemoryBudget>>,
    unsigned_payload: bool,
    /// Whether uploads declare a CRC32 per part (`request_checksum_calculation = WhenSupported`,
    /// the SDK default). Multipart uploads then name the algorithm and `FULL_OBJECT` in
    /// `CreateMultipartUpload`, so S3 verifies every part and the whole object.
    part_checksums: bool,
    /// Cleared when the store says it does not implement object tagging.
    tagging: Arc<AtomicBool>,
    list_kept_uploads: bool,
    listing_times: bool,
}

impl S3Storage {
    pub fn new(client: Client, bucket: String, options: S3Options) -> Self {
        let part_checksums = !matches!(
            client.config().request_checksum_calculation(),
            Some(RequestChecksumCalculation::WhenRequired)
        );
        S3Storage {
            bucket: Bucket::new(client, bucket, options.background),
            part_size: options.part_size.max(1),
            upload_concurrency: options.upload_concurrency.max(1),
            resume_window: options.resume_window,
            max_copy_object_size: options.max_copy_object_size.min(MAX_COPY_SIZE),
            copy_part_size: options
                .copy_part_size
                .clamp(MIN_COPY_PART_SIZE, MAX_COPY_SIZE),
            memory_budget: options.memory_budget,
            unsigned_payload: options.unsigned_payload && part_checksums,
            part_checksums,
            tagging: Arc::new(AtomicBool::new(true)),
            list_kept_uploads: options.list_kept_uploads,
            listing_times: options.listing_times,
        }
    }

    /// The bucket this storage lives in.
    pub fn bucket(&self) -> &str {
        self.bucket.name()
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn stat(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        if key.as_str().is_empty() {
            return Ok(Entry::dir(""));
        }
        match self.head_file(key).await {
            Ok(file) => Ok(file),
            Err(StorageError::NotFound(_)) if self.dir_exists(key).await? => {
                Ok(Entry::dir(key.name()))
            }
            Err(e) => Err(e),
        }
    }

    /// Pages of a listing, fetched one ahead (see `listing.rs`).
    fn list(&self, dir: &ObjectKey) -> ListPages {
        self.list_dir(dir)
    }

    async fn set_modified(&self, key: &ObjectKey, time: SystemTime) -> Result<(), StorageError> {
        self.set_mtime(key, time).await
    }

    async fn read(&self, key: &ObjectKey, offset: u64) -> Result<ReadStream, StorageError> {
        self.read_object(key, offset).await
    }

    async fn begin_upload(
        &self,
        key: &ObjectKey,
        spec: UploadSpec,
    ) -> Result<Box<dyn Upload>, StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        let upload = match spec.mode {
            UploadMode::Replace | UploadMode::Resume { offset: 0 } => {
                let mut upload = self.new_upload(key, &spec);
                if !self.resume_window.is_zero() {
                    upload.replaces_kept = Some(std::time::SystemTime::now());
                }
                upload
            }
            UploadMode::Append => self.continue_key(key, &spec, None).await?,
            UploadMode::Resume { offset } => self.continue_key(key, &spec, Some(offset)).await?,
        };
        Ok(Box::new(upload))
    }

    async fn pending_upload_size(&self, key: &ObjectKey) -> Result<Option<u64>, StorageError> {
        let Some(kept) = self.kept_upload(key).await? else {
            return Ok(None);
        };
        let head = self.head_if_any(key).await?;
        Ok(kept.supersedes(head.as_ref()).then_some(kept.held))
    }

    async fn recorded_digests(&self, key: &ObjectKey) -> Result<RecordedDigests, StorageError> {
        self.digests_of(key).await
    }

    async fn delete_file(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self.stat(key).await?.kind {
            EntryKind::Dir => Err(StorageError::IsADirectory(key.to_string())),
            EntryKind::File => self.delete_object(key.as_str()).await,
        }
    }

    async fn make_dir(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self.stat(key).await {
            Ok(_) => return Err(StorageError::AlreadyExists(key.to_string())),
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let marker = key.dir_prefix();
        self.bucket.put_empty(&marker).await
    }

    async fn remove_dir(&self, key: &ObjectKey) -> Result<(), StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::Unsupported(
                "the root directory cannot be removed",
            ));
        }
        if self.stat(key).await?.kind == EntryKind::File {
            return Err(StorageError::NotADirectory(key.to_string()));
        }
        // The marker `key/` sorts before every other key under `key/`, so two keys are enough
        // to tell "only the marker" from "the marker and something else".
        let marker = key.dir_prefix();
        let out = self
            .bucket
            .list_objects_v2()
            .prefix(&marker)
            .max_keys(2)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", key.as_str(), e))?;
        if out
            .contents()
            .iter()
            .any(|o| o.key() != Some(marker.as_str()))
        {
            return Err(StorageError::NotEmpty(key.to_string()));
        }
        self.delete_object(&marker).await
    }

    async fn rename_file(&self, from: &ObjectKey, to: &ObjectKey) -> Result<(), StorageError> {
        self.rename_object(from, to).await
    }

    async fn rename_dir(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        max_objects: usize,
    ) -> Result<(), StorageError> {
        self.rename_prefix(from, to, max_objects).await
    }

    async fn usage(&self, dir: &ObjectKey) -> Result<Usage, StorageError> {
        self.usage_under(dir).await
    }
}

/// An ETag without its quotes (stores differ in whether they quote).
fn unquote(etag: &str) -> &str {
    etag.trim_matches('"')
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn size_of(len: Option<i64>) -> u64 {
    len.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_s3_config() {
        let mut cfg = crate::config::Config::default();
        cfg.s3.bucket = "b".to_string();
        let options = S3Options::from_config(&cfg.s3);
        assert_eq!(options.part_size, 8 << 20);
        assert_eq!(options.resume_window, Duration::from_secs(86_400));
        assert!(cfg.validate().is_ok());
        cfg.s3.resume_window_secs = 0;
        assert!(cfg.validate().is_ok(), "0: never keep");
        cfg.s3.resume_window_secs = 59;
        let e = cfg.validate().expect_err("too short");
        assert!(e.to_string().starts_with("s3.resume_window_secs"), "{e}");
        cfg.s3.resume_window_secs = 600;
        cfg.s3.max_rename_objects = 0;
        let e = cfg.validate().expect_err("no renames");
        assert!(e.to_string().starts_with("s3.max_rename_objects"), "{e}");
    }
}
