//! [`Bucket`]: the SDK client bound to one bucket, shared (cheaply cloned) by the storage, its
//! uploads, listings and copies. Every request starts here already naming the bucket, and the
//! multipart requests more than one part of the backend sends are built here once.

use std::{collections::HashMap, sync::Arc};

use aws_sdk_s3::{
    operation::complete_multipart_upload::builders::CompleteMultipartUploadFluentBuilder,
    primitives::ByteStream,
    types::{ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload},
    Client,
};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::{backend_error, s3_error, BackendCode};
use super::multipart::DonePart;
use crate::vfs::StorageError;

/// `x-amz-copy-source` is `bucket/key`, URL-encoded: everything but RFC 3986 unreserved
/// characters and the `/` separators. An unencoded `+` would be read as a space, `%` as an escape.
pub(super) const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// An S3 client and the bucket it works on. Cheap to clone (the client is shared).
#[derive(Clone)]
pub(super) struct Bucket {
    client: Client,
    name: Arc<str>,
}

/// Request builders with the bucket already set, one per S3 operation the backend uses.
macro_rules! bound_requests {
    ($($op:ident: $builder:ident in $module:ident),* $(,)?) => {
        impl Bucket {
            $(
                pub(super) fn $op(&self) -> aws_sdk_s3::operation::$module::builders::$builder {
                    self.client.$op().bucket(&*self.name)
                }
            )*
        }
    };
}

bound_requests! {
    head_object: HeadObjectFluentBuilder in head_object,
    get_object: GetObjectFluentBuilder in get_object,
    put_object: PutObjectFluentBuilder in put_object,
    copy_object: CopyObjectFluentBuilder in copy_object,
    delete_object: DeleteObjectFluentBuilder in delete_object,
    delete_objects: DeleteObjectsFluentBuilder in delete_objects,
    list_objects_v2: ListObjectsV2FluentBuilder in list_objects_v2,
    get_object_tagging: GetObjectTaggingFluentBuilder in get_object_tagging,
    put_object_tagging: PutObjectTaggingFluentBuilder in put_object_tagging,
    delete_object_tagging: DeleteObjectTaggingFluentBuilder in delete_object_tagging,
    upload_part: UploadPartFluentBuilder in upload_part,
    upload_part_copy: UploadPartCopyFluentBuilder in upload_part_copy,
    list_parts: ListPartsFluentBuilder in list_parts,
    list_multipart_uploads: ListMultipartUploadsFluentBuilder in list_multipart_uploads,
    abort_multipart_upload: AbortMultipartUploadFluentBuilder in abort_multipart_upload,
}

impl Bucket {
    pub(super) fn new(client: Client, name: String) -> Self {
        Bucket {
            client,
            name: name.into(),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// `bucket/key`, encoded for `x-amz-copy-source`.
    pub(super) fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.name, utf8_percent_encode(key, COPY_SOURCE))
    }

    /// A zero-byte object (a directory marker).
    pub(super) async fn put_empty(&self, key: &str) -> Result<(), StorageError> {
        self.put_object()
            .key(key)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", key, e))?;
        Ok(())
    }

    /// `CreateMultipartUpload` of `key`; with `part_checksums`, parts carry a CRC32 and the
    /// object gets a `FULL_OBJECT` checksum (see the module docs). Returns the upload id.
    pub(super) async fn create_multipart(
        &self,
        key: &str,
        metadata: Option<HashMap<String, String>>,
        content_type: Option<String>,
        part_checksums: bool,
    ) -> Result<String, StorageError> {
        let mut request = self
            .client
            .create_multipart_upload()
            .bucket(&*self.name)
            .key(key)
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
            .map_err(|e| s3_error("CreateMultipartUpload", key, e))?;
        let id = out.upload_id().ok_or_else(|| {
            backend_error(
                "CreateMultipartUpload",
                key,
                BackendCode::NoUploadId,
                "the store returned no upload id",
            )
        })?;
        tracing::debug!(key, upload_id = id, "multipart upload created");
        Ok(id.to_string())
    }

    /// `CompleteMultipartUpload` of `parts` (sorted here by part number), ready to send.
    pub(super) fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        mut parts: Vec<DonePart>,
    ) -> CompleteMultipartUploadFluentBuilder {
        parts.sort_by_key(|p| p.part.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&*self.name)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts.into_iter().map(|p| p.part).collect()))
                    .build(),
            )
    }
}
