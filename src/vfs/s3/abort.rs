//! Aborting multipart uploads, retried in the background when S3 cannot be reached.

use std::time::Duration;

use super::bucket::Bucket;
use super::error::{is_store_code, s3_error};
use crate::vfs::StorageError;

/// Waits before each background retry of a failed `AbortMultipartUpload` (about 36 min in
/// all); see [`abort_multipart`].
pub(super) const ABORT_RETRY_DELAYS: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(300),
    Duration::from_secs(600),
    Duration::from_secs(1200),
];

/// Aborts a multipart upload. If S3 cannot be reached (after the SDK's own retries), tries again
/// in the background after each of [`ABORT_RETRY_DELAYS`]: an S3 outage of minutes then leaves no
/// upload open once S3 is back, rather than until the lifecycle rule runs (a day later). When
/// the server stops meanwhile, the retry waiting is made at once (within the server's bounded
/// wait for background work); what still fails is left to that rule.
pub(super) async fn abort_multipart(bucket: &Bucket, key: &str, upload_id: &str) {
    let Err(e) = try_abort(bucket, key, upload_id).await else {
        tracing::debug!(key, upload_id, "multipart upload aborted");
        return;
    };
    tracing::warn!(key, upload_id, error = %e,
        "could not abort a multipart upload; trying again in the background");
    let (bucket, key, upload_id) = (bucket.clone(), key.to_string(), upload_id.to_string());
    let background = bucket.background().clone();
    let stopping = background.stopping().clone();
    background.spawn(async move {
        for delay in ABORT_RETRY_DELAYS {
            let last = tokio::select! {
                _ = tokio::time::sleep(delay) => false,
                _ = stopping.cancelled() => true,
            };
            match try_abort(&bucket, &key, &upload_id).await {
                Ok(()) => {
                    tracing::info!(key, upload_id, "multipart upload aborted on a later try");
                    return;
                }
                // Gone already (completed by nobody, so aborted elsewhere or expired).
                Err(e) if is_store_code(&e, "NoSuchUpload") => return,
                Err(e) => tracing::debug!(key, upload_id, error = %e, "abort failed again"),
            }
            if last {
                break;
            }
        }
        tracing::warn!(
            key,
            upload_id,
            "could not abort a multipart upload; a bucket lifecycle rule \
             (AbortIncompleteMultipartUpload) must remove it"
        );
    });
}

async fn try_abort(bucket: &Bucket, key: &str, upload_id: &str) -> Result<(), StorageError> {
    bucket
        .abort_multipart_upload()
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| s3_error("AbortMultipartUpload", key, e))
}
