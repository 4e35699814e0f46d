//! Server-side copies: `CopyObject`, and multipart copies by `UploadPartCopy` (objects above
//! `CopyObject`'s limit, and appends), with metadata and tags.

use std::sync::atomic::Ordering;

use aws_sdk_s3::{
    operation::head_object::HeadObjectOutput,
    types::{Tag, Tagging},
};
use futures::{stream, StreamExt, TryStreamExt};

use super::error::{backend_error, s3_error, BackendCode};
use super::multipart::{completed_part, DonePart, MultipartUpload, PartTarget};
use super::{size_of, S3Storage};
use crate::vfs::StorageError;

impl S3Storage {
    /// Copies `from` (described by `head`) to `to` with `UploadPartCopy`, for objects too large
    /// for `CopyObject`; metadata and tags go along. Aborts its upload on any failure.
    pub(super) async fn copy_multipart(
        &self,
        from: &str,
        to: &str,
        head: &HeadObjectOutput,
    ) -> Result<(), StorageError> {
        let multipart = MultipartUpload::create(
            &self.bucket,
            to.into(),
            head.metadata().cloned(),
            head.content_type().map(str::to_string),
            self.part_checksums,
        )
        .await?;
        let copier = PartCopier {
            target: multipart.parts(),
            source: self.bucket.copy_source(from),
            if_match: head.e_tag().map(str::to_string),
            concurrency: self.upload_concurrency,
        };
        let size = size_of(head.content_length());
        match copier.copy(copy_pieces(size, self.copy_part_size)).await {
            // A failed completion aborts the upload itself.
            Ok(parts) => multipart.complete(parts, None).await.map(drop)?,
            Err(e) => {
                multipart.abort().await;
                return Err(e);
            }
        }
        if head.tag_count().unwrap_or(0) > 0 && self.tagging.load(Ordering::Relaxed) {
            if let Err(e) = self.copy_tags(from, to).await {
                tracing::warn!(key = to, error = %e, "copied object without its tags");
            }
        }
        Ok(())
    }

    pub(super) async fn copy_tags(&self, from: &str, to: &str) -> Result<(), StorageError> {
        let tags = self.tags_of(from).await?;
        self.put_tags(to, tags).await
    }

    /// The tag set of `key` (the digests of a multipart upload live there).
    pub(super) async fn tags_of(&self, key: &str) -> Result<Vec<Tag>, StorageError> {
        let out = self
            .bucket
            .get_object_tagging()
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("GetObjectTagging", key, e))?;
        Ok(out.tag_set().to_vec())
    }

    /// Replaces the tag set of `key` with `tags`.
    pub(super) async fn put_tags(&self, key: &str, tags: Vec<Tag>) -> Result<(), StorageError> {
        let tagging = Tagging::builder()
            .set_tag_set(Some(tags))
            .build()
            .map_err(|e| backend_error("PutObjectTagging", key, BackendCode::Construction, e))?;
        self.bucket
            .put_object_tagging()
            .key(key)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| s3_error("PutObjectTagging", key, e))?;
        Ok(())
    }

    /// Copies one object (rename): `CopyObject`, or a multipart copy above its limit. A
    /// directory marker is written anew: it has no content, and some stores (SeaweedFS, which
    /// keeps `dir/` as a real directory) cannot copy it.
    pub(super) async fn copy_object(
        &self,
        from: &str,
        to: &str,
        size: u64,
    ) -> Result<(), StorageError> {
        if from.ends_with('/') && size == 0 {
            return self.bucket.put_empty(to).await;
        }
        if size > self.max_copy_object_size {
            let head = self.head_object(from, false).await?;
            return self.copy_multipart(from, to, &head).await;
        }
        self.bucket
            .copy_object()
            .key(to)
            .copy_source(self.bucket.copy_source(from))
            .send()
            .await
            .map_err(|e| s3_error("CopyObject", from, e))?;
        Ok(())
    }
}

/// `(part number, first byte, last byte)` of `size` bytes split into equal pieces of at most
/// `max_piece` bytes (each at least [`MIN_PART_SIZE`](super::MIN_PART_SIZE) when
/// `max_piece ≥ MIN_COPY_PART_SIZE`).
pub(super) fn copy_pieces(size: u64, max_piece: u64) -> Vec<(i32, u64, u64)> {
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
pub(super) struct PartCopier {
    pub(super) target: PartTarget,
    /// `x-amz-copy-source`.
    pub(super) source: String,
    /// The source's ETag when the copy was planned: a source replaced meanwhile fails the copy
    /// (`PreconditionFailed`) rather than mixing two versions.
    pub(super) if_match: Option<String>,
    pub(super) concurrency: usize,
}

impl PartCopier {
    pub(super) async fn copy(
        self,
        pieces: Vec<(i32, u64, u64)>,
    ) -> Result<Vec<DonePart>, StorageError> {
        let this = &self;
        stream::iter(pieces)
            .map(|(number, first, last)| async move {
                let out = this
                    .target
                    .upload_part_copy()
                    .part_number(number)
                    .copy_source(&this.source)
                    .copy_source_range(format!("bytes={first}-{last}"))
                    .set_copy_source_if_match(this.if_match.clone())
                    .send()
                    .await
                    .map_err(|e| s3_error("UploadPartCopy", this.target.key(), e))?;
                let result = out.copy_part_result();
                Ok(DonePart {
                    part: completed_part(
                        number,
                        result.and_then(|r| r.e_tag()),
                        [
                            result.and_then(|r| r.checksum_crc32()),
                            result.and_then(|r| r.checksum_crc32_c()),
                            result.and_then(|r| r.checksum_crc64_nvme()),
                            result.and_then(|r| r.checksum_sha1()),
                            result.and_then(|r| r.checksum_sha256()),
                        ],
                    ),
                    size: last - first + 1,
                    modified: None,
                })
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::s3::bucket::COPY_SOURCE;
    use crate::vfs::s3::{MAX_COPY_SIZE, MAX_PARTS, MIB, MIN_COPY_PART_SIZE, MIN_PART_SIZE};
    use percent_encoding::utf8_percent_encode;

    #[test]
    fn copy_source_encodes_all_but_unreserved_and_slash() {
        let encoded = utf8_percent_encode("dir/a b+c%d~e_f-g.h/é", COPY_SOURCE).to_string();
        assert_eq!(encoded, "dir/a%20b%2Bc%25d~e_f-g.h/%C3%A9");
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
}
