//! The one function where an SDK error becomes a [`StorageError`].

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};

use crate::vfs::StorageError;

/// Store error codes that name a key the store will never accept (AWS and SeaweedFS
/// `KeyTooLongError`; MinIO's own name checks).
const NAME_REFUSALS: &[&str] = &["KeyTooLongError", "XMinioInvalidObjectName"];

/// Store error codes that will be answered the same way however often the request is sent.
/// Everything else (throttling, internal errors, timeouts, unknown codes) may pass on a retry.
const PERMANENT_REFUSALS: &[&str] = &[
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidObjectState",
    "EntityTooLarge",
    "MetadataTooLarge",
    "InvalidStorageClass",
];

/// The one place an SDK error becomes a [`StorageError`]: `NoSuchKey` (or a bare 404, which is
/// how `HeadObject` says it) is `NotFound`; a refusal of the name is `NameRefused`, other
/// permanent refusals `Refused`; everything else is `Backend` with the store's error code, or the
/// kind of failure when the store never answered (`TimeoutError`, …).
pub(super) fn s3_error<E>(
    op: &'static str,
    key: &str,
    err: SdkError<E, HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let not_found = match code.as_deref() {
        Some(code) => code == "NoSuchKey" || code == "NotFound",
        None => status == Some(404),
    };
    if not_found {
        return StorageError::NotFound(key.to_string());
    }
    if let Some(c) = code.as_deref() {
        if NAME_REFUSALS.contains(&c) {
            return StorageError::NameRefused {
                key: key.to_string(),
                reason: c.to_string(),
            };
        }
    }
    let permanent = code
        .as_deref()
        .is_some_and(|c| PERMANENT_REFUSALS.contains(&c));
    let code = code.unwrap_or_else(|| match (&err, status) {
        (SdkError::TimeoutError(_), _) => "TimeoutError".to_string(),
        (SdkError::DispatchFailure(_), _) => "DispatchFailure".to_string(),
        (SdkError::ConstructionFailure(_), _) => "ConstructionFailure".to_string(),
        (_, Some(status)) => format!("HTTP {status}"),
        _ => "ResponseError".to_string(),
    });
    let message = match err.message() {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    let key = key.to_string();
    if permanent {
        StorageError::Refused {
            op,
            key,
            code,
            message,
        }
    } else {
        StorageError::Backend {
            op,
            key,
            code,
            message,
        }
    }
}
