//! The upload engine ([`S3Upload`]): part buffers filled from the body, parts sent with bounded
//! concurrency, `PutObject` or `CompleteMultipartUpload` at commit, abort or suspend on failure,
//! and the `Drop` backstop.

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use aws_sdk_s3::{primitives::ByteStream, types::ChecksumAlgorithm};
use bytes::{BufMut, Bytes, BytesMut};
use percent_encoding::utf8_percent_encode;
use tokio::{
    io::{AsyncRead, AsyncReadExt},
    task::{JoinError, JoinHandle, JoinSet},
};
use tracing::Instrument;

use super::error::{backend_error, s3_error, BackendCode};
use super::metadata::{
    ContentDigests, METADATA_VALUE, META_CLIENT_ADDR, META_CRC32, META_SHA256, META_UPLOADER,
};
use super::multipart::{completed_part, DonePart, MultipartUpload, PartTarget};
use super::resume::{abort_replaced_uploads, resumable_run};
use super::{S3Storage, MAX_PARTS};
use crate::vfs::budget::Reservation;
use crate::vfs::{ObjectKey, StorageError, Upload, UploadError, UploadSpec};

/// The first allocation of a part buffer (see `S3Upload::make_room`).
pub(super) const FIRST_BUFFER: usize = 256 * 1024;

impl S3Storage {
    /// An upload of `key` with nothing in it yet.
    pub(super) fn new_upload(&self, key: &ObjectKey, spec: &UploadSpec) -> S3Upload {
        let metadata = HashMap::from([
            (
                META_UPLOADER.to_string(),
                utf8_percent_encode(&spec.uploader, METADATA_VALUE).to_string(),
            ),
            (META_CLIENT_ADDR.to_string(), spec.client_addr.to_string()),
        ]);
        S3Upload {
            store: self.clone(),
            key: key.as_str().into(),
            metadata,
            buf: BytesMut::new(),
            spare: Vec::new(),
            received: 0,
            prefix: 0,
            digests: Some(ContentDigests::default()),
            part_crc: crc32fast::Hasher::new(),
            multipart: None,
            creating: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            copies: JoinSet::new(),
            done: Vec::new(),
            failed: false,
            replaces_kept: None,
            memory: Reservation::new(self.memory_budget.clone(), self.part_size),
        }
    }
}

/// What a part upload task returns: the stored part, and its buffer if it could be reclaimed.
pub(super) struct SentPart {
    pub(super) done: DonePart,
    pub(super) buffer: Option<BytesMut>,
}

/// One upload to S3 in progress: a `PutObject` if the content fits in one part, a multipart
/// upload otherwise. See the module docs for the memory bound, the cleanup rules, resuming and
/// appending.
pub(super) struct S3Upload {
    /// The storage it belongs to (bucket, part size, concurrency, checksums, resume window).
    pub(super) store: S3Storage,
    pub(super) key: Arc<str>,
    /// `x-amz-meta-*` for the object (uploader, client address).
    pub(super) metadata: HashMap<String, String>,
    /// The part being filled; it is sent when full (or at commit) and replaced.
    pub(super) buf: BytesMut,
    /// Part buffers given back by finished part uploads, reused for the next parts: an upload
    /// allocates at most `concurrency + 1` buffers however large the file, so the allocator
    /// never sees a stream of freed part-sized blocks (glibc keeps those in per-thread arenas,
    /// which more than doubled the peak RSS of one large STOR).
    pub(super) spare: Vec<BytesMut>,
    /// Bytes read from the bodies so far.
    pub(super) received: u64,
    /// Bytes of the object before the received ones: a kept upload's parts, an appended
    /// object's copied parts, or its bytes prefilled into `buf`.
    pub(super) prefix: u64,
    /// Digests of the content so far; `None` when part of it never passed through this upload
    /// (resumed, or appended by copy).
    pub(super) digests: Option<ContentDigests>,
    /// CRC32 of the bytes in `buf`, computed as they arrive (with the SHA-256, on cache-hot
    /// data) and sent as the part's checksum, so the SDK does not read the part again for it.
    pub(super) part_crc: crc32fast::Hasher,
    /// Set from the first full part until the upload is completed, aborted or suspended: while
    /// it is set, something must still end the multipart upload (`commit`, `abort`, `suspend`,
    /// or `Drop`).
    pub(super) multipart: Option<MultipartUpload>,
    /// `CreateMultipartUpload` in flight, in a task of its own: the caller may be cancelled
    /// meanwhile (ABOR drops `copy_from`), and S3 creates the upload all the same. Whoever ends
    /// the upload (`fail`, `suspend`, `Drop`) first waits for it, so that an upload S3 created
    /// is never left without anyone to abort it.
    pub(super) creating: Option<JoinHandle<Result<MultipartUpload, StorageError>>>,
    pub(super) next_part: i32,
    /// Parts being uploaded, at most `concurrency`.
    pub(super) in_flight: JoinSet<Result<SentPart, StorageError>>,
    /// The server-side copy of an appended object's bytes (one task for all its parts).
    pub(super) copies: JoinSet<Result<Vec<DonePart>, StorageError>>,
    /// Parts stored.
    pub(super) done: Vec<DonePart>,
    /// A copy failed (body or store): the upload can only be suspended, aborted or dropped.
    pub(super) failed: bool,
    /// A fresh upload (STOR from byte 0) started at this time: once it completes, the kept
    /// uploads of its key that started no later are aborted (`resume::abort_replaced_uploads`).
    pub(super) replaces_kept: Option<std::time::SystemTime>,
    /// The buffers (`buf`, `spare`, parts in flight) reserved from the global budget.
    pub(super) memory: Reservation,
}

impl S3Upload {
    /// Sends the full buffer as the next part, first waiting for a free slot if `concurrency`
    /// parts are in flight (this is the backpressure: no more body is read meanwhile).
    /// `crc32`: the part's CRC32 when known (else the SDK computes it).
    pub(super) async fn send_part(
        &mut self,
        data: Bytes,
        crc32: Option<u32>,
    ) -> Result<(), StorageError> {
        let target = self.multipart_target().await?;
        if self.next_part > MAX_PARTS {
            return Err(backend_error(
                "UploadPart",
                &self.key,
                BackendCode::TooManyParts,
                format_args!(
                    "the file needs more than {MAX_PARTS} parts of {} bytes; raise s3.part_size_mib",
                    self.store.part_size
                ),
            ));
        }
        while let Some(joined) = self.copies.try_join_next() {
            self.copies_done(joined)?;
        }
        while let Some(joined) = self.in_flight.try_join_next() {
            self.part_done(joined)?;
        }
        while self.in_flight.len() >= self.store.upload_concurrency {
            match self.in_flight.join_next().await {
                Some(joined) => self.part_done(joined)?,
                None => break,
            }
        }
        let part_number = self.next_part;
        self.next_part += 1;
        let size = data.len() as u64;
        let body = ByteStream::from(data.clone());
        let mut request = target.upload_part().part_number(part_number).body(body);
        if self.store.part_checksums {
            request = request
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .set_checksum_crc32(crc32.map(crc32_header));
        }
        let key = self.key.clone();
        let unsigned = self.store.unsigned_payload;
        self.in_flight.spawn(
            async move {
                let sent = match unsigned {
                    true => request.customize().disable_payload_signing().send().await,
                    false => request.send().await,
                };
                let out = sent.map_err(|e| s3_error("UploadPart", &key, e))?;
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

    /// Where the parts go: the open multipart upload, created first if there is none. Cancel
    /// safe: a creation already under way is awaited again, not started twice, and never lost
    /// (see [`creating`](Self::creating)).
    pub(super) async fn multipart_target(&mut self) -> Result<PartTarget, StorageError> {
        if let Some(multipart) = &self.multipart {
            return Ok(multipart.parts());
        }
        let creating = match &mut self.creating {
            Some(task) => task,
            None => {
                let create = self.create_multipart();
                self.creating.insert(tokio::spawn(create.in_current_span()))
            }
        };
        let joined = creating.await;
        self.creating = None;
        let multipart = joined.map_err(|e| {
            backend_error(
                "CreateMultipartUpload",
                &self.key,
                BackendCode::TaskFailed,
                e,
            )
        })??;
        let target = multipart.parts();
        self.multipart = Some(multipart);
        Ok(target)
    }

    /// Waits for a `CreateMultipartUpload` still in flight, so that the upload it created (if
    /// any) is ended with the others.
    async fn settle_creation(&mut self) {
        let Some(task) = self.creating.take() else {
            return;
        };
        if let Ok(Ok(multipart)) = task.await {
            self.multipart = Some(multipart);
        }
    }

    pub(super) fn part_done(
        &mut self,
        joined: Result<Result<SentPart, StorageError>, JoinError>,
    ) -> Result<(), StorageError> {
        match joined {
            Ok(Ok(SentPart { done, buffer })) => {
                self.done.push(done);
                if let Some(mut buffer) = buffer {
                    if self.spare.len() < self.store.upload_concurrency && !self.failed {
                        buffer.clear();
                        self.spare.push(buffer);
                    }
                }
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(backend_error(
                "UploadPart",
                &self.key,
                BackendCode::TaskFailed,
                e,
            )),
        }
    }

    pub(super) fn copies_done(
        &mut self,
        joined: Result<Result<Vec<DonePart>, StorageError>, JoinError>,
    ) -> Result<(), StorageError> {
        match joined {
            Ok(Ok(parts)) => {
                self.done.extend(parts);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(backend_error(
                "UploadPartCopy",
                &self.key,
                BackendCode::TaskFailed,
                e,
            )),
        }
    }

    /// Everything `commit` does; on error the caller aborts.
    pub(super) async fn finish(&mut self) -> Result<u64, StorageError> {
        let last = std::mem::take(&mut self.buf).freeze();
        let last_crc = self.end_part_crc(last.len());
        let digests = self.digests.take().map(ContentDigests::finish);
        if self.multipart.is_none() {
            let mut metadata = self.metadata.clone();
            if let Some((sha256, crc32)) = &digests {
                metadata.insert(META_SHA256.to_string(), sha256.clone());
                metadata.insert(META_CRC32.to_string(), format!("{crc32:08x}"));
            }
            let request = self
                .store
                .bucket
                .put_object()
                .key(&*self.key)
                .set_metadata(Some(metadata))
                .set_checksum_crc32(
                    last_crc
                        .filter(|_| self.store.part_checksums)
                        .map(crc32_header),
                )
                .body(ByteStream::from(last));
            let sent = match self.store.unsigned_payload {
                true => request.customize().disable_payload_signing().send().await,
                false => request.send().await,
            };
            sent.map_err(|e| s3_error("PutObject", &self.key, e))?;
            return Ok(self.received);
        }
        if !last.is_empty() {
            self.send_part(last, last_crc).await?;
        }
        while let Some(joined) = self.copies.join_next().await {
            self.copies_done(joined)?;
        }
        while let Some(joined) = self.in_flight.join_next().await {
            self.part_done(joined)?;
        }
        let parts = std::mem::take(&mut self.done);
        let Some(multipart) = self.multipart.take() else {
            return Ok(self.received);
        };
        let size = self.prefix + self.received;
        // S3 checks the CRC32 it combines from the parts against the one computed here.
        let crc32 = digests
            .as_ref()
            .filter(|_| self.store.part_checksums)
            .map(|(_, crc32)| *crc32);
        // Completed, or aborted by `complete` on failure: nothing is left to end either way.
        let out = multipart.complete(parts, crc32).await?;
        tracing::debug!(key = &*self.key, bytes = size, "multipart upload completed");
        if let Some((sha256, crc32)) = digests {
            self.record_digests(out.e_tag(), out.version_id(), &sha256, crc32)
                .await;
        }
        Ok(self.received)
    }

    /// Hashes the bytes of `buf` from `from` on, which just entered it: the content's SHA-256
    /// and the part's CRC32, in one visit while they are in cache.
    pub(super) fn hash_in(&mut self, from: usize) {
        let new = &self.buf[from..];
        if let Some(d) = self.digests.as_mut() {
            d.update(new);
        }
        self.part_crc.update(new);
    }

    /// The part in `buf` (`len` bytes) is about to be sent: ends its CRC32 (`None` if it does
    /// not cover exactly those bytes, which [`hash_in`](Self::hash_in) prevents; the SDK then
    /// computes it) and continues the object's CRC32 from it.
    pub(super) fn end_part_crc(&mut self, len: usize) -> Option<u32> {
        let part = std::mem::take(&mut self.part_crc);
        if part.total_len() != len as u64 {
            // The object's CRC32 would be wrong too: record no digests rather than wrong ones.
            self.digests = None;
            return None;
        }
        if let Some(d) = self.digests.as_mut() {
            d.crc32.combine(&part);
        }
        Some(part.finalize())
    }

    /// Makes sure the part buffer has free capacity. A fresh buffer starts at
    /// [`FIRST_BUFFER`] and doubles up to the part size, so a small file never holds a whole
    /// part's memory; the copies this costs happen on the first part only, later parts reuse
    /// full-size buffers (`spare`).
    pub(super) fn make_room(&mut self) {
        let len = self.buf.len();
        if self.buf.capacity() > len || len >= self.store.part_size {
            return;
        }
        let target = (len * 2).clamp(FIRST_BUFFER, self.store.part_size);
        self.buf.reserve(target - len);
    }

    /// Stops reading after a failed copy: frees the buffer, lets parts in flight finish (so a
    /// `suspend` can keep them) and leaves the multipart upload for the caller to end.
    pub(super) fn stop(&mut self) {
        self.failed = true;
        self.buf = BytesMut::new();
        self.spare = Vec::new();
        self.digests = None;
        self.part_crc = crc32fast::Hasher::new();
        self.memory.shrink_to(self.in_flight.len());
    }

    /// Before reading more of the body: makes the budget reservation match the buffers this
    /// upload holds (`buf`, allocated or about to be, `spare`, parts in flight), giving spare
    /// buffers back while other uploads wait. If a buffer is missing and the budget is spent,
    /// waits in line for one (the data connection is not read meanwhile: TCP flow control
    /// slows the client), while finishing its own parts, whose buffers serve as well.
    async fn reserve_buffers(&mut self) -> Result<(), UploadError> {
        if self.memory.contended() && self.buf.capacity() > 0 {
            self.spare.clear();
        }
        let needed = self.spare.len() + self.in_flight.len() + 1;
        self.memory.shrink_to(needed);
        if self.memory.parts() >= needed || self.memory.try_grow() {
            return Ok(());
        }
        let wait = self.memory.wait_for_part();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                part = &mut wait => {
                    if let Some(part) = part {
                        self.memory.add_part(part);
                    }
                    return Ok(());
                }
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    if let Err(e) = self.part_done(joined) {
                        self.stop();
                        return Err(e.into());
                    }
                    if let Some(buffer) = self.spare.pop() {
                        // A part came back: its buffer (already reserved) is the next one.
                        self.buf = buffer;
                        self.memory
                            .shrink_to(self.spare.len() + self.in_flight.len() + 1);
                        return Ok(());
                    }
                    // Not reclaimed (freed): its reservation serves for the new buffer.
                    if self.memory.parts() > self.in_flight.len() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Ends the upload after an error or on `abort`: stops the parts in flight, aborts the
    /// multipart upload, frees the buffer. The key keeps what it held before.
    pub(super) async fn fail(&mut self) {
        self.stop();
        self.settle_creation().await;
        self.in_flight.shutdown().await;
        self.copies.shutdown().await;
        if let Some(multipart) = self.multipart.take() {
            multipart.abort().await;
        }
    }

    pub(super) fn ended(&self) -> StorageError {
        backend_error(
            "Upload",
            &self.key,
            BackendCode::UploadFailed,
            "an earlier error ended this upload; nothing was stored",
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
            self.reserve_buffers().await?;
            self.make_room();
            // Read straight into the part buffer, never past the part boundary.
            let room = self.store.part_size - self.buf.len();
            let before = self.buf.len();
            let n = match body.read_buf(&mut (&mut self.buf).limit(room)).await {
                Ok(n) => n,
                Err(e) => {
                    self.stop();
                    return Err(UploadError::Body(e));
                }
            };
            self.hash_in(before);
            self.received += n as u64;
            if self.buf.len() == self.store.part_size {
                let crc = self.end_part_crc(self.buf.len());
                let full = std::mem::replace(&mut self.buf, BytesMut::new()).freeze();
                if let Err(e) = self.send_part(full, crc).await {
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
        } else if let Some(started) = self.replaces_kept {
            abort_replaced_uploads(self.store.bucket.clone(), self.key.clone(), started);
        }
        result
    }

    async fn abort(mut self: Box<Self>) {
        self.fail().await;
    }

    async fn suspend(mut self: Box<Self>) {
        self.settle_creation().await;
        if self.store.resume_window.is_zero() || self.multipart.is_none() {
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
        if let Some(multipart) = self.multipart.take() {
            let upload_id = multipart.keep();
            tracing::info!(
                key = &*self.key,
                upload_id,
                bytes = held,
                resume_window_secs = self.store.resume_window.as_secs(),
                "upload interrupted: its parts are kept for a resume (REST + STOR)"
            );
        }
    }
}

/// A CRC32 as the `x-amz-checksum-crc32` header carries it: base64 of the big-endian bytes.
pub(super) fn crc32_header(crc32: u32) -> String {
    aws_smithy_types::base64::encode(crc32.to_be_bytes())
}

impl Drop for S3Upload {
    /// Dropped with a multipart upload still open (its task was cancelled, or the caller forgot
    /// to end it): abort it in the background, or its parts would be stored (and billed) until a
    /// lifecycle rule removes them.
    fn drop(&mut self) {
        let creating = self.creating.take();
        if self.multipart.is_none() && creating.is_none() {
            return;
        }
        let multipart = self.multipart.take();
        let mut in_flight = std::mem::take(&mut self.in_flight);
        let mut copies = std::mem::take(&mut self.copies);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let abort = async move {
                    in_flight.shutdown().await;
                    copies.shutdown().await;
                    let created = match creating {
                        Some(task) => task.await.ok().and_then(Result::ok),
                        None => None,
                    };
                    for multipart in multipart.into_iter().chain(created) {
                        multipart.abort().await;
                    }
                };
                // Tracked: the server's shutdown waits for it.
                self.store.bucket.background().spawn_on(abort, &runtime);
            }
            Err(_) => tracing::warn!(
                key = &*self.key,
                upload_id = multipart.map(MultipartUpload::keep).unwrap_or_default(),
                "upload dropped outside a runtime: the multipart upload stays open until a \
                 bucket lifecycle rule (AbortIncompleteMultipartUpload) removes it"
            ),
        }
    }
}
