//! Reads: ranged `GetObject`, with `InvalidRange` at the end of an object settled by a
//! `HeadObject` and a `Range` the store ignored refused.

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{ProvideErrorMetadata, SdkError},
};

use super::error::{backend_error, s3_error, BackendCode};
use super::S3Storage;
use crate::vfs::{ObjectKey, ReadStream, StorageError};

impl S3Storage {
    pub(super) async fn read_object(
        &self,
        key: &ObjectKey,
        offset: u64,
    ) -> Result<ReadStream, StorageError> {
        if key.as_str().is_empty() {
            return Err(StorageError::IsADirectory(String::new()));
        }
        let mut request = self.bucket.get_object().key(key.as_str());
        if offset > 0 {
            request = request.range(format!("bytes={offset}-"));
        }
        match request.send().await {
            Ok(out) => {
                // RFC 9110 lets a server ignore `Range`; sending the object from byte 0 to a
                // client that asked to resume at `offset` would corrupt its file.
                if offset > 0 && !range_starts_at(out.content_range(), offset) {
                    return Err(backend_error(
                        "GetObject",
                        key.as_str(),
                        BackendCode::RangeIgnored,
                        format_args!(
                            "asked for bytes={offset}-, got Content-Range {:?}",
                            out.content_range()
                        ),
                    ));
                }
                Ok(Box::new(out.body.into_async_read()))
            }
            Err(e) if is_invalid_range(&e) => self.read_at_end(key, offset).await,
            Err(e) => Err(self
                .not_a_file(key, s3_error("GetObject", key.as_str(), e))
                .await),
        }
    }

    /// `GetObject` gave `InvalidRange`: an offset equal to the size is a valid, empty read.
    pub(super) async fn read_at_end(
        &self,
        key: &ObjectKey,
        offset: u64,
    ) -> Result<ReadStream, StorageError> {
        let file = self.head_file(key).await?;
        if offset == file.size {
            Ok(Box::new(tokio::io::empty()))
        } else {
            Err(StorageError::InvalidRange(key.to_string()))
        }
    }
}

/// S3 says `InvalidRange` (HTTP 416) when a range starts at or past the end of the object.
pub(super) fn is_invalid_range<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> bool {
    err.code() == Some("InvalidRange")
        || err.raw_response().map(|r| r.status().as_u16()) == Some(416)
}

/// Whether a `Content-Range: bytes first-last/size` starts at `offset`.
pub(super) fn range_starts_at(content_range: Option<&str>, offset: u64) -> bool {
    content_range
        .and_then(|r| r.trim().strip_prefix("bytes "))
        .and_then(|r| r.split_once('-'))
        .and_then(|(first, _)| first.trim().parse::<u64>().ok())
        == Some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_must_start_at_the_offset() {
        assert!(range_starts_at(Some("bytes 5-9/10"), 5));
        assert!(!range_starts_at(Some("bytes 0-9/10"), 5));
        assert!(!range_starts_at(None, 5));
        assert!(!range_starts_at(Some("bytes */10"), 5));
    }
}
