//! Backend errors: the one way this backend builds a [`StorageError::Backend`]
//! ([`backend_error`] with a [`BackendCode`]), and the one function where an SDK error becomes a
//! [`StorageError`] ([`s3_error`]).

use std::fmt;

use aws_sdk_s3::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
};

use crate::vfs::StorageError;

/// What went wrong, as `StorageError::Backend.code` shows it: the store's own error code, the
/// kind of failure when the store never answered, or a failure this backend found itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum BackendCode {
    /// The store's error code (`SlowDown`, `AccessDenied`, `NoSuchUpload`, …).
    Store(String),
    /// An answer without an error code: its HTTP status.
    Http(u16),
    /// The SDK gave up waiting (`TimeoutError`).
    Timeout,
    /// The request could not be sent (`DispatchFailure`).
    Dispatch,
    /// The request could not be built (`ConstructionFailure`).
    Construction,
    /// No code, no status (`ResponseError`).
    Response,
    /// `CreateMultipartUpload` answered without an upload id.
    NoUploadId,
    /// A body could not be read from the store.
    ReadError,
    /// An object's size is not what its `HeadObject` said.
    SizeChanged,
    /// The store answered a ranged `GetObject` from another offset.
    RangeIgnored,
    /// A file that needs more than S3's 10 000 parts.
    TooManyParts,
    /// A part upload or copy task ended without a result (panicked or cancelled).
    TaskFailed,
    /// An upload already ended by an earlier error.
    UploadFailed,
}

impl fmt::Display for BackendCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            BackendCode::Store(code) => code,
            BackendCode::Http(status) => return write!(f, "HTTP {status}"),
            BackendCode::Timeout => "TimeoutError",
            BackendCode::Dispatch => "DispatchFailure",
            BackendCode::Construction => "ConstructionFailure",
            BackendCode::Response => "ResponseError",
            BackendCode::NoUploadId => "NoUploadId",
            BackendCode::ReadError => "ReadError",
            BackendCode::SizeChanged => "SizeChanged",
            BackendCode::RangeIgnored => "RangeIgnored",
            BackendCode::TooManyParts => "TooManyParts",
            BackendCode::TaskFailed => "TaskFailed",
            BackendCode::UploadFailed => "UploadFailed",
        };
        f.write_str(name)
    }
}

/// The one constructor of this backend's `StorageError::Backend`.
pub(super) fn backend_error(
    op: &'static str,
    key: &str,
    code: BackendCode,
    message: impl fmt::Display,
) -> StorageError {
    StorageError::Backend {
        op,
        key: key.to_string(),
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// Whether `e` is the store's answer `code` (`NoSuchUpload`, `NotImplemented`, …).
pub(super) fn is_store_code(e: &StorageError, code: &str) -> bool {
    matches!(e, StorageError::Backend { code: c, .. } if c == code)
}

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
    let code = match (code, &err, status) {
        (Some(code), _, _) => BackendCode::Store(code),
        (None, SdkError::TimeoutError(_), _) => BackendCode::Timeout,
        (None, SdkError::DispatchFailure(_), _) => BackendCode::Dispatch,
        (None, SdkError::ConstructionFailure(_), _) => BackendCode::Construction,
        (None, _, Some(status)) => BackendCode::Http(status),
        (None, _, None) => BackendCode::Response,
    };
    let message = match err.message() {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => DisplayErrorContext(&err).to_string(),
    };
    if permanent {
        return StorageError::Refused {
            op,
            key: key.to_string(),
            code: code.to_string(),
            message,
        };
    }
    backend_error(op, key, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_as_before() {
        let e = backend_error("GetObject", "a/b", BackendCode::RangeIgnored, "m");
        assert_eq!(e.to_string(), "storage GetObject a/b: RangeIgnored: m");
        assert_eq!(BackendCode::Http(503).to_string(), "HTTP 503");
        assert_eq!(BackendCode::Timeout.to_string(), "TimeoutError");
        let store = backend_error("X", "k", BackendCode::Store("NoSuchUpload".into()), "");
        assert!(is_store_code(&store, "NoSuchUpload"));
        assert!(!is_store_code(&store, "NotImplemented"));
        assert!(!is_store_code(
            &StorageError::NotFound("k".into()),
            "NoSuchUpload"
        ));
    }
}
