//! Outgoing HTTP POSTs to operator-configured URLs (the `[events]` webhook, `auth.http_url`):
//! the client both use, their secret files, and reqwest errors in words. Below both, so the
//! identity endpoint needs nothing of the events module.

use std::{path::Path, time::Duration};

use crate::config::ConfigError;

/// The client for POSTs to a configured URL (`key`), each bounded by `timeout`. Used by
/// `[events]` and `auth.http_url`.
pub fn post_client(key: &'static str, timeout: Duration) -> Result<reqwest::Client, ConfigError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // A redirected POST would become a GET: a 3xx is a failed attempt instead.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ftps-s3/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ConfigError::Invalid {
            key,
            reason: format!("cannot build the HTTP client: {e}"),
        })
}

/// A secret file's contents without surrounding whitespace; the error names `key`. Used for
/// `events.webhook_secret_file` and `auth.http_secret_file`.
pub fn read_secret_file(key: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { key, reason };
    let text =
        std::fs::read(path).map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    let secret = text.trim_ascii();
    if secret.is_empty() {
        return Err(invalid(format!("{} is empty", path.display())));
    }
    Ok(secret.to_vec())
}

/// reqwest's error with its causes (the top level alone says only "error sending request").
pub fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
