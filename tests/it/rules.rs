//! Session rules as tables of (command, expected reply code), run in-process: the session engine
//! over an in-memory pipe with real TLS, on the in-memory store (`common::duplex`). No SeaweedFS
//! and no socket, so each runs in milliseconds, and a failure lists every line of the table that
//! went wrong, not just the first.

use std::sync::Arc;

use ftps_s3::vfs::{ObjectKey, Storage, UploadMode, UploadSpec};

use crate::common::duplex::DuplexServer;
use crate::common::server::{HOME, PASSWORD, USER};

/// Stores `data` at `path` in acme's home, through the storage API.
async fn put(storage: &Arc<dyn Storage>, path: &str, data: &[u8]) {
    put_key(storage, &format!("{HOME}{path}"), data).await;
}

/// Stores `data` under the S3 key `key`, through the storage API.
async fn put_key(storage: &Arc<dyn Storage>, key: &str, data: &[u8]) {
    let key = ObjectKey::from_trusted(key.to_string());
    let spec = UploadSpec {
        mode: UploadMode::Replace,
        uploader: "test".to_string(),
        client_addr: "127.0.0.1".parse().expect("ip"),
    };
    let mut upload = storage.begin_upload(&key, spec).await.expect("begin");
    upload.copy_from(&mut &data[..]).await.expect("copy");
    upload.commit().await.expect("commit");
}

#[tokio::test(start_paused = true)]
async fn before_tls_and_login_only_their_commands_are_served() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let mut c = srv.greeted().await;
    c.table(&[
        ("PWD", 530),
        ("CWD /", 530),
        ("MKD x", 530),
        ("DELE x", 530),
        ("SIZE x", 530),
        // TLS is required (the default): only AUTH, FEAT and the like before it.
        ("PROT P", 530),
        ("NOOP", 530),
        ("FEAT", 211),
    ])
    .await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await;
    c.table(&[
        ("PASS early", 503),
        ("USER acme", 331),
        ("PASS wrong", 530),
        ("PWD", 530),
        ("USER acme", 331),
        (&format!("PASS {PASSWORD}"), 230),
        ("PWD", 257),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn prot_needs_pbsz_first() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let mut c = srv.login(USER, PASSWORD).await;
    c.table(&[
        ("PROT P", 503),
        ("PBSZ 0", 200),
        ("PROT X", 501),
        ("PROT P", 200),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn rename_needs_rnfr_then_rnto() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let storage: Arc<dyn Storage> = Arc::new(srv.storage.clone());
    put(&storage, "a.txt", b"hello").await;
    let mut c = srv.login(USER, PASSWORD).await;
    c.table(&[
        ("RNTO b.txt", 503),
        ("RNFR missing.txt", 550),
        ("RNFR a.txt", 350),
        ("NOOP", 200),
        ("RNTO b.txt", 503),
        ("RNFR a.txt", 350),
        ("RNTO b.txt", 250),
        ("SIZE a.txt", 550),
        ("SIZE b.txt", 213),
        ("MKD d", 257),
        ("RNFR b.txt", 350),
        ("RNTO d", 550),
        ("RNFR d", 350),
        ("RNTO e", 250),
        ("CWD e", 250),
        ("CWD /d", 550),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn rest_takes_a_number_and_size_reports_bytes() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let storage: Arc<dyn Storage> = Arc::new(srv.storage.clone());
    put(&storage, "f.bin", &[7u8; 1234]).await;
    let mut c = srv.login(USER, PASSWORD).await;
    c.table(&[
        ("REST 10", 350),
        ("REST -1", 501),
        ("REST x", 501),
        ("REST", 501),
        ("SIZE f.bin", 213),
        ("SIZE /", 550),
        ("MDTM f.bin", 213),
        ("DELE f.bin", 250),
        ("SIZE f.bin", 550),
        ("RMD /", 550),
    ])
    .await;
    let size = c.cmd("SIZE nothing").await;
    assert_eq!(size.code, 550, "{}", size.text);
}

#[tokio::test(start_paused = true)]
async fn a_drop_box_user_may_list_and_add_but_not_read_change_or_remove() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let storage: Arc<dyn Storage> = Arc::new(srv.storage.clone());
    put_key(&storage, "partners/drop/in.csv", b"a,b").await;
    // `drop`: list and write only.
    let mut c = srv.login("drop", "drop-password").await;
    c.table(&[
        ("PBSZ 0", 200),
        ("PROT P", 200),
        ("SIZE in.csv", 213),
        ("MDTM in.csv", 213),
        ("DELE in.csv", 550),
        ("RNFR in.csv", 550),
        ("MKD d", 550),
        ("RMD d", 550),
        // Refused before 150: no data connection is waited for.
        ("PASV", 227),
        ("RETR in.csv", 550),
        ("PASV", 227),
        // Writing over an existing file needs `overwrite`.
        ("STOR in.csv", 550),
        ("SIZE in.csv", 213),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn transfer_parameters_take_only_what_is_supported() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let mut c = srv.login(USER, PASSWORD).await;
    c.table(&[
        ("TYPE A", 200),
        ("TYPE I", 200),
        ("TYPE E", 504),
        ("TYPE", 501),
        ("MODE S", 200),
        ("MODE B", 504),
        ("STRU F", 200),
        ("STRU R", 504),
        ("EPSV 3", 522),
        ("PORT 127,0,0,1,4,1", 200),
        // RFC 2428 §4: after EPSV ALL, only EPSV sets up data connections.
        ("EPSV ALL", 200),
        ("PORT 127,0,0,1,4,1", 503),
        ("EPRT |1|127.0.0.1|1025|", 503),
        ("EPSV", 229),
        ("ABOR", 225),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn bad_command_lines_get_a_reply_and_the_session_goes_on() {
    let mut srv = DuplexServer::start_with(|c| c.limits.max_line_length = 512).await;
    let mut c = srv.login(USER, PASSWORD).await;
    let long = format!("MKD {}", "a".repeat(600));
    c.table(&[
        ("XYZZY", 500),
        ("", 500),
        (&long, 500),
        ("noop", 200),
        ("SIZE", 501),
        ("REST 99999999999999999999999", 501),
        ("MKD a\\b", 553),
        ("CWD /nowhere", 550),
        ("PWD", 257),
        ("OPTS UTF8 ON", 200),
        ("OPTS NOPE", 501),
        ("SYST", 215),
        ("STAT", 211),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn ccc_only_when_allowed_and_rein_goes_back_to_before_auth() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let mut c = srv.login(USER, PASSWORD).await;
    // `tls.allow_ccc` is off by default.
    c.table(&[("CCC", 534), ("PWD", 257), ("REIN", 220)]).await;
    c.end_tls().await;
    // In the clear again, and TLS is required: only what leads to it.
    c.table(&[
        ("PWD", 530),
        ("USER acme", 530),
        ("CCC", 530),
        ("FEAT", 211),
    ])
    .await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await;
    c.table(&[
        ("PWD", 530),
        ("USER acme", 331),
        (&format!("PASS {PASSWORD}"), 230),
        ("PWD", 257),
    ])
    .await;

    let mut srv = DuplexServer::start_with(|c| c.tls.allow_ccc = true).await;
    let mut c = srv.login(USER, PASSWORD).await;
    c.table(&[("PBSZ 0", 200), ("PROT P", 200), ("CCC", 200)])
        .await;
    c.end_tls().await;
    // The login was protected: the session goes on in the clear.
    c.table(&[("PWD", 257), ("CCC", 533), ("AUTH TLS", 234)])
        .await;
}
