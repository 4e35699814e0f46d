//! Hostile input on the wire: what an attacker on the internet sends, and the exact replies (or
//! silence) the server must answer with. Complements `protocol.rs`, which already covers overlong
//! lines, invalid UTF-8, USER/AUTH before TLS, PROT C, PORT/EPRT bounce and port stealing.
//!
//! - bytes no command may contain (NUL) and Telnet IAC sequences (RFC 959 §4.1.3, RFC 854);
//! - pipelining: commands answered in order, and nothing sent after `AUTH TLS` in the clear is
//!   executed inside the TLS session (the STARTTLS command-injection flaw, CVE-2011-0411 family);
//! - commands before login; a plain-text client and TLS < 1.2 on the TLS ports;
//! - slowloris on control and data: every wait is bounded by a `limits.*` timeout and ends with
//!   the documented reply (`421`, `426`, `425`), leaving no object and no open multipart upload;
//! - path traversal: no command names a key outside the user's home.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::clients::random_bytes;
use crate::common::raw::RawClient;
use crate::common::server::{TestServer, HOME, PASSWORD, USER};

/// Reads from `s` until the peer closes it (or `limit` passes). Returns what arrived, whether the
/// connection was closed (EOF or reset) within the limit, and when.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (got, true, start.elapsed()),
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => return (got, false, start.elapsed()),
        }
    }
}

/// Reads one CRLF-terminated line from a plain socket (the greeting, a reply).
async fn read_line(s: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut b))
            .await
            .expect("a line within 10 s")
            .expect("read");
        assert!(
            n == 1,
            "closed mid-line after {:?}",
            String::from_utf8_lossy(&line)
        );
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).trim_end().to_string()
}

/// Every key in the bucket is inside one of `allowed` prefixes.
async fn assert_keys_within(srv: &TestServer, allowed: &[&str]) {
    let keys = srv.keys().await;
    for k in &keys {
        assert!(
            allowed.iter().any(|p| k.starts_with(p)),
            "key {k:?} is outside {allowed:?}; all keys: {keys:?}"
        );
    }
}

// --- Bytes no command may contain. ---

#[tokio::test]
async fn nul_bytes_in_commands_and_paths_are_refused_and_the_session_continues() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.epsv().await;
    // A NUL in a path: RFC 959 553 (file name not allowed), or 501 (bad argument).
    for line in [
        &b"RETR a\0b\r\n"[..],
        b"STOR a\0b\r\n",
        b"MKD d\0\r\n",
        b"CWD \0\r\n",
        b"DELE x\0/../y\r\n",
    ] {
        c.send_raw(line).await;
        let r = c.reply().await;
        assert!(
            r.code == 553 || r.code == 501,
            "{:?} -> {}",
            String::from_utf8_lossy(line),
            r.text
        );
    }
    // A NUL in the verb makes it no verb at all.
    c.send_raw(b"NO\0OP\r\n").await;
    assert_eq!(c.reply().await.code, 500);
    c.send_raw(b"\0\r\n").await;
    let r = c.reply().await;
    assert!(r.code == 500 || r.code == 501, "NUL line -> {}", r.text);
    c.expect("NOOP", 200).await;
    c.expect("PWD", 257).await;
    assert!(srv.keys().await.is_empty(), "{:?}", srv.keys().await);
    srv.stop().await;
}

#[tokio::test]
async fn telnet_iac_sequences_around_commands_are_removed() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    // RFC 959 §4.1.3: IAC IP, IAC DM (Synch) before ABOR. With no transfer: 225.
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n").await;
    let r = c.reply().await;
    assert!(
        r.code == 225 || r.code == 226,
        "IAC IP IAC DM ABOR -> {}",
        r.text
    );
    // IAC NOP inside a verb, IAC WILL ECHO (three bytes) before it, IAC DONT x after it.
    c.send_raw(b"NO\xff\xf1OP\r\n").await;
    assert_eq!(c.reply().await.code, 200);
    c.send_raw(b"\xff\xfb\x01NOOP\r\n").await;
    assert_eq!(c.reply().await.code, 200);
    c.send_raw(b"PWD\xff\xfe\x01\r\n").await;
    assert_eq!(c.reply().await.code, 257);
    // IAC IAC is a literal 0xFF: "NO\xffOP" is not UTF-8 and not a verb.
    c.send_raw(b"NO\xff\xffOP\r\n").await;
    let r = c.reply().await;
    assert!(
        r.code == 500 || r.code == 501,
        "NO IAC IAC OP -> {}",
        r.text
    );
    // An IAC sequence split across two TCP segments, and a line of nothing but IAC sequences.
    c.send_raw(b"NOOP\xff").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.send_raw(b"\xf1\r\n").await;
    assert_eq!(c.reply().await.code, 200);
    c.send_raw(b"\xff\xf4\xff\xf2\r\n").await;
    assert_eq!(c.reply().await.code, 500);
    // A path with IAC IAC gets 0xFF, which is not UTF-8: refused, not a key.
    c.epsv().await;
    c.send_raw(b"STOR a\xff\xffb\r\n").await;
    assert_eq!(c.reply().await.code, 501);
    c.expect("SYST", 215).await;
    assert!(srv.keys().await.is_empty(), "{:?}", srv.keys().await);
    srv.stop().await;
}

// --- Pipelining. ---

#[tokio::test]
async fn pipelined_commands_are_answered_in_order() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.send_raw(b"NOOP\r\nPWD\r\nSYST\r\n").await;
    assert_eq!(c.reply().await.code, 200);
    assert_eq!(c.reply().await.code, 257);
    assert_eq!(c.reply().await.code, 215);
    // Bare LF endings, an unknown verb and an error in the middle do not disturb the order.
    c.send_raw(b"MKD p\nXYZZ\r\nCWD p\nCWD nothere\r\nPWD\n")
        .await;
    assert_eq!(c.reply().await.code, 257);
    assert_eq!(c.reply().await.code, 500);
    assert_eq!(c.reply().await.code, 250);
    assert_eq!(c.reply().await.code, 550);
    let pwd = c.reply().await;
    assert_eq!(pwd.code, 257);
    assert!(pwd.text.contains("\"/p\""), "{}", pwd.text);
    srv.stop().await;
}

/// STARTTLS injection: whatever follows `AUTH TLS` in the same clear-text packet could have been
/// put there by a man in the middle; it must be discarded, not run inside the TLS session.
#[tokio::test]
async fn commands_pipelined_after_auth_tls_are_not_executed_after_the_handshake() {
    let srv = TestServer::start().await;
    let (mut c, g) = RawClient::connect(srv.explicit).await;
    assert_eq!(g.code, 220);
    c.send_raw(format!("AUTH TLS\r\nUSER {USER}\r\n").as_bytes())
        .await;
    assert_eq!(c.reply().await.code, 234);
    c.handshake()
        .await
        .expect("handshake after AUTH TLS with pipelined bytes");
    // Had USER run, this PASS would log in (230). It must be out of sequence.
    let r = c.cmd(&format!("PASS {PASSWORD}")).await;
    assert_eq!(r.code, 503, "PASS after injected USER -> {}", r.text);
    // And no stray reply to the injected USER is waiting in the stream.
    let r = c.cmd("NOOP").await;
    assert_eq!(r.code, 200, "NOOP -> {}", r.text);
    // The session is usable: a real login works.
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    srv.stop().await;
}

/// 10,000 NOOPs in one write are all answered, in bounded memory (the codec hands out one line
/// at a time; replies are written as lines are read), and the session works afterwards.
#[tokio::test]
async fn ten_thousand_pipelined_commands_are_all_answered() {
    const N: usize = 10_000;
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    // Written in batches the size of a socket buffer, read back between them: the server
    // must not stop reading when replies queue up, and the client cannot deadlock the test.
    let batch = "NOOP\r\n".repeat(1000);
    let started = Instant::now();
    for _ in 0..N / 1000 {
        c.send_raw(batch.as_bytes()).await;
        for i in 0..1000 {
            let r = c.reply().await;
            assert_eq!(r.code, 200, "NOOP #{i}: {}", r.text);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{N} NOOPs took {:?}",
        started.elapsed()
    );
    c.expect("PWD", 257).await;
    c.expect("SYST", 215).await;

    // The same in a single write on a plain socket, read concurrently (no TLS needed to show it:
    // before AUTH each line is answered too, with 530 on a TLS-required listener).
    let mut tcp = TcpStream::connect(srv.explicit).await.expect("connect");
    assert!(read_line(&mut tcp).await.starts_with("220"));
    let (mut rd, mut wr) = tcp.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all("NOOP\r\n".repeat(N).as_bytes())
            .await
            .expect("write 10k NOOPs");
        wr.write_all(b"FEAT\r\n").await.expect("write FEAT");
        wr
    });
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 65536];
    let lines_wanted = |got: &[u8]| got.windows(5).any(|w| w == b"211 E"); // FEAT's last line
    while !lines_wanted(&got) {
        let n = tokio::time::timeout(Duration::from_secs(30), rd.read(&mut chunk))
            .await
            .expect("replies keep coming")
            .expect("read");
        assert!(n > 0, "closed after {} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
    let _wr = writer.await.expect("writer");
    let text = String::from_utf8_lossy(&got);
    let answered = text
        .lines()
        .filter(|l| l.starts_with("200 ") || l.starts_with("530 "))
        .count();
    assert_eq!(answered, N, "replies to {N} NOOPs");
    srv.stop().await;
}

// --- Login rules. ---

#[tokio::test]
async fn commands_that_need_a_login_get_530_before_it() {
    let srv = TestServer::start().await;
    let (mut c, _) = RawClient::connect(srv.explicit).await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    c.expect("PBSZ 0", 200).await;
    c.expect("PROT P", 200).await;
    for cmd in [
        "CWD /",
        "CDUP",
        "PWD",
        "LIST",
        "NLST",
        "MLSD",
        "RETR x",
        "STOR x",
        "MKD d",
        "RMD d",
        "DELE x",
        "RNFR x",
        "RNTO y",
        "SIZE x",
        "MDTM x",
        "MLST x",
        "STAT x",
        "PASV",
        "EPSV",
        "PORT 127,0,0,1,195,80",
        "REST 10",
        "TYPE I",
        "SITE HELP",
    ] {
        c.expect(cmd, 530).await;
    }
    // After USER but before PASS, still nothing.
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect("MKD d", 530).await;
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect("PASS wrong", 530).await;
    c.expect("STOR x", 530).await;
    c.expect("NOOP", 200).await;
    assert!(srv.keys().await.is_empty(), "{:?}", srv.keys().await);
    srv.stop().await;
}

// --- The TLS ports. ---

/// MS-FTPS §3.2.5.1: the implicit port speaks TLS first. A client that speaks FTP in the clear
/// gets no FTP reply in the clear (at most a TLS alert) and is disconnected, promptly.
#[tokio::test]
async fn plain_text_client_on_the_implicit_port_gets_no_clear_reply_and_is_closed() {
    let srv = TestServer::start_with(|c| c.limits.tls_handshake_timeout_secs = 3).await;
    let mut tcp = TcpStream::connect(srv.implicit).await.expect("connect");
    tcp.write_all(b"USER acme\r\n").await.expect("write");
    let (got, closed, after) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "still open after {after:?}");
    assert!(
        after <= Duration::from_secs(4),
        "closed only after {after:?}"
    );
    assert!(
        got.is_empty() || got[0] == 0x15,
        "expected nothing or a TLS alert, got {:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(!got
        .windows(3)
        .any(|w| w == b"220" || w == b"530" || w == b"331"));

    // A client that connects and waits for a greeting in the clear gets nothing and is dropped
    // after the handshake timeout.
    let mut tcp = TcpStream::connect(srv.implicit).await.expect("connect");
    let (got, closed, after) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "silent client still connected after {after:?}");
    assert!(
        after >= Duration::from_millis(2500) && after <= Duration::from_secs(6),
        "silent client closed after {after:?} (handshake timeout 3 s)"
    );
    assert!(
        got.is_empty() || got[0] == 0x15,
        "expected nothing or a TLS alert, got {:?}",
        String::from_utf8_lossy(&got)
    );
    srv.stop().await;
}

/// A TLS ClientHello offering at most `version` (`[3, 1]` = TLS 1.0, `[3, 2]` = 1.1,
/// `[3, 3]` = 1.2), with the extensions a modern client sends (groups, point formats, signature
/// algorithms) and ECDHE suites usable with any of the server's certificate types.
fn client_hello(version: [u8; 2]) -> Vec<u8> {
    fn ext(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x5a; 32]); // random
    body.push(0); // no session id
    let suites: [u16; 12] = [
        0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, // TLS 1.2 AEAD
        0xc009, 0xc013, 0xc00a, 0xc014, 0x002f, 0x0035, // TLS 1.0/1.1 CBC
    ];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut exts = Vec::new();
    ext(&mut exts, 0x000a, &[0, 6, 0, 0x1d, 0, 0x17, 0, 0x18]); // x25519, P-256, P-384
    ext(&mut exts, 0x000b, &[1, 0]); // uncompressed points
    ext(
        &mut exts,
        0x000d,
        &[0, 12, 4, 3, 5, 3, 8, 4, 8, 5, 4, 1, 5, 1], // ECDSA, RSA-PSS, RSA-PKCS1
    );
    ext(&mut exts, 0xff01, &[0]); // renegotiation_info, empty
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1]; // ClientHello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1]; // handshake record, TLS 1.0 record version
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend_from_slice(&hs);
    record
}

/// Sends `hello` on `tcp` and returns the first bytes the server answers with.
async fn server_answer(tcp: &mut TcpStream, hello: &[u8]) -> Vec<u8> {
    tcp.write_all(hello).await.expect("send ClientHello");
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while got.len() < 7 {
        match tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("no answer to the ClientHello within 10 s"),
        }
    }
    got
}

fn assert_protocol_version_alert(got: &[u8], what: &str) {
    // Record type alert (21), length 2, level fatal (2), description protocol_version (70).
    assert!(
        got.len() >= 7 && got[0] == 0x15 && got[3..5] == [0, 2] && got[5..7] == [2, 70],
        "{what}: expected a fatal protocol_version alert, got {got:02x?}"
    );
}

/// The server never negotiates below TLS 1.2: a TLS 1.0 or 1.1 ClientHello gets a fatal
/// protocol_version alert, on the implicit port and after AUTH TLS; the same hello offering 1.2
/// gets a ServerHello (so the refusal is about the version, not a malformed hello).
#[tokio::test]
async fn tls_1_0_and_1_1_client_hellos_are_refused() {
    let srv = TestServer::start().await;
    for (version, name) in [([3, 1], "TLS 1.0"), ([3, 2], "TLS 1.1")] {
        let mut tcp = TcpStream::connect(srv.implicit).await.expect("connect");
        let got = server_answer(&mut tcp, &client_hello(version)).await;
        assert_protocol_version_alert(&got, &format!("implicit, {name}"));
        let (_, closed, _) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
        assert!(
            closed,
            "implicit, {name}: connection kept open after the alert"
        );

        let mut tcp = TcpStream::connect(srv.explicit).await.expect("connect");
        assert!(read_line(&mut tcp).await.starts_with("220"));
        tcp.write_all(b"AUTH TLS\r\n").await.expect("write");
        assert!(read_line(&mut tcp).await.starts_with("234"));
        let got = server_answer(&mut tcp, &client_hello(version)).await;
        assert_protocol_version_alert(&got, &format!("explicit, {name}"));
    }
    // Control: the same hello with 1.2 is answered with a ServerHello (handshake record,
    // handshake type 2).
    let mut tcp = TcpStream::connect(srv.implicit).await.expect("connect");
    let got = server_answer(&mut tcp, &client_hello([3, 3])).await;
    assert!(
        got.len() >= 6 && got[0] == 0x16 && got[5] == 2,
        "TLS 1.2 hello: expected a ServerHello, got {got:02x?}"
    );
    srv.stop().await;
}

/// The same check with a real client, OpenSSL's `s_client`, when it is installed: at security
/// level 0 it can offer TLS 1.0/1.1, and the failure must be the server's protocol_version
/// alert, not a refusal on the client's side.
#[tokio::test]
async fn openssl_s_client_cannot_negotiate_tls_1_0_or_1_1() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("openssl not installed: covered by tls_1_0_and_1_1_client_hellos_are_refused");
        return;
    }
    let srv = TestServer::start().await;
    for flag in ["-tls1", "-tls1_1"] {
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::process::Command::new("openssl")
                .args(["s_client", "-connect"])
                .arg(srv.implicit.to_string())
                .args([
                    flag,
                    "-cipher",
                    "DEFAULT:@SECLEVEL=0",
                    "-servername",
                    "localhost",
                ])
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("openssl s_client finishes")
        .expect("run openssl");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{flag}: handshake succeeded:\n{all}");
        // "SSL alert number N" is how OpenSSL reports an alert it received, as opposed to a
        // refusal of its own ("no protocols available"). rustls answers OpenSSL's TLS 1.0/1.1
        // hello with handshake_failure (40): such a hello has no signature_algorithms
        // extension, checked before the version. Either way no cipher was agreed.
        assert!(
            all.contains("SSL alert number 70") || all.contains("SSL alert number 40"),
            "{flag}: expected an alert from the server:\n{all}"
        );
        assert!(
            all.contains("Cipher is (NONE)") || !all.contains("Cipher is"),
            "{flag}: a cipher was negotiated:\n{all}"
        );
        assert!(!all.contains("220 "), "{flag}: got an FTP greeting:\n{all}");
    }
    srv.stop().await;
}

// --- Slowloris on the control connection. ---

/// One byte a second never makes a line: the idle timeout counts from the last complete
/// command, not the last byte, so the client is closed with 421.
#[tokio::test]
async fn control_line_trickled_byte_by_byte_is_closed_with_421() {
    let srv = TestServer::start_with(|c| c.limits.control_idle_timeout_secs = 2).await;
    let mut tcp = TcpStream::connect(srv.explicit).await.expect("connect");
    assert!(read_line(&mut tcp).await.starts_with("220"));
    let (mut rd, mut wr) = tcp.into_split();
    let trickle = tokio::spawn(async move {
        for b in b"NOOP NOOP NOOP NOOP".iter() {
            if wr.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let start = Instant::now();
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(15), rd.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    let after = start.elapsed();
    trickle.abort();
    let text = String::from_utf8_lossy(&got);
    assert!(
        closed,
        "trickling client still connected after {after:?}: {text:?}"
    );
    assert!(text.starts_with("421"), "expected 421, got {text:?}");
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_secs(5),
        "closed after {after:?} (idle timeout 2 s)"
    );
    srv.stop().await;
}

#[tokio::test]
async fn silent_control_connections_are_closed_with_421() {
    let srv = TestServer::start_with(|c| c.limits.control_idle_timeout_secs = 2).await;
    // Connected, never says anything.
    let (mut c, g) = RawClient::connect(srv.explicit).await;
    assert_eq!(g.code, 220);
    let start = Instant::now();
    let r = c.try_reply().await.expect("a 421 before the close");
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(
        start.elapsed() <= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(c.try_reply().await.is_none(), "still open after 421");

    // Over TLS and logged in, the same after the last command.
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.expect("NOOP", 200).await; // a complete command resets the timer
    let start = Instant::now();
    let r = c.try_reply().await.expect("a 421 before the close");
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(
        start.elapsed() >= Duration::from_millis(1500) && start.elapsed() <= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(c.try_reply().await.is_none(), "still open after 421");
    srv.stop().await;
}

/// A TLS handshake that never completes (nothing sent, or half a ClientHello) is dropped after
/// `limits.tls_handshake_timeout_secs`, on the implicit port and after AUTH TLS.
#[tokio::test]
async fn unfinished_tls_handshakes_are_dropped_after_the_handshake_timeout() {
    let srv = TestServer::start_with(|c| {
        c.limits.tls_handshake_timeout_secs = 2;
        c.limits.control_idle_timeout_secs = 60;
    })
    .await;
    let hello = client_hello([3, 3]);
    for partial in [&hello[..0], &hello[..5], &hello[..hello.len() - 1]] {
        let mut tcp = TcpStream::connect(srv.implicit).await.expect("connect");
        tcp.write_all(partial).await.expect("write");
        let (got, closed, after) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
        assert!(
            closed,
            "implicit, {} bytes of hello: open after {after:?}",
            partial.len()
        );
        assert!(
            after >= Duration::from_millis(1500) && after <= Duration::from_secs(5),
            "implicit, {} bytes of hello: closed after {after:?} (timeout 2 s)",
            partial.len()
        );
        assert!(
            got.is_empty() || got[0] == 0x15,
            "implicit: expected nothing or an alert, got {got:02x?}"
        );
    }
    let mut tcp = TcpStream::connect(srv.explicit).await.expect("connect");
    assert!(read_line(&mut tcp).await.starts_with("220"));
    tcp.write_all(b"AUTH TLS\r\n").await.expect("write");
    assert!(read_line(&mut tcp).await.starts_with("234"));
    tcp.write_all(&hello[..5]).await.expect("write");
    let (_, closed, after) = read_until_closed(&mut tcp, Duration::from_secs(10)).await;
    assert!(closed, "AUTH TLS without a handshake: open after {after:?}");
    assert!(
        after <= Duration::from_secs(5),
        "AUTH TLS without a handshake: closed after {after:?} (timeout 2 s)"
    );
    srv.stop().await;
}

// --- Slowloris on data connections. ---

/// An upload that sends some bytes and then nothing fails after `limits.data_idle_timeout_secs`
/// with 426; the object is not created and, without a resume window (`s3.resume_window_secs =
/// 0`), the multipart upload is aborted. (With one, the parts are kept on purpose for REST +
/// STOR: `protocol::interrupted_upload_resumes_with_rest_and_stor`.)
#[tokio::test]
async fn stalled_upload_fails_with_426_and_leaves_nothing() {
    let srv = TestServer::start_with(|c| {
        c.limits.data_idle_timeout_secs = 2;
        c.s3.resume_window_secs = 0;
    })
    .await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(b"STOR stall.bin\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    // More than one part (5 MiB in the tests), so a multipart upload is open when it stalls.
    data.write_all(&random_bytes(6 * 1024 * 1024))
        .await
        .expect("first bytes");
    let start = Instant::now();
    let r = c.reply().await;
    let after = start.elapsed();
    assert_eq!(r.code, 426, "stalled upload -> {}", r.text);
    assert!(
        after <= Duration::from_secs(8),
        "426 only after {after:?} (idle timeout 2 s)"
    );
    assert_eq!(srv.object(&srv.key("stall.bin")).await, None);
    srv.eventually("no open multipart upload", || async {
        srv.open_multipart_uploads().await == 0
    })
    .await;
    drop(data);
    c.expect("NOOP", 200).await;
    assert!(srv.keys().await.is_empty(), "{:?}", srv.keys().await);
    srv.stop().await;
}

/// A download whose client stops reading fails after the data idle timeout with 426, and the
/// control connection goes on.
#[tokio::test]
async fn stalled_download_fails_with_426() {
    let srv = TestServer::start_with(|c| c.limits.data_idle_timeout_secs = 2).await;
    // Larger than every socket and TLS buffer between the server and the client.
    srv.put_object(&srv.key("big.bin"), &random_bytes(40 * 1024 * 1024))
        .await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(b"RETR big.bin\r\n").await;
    let data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    let start = Instant::now();
    let r = c.reply().await;
    let after = start.elapsed();
    assert_eq!(r.code, 426, "stalled download -> {}", r.text);
    assert!(after <= Duration::from_secs(10), "426 only after {after:?}");
    drop(data);
    c.expect("NOOP", 200).await;
    srv.stop().await;
}

/// PASV/EPSV then a transfer command, and the client never connects (or connects and never
/// starts TLS): 425 after `limits.data_connect_timeout_secs`, and the session goes on.
#[tokio::test]
async fn data_connection_never_opened_fails_with_425_after_the_connect_timeout() {
    let srv = TestServer::start_with(|c| {
        c.limits.data_connect_timeout_secs = 2;
        c.s3.resume_window_secs = 0;
    })
    .await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;

    c.expect("PASV", 227).await;
    c.send_raw(b"LIST\r\n").await;
    let start = Instant::now();
    let mut r = c.reply().await;
    if r.code == 150 {
        r = c.reply().await;
    }
    let after = start.elapsed();
    assert_eq!(r.code, 425, "PASV never connected -> {}", r.text);
    assert!(
        after >= Duration::from_millis(1500) && after <= Duration::from_secs(6),
        "425 after {after:?} (connect timeout 2 s)"
    );
    c.expect("NOOP", 200).await;

    // An upload: no object may appear.
    c.epsv().await;
    c.send_raw(b"STOR never.bin\r\n").await;
    let mut r = c.reply().await;
    if r.code == 150 {
        r = c.reply().await;
    }
    assert_eq!(r.code, 425, "EPSV + STOR never connected -> {}", r.text);
    assert_eq!(srv.object(&srv.key("never.bin")).await, None);

    // TCP connected, TLS never started: the handshake is part of the connect timeout.
    let port = c.epsv().await;
    c.send_raw(b"NLST\r\n").await;
    let _tcp = TcpStream::connect((srv.explicit.ip(), port))
        .await
        .expect("tcp connect");
    let start = Instant::now();
    let mut r = c.reply().await;
    if r.code == 150 {
        r = c.reply().await;
    }
    let after = start.elapsed();
    assert_eq!(r.code, 425, "data TCP without TLS -> {}", r.text);
    assert!(
        after <= Duration::from_secs(6),
        "{} after {after:?}",
        r.code
    );
    c.expect("NOOP", 200).await;
    srv.eventually("no open multipart upload", || async {
        srv.open_multipart_uploads().await == 0
    })
    .await;
    srv.stop().await;
}

// --- Path attacks. ---

#[tokio::test]
async fn path_traversal_attempts_name_no_key_outside_the_home() {
    let srv = TestServer::start().await;
    srv.put_object("partners/other/secret.txt", b"not yours")
        .await;
    srv.put_object("top.txt", b"bucket root").await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;

    // Backslashes are refused, not read as separators.
    c.expect("CWD ..\\..", 553).await;
    c.expect("CWD ..\\..\\other", 553).await;
    c.expect("MKD ..\\x", 553).await;
    // `..` stops at the home: /../../etc/passwd is /etc/passwd of the home, which is not there.
    c.epsv().await;
    c.expect("RETR /../../etc/passwd", 550).await;
    c.expect("SIZE ../../../top.txt", 550).await;
    c.expect("DELE ../../top.txt", 550).await;
    c.expect("DELE /../other/secret.txt", 550).await;
    c.expect("RNFR ../other/secret.txt", 550).await;
    // MKD a/../../b is /b of the home.
    c.expect("MKD a/../../b", 257).await;
    c.expect("CWD /b/../../../b", 250).await;
    let pwd = c.expect("PWD", 257).await;
    assert!(pwd.text.contains("\"/b\""), "{}", pwd.text);
    c.expect("CWD /", 250).await;
    // Percent-encoding is not decoded: %2e%2e is a name like any other.
    c.expect("CWD %2e%2e", 550).await;
    c.expect("RETR %2e%2e/%2e%2e/top.txt", 550).await;
    c.expect("RETR ..%2f..%2ftop.txt", 550).await;
    c.expect("MKD %2e%2e", 257).await;
    c.expect("CWD %2e%2e", 250).await;
    let pwd = c.expect("PWD", 257).await;
    assert!(pwd.text.contains("\"/%2e%2e\""), "{}", pwd.text);
    c.expect("CWD /", 250).await;
    // A file renamed or stored to ../../x lands in the home's /x.
    let port = c.epsv().await;
    c.send_raw(b"STOR ../../../top.txt\r\n").await;
    let mut data = c.data_connect(port, true).await;
    assert_eq!(c.reply().await.code, 150);
    data.write_all(b"mine").await.expect("write");
    data.finish().await.expect("finish");
    assert_eq!(c.reply().await.code, 226);
    c.expect("MKD other", 257).await;
    c.expect("RNFR /top.txt", 350).await;
    c.expect("RNTO ../../../other/secret.txt", 250).await;

    assert_eq!(
        srv.object("top.txt").await.as_deref(),
        Some(&b"bucket root"[..])
    );
    assert_eq!(
        srv.object("partners/other/secret.txt").await.as_deref(),
        Some(&b"not yours"[..])
    );
    assert_eq!(
        srv.object(&srv.key("other/secret.txt")).await.as_deref(),
        Some(&b"mine"[..])
    );
    assert_keys_within(&srv, &[HOME, "partners/other/secret.txt", "top.txt"]).await;
    c.expect("NOOP", 200).await;
    srv.stop().await;
}

/// A 4,000-character path fits in a control line (4,096 bytes by default) but not in an S3 key
/// (1,024 bytes): every command refuses it with 553 (RFC 959: file name not allowed) before
/// touching the store, nothing is stored under another name, and the session goes on.
#[tokio::test]
async fn very_long_paths_are_refused_with_553() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let segment = "d".repeat(99);
    let deep = vec![segment.as_str(); 40].join("/"); // 3,999 characters
    let flat = "f".repeat(4000);
    c.epsv().await;
    for path in [&deep, &flat] {
        for verb in [
            "CWD", "SIZE", "MDTM", "MKD", "RMD", "DELE", "RNFR", "RETR", "STOR",
        ] {
            let r = c.cmd(&format!("{verb} {path}")).await;
            assert_eq!(
                r.code,
                553,
                "{verb} of {} characters -> {}",
                path.len(),
                r.text
            );
        }
        c.expect("NOOP", 200).await;
    }
    // Past the line limit: 500, and still no key.
    let r = c.cmd(&format!("MKD {}", "g".repeat(5000))).await;
    assert_eq!(r.code, 500, "{}", r.text);
    assert!(srv.keys().await.is_empty(), "{:?}", srv.keys().await);
    assert_eq!(srv.open_multipart_uploads().await, 0);
    c.expect("PWD", 257).await;
    srv.stop().await;
}
