//! Protocol rules, checked with the line-level client: exact reply codes for the TLS policy
//! (RFC 4217, MS-FTPS §3.2.5), the jail, bounded lines, and uploads cut off in every way a
//! transfer can fail (no object, no open multipart upload, previous content kept).

use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};

use crate::common::clients::random_bytes;
use crate::common::raw::RawClient;
use crate::common::server::{TestServer, HOME, PASSWORD, USER};
use crate::common::sha256_hex;

#[tokio::test]
async fn implicit_rejects_auth_tls_and_ccc_and_feat_lists_auth_ssl() {
    let srv = TestServer::start().await;
    let (mut c, greeting) = RawClient::connect_implicit(srv.implicit).await;
    assert_eq!(greeting.code, 220);
    let feat = c.expect("FEAT", 211).await;
    for f in [
        "AUTH TLS;SSL;",
        "PBSZ",
        "PROT",
        "UTF8",
        "SIZE",
        "MDTM",
        "REST STREAM",
        "EPSV",
        "MLST type*;size*;modify*;",
    ] {
        assert!(feat.text.contains(f), "FEAT lacks {f}: {}", feat.text);
    }
    c.expect("AUTH TLS", 534).await;
    c.expect("AUTH SSL", 534).await;
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    c.expect("CCC", 534).await;
    // PBSZ 0 + PROT P are implicit: a transfer works without them.
    let port = c.epsv().await;
    c.send_raw(b"LIST\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    data.read_all().await.expect("listing");
    assert_eq!(c.reply().await.code, 226);
    srv.stop().await;
}

#[tokio::test]
async fn implicit_rein_ends_tls_and_starts_over() {
    let srv = TestServer::start().await;
    let (mut c, _) = RawClient::connect_implicit(srv.implicit).await;
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    c.expect("REIN", 220).await;
    c.end_tls().await;
    // Back to just-connected: a new handshake, then the greeting, then a fresh login.
    c.handshake().await.expect("second handshake");
    assert_eq!(c.reply().await.code, 220);
    c.expect("PWD", 530).await;
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    c.expect("PWD", 257).await;
    srv.stop().await;
}

#[tokio::test]
async fn explicit_requires_tls_before_login_and_accepts_auth_ssl() {
    let srv = TestServer::start().await;
    let (mut c, g) = RawClient::connect(srv.explicit).await;
    assert_eq!(g.code, 220);
    c.expect("FEAT", 211).await;
    c.expect(&format!("USER {USER}"), 530).await;
    c.expect(&format!("PASS {PASSWORD}"), 530).await;
    c.expect("PBSZ 0", 530).await;
    c.expect("AUTH KERBEROS_V4", 504).await;
    c.expect("AUTH SSL", 234).await;
    c.handshake().await.expect("handshake");
    assert!(c.is_tls());
    c.expect("AUTH TLS", 503).await;
    c.expect("PROT P", 503).await; // RFC 4217 §9: PBSZ first
    c.expect("PBSZ 0", 200).await;
    c.expect("PROT C", 534).await; // policy: data must be protected
    c.expect("PROT S", 536).await;
    c.expect("PROT P", 200).await;
    c.expect("CCC", 534).await; // tls.allow_ccc defaults to false
    c.expect("USER nobody", 331).await;
    c.expect("PASS wrong", 530).await;
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect("PASS wrong", 530).await;
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    c.expect("SYST", 215).await;
    c.expect("ACCT x", 202).await;
    c.expect("HELP", 214).await;
    c.expect("NOOP", 200).await;
    c.expect("MODE S", 200).await;
    c.expect("MODE B", 504).await;
    c.expect("STRU F", 200).await;
    c.expect("STRU R", 504).await;
    c.expect("TYPE E", 504).await;
    c.expect("OPTS UTF8 ON", 200).await;
    c.expect("XYZZ", 500).await;
    c.expect("SMNT /x", 502).await;
    c.expect("QUIT", 221).await;
    srv.stop().await;
}

#[tokio::test]
async fn transfers_without_prot_p_are_refused_when_tls_is_required() {
    let srv = TestServer::start().await;
    let (mut c, _) = RawClient::connect(srv.explicit).await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    c.expect("EPSV", 229).await;
    c.expect("LIST", 521).await;
    srv.stop().await;
}

#[tokio::test]
async fn jail_escape_attempts_stay_inside_home() {
    let srv = TestServer::start().await;
    srv.put_object("partners/other/secret.txt", b"not yours")
        .await;
    srv.put_object("top.txt", b"bucket root").await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("CWD ../..", 250).await;
    let pwd = c.expect("PWD", 257).await;
    assert!(pwd.text.contains("\"/\""), "{}", pwd.text);
    c.expect("SIZE ../other/secret.txt", 550).await;
    c.expect("SIZE /../../top.txt", 550).await;
    c.expect("CWD ../other", 550).await;
    let port = c.epsv().await;
    c.expect("RETR ../other/secret.txt", 550).await;
    // The passive listener is kept after a refused RETR.
    c.send_raw(b"NLST ../..\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    let names = String::from_utf8(data.read_all().await.expect("nlst")).expect("utf8");
    assert_eq!(c.reply().await.code, 226);
    assert!(
        !names.contains("secret") && !names.contains("top.txt"),
        "{names}"
    );
    c.expect("RETR a\\b", 553).await;
    srv.stop().await;
}

#[tokio::test]
async fn overlong_line_gets_500_and_the_session_continues() {
    let srv = TestServer::start().await;
    let (mut c, _) = RawClient::connect(srv.explicit).await;
    let mut line = b"NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 10_000));
    line.extend_from_slice(b"\r\n");
    c.send_raw(&line).await;
    assert_eq!(c.reply().await.code, 500);
    c.expect("FEAT", 211).await;
    // Invalid UTF-8 and an empty line are answered, not fatal.
    c.send_raw(b"AUTH \xff\xfe\r\n").await;
    assert_eq!(c.reply().await.code, 501);
    c.send_raw(b"\r\n").await;
    assert_eq!(c.reply().await.code, 500);
    c.expect("AUTH TLS", 234).await;
    srv.stop().await;
}

/// Starts an upload of `total` bytes and sends `sent` of them; returns the client and stream.
async fn start_upload(
    srv: &TestServer,
    path: &str,
    body: &[u8],
) -> (RawClient, crate::common::raw::DataStream) {
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(format!("STOR {path}\r\n").as_bytes()).await;
    let opening = c.reply().await;
    assert_eq!(opening.code, 150, "{}", opening.text);
    let mut data = c.data_connect(port, true).await;
    data.write_all(body).await.expect("send body");
    (c, data)
}

#[tokio::test]
async fn cut_off_upload_leaves_no_object_and_no_multipart_upload() {
    // Without a resume window, a failed upload is aborted at once.
    let srv = TestServer::start_with(|c| c.s3.resume_window_secs = 0).await;
    // 12 MiB sent of a longer file: two full 5 MiB parts are already uploaded when it is cut.
    let body = random_bytes(12 * 1024 * 1024);
    let (mut c, data) = start_upload(&srv, "cut.bin", &body).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    data.reset();
    let r = c.reply().await;
    assert_eq!(r.code, 426, "{}", r.text);
    assert_eq!(srv.object(&srv.key("cut.bin")).await, None);
    srv.eventually("no open multipart upload", || async {
        srv.open_multipart_uploads().await == 0
    })
    .await;
    c.expect("NOOP", 200).await;
    srv.stop().await;
}

#[tokio::test]
async fn cut_off_overwrite_keeps_the_previous_content() {
    let srv = TestServer::start_with(|c| c.s3.resume_window_secs = 0).await;
    srv.put_object(&srv.key("keep.bin"), b"previous").await;
    let body = random_bytes(6 * 1024 * 1024);
    let (mut c, data) = start_upload(&srv, "keep.bin", &body).await;
    data.reset();
    assert_eq!(c.reply().await.code, 426);
    assert_eq!(
        srv.object(&srv.key("keep.bin")).await.as_deref(),
        Some(&b"previous"[..])
    );
    srv.eventually("no open multipart upload", || async {
        srv.open_multipart_uploads().await == 0
    })
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn abor_mid_upload_aborts_and_answers_426_then_226() {
    let srv = TestServer::start_with(|c| c.s3.resume_window_secs = 0).await;
    let body = random_bytes(11 * 1024 * 1024);
    let (mut c, data) = start_upload(&srv, "abor.bin", &body).await;
    c.send_raw(b"ABOR\r\n").await;
    assert_eq!(c.reply().await.code, 426);
    assert_eq!(c.reply().await.code, 226);
    drop(data);
    assert_eq!(srv.object(&srv.key("abor.bin")).await, None);
    srv.eventually("no open multipart upload", || async {
        srv.open_multipart_uploads().await == 0
    })
    .await;
    c.expect("NOOP", 200).await;
    srv.stop().await;
}

#[tokio::test]
async fn control_connection_lost_mid_upload_leaves_nothing() {
    let srv = TestServer::start_with(|c| c.s3.resume_window_secs = 0).await;
    let body = random_bytes(11 * 1024 * 1024);
    let (c, data) = start_upload(&srv, "gone.bin", &body).await;
    drop(c);
    drop(data);
    srv.eventually("no open multipart upload", || async {
        srv.open_multipart_uploads().await == 0
    })
    .await;
    assert_eq!(srv.object(&srv.key("gone.bin")).await, None);
    srv.stop().await;
}

#[tokio::test]
async fn complete_upload_with_close_notify_is_committed() {
    let srv = TestServer::start().await;
    let body = random_bytes(11 * 1024 * 1024 + 7);
    let (mut c, data) = start_upload(&srv, "ok.bin", &body).await;
    data.finish().await.expect("close_notify");
    assert_eq!(c.reply().await.code, 226);
    assert!(srv.object(&srv.key("ok.bin")).await.as_deref() == Some(&body[..]));
    assert_eq!(srv.open_multipart_uploads().await, 0);
    srv.stop().await;
}

#[tokio::test]
async fn retr_with_rest_sends_from_the_offset() {
    let srv = TestServer::start().await;
    let body = random_bytes(300_000);
    srv.put_object(&srv.key("r.bin"), &body).await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("SIZE r.bin", 213).await;
    c.expect("MDTM r.bin", 213).await;
    c.expect("REST 100000", 350).await;
    let port = c.epsv().await;
    c.send_raw(b"RETR r.bin\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    let got = data.read_all().await.expect("read");
    assert_eq!(c.reply().await.code, 226);
    assert!(got == body[100_000..], "wrong bytes from offset");
    c.expect("REST 300001", 350).await;
    c.epsv().await;
    c.expect("RETR r.bin", 554).await;
    srv.stop().await;
}

/// A data connection from another address than the control connection's is refused (port
/// stealing): 127.0.0.2 is loopback too, but not the client's address.
#[tokio::test]
async fn data_connection_from_another_address_is_refused() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(b"LIST\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let thief = TcpSocket::new_v4().expect("socket");
    thief
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut stolen: TcpStream = thief
        .connect((srv.explicit.ip(), port).into())
        .await
        .expect("tcp connect succeeds, then is dropped");
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut stolen, &mut buf),
    )
    .await
    .expect("closed promptly");
    assert!(matches!(n, Ok(0) | Err(_)), "the thief got data");
    // The real client still gets its listing.
    let mut data = c.data_connect(port, true).await;
    data.read_all().await.expect("listing");
    assert_eq!(c.reply().await.code, 226);
    srv.stop().await;
}

#[tokio::test]
async fn drop_box_user_cannot_read_delete_or_rename() {
    let srv = TestServer::start().await;
    srv.put_object("partners/drop/x.csv", b"x").await;
    let mut c = RawClient::login_explicit(srv.explicit, "drop", "drop-password").await;
    c.epsv().await;
    c.expect("RETR x.csv", 550).await;
    c.expect("DELE x.csv", 550).await;
    c.expect("RNFR x.csv", 550).await;
    c.expect("MKD d", 550).await;
    c.expect("SIZE x.csv", 213).await;
    srv.stop().await;
}

#[tokio::test]
async fn file_operations_reply_codes() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("MKD d", 257).await;
    c.expect("MKD d", 550).await;
    c.expect("CWD d", 250).await;
    c.expect("CDUP", 250).await;
    c.expect("CWD nothere", 550).await;
    c.expect("RMD nothere", 550).await;
    c.expect("DELE nothere", 550).await;
    c.expect("RNTO x", 503).await;
    c.expect("RNFR nothere", 550).await;
    srv.put_object(&srv.key("d/f"), b"f").await;
    c.expect("RMD d", 550).await;
    c.expect("MLST d/f", 250).await;
    c.expect("SIZE d", 550).await;
    c.expect("RNFR d/f", 350).await;
    c.expect("RNTO d/g", 250).await;
    c.expect("DELE d/g", 250).await;
    c.expect("RMD d", 250).await;
    assert!(srv.keys().await.is_empty(), "{:?}", srv.keys().await);
    c.expect("STOR /nodir/x", 425).await; // no PASV yet
    c.epsv().await;
    c.expect("STOR /nodir/x", 550).await;
    c.expect("REST 5", 350).await;
    c.expect("STOR x", 554).await; // nothing held to resume from
    srv.stop().await;
}

/// RFC 4217 §10 binding: with `tls.require_session_reuse` (the default) a data connection that
/// does not resume the control connection's TLS session is refused with 522; without it, it is
/// accepted.
#[tokio::test]
async fn data_connection_without_session_reuse_is_refused_when_required() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.without_resumption();
    let port = c.epsv().await;
    c.send_raw(b"LIST\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let _data = c.data_connect(port, true).await;
    let r = c.reply().await;
    assert_eq!(r.code, 522, "{}", r.text);
    srv.stop().await;

    let srv = TestServer::start_with(|c| c.tls.require_session_reuse = false).await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.without_resumption();
    let port = c.epsv().await;
    c.send_raw(b"LIST\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.read_all().await.expect("listing");
    assert_eq!(c.reply().await.code, 226);
    srv.stop().await;
}

/// Active mode goes only to the client's own address and to ports >= 1024 (no FTP bounce).
#[tokio::test]
async fn port_and_eprt_refuse_other_hosts_and_low_ports() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("PORT 10,0,0,1,195,80", 504).await;
    c.expect("PORT 127,0,0,1,0,25", 504).await;
    c.expect("EPRT |1|127.0.0.2|50000|", 504).await;
    c.expect("EPRT |2|::1|50000|", 504).await;
    c.expect("EPRT |3|x|1|", 522).await;
    c.expect("PORT 1,2,3", 501).await;
    c.expect("PORT 127,0,0,1,195,80", 200).await;
    c.expect("EPRT |1|127.0.0.1|50000|", 200).await;
    c.expect("EPSV ALL", 200).await;
    c.expect("PORT 127,0,0,1,195,80", 503).await;
    c.expect("PASV", 503).await;
    srv.stop().await;
}

/// An active-mode download through the line-level client: the server connects to us.
#[tokio::test]
async fn active_mode_download_connects_to_the_client() {
    let srv = TestServer::start().await;
    let body = random_bytes(100_000);
    srv.put_object(&srv.key("a.bin"), &body).await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    c.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 200).await;
    c.send_raw(b"RETR a.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("server connects")
        .expect("accept");
    let mut data = c.tls_over(tcp).await;
    let got = data.read_all().await.expect("read");
    assert_eq!(c.reply().await.code, 226);
    assert!(got == body);
    srv.stop().await;
}

#[tokio::test]
async fn session_limits_answer_421() {
    let srv = TestServer::start_with(|c| {
        c.limits.max_sessions_per_ip = 2;
        c.limits.max_sessions_per_user = 1;
    })
    .await;
    let a = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    // A second login as the same user is refused at PASS, and the connection closed.
    let (mut b, _) = RawClient::connect(srv.explicit).await;
    b.expect("AUTH TLS", 234).await;
    b.handshake().await.expect("handshake");
    b.expect(&format!("USER {USER}"), 331).await;
    b.expect(&format!("PASS {PASSWORD}"), 421).await;
    drop(b);
    let _c = RawClient::login_explicit(srv.explicit, "other", "other-password").await;
    // Two sessions from 127.0.0.1 are open: the third connection gets 421 at once.
    srv.eventually("the refused session's slot is freed", || async {
        let (_d, greeting) = RawClient::connect(srv.explicit).await;
        greeting.code == 421
    })
    .await;
    drop(a);
    srv.eventually("a slot is free again", || async {
        let (_d, greeting) = RawClient::connect(srv.explicit).await;
        greeting.code == 220
    })
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn type_a_converts_line_endings_both_ways() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("TYPE A", 200).await;
    let port = c.epsv().await;
    c.send_raw(b"STOR text.txt\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    data.write_all(b"one\r\ntwo\r\nbare\rcr\r\n")
        .await
        .expect("write");
    data.finish().await.expect("finish");
    assert_eq!(c.reply().await.code, 226);
    assert_eq!(
        srv.object(&srv.key("text.txt")).await.as_deref(),
        Some(&b"one\ntwo\nbare\rcr\n"[..])
    );
    let port = c.epsv().await;
    c.send_raw(b"RETR text.txt\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    assert_eq!(
        data.read_all().await.expect("read"),
        b"one\r\ntwo\r\nbare\rcr\r\n"
    );
    assert_eq!(c.reply().await.code, 226);
    // TYPE I leaves bytes alone.
    c.expect("TYPE I", 200).await;
    let port = c.epsv().await;
    c.send_raw(b"RETR text.txt\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    assert_eq!(
        data.read_all().await.expect("read"),
        b"one\ntwo\nbare\rcr\n"
    );
    assert_eq!(c.reply().await.code, 226);
    srv.stop().await;
}

#[tokio::test]
async fn stat_site_allo_and_opts_mlst() {
    let srv = TestServer::start().await;
    srv.put_object(&srv.key("d/a.txt"), b"hello").await;
    srv.put_object(&srv.key("d/b.txt"), b"hi").await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let r = c.expect("STAT d", 213).await;
    let lines: Vec<&str> = r.text.lines().collect();
    assert!(
        lines.len() == 4 && lines[1].ends_with(" a.txt") && lines[2].ends_with(" b.txt"),
        "{}",
        r.text
    );
    assert!(lines[1].starts_with(" -rw-r--r--"), "{}", r.text);
    // A file: its one line, named by its own name.
    let r = c.expect("STAT d/a.txt", 213).await;
    let lines: Vec<&str> = r.text.lines().collect();
    assert!(
        lines.len() == 3 && lines[1].ends_with(" a.txt"),
        "{}",
        r.text
    );
    c.expect("STAT nothere", 550).await;
    c.expect("STAT", 211).await;
    c.expect("SITE HELP", 214).await;
    c.expect("SITE CHMOD 600 d/a.txt", 504).await;
    c.expect("ALLO 1000", 202).await;
    let r = c.expect("OPTS MLST size;type;", 200).await;
    assert!(r.text.ends_with("MLST OPTS type;size;"), "{}", r.text);
    let r = c.expect("MLST d/a.txt", 250).await;
    assert!(r.text.contains(" type=file;size=5; /d/a.txt"), "{}", r.text);
    let feat = c.expect("FEAT", 211).await;
    assert!(
        feat.text.contains("MLST type*;size*;modify;perm;"),
        "{}",
        feat.text
    );
    srv.stop().await;
}

/// Sends `body` as the data of `command` (STOR/APPE/…) and returns the final reply code.
async fn upload(c: &mut RawClient, command: &str, body: &[u8]) -> u16 {
    let port = c.epsv().await;
    c.send_raw(format!("{command}\r\n").as_bytes()).await;
    let opening = c.reply().await;
    assert_eq!(opening.code, 150, "{command}: {}", opening.text);
    let mut data = c.data_connect(port, true).await;
    data.write_all(body).await.expect("body");
    data.finish().await.expect("finish");
    c.reply().await.code
}

/// The resume scenario: an upload cut after two complete 5 MiB parts is kept; SIZE reports the
/// bytes held; REST n + STOR sends only the rest; the object is the whole file, and nothing was
/// visible before.
#[tokio::test]
async fn interrupted_upload_resumes_with_rest_and_stor() {
    let srv = TestServer::start().await;
    let body = random_bytes(13 * 1024 * 1024 + 321);
    let (mut c, data) = start_upload(&srv, "big.bin", &body[..11 * 1024 * 1024]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    data.reset();
    assert_eq!(c.reply().await.code, 426);
    assert_eq!(
        srv.object(&srv.key("big.bin")).await,
        None,
        "nothing visible"
    );
    let held = 10 * 1024 * 1024;
    srv.eventually("two parts held", || async {
        srv.open_multipart_uploads().await == 1
    })
    .await;
    // ListParts: the two complete 5 MiB parts are kept; the partial third was dropped.
    let parts = srv.kept_parts(&srv.key("big.bin")).await;
    assert_eq!(parts, vec![5 * 1024 * 1024, 5 * 1024 * 1024]);
    eprintln!(
        "resume: sent before cut {} B, parts kept {parts:?}",
        11 * 1024 * 1024
    );
    let r = c.expect("SIZE big.bin", 213).await;
    assert!(r.text.ends_with(&format!(" {held}")), "{}", r.text);
    c.expect("REST 12345", 350).await;
    c.epsv().await;
    c.expect("STOR big.bin", 554).await; // wrong offset: refused, upload still kept
    c.expect(&format!("REST {held}"), 350).await;
    assert_eq!(upload(&mut c, "STOR big.bin", &body[held..]).await, 226);
    assert!(srv.object(&srv.key("big.bin")).await.as_deref() == Some(&body[..]));
    // Two parts kept + one new part: only the rest was uploaded again.
    let etag = srv.etag(&srv.key("big.bin")).await;
    assert!(etag.ends_with("-3"), "{etag}");
    eprintln!(
        "resume: sent after REST {} B, object ETag {etag}",
        body.len() - held
    );
    assert_eq!(srv.open_multipart_uploads().await, 0);
    let r = c.expect("HASH big.bin", 213).await;
    let want = sha256_hex(&body);
    assert!(
        r.text.contains(&format!("0-{} {want} ", body.len())),
        "{}",
        r.text
    );
    eprintln!(
        "resume: final SHA-256 {want} (source) = HASH reply: {}",
        r.text
    );
    srv.stop().await;
}

#[tokio::test]
async fn appe_adds_to_a_large_object_without_rewriting_it() {
    let srv = TestServer::start().await;
    let old = random_bytes(12 * 1024 * 1024);
    srv.put_object(&srv.key("log.bin"), &old).await;
    let more = random_bytes(6 * 1024 * 1024 + 5);
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    assert_eq!(upload(&mut c, "APPE log.bin", &more).await, 226);
    let mut expected = old.clone();
    expected.extend_from_slice(&more);
    assert!(srv.object(&srv.key("log.bin")).await.as_deref() == Some(&expected[..]));
    // APPE to a small object, and to a missing one.
    srv.put_object(&srv.key("small.txt"), b"head:").await;
    assert_eq!(upload(&mut c, "APPE small.txt", b"tail").await, 226);
    assert_eq!(
        srv.object(&srv.key("small.txt")).await.as_deref(),
        Some(&b"head:tail"[..])
    );
    assert_eq!(upload(&mut c, "APPE new.txt", b"new").await, 226);
    assert_eq!(
        srv.object(&srv.key("new.txt")).await.as_deref(),
        Some(&b"new"[..])
    );
    srv.stop().await;
}

#[tokio::test]
async fn stou_picks_a_new_name_and_says_which() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(b"STOU report.csv\r\n").await;
    let mut data = c.data_connect(port, true).await;
    let opening = c.reply().await;
    assert_eq!(opening.code, 150);
    let name = opening
        .text
        .split("FILE: /")
        .nth(1)
        .expect("FILE: name")
        .trim()
        .to_string();
    assert!(name.starts_with("report.csv."), "{name}");
    data.write_all(b"a,b\n").await.expect("body");
    data.finish().await.expect("finish");
    assert_eq!(c.reply().await.code, 226);
    assert_eq!(
        srv.object(&srv.key(&name)).await.as_deref(),
        Some(&b"a,b\n"[..])
    );
    srv.stop().await;
}

#[tokio::test]
async fn directories_rename_with_everything_under_them() {
    let srv = TestServer::start().await;
    for k in ["d/a.txt", "d/sub/b.txt", "d/sub/deeper/c.txt"] {
        srv.put_object(&srv.key(k), k.as_bytes()).await;
    }
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("RNFR d", 350).await;
    c.expect("RNTO e", 250).await;
    for k in ["a.txt", "sub/b.txt", "sub/deeper/c.txt"] {
        assert_eq!(
            srv.object(&srv.key(&format!("e/{k}"))).await.as_deref(),
            Some(format!("d/{k}").as_bytes())
        );
        assert_eq!(srv.object(&srv.key(&format!("d/{k}"))).await, None);
    }
    c.expect("CWD d", 550).await;
    c.expect("CWD e/sub/deeper", 250).await;
    srv.stop().await;

    // Above s3.max_rename_objects nothing moves.
    let srv = TestServer::start_with(|c| c.s3.max_rename_objects = 2).await;
    for k in ["d/a.txt", "d/b.txt", "d/c.txt"] {
        srv.put_object(&srv.key(k), b"x").await;
    }
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("RNFR d", 350).await;
    c.expect("RNTO e", 550).await;
    assert_eq!(srv.keys().await.len(), 3);
    assert!(srv.keys().await.iter().all(|k| k.contains("/d/")));
    srv.stop().await;
}

#[tokio::test]
async fn drop_box_user_may_add_files_but_not_overwrite_them() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, "drop", "drop-password").await;
    assert_eq!(upload(&mut c, "STOR in.csv", b"1,2\n").await, 226);
    assert_eq!(
        srv.object("partners/drop/in.csv").await.as_deref(),
        Some(&b"1,2\n"[..])
    );
    c.epsv().await;
    c.expect("STOR in.csv", 550).await;
    c.expect("APPE in.csv", 550).await;
    assert_eq!(upload(&mut c, "STOR in2.csv", b"x").await, 226);
    c.expect("RNFR in2.csv", 550).await;
    c.expect("DELE in.csv", 550).await;
    c.expect("RETR in.csv", 550).await;
    assert_eq!(
        srv.object("partners/drop/in.csv").await.as_deref(),
        Some(&b"1,2\n"[..])
    );
    srv.stop().await;
}

#[tokio::test]
async fn hash_reports_the_recorded_digest() {
    let srv = TestServer::start().await;
    let body = random_bytes(7 * 1024 * 1024 + 3);
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    assert_eq!(upload(&mut c, "STOR h.bin", &body).await, 226);
    let r = c.expect("HASH h.bin", 213).await;
    let want = sha256_hex(&body);
    assert!(
        r.text
            .starts_with(&format!("213 SHA-256 0-{} {want} /h.bin", body.len())),
        "{}",
        r.text
    );
    c.expect("OPTS HASH CRC32", 200).await;
    let r = c.expect("HASH h.bin", 213).await;
    let crc = format!("{:08x}", crc32fast::hash(&body));
    assert!(r.text.contains(&format!(" {crc} ")), "{}", r.text);
    c.expect("OPTS HASH MD4", 504).await;
    let feat = c.expect("FEAT", 211).await;
    assert!(feat.text.contains("HASH SHA-256;CRC32*;"), "{}", feat.text);
    // An object stored without metadata is hashed by reading it.
    srv.put_object(&srv.key("plain.bin"), b"abc").await;
    c.expect("OPTS HASH SHA-256", 200).await;
    let r = c.expect("HASH plain.bin", 213).await;
    assert!(r.text.contains(&sha256_hex(b"abc")), "{}", r.text);
    srv.stop().await;
}

/// RFC 7151 HOST before login, RFC 4217 §6 CCC when policy allows it, RFC 4217 §11 REIN on an
/// explicit session (back to before AUTH), over IPv4; plus the reply to a CCC in the clear.
#[tokio::test]
async fn host_ccc_and_rein_sequences() {
    let srv = TestServer::start_with(|c| c.tls.allow_ccc = true).await;
    let (mut c, _) = RawClient::connect(srv.explicit).await;
    c.expect("HOST ftp.example.com", 220).await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    c.expect("CCC", 200).await; // allowed, but only ends TLS after the reply
    c.end_tls().await;
    // The control connection is in the clear now, but TLS was negotiated first, so the
    // TLS-required policy stays met (a cleared session, not a plain one).
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    c.expect("HOST again.example.com", 503).await;
    c.expect("CCC", 533).await; // nothing to clear
    c.expect("REIN", 220).await;
    // Back to the just-connected state: TLS is required again before USER.
    c.expect(&format!("USER {USER}"), 530).await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("second handshake");
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    c.expect("REIN", 220).await;
    c.end_tls().await;
    c.expect("PWD", 530).await;
    c.expect("FEAT", 211).await;
    srv.stop().await;
}

/// RFC 2428 over IPv6: an explicit listener on [::1]; EPSV works, PASV (IPv4 only) is refused,
/// EPRT |2| to the client's own address is accepted and to another refused.
#[tokio::test]
async fn ipv6_listener_uses_epsv_and_eprt() {
    let srv = TestServer::start_with(|c| {
        c.listeners.explicit = Some("[::1]:0".parse().expect("addr"));
    })
    .await;
    assert!(srv.explicit.is_ipv6());
    let body = random_bytes(50_000);
    srv.put_object(&srv.key("v6.bin"), &body).await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("PASV", 425).await;
    c.expect("EPSV 1", 522).await;
    let port = c.epsv().await;
    c.send_raw(b"RETR v6.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    assert!(data.read_all().await.expect("read") == body);
    assert_eq!(c.reply().await.code, 226);
    c.expect("EPRT |2|::1|50000|", 200).await;
    c.expect("EPRT |2|2001:db8::1|50000|", 504).await;
    srv.stop().await;
}

/// Some clients close a download's data connection only after the `226`: the server must not
/// wait for that close before replying (it waits in the background, bounded).
#[tokio::test]
async fn transfer_complete_does_not_wait_for_the_client_to_close_the_data_connection() {
    let srv = TestServer::start().await;
    let body = random_bytes(300_000);
    srv.put_object(&format!("{HOME}r.bin"), &body).await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    for verb in ["RETR r.bin", "LIST", "NLST"] {
        let port = c.epsv().await;
        c.send_raw(format!("{verb}\r\n").as_bytes()).await;
        let mut data = c.data_connect(port, true).await;
        assert_eq!(c.reply().await.code, 150, "{verb}");
        let got = data.read_all().await.expect("read to the end");
        if verb.starts_with("RETR") {
            assert!(got == body, "RETR content");
        }
        // `data` stays open while the reply is awaited.
        let started = std::time::Instant::now();
        let done = tokio::time::timeout(Duration::from_secs(5), c.reply())
            .await
            .expect("a reply");
        assert_eq!(done.code, 226, "{verb}: {}", done.text);
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "{verb}: 226 came {:?} after the data ended",
            started.elapsed()
        );
        drop(data);
    }
    srv.stop().await;
}

/// The audit line of an upload carries the SHA-256 of what was stored, for a one-request
/// upload and a multipart one alike (README: audit fields).
#[tokio::test]
async fn upload_audit_lines_carry_the_content_sha256() {
    let (logs, _capture) = crate::common::logs::Logs::capture();
    let srv = TestServer::start().await;
    for (name, size) in [("small.bin", 100_000), ("multi.bin", 6 * 1024 * 1024 + 7)] {
        let body = random_bytes(size);
        let (mut c, data) = start_upload(&srv, name, &body).await;
        data.finish().await.expect("close");
        assert_eq!(c.reply().await.code, 226, "{name}");
        let line = logs
            .wait_for(
                &[("event", "upload"), ("path", &format!("/{name}"))],
                Duration::from_secs(10),
            )
            .await;
        assert_eq!(line["result"], "ok", "{line}");
        assert_eq!(line["sha256"], sha256_hex(&body).as_str(), "{line}");
        assert!(srv.object(&srv.key(name)).await == Some(body), "{name}");
    }
    srv.stop().await;
}

/// A refusal at `limits.max_sessions_per_user` is a `421` naming the limit, sent before the
/// connection closes, and curl sees it at once. curl maps every `421` to "(28) Timeout was
/// reached" by design (ftp.c: "We got a 421 - timeout"), so the line itself shows with `-v`;
/// the test checks it arrives and that curl gives up at once, not after a timeout.
#[tokio::test]
async fn curl_sees_the_421_of_max_sessions_per_user() {
    use crate::common::clients::{self, curl};
    let srv = TestServer::start_with(|c| c.limits.max_sessions_per_user = 1).await;
    let _held = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    for url in [
        format!("ftp://{}/", srv.explicit),
        format!("ftps://{}/", srv.implicit),
    ] {
        let started = std::time::Instant::now();
        let mut c = curl(USER, PASSWORD);
        c.args(["--max-time", "20", "-v"]).arg(&url);
        let out = clients::run(c).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().find(|l| l.starts_with("< 421"));
        assert!(
            line.is_some_and(|l| l.contains("at most 1 at once (limits.max_sessions_per_user)")),
            "{url}: curl must receive the 421 naming the limit, saw: {stderr}"
        );
        assert_eq!(out.status.code(), Some(28), "{url}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{url}: took {:?}",
            started.elapsed()
        );
    }
    srv.stop().await;
}
