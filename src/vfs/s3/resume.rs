//! Resuming (REST + STOR) and continuing a key (APPE): finding a kept multipart upload with
//! `ListMultipartUploads`/`ListParts`, the run of parts it can continue from, expiry.

use std::{sync::Arc, time::SystemTime};

use aws_sdk_s3::operation::head_object::HeadObjectOutput;

use super::abort::abort_multipart;
use super::bucket::Bucket;
use super::error::{is_store_code, s3_error};
use super::multipart::MultipartUpload;
use super::multipart::{completed_part, DonePart};
use super::upload::S3Upload;
use super::{size_of, system_time, unix_secs, S3Storage, MIN_PART_SIZE};
use crate::vfs::{ObjectKey, StorageError, UploadSpec};

/// The most uploads of one key examined when looking for a kept upload.
pub(super) const MAX_KEPT_CANDIDATES: usize = 16;

impl S3Storage {
    /// APPE (`expected` = `None`) and REST `n` + STOR (`expected` = `Some(n)`): continue what
    /// the key holds, which is a kept upload that supersedes the object (the file as it would
    /// be on a disk, and what SIZE reports), else the object, else nothing. A resume must name
    /// exactly that size.
    pub(super) async fn continue_key(
        &self,
        key: &ObjectKey,
        spec: &UploadSpec,
        expected: Option<u64>,
    ) -> Result<S3Upload, StorageError> {
        let (head, kept) = tokio::join!(self.head_if_any(key), self.kept_upload(key));
        let head = head?;
        let kept = kept?.filter(|k| k.supersedes(head.as_ref()));
        let held = match (&kept, &head) {
            (Some(kept), _) => kept.held,
            (None, Some(head)) => size_of(head.content_length()),
            (None, None) => 0,
        };
        if let Some(requested) = expected.filter(|&n| n != held) {
            return Err(StorageError::ResumeMismatch {
                key: key.to_string(),
                held,
                requested,
            });
        }
        match (kept, head) {
            (Some(kept), _) => {
                let mut upload = self.new_upload(key, spec);
                upload.next_part = kept.parts.len() as i32 + 1;
                upload.multipart = Some(MultipartUpload::existing(
                    self.bucket.clone(),
                    upload.key.clone(),
                    kept.upload_id.clone(),
                ));
                upload.done = kept.parts;
                upload.prefix = kept.held;
                upload.digests = None;
                tracing::info!(
                    key = %key,
                    upload_id = kept.upload_id,
                    bytes = kept.held,
                    "continuing a kept upload"
                );
                Ok(upload)
            }
            (None, Some(head)) => self.append_to(key, spec, head).await,
            (None, None) => Ok(self.new_upload(key, spec)),
        }
    }

    /// The newest kept upload of exactly `key` that holds parts and is within the resume
    /// window (whatever the object at `key`); aborts the expired ones it sees.
    pub(super) async fn kept_upload(
        &self,
        key: &ObjectKey,
    ) -> Result<Option<KeptUpload>, StorageError> {
        if self.resume_window.is_zero() || key.as_str().is_empty() {
            return Ok(None);
        }
        let mut uploads = self.uploads_of(key).await?;
        uploads.sort_by_key(|(_, initiated)| std::cmp::Reverse(*initiated));
        let now = SystemTime::now();
        let mut chosen = None;
        for (upload_id, initiated) in uploads.into_iter().take(MAX_KEPT_CANDIDATES) {
            let parts = match self.parts_of(key, &upload_id).await {
                Ok(parts) => parts,
                // Completed or aborted since it was listed.
                Err(StorageError::NotFound(_)) => continue,
                Err(e) if is_store_code(&e, "NoSuchUpload") => continue,
                Err(e) => return Err(e),
            };
            let last_activity = parts
                .iter()
                .filter_map(|p| p.modified)
                .chain([initiated])
                .max()
                .unwrap_or(initiated);
            let idle = now.duration_since(last_activity).unwrap_or_default();
            if idle > self.resume_window {
                tracing::info!(
                    key = %key,
                    upload_id,
                    idle_secs = idle.as_secs(),
                    "aborting a kept upload older than s3.resume_window_secs"
                );
                let (bucket, key) = (self.bucket.clone(), key.clone());
                self.bucket.background().spawn(async move {
                    abort_multipart(&bucket, key.as_str(), &upload_id).await;
                });
                continue;
            }
            if chosen.is_none() {
                let run = resumable_run(&parts);
                if !run.is_empty() {
                    chosen = Some(KeptUpload {
                        upload_id,
                        initiated,
                        held: run.iter().map(|p| p.size).sum(),
                        parts: run,
                    });
                }
            }
        }
        Ok(chosen)
    }

    /// Multipart uploads in progress for exactly `key`: id and start time.
    pub(super) async fn uploads_of(
        &self,
        key: &ObjectKey,
    ) -> Result<Vec<(String, SystemTime)>, StorageError> {
        uploads_of(&self.bucket, key.as_str()).await
    }

    /// Every completed part of an upload, by part number.
    pub(super) async fn parts_of(
        &self,
        key: &ObjectKey,
        upload_id: &str,
    ) -> Result<Vec<DonePart>, StorageError> {
        let mut parts = Vec::new();
        let mut marker = None::<String>;
        loop {
            let out = self
                .bucket
                .list_parts()
                .key(key.as_str())
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(|e| s3_error("ListParts", key.as_str(), e))?;
            for p in out.parts() {
                let Some(number) = p.part_number() else {
                    continue;
                };
                parts.push(DonePart {
                    part: completed_part(
                        number,
                        p.e_tag(),
                        [
                            p.checksum_crc32(),
                            p.checksum_crc32_c(),
                            p.checksum_crc64_nvme(),
                            p.checksum_sha1(),
                            p.checksum_sha256(),
                        ],
                    ),
                    size: size_of(p.size()),
                    modified: p.last_modified().and_then(system_time),
                });
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            marker = out.next_part_number_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        parts.sort_by_key(|p| p.part.part_number());
        Ok(parts)
    }
}

/// A kept multipart upload of a key, and what it holds.
pub(super) struct KeptUpload {
    pub(super) upload_id: String,
    pub(super) initiated: SystemTime,
    /// Parts 1..n, each at least [`MIN_PART_SIZE`].
    pub(super) parts: Vec<DonePart>,
    pub(super) held: u64,
}

impl KeptUpload {
    /// Whether this upload was started after the object at its key (if any) was last written,
    /// so that a resume continues it rather than the object. Timestamps compared in whole
    /// seconds (HTTP dates have no more); a tie goes to the upload.
    pub(super) fn supersedes(&self, object: Option<&HeadObjectOutput>) -> bool {
        let Some(modified) = object.and_then(|h| h.last_modified()).and_then(system_time) else {
            return true;
        };
        unix_secs(self.initiated) >= unix_secs(modified)
    }
}

/// The parts a resume can continue from: 1, 2, … without a gap, each at least [`MIN_PART_SIZE`]
/// (a part after which S3 accepts more parts).
pub(super) fn resumable_run(parts: &[DonePart]) -> Vec<DonePart> {
    let mut sorted: Vec<&DonePart> = parts.iter().collect();
    sorted.sort_by_key(|p| p.part.part_number());
    sorted
        .into_iter()
        .zip(1..)
        .take_while(|(p, n)| p.part.part_number() == Some(*n) && p.size >= MIN_PART_SIZE)
        .map(|(p, _)| p.clone())
        .collect()
}

/// Multipart uploads in progress for exactly `key` in `bucket`: id and start time.
pub(super) async fn uploads_of(
    bucket: &Bucket,
    key: &str,
) -> Result<Vec<(String, SystemTime)>, StorageError> {
    let mut found = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    loop {
        let out = bucket
            .list_multipart_uploads()
            .prefix(key)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await
            .map_err(|e| s3_error("ListMultipartUploads", key, e))?;
        let mut past_key = false;
        for u in out.uploads() {
            match u.key() {
                Some(k) if k == key => {}
                // Listed by key: `key` comes before every longer key with its prefix.
                Some(k) if k > key => past_key = true,
                _ => continue,
            }
            if let (Some(id), Some(initiated)) =
                (u.upload_id(), u.initiated().and_then(system_time))
            {
                if !past_key {
                    found.push((id.to_string(), initiated));
                }
            }
        }
        if past_key || out.is_truncated() != Some(true) {
            return Ok(found);
        }
        key_marker = out.next_key_marker().map(str::to_string);
        id_marker = out.next_upload_id_marker().map(str::to_string);
        if key_marker.is_none() {
            return Ok(found);
        }
    }
}

/// A fresh upload (STOR from byte 0) of `key` has completed: the uploads of `key` kept for a
/// resume that started before it (`started`, in an earlier second) can no longer be resumed into anything
/// newer than the file, so they are aborted now rather than left open for the resume window.
/// An upload of the same key started later (another client's) is left alone. In the
/// background: the `226` does not wait for it.
pub(super) fn abort_replaced_uploads(bucket: Bucket, key: Arc<str>, started: SystemTime) {
    bucket.background().clone().spawn(async move {
        let uploads = match uploads_of(&bucket, &key).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(key = &*key, error = %e, "could not list the uploads a new file replaced");
                return;
            }
        };
        for (upload_id, initiated) in uploads {
            // Whole seconds (S3's timestamps have no more): only uploads started in an earlier
            // second than this one. One started in the same second may be another client's,
            // or a cut upload newer than this file: it is left for the resume window.
            if unix_secs(initiated) < unix_secs(started) {
                tracing::info!(
                    key = &*key,
                    upload_id,
                    "aborting a kept upload: a STOR from byte 0 replaced the file"
                );
                abort_multipart(&bucket, &key, &upload_id).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::{primitives::DateTime, types::CompletedPart};
    use std::time::Duration;

    fn part(number: i32, size: u64) -> DonePart {
        DonePart {
            part: CompletedPart::builder().part_number(number).build(),
            size,
            modified: None,
        }
    }

    #[test]
    fn a_resume_continues_the_parts_from_1_without_gap_or_short_part() {
        let numbers = |parts: Vec<DonePart>| -> Vec<i32> {
            resumable_run(&parts)
                .iter()
                .filter_map(|p| p.part.part_number())
                .collect()
        };
        let full = MIN_PART_SIZE;
        assert_eq!(numbers(vec![part(2, full), part(1, full)]), vec![1, 2]);
        assert_eq!(
            numbers(vec![part(1, full), part(3, full)]),
            vec![1],
            "a gap"
        );
        assert_eq!(
            numbers(vec![part(1, full), part(2, 10), part(3, full)]),
            vec![1],
            "a short part"
        );
        assert_eq!(numbers(vec![part(2, full)]), Vec::<i32>::new());
    }

    #[test]
    fn a_kept_upload_supersedes_only_older_objects() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let kept = KeptUpload {
            upload_id: "u".to_string(),
            initiated: at(1000) + Duration::from_millis(300),
            parts: Vec::new(),
            held: 0,
        };
        let object = |secs: i64| {
            HeadObjectOutput::builder()
                .last_modified(DateTime::from_secs(secs))
                .build()
        };
        assert!(kept.supersedes(None));
        assert!(kept.supersedes(Some(&object(999))));
        assert!(
            kept.supersedes(Some(&object(1000))),
            "a tie goes to the upload"
        );
        assert!(!kept.supersedes(Some(&object(1001))));
    }
}
