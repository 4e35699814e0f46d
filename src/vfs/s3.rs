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
//! - Writes ([`S3Upload`]) read the body into part-sized buffers. A body shorter than one part is
//!   a single `PutObject` at commit; a longer one is a multipart upload with at most
//!   `upload_concurrency` parts in flight, so memory stays below `part_size × (concurrency + 1)`
//!   whatever the file size. Nothing is visible at the key until `CompleteMultipartUpload`
//!   succeeds; every failure, `abort`, or drop (a cancelled task) ends in
//!   `AbortMultipartUpload`, so a cut-off transfer never becomes a truncated object.
//! - Renames are `CopyObject` then `DeleteObject`. Objects above 5 GiB cannot be copied in one
//!   request; until multipart copy (`UploadPartCopy`) is added they give a clear error.
//!
//! Every SDK error becomes a [`StorageError`] in one function, [`s3_error`], which keeps the S3
//! error code (`SlowDown`, `AccessDenied`, …) so logs and replies say what the store said.

use std::{
    sync::Arc,
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
    operation::{list_objects_v2::ListObjectsV2Output, upload_part::UploadPartOutput},
    primitives::{ByteStream, DateTime},
    types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart},
    Client,
};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{stream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    task::{JoinError, JoinSet},
};

use super::{
    Entry, EntryKind, ListPages, ObjectKey, ReadStream, Storage, StorageError, Upload, UploadError,
};
use crate::config::{self, ChecksumMode};

/// S3 allows at most 10 000 parts per multipart upload: with 8 MiB parts, files up to 78 GiB.
const MAX_PARTS: i32 = 10_000;

/// The largest object a single `CopyObject` can copy.
const MAX_COPY_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// Time to open a TCP (and TLS) connection to the store.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `x-amz-copy-source` is `bucket/key`, URL-encoded: everything but RFC 3986 unreserved
/// characters and the `/` separators. An unencoded `+` would be read as a space, `%` as an escape.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

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
        .retry_config(RetryConfig::standard().with_max_attempts(cfg.max_attempts))
        .timeout_config(timeouts);
    if let Some(endpoint) = &cfg.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    Client::from_conf(builder.build())
}

/// A bucket seen as a filesystem. Cheap to clone (the SDK client is shared).
#[derive(Clone)]
pub struct S3Storage {
    client: Client,
    bucket: Arc<str>,
    part_size: usize,
    upload_concurrency: usize,
    /// Whether uploads declare a CRC32 per part (`request_checksum_calculation = WhenSupported`,
    /// the SDK default). Multipart uploads then name the algorithm in `CreateMultipartUpload`, so
    /// S3 verifies every part and the part checksums given to `CompleteMultipartUpload` match
    /// what the upload was created with.
    part_checksums: bool,
}

impl S3Storage {
    /// `part_size` is the multipart part size in bytes (S3 needs ≥ 5 MiB for all parts but the
    /// last); `upload_concurrency` the parts of one upload in flight at once (at least 1).
    pub fn new(
        client: Client,
        bucket: String,
        part_size: usize,
        upload_concurrency: usize,
    ) -> Self {
        let part_checksums = !matches!(
            client.config().request_checksum_calculation(),
            Some(RequestChecksumCalculation::WhenRequired)
        );
        S3Storage {
            client,
            bucket: bucket.into(),
            part_size: part_size.max(1),
            upload_concurrency: upload_concurrency.max(1),
            part_checksums,
        }
    }

    /// The bucket this storage lives in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `HeadObject`: the file at `key`, or `NotFound`.
    async fn head_file(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        let out = self
            .client
            .head_object()
            .bucket(&*self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| s3_error("HeadObject", key.as_str(), e))?;
        Ok(Entry {
            name: name_of(key).to_string(),
            kind: EntryKind::File,
            size: size_of(out.content_length()),
            modified: out.last_modified().and_then(system_time),
        })
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

    /// `GetObject` gave `InvalidRange`: an offset equal to the size is a valid, empty read.
    async fn read_at_end(&self, key: &ObjectKey, offset: u64) -> Result<ReadStream, StorageError> {
        let file = self.head_file(key).await?;
        if offset == file.size {
            Ok(Box::new(tokio::io::empty()))
        } else {
            Err(StorageError::InvalidRange(key.to_string()))
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

    fn list(&self, dir: &ObjectKey) -> ListPages {
        let lister = Arc::new(Lister {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            prefix: dir.dir_prefix(),
        });
        stream::unfold(Some(None), move |cursor: Option<Option<String>>| {
            let lister = lister.clone();
            async move {
                // `None`: the last page was yielded (or failed). `Some(token)`: fetch a page.
                let token = cursor?;
                Some(match lister.page(token).await {
                    Ok((entries, next)) => (Ok(entries), next.map(Some)),
                    Err(e) => (Err(e), None),
                })
            }
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
            Err(e) => match s3_error("GetObject", key.as_str(), e) {
                StorageError::NotFound(k) if self.dir_exists(key).await? => {
                    Err(StorageError::IsADirectory(k))
                }
                other => Err(other),
            },
        }
    }

    async fn begin_upload(&self, key: &ObjectKey) -> Result<Box<dyn Upload>, StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        Ok(Box::new(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.as_str().into(),
            part_size: self.part_size,
            concurrency: self.upload_concurrency,
            part_checksums: self.part_checksums,
            buf: BytesMut::with_capacity(self.part_size),
            total: 0,
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            done: Vec::new(),
            failed: false,
        }))
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
                "renaming directories is not supported",
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
        if source.size > MAX_COPY_OBJECT_SIZE {
            return Err(StorageError::Backend {
                op: "CopyObject",
                key: from.to_string(),
                code: "EntityTooLarge".to_string(),
                message: format!(
                    "{} bytes is above CopyObject's 5 GiB limit; renaming such files needs \
                     multipart copy, which is not implemented yet",
                    source.size
                ),
            });
        }
        let copy_source = format!(
            "{}/{}",
            self.bucket,
            utf8_percent_encode(from.as_str(), COPY_SOURCE)
        );
        self.client
            .copy_object()
            .bucket(&*self.bucket)
            .key(to.as_str())
            .copy_source(copy_source)
            .send()
            .await
            .map_err(|e| s3_error("CopyObject", from.as_str(), e))?;
        self.delete_object(from.as_str()).await
    }
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

/// One upload to S3 in progress: a `PutObject` if the body fits in one part, a multipart upload
/// otherwise. See the module docs for the memory bound and the cleanup rules.
struct S3Upload {
    client: Client,
    bucket: Arc<str>,
    key: Arc<str>,
    part_size: usize,
    concurrency: usize,
    part_checksums: bool,
    /// The part being filled; it is sent when full (or at commit) and replaced.
    buf: BytesMut,
    /// Bytes read from the body so far.
    total: u64,
    /// Set from the first full part until the upload is completed or aborted: while it is set,
    /// something must still end the multipart upload (`commit`, `abort`, a failure, or `Drop`).
    upload_id: Option<String>,
    next_part: i32,
    /// Parts being uploaded, at most `concurrency`.
    in_flight: JoinSet<Result<CompletedPart, StorageError>>,
    /// Parts uploaded.
    done: Vec<CompletedPart>,
    /// An error ended the upload (already aborted): it can only be dropped.
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
        let mut request = self
            .client
            .upload_part()
            .bucket(&*self.bucket)
            .key(&*self.key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(data));
        if self.part_checksums {
            request = request.checksum_algorithm(ChecksumAlgorithm::Crc32);
        }
        let key = self.key.clone();
        self.in_flight.spawn(async move {
            let out = request
                .send()
                .await
                .map_err(|e| s3_error("UploadPart", &key, e))?;
            tracing::debug!(key = &*key, part_number, "part uploaded");
            Ok(completed_part(part_number, &out))
        });
        Ok(())
    }

    fn part_done(
        &mut self,
        joined: Result<Result<CompletedPart, StorageError>, JoinError>,
    ) -> Result<(), StorageError> {
        match joined {
            Ok(Ok(part)) => {
                self.done.push(part);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(self.error("UploadPart", "TaskFailed", e.to_string())),
        }
    }

    async fn create_multipart(&self) -> Result<String, StorageError> {
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(&*self.key);
        if self.part_checksums {
            request = request.checksum_algorithm(ChecksumAlgorithm::Crc32);
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
        if self.upload_id.is_none() {
            self.client
                .put_object()
                .bucket(&*self.bucket)
                .key(&*self.key)
                .body(ByteStream::from(last))
                .send()
                .await
                .map_err(|e| s3_error("PutObject", &self.key, e))?;
            return Ok(self.total);
        }
        if !last.is_empty() {
            self.send_part(last).await?;
        }
        while let Some(joined) = self.in_flight.join_next().await {
            self.part_done(joined)?;
        }
        let mut parts = std::mem::take(&mut self.done);
        parts.sort_by_key(|p| p.part_number());
        let Some(upload_id) = self.upload_id.clone() else {
            return Ok(self.total);
        };
        self.client
            .complete_multipart_upload()
            .bucket(&*self.bucket)
            .key(&*self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", &self.key, e))?;
        // Completed: there is nothing left to abort.
        self.upload_id = None;
        tracing::debug!(
            key = &*self.key,
            bytes = self.total,
            "multipart upload completed"
        );
        Ok(self.total)
    }

    /// Ends the upload after an error: stops the parts in flight, aborts the multipart upload,
    /// frees the buffer. The key keeps what it held before.
    async fn fail(&mut self) {
        self.failed = true;
        self.buf = BytesMut::new();
        self.in_flight.shutdown().await;
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
            // Read straight into the part buffer, never past the part boundary.
            let room = self.part_size - self.buf.len();
            let n = match body.read_buf(&mut (&mut self.buf).limit(room)).await {
                Ok(n) => n,
                Err(e) => {
                    self.fail().await;
                    return Err(UploadError::Body(e));
                }
            };
            self.total += n as u64;
            if self.buf.len() == self.part_size {
                let full = std::mem::replace(&mut self.buf, BytesMut::new()).freeze();
                if let Err(e) = self.send_part(full).await {
                    self.fail().await;
                    return Err(e.into());
                }
                self.buf = BytesMut::with_capacity(self.part_size);
            }
            if n == 0 {
                return Ok(self.total);
            }
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<u64, StorageError> {
        if self.failed {
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
        let (client, bucket, key) = (self.client.clone(), self.bucket.clone(), self.key.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    in_flight.shutdown().await;
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

async fn abort_multipart(client: &Client, bucket: &str, key: &str, upload_id: &str) {
    let result = client
        .abort_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await;
    match result {
        Ok(_) => tracing::debug!(key, upload_id, "multipart upload aborted"),
        Err(e) => tracing::warn!(
            key,
            upload_id,
            error = %s3_error("AbortMultipartUpload", key, e),
            "could not abort a multipart upload; a bucket lifecycle rule \
             (AbortIncompleteMultipartUpload) must remove it"
        ),
    }
}

/// The part as `CompleteMultipartUpload` needs it: its number, ETag, and whatever checksum the
/// store computed for it (required when the upload was created with a checksum algorithm).
fn completed_part(part_number: i32, out: &UploadPartOutput) -> CompletedPart {
    let owned = |s: Option<&str>| s.map(str::to_string);
    CompletedPart::builder()
        .part_number(part_number)
        .set_e_tag(owned(out.e_tag()))
        .set_checksum_crc32(owned(out.checksum_crc32()))
        .set_checksum_crc32_c(owned(out.checksum_crc32_c()))
        .set_checksum_crc64_nvme(owned(out.checksum_crc64_nvme()))
        .set_checksum_sha1(owned(out.checksum_sha1()))
        .set_checksum_sha256(owned(out.checksum_sha256()))
        .set_checksum_sha512(owned(out.checksum_sha512()))
        .set_checksum_md5(owned(out.checksum_md5()))
        .set_checksum_xxhash64(owned(out.checksum_xxhash64()))
        .set_checksum_xxhash3(owned(out.checksum_xxhash3()))
        .set_checksum_xxhash128(owned(out.checksum_xxhash128()))
        .build()
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
    fn name_is_the_last_segment() {
        assert_eq!(name_of(&ObjectKey::from_trusted("a/b/c.txt")), "c.txt");
        assert_eq!(name_of(&ObjectKey::from_trusted("c")), "c");
        assert_eq!(name_of(&ObjectKey::from_trusted("")), "");
    }
}
