//! Interoperability with more real clients (rclone, aioftp, ftputil) and the replies they depend
//! on: permanent refusals as `553` (not a retryable `451`), MFMT, a data TLS handshake the client
//! may start before its command (issue 17).

use crate::common::{
    clients::{self, python, random_bytes, Mode},
    server::{TestServer, PASSWORD, USER},
};

/// SeaweedFS refuses keys of 256–1023 bytes (AWS allows 1024). A name the store refuses as too
/// long will be refused again: `553` (file name not allowed), never `451 … try again`, which
/// makes retrying clients retry forever.
#[tokio::test]
async fn name_the_store_refuses_as_too_long_is_553_not_451() {
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.bin");
    std::fs::write(&src, random_bytes(1000)).expect("write");
    let long = format!("{}.bin", "n".repeat(296));
    assert_eq!(long.len(), 300);
    let src_s = src.display().to_string();
    let out = clients::run(python(
        Mode::Explicit,
        srv.explicit,
        USER,
        PASSWORD,
        &["put", &src_s, &long],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the upload cannot succeed: {stderr}");
    assert!(
        stderr.contains("553 "),
        "expected a permanent 553 refusal, got: {stderr}"
    );
    // MKD of such a name: the same refusal.
    let mkd = format!("MKD {long}");
    let out = clients::run(python(
        Mode::Explicit,
        srv.explicit,
        USER,
        PASSWORD,
        &["raw", &mkd],
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("553 "), "MKD: {stdout}");
    assert!(srv.keys().await.is_empty(), "left: {:?}", srv.keys().await);
    srv.stop().await;
}
