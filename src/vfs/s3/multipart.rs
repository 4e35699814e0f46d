//! Multipart uploads: [`MultipartUpload`], an open upload that owns its id and is ended by
//! exactly one of `complete`, `abort` or `keep`; [`PartTarget`], where the parts of one upload
//! are sent (cloned into part and copy tasks); a stored part ([`DonePart`]) and its record for
//! `CompleteMultipartUpload`.

use std::{collections::HashMap, sync::Arc, time::SystemTime};

use aws_sdk_s3::{
    operation::{
        complete_multipart_upload::CompleteMultipartUploadOutput,
        upload_part::builders::UploadPartFluentBuilder,
        upload_part_copy::builders::UploadPartCopyFluentBuilder,
    },
    types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart},
};

use super::abort::abort_multipart;
use super::bucket::Bucket;
use super::error::{backend_error, s3_error, BackendCode};
use super::upload::{crc32_header, S3Upload};
use crate::vfs::StorageError;

/// A part stored in an upload, with what `CompleteMultipartUpload` and resuming need.
#[derive(Clone, Debug)]
pub(super) struct DonePart {
    pub(super) part: CompletedPart,
    pub(super) size: u64,
    pub(super) modified: Option<SystemTime>,
}

/// Where the parts of one multipart upload go. Cheap to clone into part and copy tasks; it
/// cannot end the upload.
#[derive(Clone)]
pub(super) struct PartTarget {
    bucket: Bucket,
    key: Arc<str>,
    upload_id: Arc<str>,
}

impl PartTarget {
    pub(super) fn key(&self) -> &Arc<str> {
        &self.key
    }

    /// `UploadPart` into this upload (part number and body still to set).
    pub(super) fn upload_part(&self) -> UploadPartFluentBuilder {
        self.bucket
            .upload_part()
            .key(&*self.key)
            .upload_id(&*self.upload_id)
    }

    /// `UploadPartCopy` into this upload (part number and source still to set).
    pub(super) fn upload_part_copy(&self) -> UploadPartCopyFluentBuilder {
        self.bucket
            .upload_part_copy()
            .key(&*self.key)
            .upload_id(&*self.upload_id)
    }
}

/// An open multipart upload. Whoever holds it must end it: [`complete`](Self::complete),
/// [`abort`](Self::abort), or [`keep`](Self::keep) for a later resume; each consumes it, so an
/// upload cannot be completed after an abort or ended twice.
pub(super) struct MultipartUpload {
    target: PartTarget,
}

impl MultipartUpload {
    /// `CreateMultipartUpload` of `key`; with `part_checksums`, parts carry a CRC32 and the
    /// object gets a `FULL_OBJECT` checksum (see the module docs).
    pub(super) async fn create(
        bucket: &Bucket,
        key: Arc<str>,
        metadata: Option<HashMap<String, String>>,
        content_type: Option<String>,
        part_checksums: bool,
    ) -> Result<Self, StorageError> {
        let mut request = bucket
            .create_multipart_upload()
            .key(&*key)
            .set_metadata(metadata)
            .set_content_type(content_type);
        if part_checksums {
            request = request
                .checksum_algorithm(ChecksumAlgorithm::Crc32)
                .checksum_type(ChecksumType::FullObject);
        }
        let out = request
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", &key, e))?;
        let id = out.upload_id().ok_or_else(|| {
            backend_error(
                "CreateMultipartUpload",
                &key,
                BackendCode::NoUploadId,
                "the store returned no upload id",
            )
        })?;
        tracing::debug!(key = &*key, upload_id = id, "multipart upload created");
        Ok(MultipartUpload::existing(
            bucket.clone(),
            key,
            id.to_string(),
        ))
    }

    /// An upload already open in the store (a kept upload found for a resume).
    pub(super) fn existing(bucket: Bucket, key: Arc<str>, upload_id: String) -> Self {
        MultipartUpload {
            target: PartTarget {
                bucket,
                key,
                upload_id: upload_id.into(),
            },
        }
    }

    pub(super) fn parts(&self) -> PartTarget {
        self.target.clone()
    }

    /// `CompleteMultipartUpload` of `parts` (sorted here by part number); `full_object_crc32`,
    /// when given, is checked by S3 against the CRC32 it combines from the parts. A failed
    /// completion aborts the upload.
    pub(super) async fn complete(
        self,
        mut parts: Vec<DonePart>,
        full_object_crc32: Option<u32>,
    ) -> Result<CompleteMultipartUploadOutput, StorageError> {
        parts.sort_by_key(|p| p.part.part_number());
        let PartTarget {
            bucket,
            key,
            upload_id,
        } = &self.target;
        let mut request = bucket
            .complete_multipart_upload()
            .key(&**key)
            .upload_id(&**upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.into_iter().map(|p| p.part).collect()))
                    .build(),
            );
        if let Some(crc32) = full_object_crc32 {
            request = request
                .checksum_type(ChecksumType::FullObject)
                .checksum_crc32(crc32_header(crc32));
        }
        match request.send().await {
            Ok(out) => Ok(out),
            Err(e) => {
                let e = s3_error("CompleteMultipartUpload", key, e);
                self.abort().await;
                Err(e)
            }
        }
    }

    /// `AbortMultipartUpload`, retried in the background if S3 cannot be reached.
    pub(super) async fn abort(self) {
        let PartTarget {
            bucket,
            key,
            upload_id,
        } = &self.target;
        abort_multipart(bucket, key, upload_id).await;
    }

    /// Leaves the upload open in the store (its parts kept for a resume); returns its id.
    pub(super) fn keep(self) -> String {
        self.target.upload_id.to_string()
    }
}

impl S3Upload {
    /// `CreateMultipartUpload` with this upload's metadata, as a future that owns what it needs
    /// (it runs as a task of its own: `S3Upload::multipart_target`).
    pub(super) fn create_multipart(
        &self,
    ) -> impl std::future::Future<Output = Result<MultipartUpload, StorageError>> + Send + 'static
    {
        let (bucket, key) = (self.store.bucket.clone(), self.key.clone());
        let (metadata, part_checksums) = (self.metadata.clone(), self.store.part_checksums);
        async move { MultipartUpload::create(&bucket, key, Some(metadata), None, part_checksums).await }
    }
}

/// A part for CompleteMultipartUpload, from UploadPart's answer or ListParts: its ETag and
/// whichever checksums the store returned, in the order CRC32, CRC32C, CRC64NVME, SHA1, SHA256.
pub(super) fn completed_part(
    number: i32,
    e_tag: Option<&str>,
    sums: [Option<&str>; 5],
) -> CompletedPart {
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
