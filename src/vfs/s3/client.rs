//! The S3 client: region, endpoint, path style, checksums, retries and timeouts from `[s3]`.

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::{
    config::{retry::RetryConfig, timeout::TimeoutConfig, Region, RequestChecksumCalculation},
    Client,
};

use crate::config::{self, ChecksumMode};

/// Time to open a TCP (and TLS) connection to the store.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Retry backoff (the SDK's standard mode): before retry `n` the SDK sleeps a random fraction
/// of `min(RETRY_INITIAL_BACKOFF × 2^(n-1), RETRY_MAX_BACKOFF)`. These are the SDK's defaults,
/// set here so that README's "S3 retries and timeouts" stays true if a new SDK changes them.
pub(super) const RETRY_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub(super) const RETRY_MAX_BACKOFF: Duration = Duration::from_secs(20);

/// Builds the S3 client from the `[s3]` config, with credentials from the AWS default chain
/// (environment, profile, web identity / IRSA, container or instance metadata).
pub async fn build_client(cfg: &config::S3) -> Client {
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(cfg.region.clone()))
        .load()
        .await;
    client_from_sdk_config(&sdk, cfg)
}

/// The S3-specific part of [`build_client`], for callers that already hold an [`SdkConfig`]
/// (tests give one with static credentials).
///
/// Timeouts: a connection must open within 10 s. The SDK's "read timeout" covers a whole request
/// up to the response headers, and for `UploadPart` that includes sending the part, so it is
/// sized from the part size: 60 s plus one second per MiB (a part must move at ≥ ~1 MiB/s). No
/// per-operation timeout: a 5 GiB part or a long download must not be cut at an arbitrary time;
/// stalled transfers are caught by the SDK's stalled-stream protection and the session's data
/// idle timeout.
///
/// Retries: the SDK's standard mode with `s3.max_attempts` attempts (the first included) and
/// the backoff above. It retries connection errors, timeouts, 5xx and throttling (`SlowDown`)
/// answers; bodies are in memory, so a part is sent again whole. The fault-injection tests
/// (`tests/it/faults.rs`) check each case against SeaweedFS.
pub fn client_from_sdk_config(sdk: &SdkConfig, cfg: &config::S3) -> Client {
    let checksums = match cfg.checksums {
        ChecksumMode::WhenSupported => RequestChecksumCalculation::WhenSupported,
        ChecksumMode::WhenRequired => RequestChecksumCalculation::WhenRequired,
    };
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(Duration::from_secs(60 + cfg.part_size_mib))
        .build();
    let mut builder = aws_sdk_s3::config::Builder::from(sdk)
        .region(Region::new(cfg.region.clone()))
        .force_path_style(cfg.force_path_style)
        .request_checksum_calculation(checksums)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(cfg.max_attempts)
                .with_initial_backoff(RETRY_INITIAL_BACKOFF)
                .with_max_backoff(RETRY_MAX_BACKOFF),
        )
        .timeout_config(timeouts);
    if let Some(endpoint) = &cfg.endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    // Times every S3 call and makes it a child span of the session (metrics.rs).
    builder = builder.interceptor(crate::metrics::s3_interceptor());
    Client::from_conf(builder.build())
}

/// Whether bodies may go as `UNSIGNED-PAYLOAD`: the endpoint is HTTPS (no endpoint: AWS, always
/// HTTPS) and every part carries a CRC32 that S3 verifies (`s3.checksums = "when_supported"`).
/// TLS then protects the body in transit and the CRC32 catches corruption, so SigV4 need not
/// hash the payload: each uploaded byte is hashed with SHA-256 once, for the recorded digest,
/// instead of twice. Over plain HTTP the payload stays signed (nothing else would protect it).
pub(super) fn unsigned_payload(cfg: &config::S3) -> bool {
    cfg.checksums == ChecksumMode::WhenSupported
        && cfg.endpoint.as_deref().is_none_or(|url| {
            url.get(..8)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_endpoints_with_part_checksums_skip_payload_signing() {
        let with = |endpoint: Option<&str>, checksums| config::S3 {
            endpoint: endpoint.map(str::to_string),
            checksums,
            ..config::Config::default().s3
        };
        assert!(unsigned_payload(&with(None, ChecksumMode::WhenSupported)));
        assert!(unsigned_payload(&with(
            Some("HTTPS://s3.example:443"),
            ChecksumMode::WhenSupported
        )));
        assert!(!unsigned_payload(&with(
            Some("http://127.0.0.1:8333"),
            ChecksumMode::WhenSupported
        )));
        assert!(!unsigned_payload(&with(None, ChecksumMode::WhenRequired)));
        assert!(!unsigned_payload(&with(
            Some("h"),
            ChecksumMode::WhenSupported
        )));
    }
}
