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
//! [`S3Upload`] reads the body into part-sized buffers. A body shorter than one part is a single
//! `PutObject` at commit; a longer one is a multipart upload with at most `upload_concurrency`
//! parts in flight, so memory stays below `part_size × (concurrency + 1)` whatever the file size.
//! Nothing is visible at the key until `CompleteMultipartUpload` succeeds. `abort`, a failed
//! commit or a drop (a cancelled task) end in `AbortMultipartUpload`, so a cut-off transfer never
//! becomes a truncated object; an abort that cannot reach S3 is tried again in the background.
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
//! Every SDK error becomes a [`StorageError`] in one function, [`s3_error`], which keeps the S3
//! error code (`SlowDown`, `AccessDenied`, …) so logs and replies say what the store said.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::{
    config::{
        http::HttpResponse, retry::RetryConfig, timeout::TimeoutConfig, Region,
        RequestChecksumCalculation,
    },
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    operation::{head_object::HeadObjectOutput, list_objects_v2::ListObjectsV2Output},
    primitives::{ByteStream, DateTime},
    types::{
        ChecksumAlgorithm, ChecksumMode as S3ChecksumMode, ChecksumType, CompletedMultipartUpload,
        CompletedPart, Delete, ObjectIdentifier, Tag, Tagging,
    },
    Client,
};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{stream, StreamExt, TryStreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    task::{JoinError, JoinSet},
};
use tracing::Instrument;

use super::{
    check_dir_rename, Entry, EntryKind, ListPages, ObjectKey, ReadStream, RecordedDigests, Storage,
    StorageError, Upload, UploadError, UploadMode, UploadSpec,
};
use crate::config::{self, ChecksumMode};

const MIB: u64 = 1024 * 1024;

/// S3 allows at most 10 000 parts per multipart upload: with 8 MiB parts, files up to 78 GiB.
const MAX_PARTS: i32 = 10_000;

/// The smallest part S3 accepts, except for the last one. Objects at least this large are
/// appended to by copying them as parts.
const MIN_PART_SIZE: u64 = 5 * MIB;

/// The first allocation of a part buffer (see `S3Upload::make_room`).
const FIRST_BUFFER: usize = 256 * 1024;

/// The largest object a single `CopyObject` can copy, and the largest `UploadPartCopy` part.
const MAX_COPY_SIZE: u64 = 5 * 1024 * MIB;

/// The smallest copy part size [`S3Options::copy_part_size`] may be: large enough that splitting
/// an object into equal pieces of at most this size never gives a piece below [`MIN_PART_SIZE`].
const MIN_COPY_PART_SIZE: u64 = 2 * MIN_PART_SIZE + 2;

/// `DeleteObjects` takes at most 1000 keys per request.
const DELETE_BATCH: usize = 1000;

/// The most uploads of one key examined when looking for a kept upload.
const MAX_KEPT_CANDIDATES: usize = 16;

/// Time to open a TCP (and TLS) connection to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits before each background retry of a failed `AbortMultipartUpload` (about 36 min in
/// all); see [`abort_multipart`].
const ABORT_RETRY_DELAYS: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1200),
];

/// Retry backoff (the SDK's standard mode): before retry `n` the SDK sleeps a random fraction
/// of `min(RETRY_INITIAL_BACKOFF × 2^(n-1), RETRY_MAX_BACKOFF)`. These are the SDK's defaults,
/// set here so that README's "S3 retries and timeouts" stays true if a new SDK changes them.
const RETRY_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Metadata (`x-amz-meta-…`) and tag names.
const META_UPLOADER: &str = "uploader";
const META_CLIENT_ADDR: &str = "client-addr";
const META_SHA256: &str = "sha256";
const META_CRC32: &str = "crc32";

/// `x-amz-copy-source` is `bucket/key`, URL-encoded: everything but RFC 3986 unreserved
/// characters and the `/` separators. An unencoded `+` would be read as a space, `%` as an escape.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Metadata values travel as HTTP headers: control characters and `%` are percent-encoded, as is
/// everything outside ASCII (by `utf8_percent_encode`).
const METADATA_VALUE: &AsciiSet = &CONTROLS.add(b'%');

/// Builds the S3 client from the `[s3]` config, with credentials from the AWS default chain
/// (environment, profile, web identity / IRSA, container or instance metadata).
pub async fn build_client(cfg: &config::S3) -> Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .load()
        .await;
    client_from_sdk_config(&sdk, cfg)
}

/// The S3-specific part of [`build_client`], for callers that already hold an [`SdkConfig`]
/// (tests give one with static credentials).
///
/// Timeouts: a connection must open within 10 s. The SDK's "read timeout" covers a whole request
/// up to the response headers, and for `UploadPart` that includes sending the part, so it is
/// sized from the part size: 60 s plus one second per MiB (a part must move at ≥ ~1 MiB/s). No
/// per-operation timeout: a 5 GiB part or a long download must not be cut at an arbitrary time;
/// stalled transfers are caught by the SDK's stalled-stream protection and the session's data
/// idle timeout.
///
/// Retries: the SDK's standard mode with `s3.max_attempts` attempts (the first included) and
/// the backoff above. It retries connection errors, timeouts, 5xx and throttling (`SlowDown`)
/// answers; bodies are in memory, so a part is sent again whole. The fault-injection tests
/// (`tests/it/faults.rs`) check each case against SeaweedFS.
pub fn client_from_sdk_config(sdk: &SdkConfig, cfg: &config::S3) -> Client {
    let checksums = match cfg.checksums {
        ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
        ChecksumMode::WhenRequired => RequestChecksumCalculation::WhenRequired,
    };
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(Duration::from_secs(60 + cfg.part_size_mib))
        .build();
    let mut builder = aws_sdk_s3::config::Builder::from(sdk)
        .region(Region::new(cfg.region.clone()))
        .force_path_style(cfg.force_path_style)
        .request_checksum_calculation(checksums)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(cfg.max_attempts)
                .with_initial_backoff(RETRY_INITIAL_BACKOFF)
                .with_max_backoff(RETRY_MAX_BACKOFF),
        )
        .timeout_config(timeouts);
    if let Some(endpoint) = &cfg.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    // Times every S3 call and makes it a child span of the session (metrics.rs).
    builder = builder.interceptor(crate::metrics::s3_interceptor());
    Client::from_conf(builder.build())
}

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
}

impl S3Options {
    pub fn from_config(cfg: &config::S3) -> Self {
        S3Options {
            part_size: usize::try_from(cfg.part_size_mib * MIB).unwrap_or(usize::MAX),
            upload_concurrency: cfg.upload_concurrency,
            resume_window: Duration::from_secs(cfg.resume_window_secs),
            max_copy_object_size: MAX_COPY_SIZE,
            copy_part_size: MAX_COPY_SIZE,
        }
    }
}

/// A bucket seen as a filesystem. Cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    bucket: Arc<str>,
    part_size: usize,
    upload_concurrency: usize,
    resume_window: Duration,
    max_copy_object_size: u64,
    copy_part_size: u64,
    /// Whether uploads declare a CRC32 per part (`request_checksum_calculation = WhenSupported`,
    /// the SDK default). Multipart uploads then name the algorithm and `FULL_OBJECT` in
    /// `CreateMultipartUpload`, so S3 verifies every part and the whole object.
    part_checksums: bool,
    /// Cleared when the store says it does not implement object tagging.
    tagging: Arc<AtomicBool>,
}

impl S3Storage {
    pub fn new(client: Client, bucket: String, options: S3Options) -> Self {
        let part_checksums = !matches!(
            client.config().request_checksum_calculation(),
            Some(RequestChecksumCalculation::WhenRequired)
        );
        S3Storage {
            client,
            bucket: bucket.into(),
            part_size: options.part_size.max(1),
            upload_concurrency: options.upload_concurrency.max(1),
            resume_window: options.resume_window,
            max_copy_object_size: options.max_copy_object_size.min(MAX_COPY_SIZE),
            copy_part_size: options
                .copy_part_size
                .clamp(MIN_COPY_PART_SIZE, MAX_COPY_SIZE),
            part_checksums,
            tagging: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The bucket this storage lives in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `HeadObject` of `key` (with the full-object checksum when `checksums`), or `NotFound`.
    async fn head_object(
        &self,
        key: &str,
        checksums: bool,
    ) -> Result<HeadObjectOutput, StorageError> {
        let mut request = self.client.head_object().bucket(&*self.bucket).key(key);
        if checksums {
            request = request.checksum_mode(S3ChecksumMode::Enabled);
        }
        request
            .send()
            .await
            .map_err(|e| s3_error("HeadObject", key, e))
    }

    /// [`S3Storage::head_object`], with `None` for a missing object.
    async fn head_if_any(&self, key: &ObjectKey) -> Result<Option<HeadObjectOutput>, StorageError> {
        match self.head_object(key.as_str(), false).await {
            Ok(head) => Ok(Some(head)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `HeadObject`: the file at `key`, or `NotFound`.
    async fn head_file(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        let out = self.head_object(key.as_str(), false).await?;
        Ok(Entry {
            name: name_of(key).to_string(),
            kind: EntryKind::File,
            size: size_of(out.content_length()),
            modified: out.last_modified().and_then(system_time),
        })
    }

    /// A `NotFound` from looking for file `key`: `IsADirectory` if it is a directory.
    async fn not_a_file(&self, key: &ObjectKey, e: StorageError) -> StorageError {
        match e {
            StorageError::NotFound(k) => match self.dir_exists(key).await {
                Ok(true) => StorageError::IsADirectory(k),
                Ok(false) => StorageError::NotFound(k),
                Err(e) => e,
            },
            other => other,
        }
    }

    /// Whether directory `key` exists: a marker `key/` or any key under it.
    async fn dir_exists(&self, key: &ObjectKey) -> Result<bool, StorageError> {
        if key.as_str().is_empty() {
            return Ok(true);
        }
        let out = self
            .client
            .list_objects_v2()
            .bucket(&*self.bucket)
            .prefix(key.dir_prefix())
            .max_keys(1)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", key.as_str(), e))?;
        Ok(!out.contents().is_empty() || !out.common_prefixes().is_empty())
    }

    async fn delete_object(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", key, e))?;
        Ok(())
    }

    /// `DeleteObjects` in batches; the first key the store could not delete is an error.
    async fn delete_objects(&self, keys: &[String]) -> Result<(), StorageError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.build_error("DeleteObjects", &batch[0], e))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.build_error("DeleteObjects", &batch[0], e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(&*self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_error("DeleteObjects", &batch[0], e))?;
            if let Some(failed) = out.errors().first() {
                return Err(StorageError::Backend {
                    op: "DeleteObjects",
                    key: failed.key().unwrap_or_default().to_string(),
                    code: failed.code().unwrap_or("Error").to_string(),
                    message: format!(
                        "{} of {} keys not deleted: {}",
                        out.errors().len(),
                        batch.len(),
                        failed.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    fn build_error(&self, op: &'static str, key: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError::Backend {
            op,
            key: key.to_string(),
            code: "ConstructionFailure".to_string(),
            message: e.to_string(),
        }
    }

    /// `GetObject` gave `InvalidRange`: an offset equal to the size is a valid, empty read.
    async fn read_at_end(&self, key: &ObjectKey, offset: u64) -> Result<ReadStream, StorageError> {
        let file = self.head_file(key).await?;
        if offset == file.size {
            Ok(Box::new(tokio::io::empty()))
        } else {
            Err(StorageError::InvalidRange(key.to_string()))
        }
    }

    /// `bucket/key`, encoded for `x-amz-copy-source`.
    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket, utf8_percent_encode(key, COPY_SOURCE))
    }

    /// An upload of `key` with nothing in it yet.
    fn new_upload(&self, key: &ObjectKey, spec: &UploadSpec) -> S3Upload {
        let metadata = HashMap::from([
            (
                META_UPLOADER.to_string(),
                utf8_percent_encode(&spec.uploader, METADATA_VALUE).to_string(),
            ),
            (META_CLIENT_ADDR.to_string(), spec.client_addr.to_string()),
        ]);
        S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.as_str().into(),
            part_size: self.part_size,
            concurrency: self.upload_concurrency,
            part_checksums: self.part_checksums,
            resume_window: self.resume_window,
            tagging: self.tagging.clone(),
            metadata,
            buf: BytesMut::new(),
            spare: Vec::new(),
            received: 0,
            prefix: 0,
            digests: Some(ContentDigests::default()),
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            copies: JoinSet::new(),
            done: Vec::new(),
            failed: false,
        }
    }

    /// An upload that appends to the object described by `head` (APPE, or a resume at the
    /// object's size). See the module docs.
    async fn append_to(
        &self,
        key: &ObjectKey,
        spec: &UploadSpec,
        head: HeadObjectOutput,
    ) -> Result<S3Upload, StorageError> {
        let mut upload = self.new_upload(key, spec);
        let size = size_of(head.content_length());
        if size == 0 {
            return Ok(upload);
        }
        if size < MIN_PART_SIZE {
            // Small: read it into the first part, as if the client had sent it first.
            let mut request = self
                .client
                .get_object()
                .bucket(&*self.bucket)
                .key(key.as_str());
            if let Some(etag) = head.e_tag() {
                request = request.if_match(etag);
            }
            let out = request
                .send()
                .await
                .map_err(|e| s3_error("GetObject", key.as_str(), e))?;
            let old = out
                .body
                .collect()
                .await
                .map_err(|e| StorageError::Backend {
                    op: "GetObject",
                    key: key.to_string(),
                    code: "ReadError".to_string(),
                    message: e.to_string(),
                })?
                .into_bytes();
            if old.len() as u64 != size || old.len() > upload.part_size {
                return Err(StorageError::Backend {
                    op: "GetObject",
                    key: key.to_string(),
                    code: "SizeChanged".to_string(),
                    message: format!("expected {size} bytes, read {}", old.len()),
                });
            }
            if let Some(d) = upload.digests.as_mut() {
                d.update(&old);
            }
            upload.buf.put_slice(&old);
            upload.prefix = size;
            return Ok(upload);
        }
        // Large: its bytes become the first parts by server-side copy, in the background; any
        // failure surfaces at the next part or at commit.
        let upload_id = upload.create_multipart().await?;
        upload.upload_id = Some(upload_id.clone());
        let pieces = copy_pieces(size, self.copy_part_size);
        upload.next_part = pieces.len() as i32 + 1;
        upload.prefix = size;
        upload.digests = None;
        let copier = PartCopier {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: upload.key.clone(),
            upload_id,
            source: self.copy_source(key.as_str()),
            if_match: head.e_tag().map(str::to_string),
            concurrency: self.upload_concurrency,
        };
        upload
            .copies
            .spawn(async move { copier.copy(pieces).await });
        tracing::debug!(key = %key, bytes = size, "appending: existing object copied as parts");
        Ok(upload)
    }

    /// APPE (`expected` = `None`) and REST `n` + STOR (`expected` = `Some(n)`): continue what
    /// the key holds, which is a kept upload that supersedes the object (the file as it would
    /// be on a disk, and what SIZE reports), else the object, else nothing. A resume must name
    /// exactly that size.
    async fn continue_key(
        &self,
        key: &ObjectKey,
        spec: &UploadSpec,
        expected: Option<u64>,
    ) -> Result<S3Upload, StorageError> {
        let (head, kept) = tokio::join!(self.head_if_any(key), self.kept_upload(key));
        let head = head?;
        let kept = kept?.filter(|k| k.supersedes(head.as_ref()));
        let held = match (&kept, &head) {
            (Some(kept), _) => kept.held,
            (None, Some(head)) => size_of(head.content_length()),
            (None, None) => 0,
        };
        if let Some(requested) = expected.filter(|&n| n != held) {
            return Err(StorageError::ResumeMismatch {
                key: key.to_string(),
                held,
                requested,
            });
        }
        match (kept, head) {
            (Some(kept), _) => {
                let mut upload = self.new_upload(key, spec);
                upload.next_part = kept.parts.len() as i32 + 1;
                upload.upload_id = Some(kept.upload_id.clone());
                upload.done = kept.parts;
                upload.prefix = kept.held;
                upload.digests = None;
                tracing::info!(
                    key = %key,
                    upload_id = kept.upload_id,
                    bytes = kept.held,
                    "continuing a kept upload"
                );
                Ok(upload)
            }
            (None, Some(head)) => self.append_to(key, spec, head).await,
            (None, None) => Ok(self.new_upload(key, spec)),
        }
    }

    /// The newest kept upload of exactly `key` that holds parts and is within the resume
    /// window (whatever the object at `key`); aborts the expired ones it sees.
    async fn kept_upload(&self, key: &ObjectKey) -> Result<Option<KeptUpload>, StorageError> {
        if self.resume_window.is_zero() || key.as_str().is_empty() {
            return Ok(None);
        }
        let mut uploads = self.uploads_of(key).await?;
        uploads.sort_by_key(|(_, initiated)| std::cmp::Reverse(*initiated));
        let now = SystemTime::now();
        let mut chosen = None;
        for (upload_id, initiated) in uploads.into_iter().take(MAX_KEPT_CANDIDATES) {
            let parts = match self.parts_of(key, &upload_id).await {
                Ok(parts) => parts,
                // Completed or aborted since it was listed.
                Err(StorageError::NotFound(_)) => continue,
                Err(StorageError::Backend { code, .. }) if code == "NoSuchUpload" => continue,
                Err(e) => return Err(e),
            };
            let last_activity = parts
                .iter()
                .filter_map(|p| p.modified)
                .chain([initiated])
                .max()
                .unwrap_or(initiated);
            let idle = now.duration_since(last_activity).unwrap_or_default();
            if idle > self.resume_window {
                tracing::info!(
                    key = %key,
                    upload_id,
                    idle_secs = idle.as_secs(),
                    "aborting a kept upload older than s3.resume_window_secs"
                );
                let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), key.clone());
                tokio::spawn(async move {
                    abort_multipart(&client, &bucket, key.as_str(), &upload_id).await;
                });
                continue;
            }
            if chosen.is_none() {
                let run = resumable_run(&parts);
                if !run.is_empty() {
                    chosen = Some(KeptUpload {
                        upload_id,
                        initiated,
                        held: run.iter().map(|p| p.size).sum(),
                        parts: run,
                    });
                }
            }
        }
        Ok(chosen)
    }

    /// Multipart uploads in progress for exactly `key`: id and start time.
    async fn uploads_of(&self, key: &ObjectKey) -> Result<Vec<(String, SystemTime)>, StorageError> {
        let mut found = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&*self.bucket)
                .prefix(key.as_str())
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| s3_error("ListMultipartUploads", key.as_str(), e))?;
            let mut past_key = false;
            for u in out.uploads() {
                match u.key() {
                    Some(k) if k == key.as_str() => {}
                    // Listed by key: `key` comes before every longer key with its prefix.
                    Some(k) if k > key.as_str() => past_key = true,
                    _ => continue,
                }
                if let (Some(id), Some(initiated)) =
                    (u.upload_id(), u.initiated().and_then(system_time))
                {
                    if !past_key {
                        found.push((id.to_string(), initiated));
                    }
                }
            }
            if past_key || out.is_truncated() != Some(true) {
                return Ok(found);
            }
            key_marker = out.next_key_marker().map(str::to_string);
            id_marker = out.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                return Ok(found);
            }
        }
    }

    /// Every completed part of an upload, by part number.
    async fn parts_of(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<Vec<DonePart>, StorageError> {
        let mut parts = Vec::new();
        let mut marker = None::<String>;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&*self.bucket)
                .key(key.as_str())
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| s3_error("ListParts", key.as_str(), e))?;
            for p in out.parts() {
                let Some(number) = p.part_number() else {
                    continue;
                };
                parts.push(DonePart {
                    part: completed_part(
                        number,
                        p.e_tag(),
                        [
                            p.checksum_crc32(),
                            p.checksum_crc32_c(),
                            p.checksum_crc64_nvme(),
                            p.checksum_sha1(),
                            p.checksum_sha256(),
                        ],
                    ),
                    size: size_of(p.size()),
                    modified: p.last_modified().and_then(system_time),
                });
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            marker = out.next_part_number_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        parts.sort_by_key(|p| p.part.part_number());
        Ok(parts)
    }

    /// Copies `from` (described by `head`) to `to` with `UploadPartCopy`, for objects too large
    /// for `CopyObject`; metadata and tags go along. Aborts its upload on any failure.
    async fn copy_multipart(
        &self,
        from: &str,
        to: &str,
        head: &HeadObjectOutput,
    ) -> Result<(), StorageError> {
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(to)
            .set_metadata(head.metadata().cloned())
            .set_content_type(head.content_type().map(str::to_string));
        if self.part_checksums {
            request = request
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .checksum_type(ChecksumType::FullObject);
        }
        let out = request
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", to, e))?;
        let upload_id = out
            .upload_id()
            .ok_or_else(|| self.build_error("CreateMultipartUpload", to, "no upload id"))?
            .to_string();
        let copier = PartCopier {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: to.into(),
            upload_id: upload_id.clone(),
            source: self.copy_source(from),
            if_match: head.e_tag().map(str::to_string),
            concurrency: self.upload_concurrency,
        };
        let size = size_of(head.content_length());
        let result = async {
            let mut parts = copier.copy(copy_pieces(size, self.copy_part_size)).await?;
            parts.sort_by_key(|p| p.part.part_number());
            self.client
                .complete_multipart_upload()
                .bucket(&*self.bucket)
                .key(to)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts.into_iter().map(|p| p.part).collect()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| s3_error("CompleteMultipartUpload", to, e))
        }
        .await;
        if let Err(e) = result {
            abort_multipart(&self.client, &self.bucket, to, &upload_id).await;
            return Err(e);
        }
        if head.tag_count().unwrap_or(0) > 0 && self.tagging.load(Ordering::Relaxed) {
            if let Err(e) = self.copy_tags(from, to).await {
                tracing::warn!(key = to, error = %e, "copied object without its tags");
            }
        }
        Ok(())
    }

    async fn copy_tags(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let tags = self
            .client
            .get_object_tagging()
            .bucket(&*self.bucket)
            .key(from)
            .send()
            .await
            .map_err(|e| s3_error("GetObjectTagging", from, e))?;
        let tagging = Tagging::builder()
            .set_tag_set(Some(tags.tag_set().to_vec()))
            .build()
            .map_err(|e| self.build_error("PutObjectTagging", to, e))?;
        self.client
            .put_object_tagging()
            .bucket(&*self.bucket)
            .key(to)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| s3_error("PutObjectTagging", to, e))?;
        Ok(())
    }

    /// Copies one object (rename): `CopyObject`, or a multipart copy above its limit. A
    /// directory marker is written anew: it has no content, and some stores (SeaweedFS, which
    /// keeps `dir/` as a real directory) cannot copy it.
    async fn copy_object(&self, from: &str, to: &str, size: u64) -> Result<(), StorageError> {
        if from.ends_with('/') && size == 0 {
            self.client
                .put_object()
                .bucket(&*self.bucket)
                .key(to)
                .body(ByteStream::from_static(b""))
                .send()
                .await
                .map_err(|e| s3_error("PutObject", to, e))?;
            return Ok(());
        }
        if size > self.max_copy_object_size {
            let head = self.head_object(from, false).await?;
            return self.copy_multipart(from, to, &head).await;
        }
        self.client
            .copy_object()
            .bucket(&*self.bucket)
            .key(to)
            .copy_source(self.copy_source(from))
            .send()
            .await
            .map_err(|e| s3_error("CopyObject", from, e))?;
        Ok(())
    }

    /// Every key under `prefix` with its size, refusing (before listing further) once there are
    /// more than `limit`.
    async fn keys_under(
        &self,
        dir: &ObjectKey,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StorageError> {
        let prefix = dir.dir_prefix();
        let mut keys = Vec::new();
        let mut token = None::<String>;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&*self.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("ListObjectsV2", dir.as_str(), e))?;
            for o in out.contents() {
                if let Some(k) = o.key() {
                    keys.push((k.to_string(), size_of(o.size())));
                }
            }
            if keys.len() > limit {
                return Err(StorageError::TooManyObjects {
                    key: dir.to_string(),
                    limit,
                });
            }
            match (out.is_truncated(), out.next_continuation_token()) {
                (Some(true), Some(next)) => token = Some(next.to_string()),
                _ => return Ok(keys),
            }
        }
    }
}

#[async_trait]
impl Storage for S3Storage {
    async fn stat(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        if key.as_str().is_empty() {
            return Ok(dir_entry(""));
        }
        match self.head_file(key).await {
            Ok(file) => Ok(file),
            Err(StorageError::NotFound(_)) if self.dir_exists(key).await? => {
                Ok(dir_entry(name_of(key)))
            }
            Err(e) => Err(e),
        }
    }

    /// Pages of a listing, fetched one ahead: while the session writes page N to the client,
    /// the request for page N + 1 (its continuation token came with page N) is already out, so
    /// a long listing costs about the sum of the ListObjectsV2 round trips, not that plus the
    /// writing. At most two pages wait; when the reader goes away the fetching stops.
    fn list(&self, dir: &ObjectKey) -> ListPages {
        let lister = Lister {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            prefix: dir.dir_prefix(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(
            async move {
                let mut token = None;
                loop {
                    let (page, next) = match lister.page(token).await {
                        Ok((entries, next)) => (Ok(entries), next),
                        Err(e) => (Err(e), None),
                    };
                    if tx.send(page).await.is_err() {
                        return;
                    }
                    match next {
                        Some(t) => token = Some(t),
                        None => return,
                    }
                }
            }
            .in_current_span(),
        );
        stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|page| (page, rx))
        })
        .boxed()
    }

    async fn read(&self, key: &ObjectKey, offset: u64) -> Result<ReadStream, StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        let mut request = self
            .client
            .get_object()
            .bucket(&*self.bucket)
            .key(key.as_str());
        if offset > 0 {
            request = request.range(format!("bytes={offset}-"));
        }
        match request.send().await {
            Ok(out) => {
                // RFC 9110 lets a server ignore `Range`; sending the object from byte 0 to a
                // client that asked to resume at `offset` would corrupt its file.
                if offset > 0 && !range_starts_at(out.content_range(), offset) {
                    return Err(StorageError::Backend {
                        op: "GetObject",
                        key: key.to_string(),
                        code: "RangeIgnored".to_string(),
                        message: format!(
                            "asked for bytes={offset}-, got Content-Range {:?}",
                            out.content_range()
                        ),
                    });
                }
                Ok(Box::new(out.body.into_async_read()))
            }
            Err(e) if is_invalid_range(&e) => self.read_at_end(key, offset).await,
            Err(e) => Err(self
                .not_a_file(key, s3_error("GetObject", key.as_str(), e))
                .await),
        }
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
            UploadMode::Replace | UploadMode::Resume { offset: 0 } => self.new_upload(key, &spec),
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
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        let head = match self.head_object(key.as_str(), true).await {
            Ok(head) => head,
            Err(e) => return Err(self.not_a_file(key, e).await),
        };
        let meta = head.metadata();
        let recorded = |name: &str| meta.and_then(|m| m.get(name)).map(String::as_str);
        let mut digests = RecordedDigests {
            sha256: recorded(META_SHA256).and_then(parse_sha256),
            // S3's own full-object CRC32 first: it was verified by the store.
            crc32: full_object_crc32(&head).or_else(|| recorded(META_CRC32).and_then(parse_crc32)),
        };
        let incomplete = digests.sha256.is_none() || digests.crc32.is_none();
        if incomplete && head.tag_count().unwrap_or(0) > 0 && self.tagging.load(Ordering::Relaxed) {
            let tags = self
                .client
                .get_object_tagging()
                .bucket(&*self.bucket)
                .key(key.as_str())
                .set_version_id(head.version_id().map(str::to_string))
                .send()
                .await
                .map_err(|e| s3_error("GetObjectTagging", key.as_str(), e))?;
            let tag = |name: &str| {
                tags.tag_set()
                    .iter()
                    .find(|t| t.key() == name)
                    .map(|t| t.value())
            };
            digests.sha256 = digests
                .sha256
                .or_else(|| tag(META_SHA256).and_then(parse_sha256));
            digests.crc32 = digests
                .crc32
                .or_else(|| tag(META_CRC32).and_then(parse_crc32));
        }
        Ok(digests)
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
        self.client
            .put_object()
            .bucket(&*self.bucket)
            .key(&marker)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &marker, e))?;
        Ok(())
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
            .client
            .list_objects_v2()
            .bucket(&*self.bucket)
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
        let source = self.stat(from).await?;
        if source.kind == EntryKind::Dir {
            return Err(StorageError::Unsupported(
                "renaming directories needs rename_dir",
            ));
        }
        if from == to {
            // S3 refuses to copy an object onto itself, and the delete would then lose it.
            return Ok(());
        }
        match self.stat(to).await {
            Ok(Entry {
                kind: EntryKind::Dir,
                ..
            }) => return Err(StorageError::IsADirectory(to.to_string())),
            Ok(_) | Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        self.copy_object(from.as_str(), to.as_str(), source.size)
            .await?;
        self.delete_object(from.as_str()).await
    }

    async fn rename_dir(
        &self,
        from: &ObjectKey,
        to: &ObjectKey,
        max_objects: usize,
    ) -> Result<(), StorageError> {
        check_dir_rename(from, to)?;
        if self.stat(from).await?.kind == EntryKind::File {
            return Err(StorageError::NotADirectory(from.to_string()));
        }
        if from == to {
            return Ok(());
        }
        match self.stat(to).await {
            Ok(_) => return Err(StorageError::AlreadyExists(to.to_string())),
            Err(StorageError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let sources = self.keys_under(from, max_objects).await?;
        let (from_prefix, to_prefix) = (from.dir_prefix(), to.dir_prefix());
        let target = |key: &str| format!("{to_prefix}{}", &key[from_prefix.len()..]);

        // Copy everything; on a failure, remove what was copied and keep the source whole.
        let results: Vec<(String, Result<(), StorageError>)> = stream::iter(sources.clone())
            .map(|(key, size)| {
                let dest = target(&key);
                async move {
                    let result = self.copy_object(&key, &dest, size).await;
                    (dest, result)
                }
            })
            .buffer_unordered(self.upload_concurrency)
            .collect()
            .await;
        let copied: Vec<String> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(dest, _)| dest.clone())
            .collect();
        if let Some(failure) = results.into_iter().find_map(|(_, r)| r.err()) {
            if let Err(e) = self.delete_objects(&copied).await {
                tracing::warn!(from = %from, to = %to, error = %e,
                    "a failed directory rename left some copies behind");
            }
            return Err(failure);
        }
        // Files first, then markers from the deepest: if a delete fails, every directory that
        // still has content also still has its marker.
        let mut originals: Vec<String> = sources.into_iter().map(|(k, _)| k).collect();
        originals.sort_by_key(|k| (k.ends_with('/'), std::cmp::Reverse(k.len())));
        self.delete_objects(&originals).await?;
        tracing::info!(from = %from, to = %to, objects = originals.len(), "directory renamed");
        Ok(())
    }
}

/// A kept multipart upload of a key, and what it holds.
struct KeptUpload {
    upload_id: String,
    initiated: SystemTime,
    /// Parts 1..n, each at least [`MIN_PART_SIZE`].
    parts: Vec<DonePart>,
    held: u64,
}

impl KeptUpload {
    /// Whether this upload was started after the object at its key (if any) was last written,
    /// so that a resume continues it rather than the object. Timestamps compared in whole
    /// seconds (HTTP dates have no more); a tie goes to the upload.
    fn supersedes(&self, object: Option<&HeadObjectOutput>) -> bool {
        let Some(modified) = object.and_then(|h| h.last_modified()).and_then(system_time) else {
            return true;
        };
        unix_secs(self.initiated) >= unix_secs(modified)
    }
}

/// A part stored in an upload, with what `CompleteMultipartUpload` and resuming need.
#[derive(Clone, Debug)]
struct DonePart {
    part: CompletedPart,
    size: u64,
    modified: Option<SystemTime>,
}

/// What a part upload task returns: the stored part, and its buffer if it could be reclaimed.
struct SentPart {
    done: DonePart,
    buffer: Option<BytesMut>,
}

/// The parts a resume can continue from: 1, 2, … without a gap, each at least [`MIN_PART_SIZE`]
/// (a part after which S3 accepts more parts).
fn resumable_run(parts: &[DonePart]) -> Vec<DonePart> {
    let mut sorted: Vec<&DonePart> = parts.iter().collect();
    sorted.sort_by_key(|p| p.part.part_number());
    sorted
        .into_iter()
        .zip(1..)
        .take_while(|(p, n)| p.part.part_number() == Some(*n) && p.size >= MIN_PART_SIZE)
        .map(|(p, _)| p.clone())
        .collect()
}

/// `(part number, first byte, last byte)` of `size` bytes split into equal pieces of at most
/// `max_piece` bytes (each at least [`MIN_PART_SIZE`] when `max_piece ≥ MIN_COPY_PART_SIZE`).
fn copy_pieces(size: u64, max_piece: u64) -> Vec<(i32, u64, u64)> {
    let count = size.div_ceil(max_piece.max(1)).max(1);
    let (base, extra) = (size / count, size % count);
    let mut start = 0;
    (0..count)
        .map(|i| {
            let len = base + u64::from(i < extra);
            let piece = (i as i32 + 1, start, start + len - 1);
            start += len;
            piece
        })
        .collect()
}

/// Server-side copies of byte ranges of one object into parts of a multipart upload.
struct PartCopier {
    client: Client,
    bucket: Arc<str>,
    key: Arc<str>,
    upload_id: String,
    /// `x-amz-copy-source`.
    source: String,
    /// The source's ETag when the copy was planned: a source replaced meanwhile fails the copy
    /// (`PreconditionFailed`) rather than mixing two versions.
    if_match: Option<String>,
    concurrency: usize,
}

impl PartCopier {
    async fn copy(self, pieces: Vec<(i32, u64, u64)>) -> Result<Vec<DonePart>, StorageError> {
        let this = &self;
        stream::iter(pieces)
            .map(|(number, first, last)| async move {
                let out = this
                    .client
                    .upload_part_copy()
                    .bucket(&*this.bucket)
                    .key(&*this.key)
                    .upload_id(&this.upload_id)
                    .part_number(number)
                    .copy_source(&this.source)
                    .copy_source_range(format!("bytes={first}-{last}"))
                    .set_copy_source_if_match(this.if_match.clone())
                    .send()
                    .await
                    .map_err(|e| s3_error("UploadPartCopy", &this.key, e))?;
                let result = out.copy_part_result();
                let owned = |s: Option<&str>| s.map(str::to_string);
                Ok(DonePart {
                    part: CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(owned(result.and_then(|r| r.e_tag())))
                        .set_checksum_crc32(owned(result.and_then(|r| r.checksum_crc32())))
                        .set_checksum_crc32_c(owned(result.and_then(|r| r.checksum_crc32_c())))
                        .set_checksum_crc64_nvme(owned(
                            result.and_then(|r| r.checksum_crc64_nvme()),
                        ))
                        .set_checksum_sha1(owned(result.and_then(|r| r.checksum_sha1())))
                        .set_checksum_sha256(owned(result.and_then(|r| r.checksum_sha256())))
                        .build(),
                    size: last - first + 1,
                    modified: None,
                })
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await
    }
}

/// The digests of everything written to an upload so far, when every byte went through it.
#[derive(Default)]
struct ContentDigests {
    sha256: Sha256,
    crc32: crc32fast::Hasher,
}

impl ContentDigests {
    fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        self.crc32.update(data);
    }

    fn finish(self) -> (String, u32) {
        (hex(self.sha256.finalize()), self.crc32.finalize())
    }

    /// The SHA-256 so far, without ending the digest.
    fn sha256_so_far(&self) -> String {
        hex(self.sha256.clone().finalize())
    }
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What one listing stream needs, shared by its page fetches.
struct Lister {
    client: Client,
    bucket: Arc<str>,
    /// `dir/`, or `""` for the root.
    prefix: String,
}

impl Lister {
    /// One `ListObjectsV2` page: its entries, and the token of the next page if there is one.
    async fn page(
        &self,
        token: Option<String>,
    ) -> Result<(Vec<Entry>, Option<String>), StorageError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&*self.bucket)
            .prefix(&self.prefix)
            .delimiter("/")
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", self.prefix.trim_end_matches('/'), e))?;
        let next = match out.is_truncated() {
            Some(true) => out.next_continuation_token().map(str::to_string),
            _ => None,
        };
        Ok((self.entries(&out), next))
    }

    fn entries(&self, out: &ListObjectsV2Output) -> Vec<Entry> {
        let dirs = out.common_prefixes().iter().filter_map(|p| {
            let name = p.prefix()?.strip_prefix(&self.prefix)?;
            let name = name.strip_suffix('/').unwrap_or(name);
            (!name.is_empty()).then(|| dir_entry(name))
        });
        let files = out.contents().iter().filter_map(|o| {
            // The directory's own marker has key == prefix and so an empty name: skipped here.
            let name = o.key()?.strip_prefix(&self.prefix)?;
            (!name.is_empty()).then(|| Entry {
                name: name.to_string(),
                kind: EntryKind::File,
                size: size_of(o.size()),
                modified: o.last_modified().and_then(system_time),
            })
        });
        dirs.chain(files).collect()
    }
}

/// One upload to S3 in progress: a `PutObject` if the content fits in one part, a multipart
/// upload otherwise. See the module docs for the memory bound, the cleanup rules, resuming and
/// appending.
struct S3Upload {
    client: Client,
    bucket: Arc<str>,
    key: Arc<str>,
    part_size: usize,
    concurrency: usize,
    part_checksums: bool,
    resume_window: Duration,
    tagging: Arc<AtomicBool>,
    /// `x-amz-meta-*` for the object (uploader, client address).
    metadata: HashMap<String, String>,
    /// The part being filled; it is sent when full (or at commit) and replaced.
    buf: BytesMut,
    /// Part buffers given back by finished part uploads, reused for the next parts: an upload
    /// allocates at most `concurrency + 1` buffers however large the file, so the allocator
    /// never sees a stream of freed part-sized blocks (glibc keeps those in per-thread arenas,
    /// which more than doubled the peak RSS of one large STOR).
    spare: Vec<BytesMut>,
    /// Bytes read from the bodies so far.
    received: u64,
    /// Bytes of the object before the received ones: a kept upload's parts, an appended
    /// object's copied parts, or its bytes prefilled into `buf`.
    prefix: u64,
    /// Digests of the content so far; `None` when part of it never passed through this upload
    /// (resumed, or appended by copy).
    digests: Option<ContentDigests>,
    /// Set from the first full part until the upload is completed, aborted or suspended: while
    /// it is set, something must still end the multipart upload (`commit`, `abort`, `suspend`,
    /// or `Drop`).
    upload_id: Option<String>,
    next_part: i32,
    /// Parts being uploaded, at most `concurrency`.
    in_flight: JoinSet<Result<SentPart, StorageError>>,
    /// The server-side copy of an appended object's bytes (one task for all its parts).
    copies: JoinSet<Result<Vec<DonePart>, StorageError>>,
    /// Parts stored.
    done: Vec<DonePart>,
    /// A copy failed (body or store): the upload can only be suspended, aborted or dropped.
    failed: bool,
}

impl S3Upload {
    /// Sends the full buffer as the next part, first waiting for a free slot if `concurrency`
    /// parts are in flight (this is the backpressure: no more body is read meanwhile).
    async fn send_part(&mut self, data: Bytes) -> Result<(), StorageError> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self.create_multipart().await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        if self.next_part > MAX_PARTS {
            return Err(self.error(
                "UploadPart",
                "TooManyParts",
                format!(
                    "the file needs more than {MAX_PARTS} parts of {} bytes; raise s3.part_size_mib",
                    self.part_size
                ),
            ));
        }
        while let Some(joined) = self.copies.try_join_next() {
            self.copies_done(joined)?;
        }
        while let Some(joined) = self.in_flight.try_join_next() {
            self.part_done(joined)?;
        }
        while self.in_flight.len() >= self.concurrency {
            match self.in_flight.join_next().await {
                Some(joined) => self.part_done(joined)?,
                None => break,
            }
        }
        let part_number = self.next_part;
        self.next_part += 1;
        let size = data.len() as u64;
        let body = ByteStream::from(data.clone());
        let mut request = self
            .client
            .upload_part()
            .bucket(&*self.bucket)
            .key(&*self.key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(body);
        if self.part_checksums {
            request = request.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        let key = self.key.clone();
        self.in_flight.spawn(
            async move {
                let out = request
                    .send()
                    .await
                    .map_err(|e| s3_error("UploadPart", &key, e))?;
                tracing::debug!(key = &*key, part_number, "part uploaded");
                // The request (and every retry's clone of the body) is gone: the buffer is ours
                // again unless something else still holds it, in which case it is simply freed.
                let buffer = data.try_into_mut().ok();
                let done = DonePart {
                    part: completed_part(
                        part_number,
                        out.e_tag(),
                        [
                            out.checksum_crc32(),
                            out.checksum_crc32_c(),
                            out.checksum_crc64_nvme(),
                            out.checksum_sha1(),
                            out.checksum_sha256(),
                        ],
                    ),
                    size,
                    modified: None,
                };
                Ok(SentPart { done, buffer })
            }
            .in_current_span(),
        );
        Ok(())
    }

    fn part_done(
        &mut self,
        joined: Result<Result<SentPart, StorageError>, JoinError>,
    ) -> Result<(), StorageError> {
        match joined {
            Ok(Ok(SentPart { done, buffer })) => {
                self.done.push(done);
                if let Some(mut buffer) = buffer {
                    if self.spare.len() < self.concurrency && !self.failed {
                        buffer.clear();
                        self.spare.push(buffer);
                    }
                }
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(self.error("UploadPart", "TaskFailed", e.to_string())),
        }
    }

    fn copies_done(
        &mut self,
        joined: Result<Result<Vec<DonePart>, StorageError>, JoinError>,
    ) -> Result<(), StorageError> {
        match joined {
            Ok(Ok(parts)) => {
                self.done.extend(parts);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(self.error("UploadPartCopy", "TaskFailed", e.to_string())),
        }
    }

    async fn create_multipart(&self) -> Result<String, StorageError> {
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(&*self.key)
            .set_metadata(Some(self.metadata.clone()));
        if self.part_checksums {
            request = request
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .checksum_type(ChecksumType::FullObject);
        }
        let out = request
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", &self.key, e))?;
        let id = out.upload_id().ok_or_else(|| {
            self.error(
                "CreateMultipartUpload",
                "NoUploadId",
                "the store returned no upload id".to_string(),
            )
        })?;
        tracing::debug!(key = &*self.key, upload_id = id, "multipart upload created");
        Ok(id.to_string())
    }

    /// Everything `commit` does; on error the caller aborts.
    async fn finish(&mut self) -> Result<u64, StorageError> {
        let last = std::mem::take(&mut self.buf).freeze();
        let digests = self.digests.take().map(ContentDigests::finish);
        if self.upload_id.is_none() {
            let mut metadata = self.metadata.clone();
            if let Some((sha256, crc32)) = &digests {
                metadata.insert(META_SHA256.to_string(), sha256.clone());
                metadata.insert(META_CRC32.to_string(), format!("{crc32:08x}"));
            }
            self.client
                .put_object()
                .bucket(&*self.bucket)
                .key(&*self.key)
                .set_metadata(Some(metadata))
                .body(ByteStream::from(last))
                .send()
                .await
                .map_err(|e| s3_error("PutObject", &self.key, e))?;
            return Ok(self.received);
        }
        if !last.is_empty() {
            self.send_part(last).await?;
        }
        while let Some(joined) = self.copies.join_next().await {
            self.copies_done(joined)?;
        }
        while let Some(joined) = self.in_flight.join_next().await {
            self.part_done(joined)?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part.part_number());
        let Some(upload_id) = self.upload_id.clone() else {
            return Ok(self.received);
        };
        let size = self.prefix + self.received;
        let mut request = self
            .client
            .complete_multipart_upload()
            .bucket(&*self.bucket)
            .key(&*self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.into_iter().map(|p| p.part).collect()))
                    .build(),
            );
        if let (true, Some((_, crc32))) = (self.part_checksums, &digests) {
            // S3 checks the CRC32 it combines from the parts against the one computed here.
            request = request
                .checksum_type(ChecksumType::FullObject)
                .checksum_crc32(aws_smithy_types::base64::encode(crc32.to_be_bytes()));
        }
        let out = request
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", &self.key, e))?;
        // Completed: there is nothing left to abort.
        self.upload_id = None;
        tracing::debug!(key = &*self.key, bytes = size, "multipart upload completed");
        if let Some((sha256, crc32)) = digests {
            self.record_digests(out.e_tag(), out.version_id(), &sha256, crc32)
                .await;
        }
        Ok(self.received)
    }

    /// Tags a completed multipart object with its digests (see the module docs). Never fails
    /// the upload: the object is stored; without the tags HASH has to read it.
    async fn record_digests(
        &self,
        etag: Option<&str>,
        version_id: Option<&str>,
        sha256: &str,
        crc32: u32,
    ) {
        if !self.tagging.load(Ordering::Relaxed) {
            return;
        }
        let key: &str = &self.key;
        let tags = [
            (META_SHA256, sha256.to_string()),
            (META_CRC32, format!("{crc32:08x}")),
        ]
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect::<Result<Vec<_>, _>>();
        let tagging = match tags.and_then(|t| Tagging::builder().set_tag_set(Some(t)).build()) {
            Ok(tagging) => tagging,
            Err(e) => {
                tracing::warn!(key, error = %e, "could not build the digest tags");
                return;
            }
        };
        let put = self
            .client
            .put_object_tagging()
            .bucket(&*self.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .tagging(tagging)
            .send()
            .await;
        if let Err(e) = put {
            let e = s3_error("PutObjectTagging", key, e);
            if matches!(&e, StorageError::Backend { code, .. } if code == "NotImplemented") {
                self.tagging.store(false, Ordering::Relaxed);
                tracing::warn!(key, "the store does not implement object tagging: SHA-256 digests of multipart uploads are not recorded");
            } else {
                tracing::warn!(key, error = %e, "could not record the object's digests");
            }
            return;
        }
        if version_id.is_some() {
            return;
        }
        // No version to name: if another upload completed at the key in between, the tags may
        // sit on its object. Check, and take them off if so.
        let now = self
            .client
            .head_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await;
        let ours = match (&now, etag) {
            (Ok(head), Some(etag)) => head.e_tag().map(unquote) == Some(unquote(etag)),
            _ => false,
        };
        if !ours {
            tracing::warn!(
                key,
                "the object changed while its digests were recorded; removing them"
            );
            if let Err(e) = self
                .client
                .delete_object_tagging()
                .bucket(&*self.bucket)
                .key(key)
                .send()
                .await
            {
                tracing::warn!(key, error = %s3_error("DeleteObjectTagging", key, e),
                    "could not remove digest tags that may describe another upload");
            }
        }
    }

    /// Stops reading after a failed copy: frees the buffer, lets parts in flight finish (so a
    /// `suspend` can keep them) and leaves the multipart upload for the caller to end.
    /// Makes sure the part buffer has free capacity. A fresh buffer starts at
    /// [`FIRST_BUFFER`] and doubles up to the part size, so a small file never holds a whole
    /// part's memory; the copies this costs happen on the first part only, later parts reuse
    /// full-size buffers (`spare`).
    fn make_room(&mut self) {
        let len = self.buf.len();
        if self.buf.capacity() > len || len >= self.part_size {
            return;
        }
        let target = (len * 2).clamp(FIRST_BUFFER, self.part_size);
        self.buf.reserve(target - len);
    }

    fn stop(&mut self) {
        self.failed = true;
        self.buf = BytesMut::new();
        self.spare = Vec::new();
        self.digests = None;
    }

    /// Ends the upload after an error or on `abort`: stops the parts in flight, aborts the
    /// multipart upload, frees the buffer. The key keeps what it held before.
    async fn fail(&mut self) {
        self.stop();
        self.in_flight.shutdown().await;
        self.copies.shutdown().await;
        if let Some(upload_id) = self.upload_id.take() {
            abort_multipart(&self.client, &self.bucket, &self.key, &upload_id).await;
        }
    }

    fn error(&self, op: &'static str, code: &str, message: String) -> StorageError {
        StorageError::Backend {
            op,
            key: self.key.to_string(),
            code: code.to_string(),
            message,
        }
    }

    fn ended(&self) -> StorageError {
        self.error(
            "Upload",
            "UploadFailed",
            "an earlier error ended this upload; nothing was stored".to_string(),
        )
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn copy_from(
        &mut self,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64, UploadError> {
        if self.failed {
            return Err(self.ended().into());
        }
        loop {
            self.make_room();
            // Read straight into the part buffer, never past the part boundary.
            let room = self.part_size - self.buf.len();
            let before = self.buf.len();
            let n = match body.read_buf(&mut (&mut self.buf).limit(room)).await {
                Ok(n) => n,
                Err(e) => {
                    self.stop();
                    return Err(UploadError::Body(e));
                }
            };
            if let Some(d) = self.digests.as_mut() {
                d.update(&self.buf[before..]);
            }
            self.received += n as u64;
            if self.buf.len() == self.part_size {
                let full = std::mem::replace(&mut self.buf, BytesMut::new()).freeze();
                if let Err(e) = self.send_part(full).await {
                    self.stop();
                    return Err(e.into());
                }
                self.buf = self.spare.pop().unwrap_or_default();
            }
            if n == 0 {
                return Ok(self.received);
            }
        }
    }

    fn sha256(&self) -> Option<String> {
        self.digests.as_ref().map(ContentDigests::sha256_so_far)
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        if self.failed {
            self.fail().await;
            return Err(self.ended());
        }
        let result = self.finish().await;
        if result.is_err() {
            self.fail().await;
        }
        result
    }

    async fn abort(mut self: Box<Self>) {
        self.fail().await;
    }

    async fn suspend(mut self: Box<Self>) {
        if self.resume_window.is_zero() || self.upload_id.is_none() {
            return self.fail().await;
        }
        self.stop();
        // Parts whose bytes were read finish uploading: a client resuming right after the
        // failure reply must find them (and asks SIZE from the same count).
        while let Some(joined) = self.copies.join_next().await {
            if let Err(e) = self.copies_done(joined) {
                tracing::debug!(key = &*self.key, error = %e, "copy failed before suspending");
            }
        }
        while let Some(joined) = self.in_flight.join_next().await {
            if let Err(e) = self.part_done(joined) {
                tracing::debug!(key = &*self.key, error = %e, "part failed before suspending");
            }
        }
        let run = resumable_run(&self.done);
        if run.is_empty() {
            return self.fail().await;
        }
        let held: u64 = run.iter().map(|p| p.size).sum();
        if let Some(upload_id) = self.upload_id.take() {
            tracing::info!(
                key = &*self.key,
                upload_id,
                bytes = held,
                resume_window_secs = self.resume_window.as_secs(),
                "upload interrupted: its parts are kept for a resume (REST + STOR)"
            );
        }
    }
}

impl Drop for S3Upload {
    /// Dropped with a multipart upload still open (its task was cancelled, or the caller forgot
    /// to end it): abort it in the background, or its parts would be stored (and billed) until a
    /// lifecycle rule removes them.
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let mut in_flight = std::mem::take(&mut self.in_flight);
        let mut copies = std::mem::take(&mut self.copies);
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    in_flight.shutdown().await;
                    copies.shutdown().await;
                    abort_multipart(&client, &bucket, &key, &upload_id).await;
                });
            }
            Err(_) => tracing::warn!(
                key = &*key,
                upload_id,
                "upload dropped outside a runtime: the multipart upload stays open until a \
                 bucket lifecycle rule (AbortIncompleteMultipartUpload) removes it"
            ),
        }
    }
}

/// Aborts a multipart upload. If S3 cannot be reached (after the SDK's own retries), tries again
/// in the background after each of [`ABORT_RETRY_DELAYS`]: an S3 outage of minutes then leaves no
/// upload open once S3 is back, rather than until the lifecycle rule runs (a day later). A
/// process that stops meanwhile leaves the rest to that rule.
async fn abort_multipart(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let Err(e) = try_abort(client, bucket, key, upload_id).await else {
        tracing::debug!(key, upload_id, "multipart upload aborted");
        return;
    };
    tracing::warn!(key, upload_id, error = %e,
        "could not abort a multipart upload; trying again in the background");
    let (client, bucket, key, upload_id) = (
        client.clone(),
        bucket.to_string(),
        key.to_string(),
        upload_id.to_string(),
    );
    tokio::spawn(async move {
        for delay in ABORT_RETRY_DELAYS {
            tokio::time::sleep(delay).await;
            match try_abort(&client, &bucket, &key, &upload_id).await {
                Ok(()) => {
                    tracing::info!(key, upload_id, "multipart upload aborted on a later try");
                    return;
                }
                // Gone already (completed by nobody, so aborted elsewhere or expired).
                Err(StorageError::Backend { code, .. }) if code == "NoSuchUpload" => return,
                Err(e) => tracing::debug!(key, upload_id, error = %e, "abort failed again"),
            }
        }
        tracing::warn!(
            key,
            upload_id,
            "could not abort a multipart upload; a bucket lifecycle rule \
             (AbortIncompleteMultipartUpload) must remove it"
        );
    });
}

async fn try_abort(
    client: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> Result<(), StorageError> {
    client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| s3_error("AbortMultipartUpload", key, e))
}

/// The one place an SDK error becomes a [`StorageError`]: `NoSuchKey` (or a bare 404, which is
/// how `HeadObject` says it) is `NotFound`; everything else is `Backend` with the store's error
/// code, or the kind of failure when the store never answered (`TimeoutError`, …).
fn s3_error<E>(op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let not_found = match code.as_deref() {
        Some(code) => code == "NoSuchKey" || code == "NotFound",
        None => status == Some(404),
    };
    if not_found {
        return StorageError::NotFound(key.to_string());
    }
    let code = code.unwrap_or_else(|| match (&err, status) {
        (SdkError::TimeoutError(_), _) => "TimeoutError".to_string(),
        (SdkError::DispatchFailure(_), _) => "DispatchFailure".to_string(),
        (SdkError::ConstructionFailure(_), _) => "ConstructionFailure".to_string(),
        (_, Some(status)) => format!("HTTP {status}"),
        _ => "ResponseError".to_string(),
    });
    let message = match err.message() {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    StorageError::Backend {
        op,
        key: key.to_string(),
        code,
        message,
    }
}

/// S3 says `InvalidRange` (HTTP 416) when a range starts at or past the end of the object.
fn is_invalid_range<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("InvalidRange")
        || err.raw_response().map(|r| r.status().as_u16()) == Some(416)
}

/// Whether a `Content-Range: bytes first-last/size` starts at `offset`.
fn range_starts_at(content_range: Option<&str>, offset: u64) -> bool {
    content_range
        .and_then(|r| r.trim().strip_prefix("bytes "))
        .and_then(|r| r.split_once('-'))
        .and_then(|(first, _)| first.trim().parse::<u64>().ok())
        == Some(offset)
}

/// S3's CRC32 of the whole object, if it has one: a `FULL_OBJECT` checksum (or one given with a
/// single `PutObject`), not a `COMPOSITE` checksum of part checksums (`…-N`).
fn full_object_crc32(head: &HeadObjectOutput) -> Option<u32> {
    if head.checksum_type() == Some(&ChecksumType::Composite) {
        return None;
    }
    let value = head.checksum_crc32().filter(|v| !v.contains('-'))?;
    let bytes: [u8; 4] = aws_smithy_types::base64::decode(value)
        .ok()?
        .try_into()
        .ok()?;
    Some(u32::from_be_bytes(bytes))
}

/// A recorded SHA-256: 64 hex digits, returned in lowercase.
fn parse_sha256(value: &str) -> Option<String> {
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

/// A recorded CRC32: 8 hex digits.
fn parse_crc32(value: &str) -> Option<u32> {
    (value.len() == 8 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(value, 16).ok())
        .flatten()
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

fn dir_entry(name: &str) -> Entry {
    Entry {
        name: name.to_string(),
        kind: EntryKind::Dir,
        size: 0,
        modified: None,
    }
}

/// The last segment of a key (`""` for the root).
fn name_of(key: &ObjectKey) -> &str {
    key.as_str().rsplit('/').next().unwrap_or("")
}

fn size_of(len: Option<i64>) -> u64 {
    len.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}

fn system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

/// A part for CompleteMultipartUpload, from UploadPart's answer or ListParts: its ETag and
/// whichever checksums the store returned, in the order CRC32, CRC32C, CRC64NVME, SHA1, SHA256.
fn completed_part(number: i32, e_tag: Option<&str>, sums: [Option<&str>; 5]) -> CompletedPart {
    let owned = |s: Option<&str>| s.map(str::to_string);
    let [crc32, crc32c, crc64, sha1, sha256] = sums;
    CompletedPart::builder()
        .part_number(number)
        .set_e_tag(owned(e_tag))
        .set_checksum_crc32(owned(crc32))
        .set_checksum_crc32_c(owned(crc32c))
        .set_checksum_crc64_nvme(owned(crc64))
        .set_checksum_sha1(owned(sha1))
        .set_checksum_sha256(owned(sha256))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_encodes_all_but_unreserved_and_slash() {
        let encoded = utf8_percent_encode("dir/a b+c%d~e_f-g.h/é", COPY_SOURCE).to_string();
        assert_eq!(encoded, "dir/a%20b%2Bc%25d~e_f-g.h/%C3%A9");
    }

    #[test]
    fn content_range_must_start_at_the_offset() {
        assert!(range_starts_at(Some("bytes 5-9/10"), 5));
        assert!(!range_starts_at(Some("bytes 0-9/10"), 5));
        assert!(!range_starts_at(None, 5));
        assert!(!range_starts_at(Some("bytes */10"), 5));
    }

    #[test]
    fn copy_pieces_are_equal_and_at_least_the_smallest_part() {
        assert_eq!(
            copy_pieces(7 * MIB, MAX_COPY_SIZE),
            vec![(1, 0, 7 * MIB - 1)]
        );
        for size in [
            MIN_PART_SIZE,
            MIN_COPY_PART_SIZE,
            MIN_COPY_PART_SIZE + 1,
            21 * MIB + 7,
            3 * MIN_COPY_PART_SIZE - 1,
        ] {
            let pieces = copy_pieces(size, MIN_COPY_PART_SIZE);
            assert_eq!(pieces.len() as u64, size.div_ceil(MIN_COPY_PART_SIZE));
            let mut next = 0;
            for (i, (number, first, last)) in pieces.iter().enumerate() {
                assert_eq!(
                    (*number, *first),
                    (i as i32 + 1, next),
                    "{size}: contiguous"
                );
                let len = last - first + 1;
                assert!(
                    (MIN_PART_SIZE..=MIN_COPY_PART_SIZE).contains(&len),
                    "{size}: {len}"
                );
                next = last + 1;
            }
            assert_eq!(next, size);
        }
        // 12 TiB in 5 GiB pieces: within S3's 10 000 parts, every piece ≤ 5 GiB.
        let pieces = copy_pieces(12 << 40, MAX_COPY_SIZE);
        assert!(pieces.len() < MAX_PARTS as usize);
        assert!(pieces.iter().all(|(_, f, l)| l - f < MAX_COPY_SIZE));
    }

    fn part(number: i32, size: u64) -> DonePart {
        DonePart {
            part: CompletedPart::builder().part_number(number).build(),
            size,
            modified: None,
        }
    }

    #[test]
    fn a_resume_continues_the_parts_from_1_without_gap_or_short_part() {
        let numbers = |parts: Vec<DonePart>| -> Vec<i32> {
            resumable_run(&parts)
                .iter()
                .filter_map(|p| p.part.part_number())
                .collect()
        };
        let full = MIN_PART_SIZE;
        assert_eq!(numbers(vec![part(2, full), part(1, full)]), vec![1, 2]);
        assert_eq!(
            numbers(vec![part(1, full), part(3, full)]),
            vec![1],
            "a gap"
        );
        assert_eq!(
            numbers(vec![part(1, full), part(2, 10), part(3, full)]),
            vec![1],
            "a short part"
        );
        assert_eq!(numbers(vec![part(2, full)]), Vec::<i32>::new());
    }

    #[test]
    fn recorded_digests_are_parsed_strictly() {
        let sha = "AB".repeat(32);
        assert_eq!(parse_sha256(&sha), Some("ab".repeat(32)));
        assert_eq!(parse_sha256("abc"), None);
        assert_eq!(parse_sha256(&"zz".repeat(32)), None);
        assert_eq!(parse_crc32("0000abcd"), Some(0xabcd));
        assert_eq!(parse_crc32("abcd"), None);
        assert_eq!(parse_crc32("+000abcd"), None);
    }

    #[test]
    fn only_a_full_object_crc32_is_the_files_crc32() {
        let head = |value: &str, kind: Option<ChecksumType>| {
            HeadObjectOutput::builder()
                .checksum_crc32(value)
                .set_checksum_type(kind)
                .build()
        };
        assert_eq!(
            full_object_crc32(&head("AAAAAQ==", Some(ChecksumType::FullObject))),
            Some(1)
        );
        assert_eq!(full_object_crc32(&head("AAAAAQ==", None)), Some(1));
        assert_eq!(
            full_object_crc32(&head("AAAAAQ==-2", Some(ChecksumType::Composite))),
            None
        );
        assert_eq!(full_object_crc32(&head("AAAAAQ==-2", None)), None);
        assert_eq!(
            full_object_crc32(&HeadObjectOutput::builder().build()),
            None
        );
    }

    #[test]
    fn a_kept_upload_supersedes_only_older_objects() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let kept = KeptUpload {
            upload_id: "u".to_string(),
            initiated: at(1000) + Duration::from_millis(300),
            parts: Vec::new(),
            held: 0,
        };
        let object = |secs: i64| {
            HeadObjectOutput::builder()
                .last_modified(DateTime::from_secs(secs))
                .build()
        };
        assert!(kept.supersedes(None));
        assert!(kept.supersedes(Some(&object(999))));
        assert!(
            kept.supersedes(Some(&object(1000))),
            "a tie goes to the upload"
        );
        assert!(!kept.supersedes(Some(&object(1001))));
    }

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

    #[test]
    fn name_is_the_last_segment() {
        assert_eq!(name_of(&ObjectKey::from_trusted("a/b/c.txt")), "c.txt");
        assert_eq!(name_of(&ObjectKey::from_trusted("c")), "c");
        assert_eq!(name_of(&ObjectKey::from_trusted("")), "");
    }
}
