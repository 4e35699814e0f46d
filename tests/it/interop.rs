//! Interoperability with more real clients (rclone, aioftp, ftputil) and the replies they depend
//! on: permanent refusals as `553` (not a retryable `451`), MFMT, a data TLS handshake the client
//! may start before its command (issue 17).

use crate::common::{
    clients::{self, python, random_bytes, Mode},
    raw::RawClient,
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

/// FEAT advertises the PROT levels policy allows: only `P` while `listeners.require_tls` refuses
/// `PROT C` (the default), `C;P;` when clear data connections are allowed.
#[tokio::test]
async fn feat_advertises_only_the_prot_levels_policy_allows() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let feat = c.expect("FEAT", 211).await;
    assert!(feat.text.contains(" PROT P;"), "{}", feat.text);
    assert!(!feat.text.contains("PROT C"), "{}", feat.text);
    c.expect("PROT C", 534).await;
    srv.stop().await;

    let srv = TestServer::start_with(|c| c.listeners.require_tls = false).await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let feat = c.expect("FEAT", 211).await;
    assert!(feat.text.contains(" PROT C;P;"), "{}", feat.text);
    c.expect("PROT C", 200).await;
    srv.stop().await;
}

/// REST precedes RETR, STOR or APPE alike: its reply names none of them.
#[tokio::test]
async fn rest_reply_does_not_presume_retr() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let r = c.expect("REST 5", 350).await;
    assert!(!r.text.contains("RETR"), "{}", r.text);
    assert!(r.text.contains('5'), "{}", r.text);
    srv.stop().await;
}

/// `NLST dir` answers `dir/name`, as vsftpd, ProFTPD and Pure-FTPd do, so that a client can
/// RETR each line as it is (classic `mget`, ftplib scripts); `NLST` of the current directory
/// answers bare names; `NLST file` answers the path as given. curl (`-l`, which CWDs first
/// unless `--ftp-method nocwd`), lftp (`cls`, globbing: MLSD) and rclone (MLSD/LIST) do not read
/// NLST of a directory, so nothing they do changes.
#[tokio::test]
async fn nlst_of_a_directory_answers_paths_a_client_can_retr() {
    let srv = TestServer::start().await;
    srv.put_object(&srv.key("d/a.txt"), b"a").await;
    srv.put_object(&srv.key("d/sub/b.txt"), b"b").await;
    let steps = [
        "nlst", "d", "nlst", "d/", "nlst", "d/a.txt", "cd", "d", "nlst",
    ];
    let out = clients::run(python(Mode::Explicit, srv.explicit, USER, PASSWORD, &steps)).await;
    clients::assert_ok(&out, "python nlst");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        ["d/sub", "d/a.txt", "d/sub", "d/a.txt", "d/a.txt", "sub", "a.txt"],
        "{lines:?}"
    );
    // Each line of `NLST d` can be fetched as it is.
    let dir = tempfile::tempdir().expect("tempdir");
    let got = dir.path().join("got");
    let got_s = got.display().to_string();
    let out = clients::run(python(
        Mode::Explicit,
        srv.explicit,
        USER,
        PASSWORD,
        &["get", &lines[1], &got_s],
    ))
    .await;
    clients::assert_ok(&out, "RETR of an NLST line");
    assert_eq!(std::fs::read(&got).expect("read"), b"a");
    srv.stop().await;
}
