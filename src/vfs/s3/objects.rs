//! Requests on single objects that the other parts share: `HeadObject` (file, or the
//! directory test behind a `NotFound`), whether a directory exists, deletes (one, or batched).

use aws_sdk_s3::{
    operation::head_object::HeadObjectOutput,
    types::{ChecksumMode as S3ChecksumMode, Delete, ObjectIdentifier},
};

use super::error::{backend_error, s3_error, BackendCode};
use super::{size_of, S3Storage};
use crate::vfs::{Entry, EntryKind, ObjectKey, StorageError};

/// `DeleteObjects` takes at most 1000 keys per request.
pub(super) const DELETE_BATCH: usize = 1000;

impl S3Storage {
    /// `HeadObject` of `key` (with the full-object checksum when `checksums`), or `NotFound`.
    pub(super) async fn head_object(
        &self,
        key: &str,
        checksums: bool,
    ) -> Result<HeadObjectOutput, StorageError> {
        let mut request = self.bucket.head_object().key(key);
        if checksums {
            request = request.checksum_mode(S3ChecksumMode::Enabled);
        }
        request
            .send()
            .await
            .map_err(|e| s3_error("HeadObject", key, e))
    }

    /// [`S3Storage::head_object`], with `None` for a missing object.
    pub(super) async fn head_if_any(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<HeadObjectOutput>, StorageError> {
        match self.head_object(key.as_str(), false).await {
            Ok(head) => Ok(Some(head)),
            Err(StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `HeadObject`: the file at `key`, or `NotFound`.
    pub(super) async fn head_file(&self, key: &ObjectKey) -> Result<Entry, StorageError> {
        let out = self.head_object(key.as_str(), false).await?;
        Ok(Entry {
            name: key.name().to_string(),
            kind: EntryKind::File,
            size: size_of(out.content_length()),
            modified: super::mtime::modified(out.metadata(), out.last_modified()),
        })
    }

    /// A `NotFound` from looking for file `key`: `IsADirectory` if it is a directory.
    pub(super) async fn not_a_file(&self, key: &ObjectKey, e: StorageError) -> StorageError {
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
    pub(super) async fn dir_exists(&self, key: &ObjectKey) -> Result<bool, StorageError> {
        if key.as_str().is_empty() {
            return Ok(true);
        }
        let out = self
            .bucket
            .list_objects_v2()
            .prefix(key.dir_prefix())
            .max_keys(1)
            .send()
            .await
            .map_err(|e| s3_error("ListObjectsV2", key.as_str(), e))?;
        Ok(!out.contents().is_empty() || !out.common_prefixes().is_empty())
    }

    pub(super) async fn delete_object(&self, key: &str) -> Result<(), StorageError> {
        self.bucket
            .delete_object()
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", key, e))?;
        Ok(())
    }

    /// `DeleteObjects` in batches; the first key the store could not delete is an error.
    pub(super) async fn delete_objects(&self, keys: &[String]) -> Result<(), StorageError> {
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    backend_error("DeleteObjects", &batch[0], BackendCode::Construction, e)
                })?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| {
                    backend_error("DeleteObjects", &batch[0], BackendCode::Construction, e)
                })?;
            let out = self
                .bucket
                .delete_objects()
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_error("DeleteObjects", &batch[0], e))?;
            if let Some(failed) = out.errors().first() {
                return Err(backend_error(
                    "DeleteObjects",
                    failed.key().unwrap_or_default(),
                    BackendCode::Store(failed.code().unwrap_or("Error").to_string()),
                    format_args!(
                        "{} of {} keys not deleted: {}",
                        out.errors().len(),
                        batch.len(),
                        failed.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}
