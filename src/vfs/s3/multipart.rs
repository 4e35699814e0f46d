//! Multipart pieces shared by uploads, resumes, appends and copies: a stored part
//! ([`DonePart`]), `CompleteMultipartUpload`'s part record, and `CreateMultipartUpload`.

use std::time::SystemTime;

use aws_sdk_s3::types::CompletedPart;

use super::upload::S3Upload;
use crate::vfs::StorageError;

/// A part stored in an upload, with what `CompleteMultipartUpload` and resuming need.
#[derive(Clone, Debug)]
pub(super) struct DonePart {
    pub(super) part: CompletedPart,
    pub(super) size: u64,
    pub(super) modified: Option<SystemTime>,
}

impl S3Upload {
    /// `CreateMultipartUpload` with this upload's metadata; returns the upload id.
    pub(super) async fn create_multipart(&self) -> Result<String, StorageError> {
        self.bucket
            .create_multipart(
                &self.key,
                Some(self.metadata.clone()),
                None,
                self.part_checksums,
            )
            .await
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
