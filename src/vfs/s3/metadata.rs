//! Metadata and digests: `x-amz-meta-*` names, the SHA-256/CRC32 computed while streaming,
//! tagging a completed multipart object with them, and reading them back for HASH.

use std::sync::atomic::Ordering;

use aws_sdk_s3::{
    operation::head_object::HeadObjectOutput,
    types::{ChecksumType, Tag, Tagging},
};
use percent_encoding::{AsciiSet, CONTROLS};
use sha2::{Digest, Sha256};

use super::error::{is_store_code, s3_error};
use super::upload::S3Upload;
use super::{unquote, S3Storage};
use crate::vfs::{ObjectKey, RecordedDigests, StorageError};

/// Metadata (`x-amz-meta-…`) and tag names.
pub(super) const META_UPLOADER: &str = "uploader";
pub(super) const META_CLIENT_ADDR: &str = "client-addr";
pub(super) const META_SHA256: &str = "sha256";
pub(super) const META_CRC32: &str = "crc32";

/// Metadata values travel as HTTP headers: control characters and `%` are percent-encoded, as is
/// everything outside ASCII (by `utf8_percent_encode`).
pub(super) const METADATA_VALUE: &AsciiSet = &CONTROLS.add(b'%');

/// The digests of everything written to an upload so far, when every byte went through it.
/// The CRC32 is of the parts already ended (`S3Upload::end_part_crc`): each byte is
/// CRC'd once, for its part's checksum, and the object's CRC32 is combined from the parts'.
#[derive(Default)]
pub(super) struct ContentDigests {
    pub(super) sha256: Sha256,
    pub(super) crc32: crc32fast::Hasher,
}

impl ContentDigests {
    pub(super) fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
    }

    pub(super) fn finish(self) -> (String, u32) {
        (hex(self.sha256.finalize()), self.crc32.finalize())
    }

    /// The SHA-256 so far, without ending the digest.
    pub(super) fn sha256_so_far(&self) -> String {
        hex(self.sha256.clone().finalize())
    }
}

pub(super) fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl S3Upload {
    /// Tags a completed multipart object with its digests (see the module docs). Never fails
    /// the upload: the object is stored; without the tags HASH has to read it.
    pub(super) async fn record_digests(
        &self,
        etag: Option<&str>,
        version_id: Option<&str>,
        sha256: &str,
        crc32: u32,
    ) {
        if !self.store.tagging.load(Ordering::Relaxed) {
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
            .store
            .bucket
            .put_object_tagging()
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .tagging(tagging)
            .send()
            .await;
        if let Err(e) = put {
            let e = s3_error("PutObjectTagging", key, e);
            if is_store_code(&e, "NotImplemented") {
                self.store.tagging.store(false, Ordering::Relaxed);
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
        let now = self.store.bucket.head_object().key(key).send().await;
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
                .store
                .bucket
                .delete_object_tagging()
                .key(key)
                .send()
                .await
            {
                tracing::warn!(key, error = %s3_error("DeleteObjectTagging", key, e),
                    "could not remove digest tags that may describe another upload");
            }
        }
    }
}

impl S3Storage {
    pub(super) async fn digests_of(
        &self,
        key: &ObjectKey,
    ) -> Result<RecordedDigests, StorageError> {
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
                .bucket
                .get_object_tagging()
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
}

/// S3's CRC32 of the whole object, if it has one: a `FULL_OBJECT` checksum (or one given with a
/// single `PutObject`), not a `COMPOSITE` checksum of part checksums (`…-N`).
pub(super) fn full_object_crc32(head: &HeadObjectOutput) -> Option<u32> {
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
pub(super) fn parse_sha256(value: &str) -> Option<String> {
    (value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| value.to_ascii_lowercase())
}

/// A recorded CRC32: 8 hex digits.
pub(super) fn parse_crc32(value: &str) -> Option<u32> {
    (value.len() == 8 && value.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(value, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
