//! Modification times a client sets (MFMT): kept in the object's metadata (`x-amz-meta-mtime`,
//! seconds since the epoch with nanoseconds, `1577934245.000000000`: the form rclone's S3
//! backend writes and reads, so the bucket means the same to it), set by copying the object
//! onto itself with the metadata replaced, and read back wherever a time is reported.

use std::{
    collections::HashMap,
    sync::atomic::Ordering,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_sdk_s3::{primitives::DateTime, types::MetadataDirective};

use super::error::s3_error;
use super::{size_of, system_time, S3Storage};
use crate::vfs::{ObjectKey, StorageError};

/// The metadata key (without `x-amz-meta-`).
pub(super) const META_MTIME: &str = "mtime";

/// How many HeadObject requests one listing page has in flight (`s3.listing_times`).
pub(super) const LISTING_HEADS: usize = 16;

/// An object's time: the client's from its metadata if set, else S3's `LastModified`.
pub(super) fn modified(
    metadata: Option<&HashMap<String, String>>,
    last_modified: Option<&DateTime>,
) -> Option<SystemTime> {
    metadata
        .and_then(|m| m.get(META_MTIME))
        .and_then(|v| parse(v))
        .or_else(|| last_modified.and_then(system_time))
}

fn format(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// `secs[.fraction]`, at most nanosecond digits; anything else is ignored (not ours).
fn parse(v: &str) -> Option<SystemTime> {
    let (secs, frac) = v.trim().split_once('.').unwrap_or((v.trim(), ""));
    let secs: u64 = secs.parse().ok()?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

impl S3Storage {
    /// MFMT: copies file `key` onto itself with `mtime` added to its metadata (everything else
    /// kept), `CopyObject` or, above its limit, a multipart copy. The copy is of the version
    /// just looked at (`x-amz-copy-source-if-match`), so a concurrent upload is not undone.
    pub(super) async fn set_mtime(
        &self,
        key: &ObjectKey,
        time: SystemTime,
    ) -> Result<(), StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        let mut head = match self.head_object(key.as_str(), false).await {
            Ok(h) => h,
            Err(e) => return Err(self.not_a_file(key, e).await),
        };
        let mut metadata = head.metadata().cloned().unwrap_or_default();
        metadata.insert(META_MTIME.to_string(), format(time));
        if size_of(head.content_length()) > self.max_copy_object_size {
            // A multipart copy onto itself starts the object without tags (the digests of
            // multipart uploads live there): read them first, put them back after.
            let tags =
                match head.tag_count().unwrap_or(0) > 0 && self.tagging.load(Ordering::Relaxed) {
                    true => Some(self.tags_of(key.as_str()).await?),
                    false => None,
                };
            head.metadata = Some(metadata);
            head.tag_count = Some(0);
            self.copy_multipart(key.as_str(), key.as_str(), &head)
                .await?;
            if let Some(tags) = tags {
                if let Err(e) = self.put_tags(key.as_str(), tags).await {
                    tracing::warn!(key = key.as_str(), error = %e, "set the time but lost the tags");
                }
            }
            return Ok(());
        }
        self.bucket
            .copy_object()
            .key(key.as_str())
            .copy_source(self.bucket.copy_source(key.as_str()))
            .set_copy_source_if_match(head.e_tag().map(str::to_string))
            .metadata_directive(MetadataDirective::Replace)
            .set_metadata(Some(metadata))
            .set_content_type(head.content_type().map(str::to_string))
            .send()
            .await
            .map_err(|e| s3_error("CopyObject", key.as_str(), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_in_rclones_form() {
        let t = UNIX_EPOCH + Duration::new(1_577_934_245, 120_000_000);
        assert_eq!(format(t), "1577934245.120000000");
        assert_eq!(parse("1577934245.120000000"), Some(t));
        assert_eq!(parse("1577934245.12"), Some(t));
        assert_eq!(
            parse("1577934245"),
            Some(UNIX_EPOCH + Duration::from_secs(1_577_934_245))
        );
        for bad in ["", "x", "1.2.3", "1.1234567890", "-1", "1.-2"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
