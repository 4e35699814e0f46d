//! APPE onto an existing object: a small one prefills the first part, a large one becomes the
//! first parts by `UploadPartCopy`.

use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use bytes::BufMut;

use super::copy::{copy_pieces, PartCopier};
use super::error::{backend_error, s3_error, BackendCode};
use super::upload::S3Upload;
use super::{size_of, S3Storage, MIN_PART_SIZE};
use crate::vfs::{ObjectKey, StorageError, UploadSpec};

impl S3Storage {
    /// An upload that appends to the object described by `head` (APPE, or a resume at the
    /// object's size). See the module docs.
    pub(super) async fn append_to(
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
            let mut request = self.bucket.get_object().key(key.as_str());
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
                .map_err(|e| backend_error("GetObject", key.as_str(), BackendCode::ReadError, e))?
                .into_bytes();
            if old.len() as u64 != size || old.len() > upload.store.part_size {
                return Err(backend_error(
                    "GetObject",
                    key.as_str(),
                    BackendCode::SizeChanged,
                    format_args!("expected {size} bytes, read {}", old.len()),
                ));
            }
            upload.buf.put_slice(&old);
            upload.hash_in(0);
            upload.prefix = size;
            return Ok(upload);
        }
        // Large: its bytes become the first parts by server-side copy, in the background; any
        // failure surfaces at the next part or at commit.
        let target = upload.multipart_target().await?;
        let pieces = copy_pieces(size, self.copy_part_size);
        upload.next_part = pieces.len() as i32 + 1;
        upload.prefix = size;
        upload.digests = None;
        let copier = PartCopier {
            target,
            source: self.bucket.copy_source(key.as_str()),
            if_match: head.e_tag().map(str::to_string),
            concurrency: self.upload_concurrency,
        };
        upload
            .copies
            .spawn(async move { copier.copy(pieces).await });
        tracing::debug!(key = %key, bytes = size, "appending: existing object copied as parts");
        Ok(upload)
    }
}
