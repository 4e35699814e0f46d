//! [`Bucket`]: the SDK client bound to one bucket, shared (cheaply cloned) by the storage, its
//! uploads, listings and copies. Every request starts here already naming the bucket.

use std::sync::Arc;

use aws_sdk_s3::{primitives::ByteStream, Client};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::error::s3_error;
use crate::background::Background;
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
    /// Where work that outlives a request runs (aborts, retries, listing prefetch), so the
    /// server's shutdown waits for it.
    background: Background,
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
    create_multipart_upload: CreateMultipartUploadFluentBuilder in create_multipart_upload,
    complete_multipart_upload: CompleteMultipartUploadFluentBuilder in complete_multipart_upload,
}

impl Bucket {
    pub(super) fn new(client: Client, name: String, background: Background) -> Self {
        Bucket {
            client,
            name: name.into(),
            background,
        }
    }

    pub(super) fn background(&self) -> &Background {
        &self.background
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
}
