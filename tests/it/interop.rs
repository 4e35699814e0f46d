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

/// MFMT (draft-somers-ftp-mfxx, as FileZilla, lftp and rclone send it) and MDTM with a time
/// (rclone `--ftp-writing-mdtm`, the vsftpd form): the time is stored, reported by MDTM, MLST,
/// MLSD and LIST, and survives a rename; FEAT advertises MFMT.
#[tokio::test]
async fn mfmt_sets_the_time_mdtm_mlst_and_listings_report() {
    let srv = TestServer::start().await;
    srv.put_object(&srv.key("d/a.txt"), b"hello").await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let feat = c.expect("FEAT", 211).await;
    assert!(
        feat.text.lines().any(|l| l.trim() == "MFMT"),
        "{}",
        feat.text
    );
    let r = c.expect("MFMT 20200102030405 d/a.txt", 213).await;
    assert_eq!(r.text, "213 Modify=20200102030405; d/a.txt");
    let r = c.expect("MDTM d/a.txt", 213).await;
    assert_eq!(r.text, "213 20200102030405");
    let r = c.expect("MLST d/a.txt", 250).await;
    assert!(r.text.contains("modify=20200102030405;"), "{}", r.text);
    c.expect("MFMT 2020010203040 d/a.txt", 501).await;
    c.expect("MFMT 20201302030405 d/a.txt", 501).await;
    c.expect("MFMT 20200102030405 d/missing", 550).await;
    c.expect("MFMT 20200102030405 d", 550).await;
    // The vsftpd form: MDTM with a time first.
    let r = c.expect("MDTM 20210102030405 d/a.txt", 213).await;
    assert!(r.text.contains("20210102030405"), "{}", r.text);
    let r = c.expect("MDTM d/a.txt", 213).await;
    assert_eq!(r.text, "213 20210102030405");
    c.expect("RNFR d/a.txt", 350).await;
    c.expect("RNTO d/b.txt", 250).await;
    let r = c.expect("MDTM d/b.txt", 213).await;
    assert_eq!(r.text, "213 20210102030405", "the time survives RNFR/RNTO");
    assert_eq!(
        srv.object(&srv.key("d/b.txt")).await.as_deref(),
        Some(&b"hello"[..])
    );
    // Listings report it too.
    let out = clients::run(python(
        Mode::Explicit,
        srv.explicit,
        USER,
        PASSWORD,
        &["mlsd", "d", "ls", "d"],
    ))
    .await;
    clients::assert_ok(&out, "mlsd + ls");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("modify=20210102030405"), "{stdout}");
    assert!(stdout.contains("Jan  2  2021 b.txt"), "{stdout}");
    srv.stop().await;

    // With listing times off, listings would contradict MFMT: FEAT does not offer it (so sync
    // clients compare sizes only), the command still works for MDTM/MLST.
    let srv = TestServer::start_with(|c| c.s3.listing_times = false).await;
    srv.put_object(&srv.key("a.txt"), b"hello").await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let feat = c.expect("FEAT", 211).await;
    assert!(!feat.text.contains("MFMT"), "{}", feat.text);
    c.expect("MFMT 20200102030405 a.txt", 213).await;
    let r = c.expect("MDTM a.txt", 213).await;
    assert_eq!(r.text, "213 20200102030405");
    srv.stop().await;
}

/// rclone `sync` of a file changed without changing its size: with MFMT the server keeps the
/// client's time, so rclone sees the change and uploads it (before: sizes only, "nothing to
/// transfer", S3 kept the old content). Then `--ftp-writing-mdtm` (MDTM with a time).
#[tokio::test]
async fn rclone_sync_uploads_a_same_size_change() {
    if !rclone_available() {
        return;
    }
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("src");
    std::fs::create_dir(&local).expect("mkdir");
    let file = local.join("f.txt");
    let set = |content: &[u8], secs: u64| {
        std::fs::write(&file, content).expect("write");
        let f = std::fs::File::options()
            .write(true)
            .open(&file)
            .expect("open");
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .expect("set mtime");
    };
    for extra in [&[][..], &["--ftp-writing-mdtm"][..]] {
        set(b"first version", 1_600_000_000);
        let out = clients::run(rclone(
            &srv,
            &["sync", &local.display().to_string(), "r:sync"],
            extra,
        ))
        .await;
        clients::assert_ok(&out, "rclone sync 1");
        set(b"other content", 1_600_000_100);
        let out = clients::run(rclone(
            &srv,
            &["sync", &local.display().to_string(), "r:sync"],
            extra,
        ))
        .await;
        clients::assert_ok(&out, "rclone sync 2");
        assert_eq!(
            srv.object(&srv.key("sync/f.txt")).await.as_deref(),
            Some(&b"other content"[..]),
            "rclone {extra:?} kept the stale file: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // And the server reports the client's time.
        let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
        let r = c.expect("MDTM sync/f.txt", 213).await;
        assert_eq!(r.text, "213 20200913122820", "rclone {extra:?}");
        // A third sync with nothing changed transfers nothing.
        let out = clients::run(rclone(
            &srv,
            &["sync", "-v", &local.display().to_string(), "r:sync"],
            extra,
        ))
        .await;
        clients::assert_ok(&out, "rclone sync 3");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("Copied"),
            "rclone {extra:?} uploaded again: {stderr}"
        );
        srv.put_object(&srv.key("sync/f.txt"), b"reset").await;
    }
    srv.stop().await;
}

fn rclone_available() -> bool {
    let ok = std::process::Command::new("rclone")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        client_missing("rclone not found (run scripts/install-test-deps.sh)");
    }
    ok
}

/// rclone with remote `r:` on the server's explicit port (FTPS, certificate not verified).
fn rclone(srv: &TestServer, args: &[&str], extra: &[&str]) -> tokio::process::Command {
    let obscured = std::process::Command::new("rclone")
        .args(["obscure", PASSWORD])
        .output()
        .expect("rclone obscure");
    let mut c = tokio::process::Command::new("rclone");
    c.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_R_TYPE", "ftp")
        .env("RCLONE_CONFIG_R_HOST", srv.explicit.ip().to_string())
        .env("RCLONE_CONFIG_R_PORT", srv.explicit.port().to_string())
        .env("RCLONE_CONFIG_R_USER", USER)
        .env(
            "RCLONE_CONFIG_R_PASS",
            String::from_utf8_lossy(&obscured.stdout).trim(),
        )
        .env("RCLONE_CONFIG_R_EXPLICIT_TLS", "true")
        .env("RCLONE_CONFIG_R_NO_CHECK_CERTIFICATE", "true")
        .args(args)
        .args(extra)
        .args([
            "--retries",
            "1",
            "--low-level-retries",
            "1",
            "--contimeout",
            "20s",
            "--timeout",
            "60s",
        ]);
    c
}

/// aioftp completes each data connection's TLS handshake before it sends STOR/RETR/MLSD; the
/// server used to start its side only after the command, so each waited for the other (every
/// transfer hung). Upload, listing and download in both modes, byte for byte.
async fn aioftp_scenario(mode: Mode) {
    if !python_module_available("aioftp") {
        return;
    }
    let srv = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.bin");
    let got = dir.path().join("got.bin");
    let data = random_bytes(3 * 1024 * 1024 + 5);
    std::fs::write(&src, &data).expect("write");
    let (src_s, got_s) = (src.display().to_string(), got.display().to_string());
    let out = clients::run(aioftp(
        &srv,
        mode,
        &["put", &src_s, "a.bin", "ls", "/", "get", "a.bin", &got_s],
    ))
    .await;
    clients::assert_ok(&out, &format!("aioftp {}", mode.name()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("a.bin\tfile\t{}", data.len())),
        "{stdout}"
    );
    assert!(
        std::fs::read(&got).expect("read") == data,
        "downloaded bytes differ"
    );
    assert_eq!(
        srv.object(&srv.key("a.bin")).await.as_deref(),
        Some(&data[..])
    );
    srv.stop().await;
}

#[tokio::test]
async fn aioftp_explicit() {
    aioftp_scenario(Mode::Explicit).await;
}

#[tokio::test]
async fn aioftp_implicit() {
    aioftp_scenario(Mode::Implicit).await;
}

fn python_module_available(module: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        client_missing(&format!(
            "Python module {module} not found (run scripts/install-test-deps.sh)"
        ));
    }
    ok
}

/// A client the interop tests need is missing: SKIPPED where it may be (a developer's machine),
/// a failure where it must not (CI sets `FTPS_TESTS_REQUIRE_CLIENTS`, having installed them).
fn client_missing(what: &str) {
    assert!(
        std::env::var_os("FTPS_TESTS_REQUIRE_CLIENTS").is_none(),
        "{what} (FTPS_TESTS_REQUIRE_CLIENTS is set)"
    );
    crate::common::skipped("interop", what);
}

fn aioftp(srv: &TestServer, mode: Mode, steps: &[&str]) -> tokio::process::Command {
    let addr = match mode {
        Mode::Explicit => srv.explicit,
        Mode::Implicit => srv.implicit,
    };
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/aioftp_client.py");
    let mut c = tokio::process::Command::new("python3");
    c.arg(script)
        .args(["--mode", mode.name(), "--host"])
        .arg(addr.ip().to_string())
        .arg("--port")
        .arg(addr.port().to_string())
        .args(["--user", USER, "--password", PASSWORD, "--timeout", "10"])
        .args(steps);
    c
}
