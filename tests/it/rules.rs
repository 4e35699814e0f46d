//! Session rules as tables of (command, expected reply code), run in-process against a server
//! on the in-memory backend: no SeaweedFS, so they run in a fraction of a second each, and a
//! failure lists every line of the table that went wrong, not just the first.

use std::sync::Arc;

use ftps_s3::vfs::{ObjectKey, Storage, UploadMode, UploadSpec};

use crate::common::in_memory::InMemoryServer;
use crate::common::raw::RawClient;
use crate::common::server::{HOME, PASSWORD, USER};

/// Sends each command and compares reply codes; panics listing every mismatch.
async fn table(c: &mut RawClient, rows: &[(&str, u16)]) {
    let mut wrong = Vec::new();
    for (line, code) in rows {
        let r = c.cmd(line).await;
        if r.code != *code {
            wrong.push(format!(
                "{line}: expected {code}, got {} {}",
                r.code, r.text
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows:\n{}",
        wrong.len(),
        rows.len(),
        wrong.join("\n")
    );
}

/// Stores `data` at `path` in acme's home, through the storage API.
async fn put(storage: &Arc<dyn Storage>, path: &str, data: &[u8]) {
    let key = ObjectKey::from_trusted(format!("{HOME}{path}"));
    let spec = UploadSpec {
        mode: UploadMode::Replace,
        uploader: "test".to_string(),
        client_addr: "127.0.0.1".parse().expect("ip"),
    };
    let mut upload = storage.begin_upload(&key, spec).await.expect("begin");
    upload.copy_from(&mut &data[..]).await.expect("copy");
    upload.commit().await.expect("commit");
}

#[tokio::test]
async fn before_tls_and_login_only_their_commands_are_served() {
    let srv = InMemoryServer::start().await;
    let (mut c, greeting) = RawClient::connect(srv.explicit).await;
    assert_eq!(greeting.code, 220);
    table(
        &mut c,
        &[
            ("PWD", 530),
            ("CWD /", 530),
            ("MKD x", 530),
            ("DELE x", 530),
            ("SIZE x", 530),
            // TLS is required (the default): only AUTH, FEAT and the like before it.
            ("PROT P", 530),
            ("NOOP", 530),
            ("FEAT", 211),
        ],
    )
    .await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    table(
        &mut c,
        &[
            ("PASS early", 503),
            ("USER acme", 331),
            ("PASS wrong", 530),
            ("PWD", 530),
            ("USER acme", 331),
            (&format!("PASS {PASSWORD}"), 230),
            ("PWD", 257),
        ],
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn prot_needs_pbsz_first() {
    let srv = InMemoryServer::start().await;
    let (mut c, _) = RawClient::connect(srv.explicit).await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    table(
        &mut c,
        &[
            ("PROT P", 503),
            ("PBSZ 0", 200),
            ("PROT X", 501),
            ("PROT P", 200),
        ],
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn rename_needs_rnfr_then_rnto() {
    let srv = InMemoryServer::start().await;
    let storage: Arc<dyn Storage> = Arc::new(srv.storage.clone());
    put(&storage, "a.txt", b"hello").await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    table(
        &mut c,
        &[
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
        ],
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn rest_takes_a_number_and_size_reports_bytes() {
    let srv = InMemoryServer::start().await;
    let storage: Arc<dyn Storage> = Arc::new(srv.storage.clone());
    put(&storage, "f.bin", &[7u8; 1234]).await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    table(
        &mut c,
        &[
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
        ],
    )
    .await;
    let size = c.cmd("SIZE nothing").await;
    assert_eq!(size.code, 550, "{}", size.text);
    srv.stop().await;
}
