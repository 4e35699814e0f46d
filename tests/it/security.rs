//! Findings of the hostile review (issue 12): login throttling under bursts, lockouts an
//! attacker cannot aim, control characters in names, and the smaller ones. Every test drives
//! the real server over real TLS (raw client, or a real FTP client) against SeaweedFS.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::sync::Barrier;

use crate::common::{
    logs::Logs,
    raw::RawClient,
    server::{TestServer, PASSWORD, USER},
};
use crate::proxy::v2_header;

/// Audit lines of failed logins for which a password was really checked (`bad_credentials`),
/// and of those refused unchecked (`throttled`).
fn checked_and_refused(logs: &Logs) -> (usize, usize) {
    let checked = logs
        .matching(&[("event", "login"), ("reason", "bad_credentials")])
        .len();
    let refused = logs
        .matching(&[("event", "login"), ("reason", "throttled")])
        .len();
    (checked, refused)
}

/// Explicit FTPS up to the `331` of USER, from the address the PROXY header names (`from`),
/// or from the test's own address.
async fn at_password_prompt(addr: SocketAddr, from: Option<&str>, user: &str) -> RawClient {
    let (mut c, g) = match from {
        Some(from) => {
            let header = v2_header(from.parse().expect("addr"), addr);
            RawClient::connect_after(addr, &header).await
        }
        None => RawClient::connect(addr).await,
    };
    assert_eq!(g.code, 220);
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    c.expect(&format!("USER {user}"), 331).await;
    c
}

/// The code PASS gets after USER `user` from `from`.
async fn login_code(addr: SocketAddr, from: Option<&str>, user: &str, password: &str) -> u16 {
    let mut c = at_password_prompt(addr, from, user).await;
    c.cmd(&format!("PASS {password}")).await.code
}

/// Item 1: the limit holds under a burst. 100 wrong passwords sent at once from one address,
/// then the right one 50 ms later: at most `max_failures` passwords are checked, all the
/// others get the same `530` unchecked, and the right password is refused (the address is
/// banned).
#[tokio::test]
async fn a_burst_of_wrong_passwords_gets_at_most_max_failures_checks() {
    const BURST: usize = 100;
    const MAX_FAILURES: u32 = 5;
    let srv = TestServer::start_with(|c| {
        c.auth.max_failures = MAX_FAILURES;
        c.limits.max_sessions_per_ip = BURST + 10;
    })
    .await;
    let (logs, _guard) = Logs::capture();
    let addr = srv.explicit;
    let ready = Arc::new(Barrier::new(BURST + 1));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..=BURST {
        let ready = ready.clone();
        tasks.spawn(async move {
            let mut c = at_password_prompt(addr, None, USER).await;
            c.set_reply_timeout(Duration::from_secs(120));
            ready.wait().await;
            let right = i == BURST;
            if right {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let pw = if right { PASSWORD } else { "wrong" };
            (right, c.cmd(&format!("PASS {pw}")).await.code)
        });
    }
    let mut right_code = 0;
    while let Some(done) = tasks.join_next().await {
        let (right, code) = done.expect("login task");
        if right {
            right_code = code;
        } else {
            assert_eq!(code, 530, "a wrong password was not refused");
        }
    }
    let (checked, refused) = checked_and_refused(&logs);
    println!(
        "burst: {BURST} wrong passwords sent at once from one address, {checked} checked, \
         {refused} refused unchecked; the right one got {right_code}"
    );
    assert!(
        checked <= MAX_FAILURES as usize,
        "{checked} passwords checked, max_failures is {MAX_FAILURES}"
    );
    assert_eq!(right_code, 530, "the right password got in during the ban");
    srv.stop().await;
}

/// Item 1, the friendly side: logins with the right password that arrive together (a client
/// opening parallel sessions) all get in, however many there are.
#[tokio::test]
async fn parallel_right_logins_from_one_address_all_get_in() {
    const PARALLEL: usize = 12;
    let srv = TestServer::start_with(|c| c.auth.max_failures = 3).await;
    let addr = srv.explicit;
    let ready = Arc::new(Barrier::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL {
        let ready = ready.clone();
        tasks.spawn(async move {
            let mut c = at_password_prompt(addr, None, USER).await;
            c.set_reply_timeout(Duration::from_secs(60));
            ready.wait().await;
            c.cmd(&format!("PASS {PASSWORD}")).await.code
        });
    }
    while let Some(done) = tasks.join_next().await {
        assert_eq!(done.expect("login task"), 230);
    }
    srv.stop().await;
}

/// Item 3: a valid account does not reset its address's failures. Guesses at other names from
/// one address, each followed by a successful login of `other`, are still counted: after
/// `max_failures` of them the address is refused, `other` included.
#[tokio::test]
async fn successes_of_one_user_do_not_reset_the_failures_of_the_address() {
    let srv = TestServer::start_with(|c| c.auth.max_failures = 3).await;
    let (logs, _guard) = Logs::capture();
    let addr = srv.explicit;
    for i in 1..=2 {
        assert_eq!(
            login_code(addr, None, &format!("ghost{i}"), "guess").await,
            530
        );
        assert_eq!(login_code(addr, None, "other", "other-password").await, 230);
    }
    assert_eq!(login_code(addr, None, "ghost3", "guess").await, 530);
    // The fourth guess is not checked, and the address is refused for everyone.
    assert_eq!(login_code(addr, None, "ghost4", "guess").await, 530);
    let (checked, refused) = checked_and_refused(&logs);
    println!("guesses interleaved with successes: {checked} checked, {refused} refused");
    assert_eq!(checked, 3);
    assert_eq!(refused, 1);
    assert_eq!(login_code(addr, None, "other", "other-password").await, 530);
    srv.stop().await;
}

fn proxied(c: &mut ftps_s3::config::Config) {
    c.listeners.proxy_protocol = true;
    c.listeners.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    c.auth.max_failures = 3;
}

/// Item 4, the default policy: wrong passwords for `acme` from one address ban that address,
/// not the user: `acme` still logs in from an address it used before, whatever the number of
/// guessers.
#[tokio::test]
async fn guessing_a_user_name_does_not_lock_the_user_out_of_known_addresses() {
    let srv = TestServer::start_with(proxied).await;
    let addr = srv.explicit;
    let home = Some("198.51.100.10:1");
    assert_eq!(login_code(addr, home, USER, PASSWORD).await, 230);
    for from in ["203.0.113.1:1", "203.0.113.2:1"] {
        for _ in 0..6 {
            assert_eq!(login_code(addr, Some(from), USER, "wrong").await, 530);
        }
    }
    assert_eq!(login_code(addr, home, USER, PASSWORD).await, 230);
    srv.stop().await;
}

/// Item 4, the other side of the default: guessing one account from many addresses stops
/// after `max_failures` in all, so a new address is refused even with the right password.
/// `lockout = "address"` lets it in (and leaves distributed guessing to the address budget);
/// `lockout = "user_and_address"` bans the user everywhere, known addresses included.
#[tokio::test]
async fn lockout_policies_decide_who_a_guessed_user_name_locks_out() {
    use ftps_s3::auth::Lockout;
    for (lockout, known_code, new_code) in [
        (Lockout::UserAtNewAddresses, 230, 530),
        (Lockout::Address, 230, 230),
        (Lockout::UserAndAddress, 530, 530),
    ] {
        let srv = TestServer::start_with(|c| {
            proxied(c);
            c.auth.lockout = lockout;
        })
        .await;
        let addr = srv.explicit;
        let home = Some("198.51.100.10:1");
        assert_eq!(login_code(addr, home, USER, PASSWORD).await, 230);
        // Three guessers, one wrong password each: the user's budget (3) is spent, no
        // address's is.
        for from in ["203.0.113.1:1", "203.0.113.2:1", "203.0.113.3:1"] {
            assert_eq!(login_code(addr, Some(from), USER, "wrong").await, 530);
        }
        let known = login_code(addr, home, USER, PASSWORD).await;
        let new = login_code(addr, Some("198.51.100.20:1"), USER, PASSWORD).await;
        println!("lockout {lockout:?}: known address {known}, new address {new}");
        assert_eq!((known, new), (known_code, new_code), "{lockout:?}");
        srv.stop().await;
    }
}

/// A listing command's data (LIST, NLST, MLSD) over a passive TLS data connection.
async fn listing(c: &mut RawClient, command: &str) -> Vec<u8> {
    let port = c.epsv().await;
    c.send_raw(format!("{command}\r\n").as_bytes()).await;
    assert_eq!(c.reply().await.code, 150, "{command}");
    let mut data = c.data_connect(port, true).await;
    let bytes = data.read_all().await.expect("listing");
    assert_eq!(c.reply().await.code, 226, "{command}");
    bytes
}

/// Whether `bytes` has a CR or LF that is not part of a CRLF line end, or any other control
/// character.
fn has_raw_control(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let body = text.replace("\r\n", "");
    body.chars().any(char::is_control)
}

/// Item 2: control characters (C0, DEL, C1) in any path argument get `553`, and nothing is
/// created; the session goes on.
#[tokio::test]
async fn control_characters_in_path_arguments_are_refused_with_553() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.expect("MKD ok", 257).await;
    for name in [
        "a\rb",
        "tab\there",
        "esc\x1b[2Jx",
        "del\x7fx",
        "c1\u{85}x",
        "bell\x07",
    ] {
        for command in ["MKD", "CWD", "DELE", "RMD", "SIZE", "MDTM", "MLST", "RNFR"] {
            let reply = c.cmd(&format!("{command} {name}")).await;
            assert_eq!(reply.code, 553, "{command} {name:?}: {}", reply.text);
        }
        c.expect("RNFR ok", 350).await;
        let reply = c.cmd(&format!("RNTO {name}")).await;
        assert_eq!(reply.code, 553, "RNTO {name:?}: {}", reply.text);
        c.epsv().await;
        let reply = c.cmd(&format!("STOR {name}")).await;
        assert_eq!(reply.code, 553, "STOR {name:?}: {}", reply.text);
    }
    c.expect("NOOP", 200).await;
    let keys = srv.keys().await;
    assert!(
        keys.iter().all(|k| !k.chars().any(char::is_control)),
        "{keys:?}"
    );
    println!("control characters refused with 553 in every path argument; keys: {keys:?}");
    srv.stop().await;
}

/// Item 2: keys written to the bucket directly with control characters in their names are
/// left out of every listing (LIST, NLST, MLSD, STAT), consistently; no listing or reply
/// carries a raw CR/LF or other control character. A FileZilla user browsing the folder sees
/// no `FAKE-invoice.pdf`.
#[tokio::test]
async fn keys_with_control_characters_never_reach_a_listing_raw() {
    let srv = TestServer::start().await;
    let fake = "x\r\n-rw-r--r--    1 ftp ftp 1 Nov 25 14:03 FAKE-invoice.pdf";
    for name in [
        "real.txt",
        fake,
        "cr\ronly",
        "lf\nonly",
        "del\x7fx",
        "c1\u{85}x",
        "dir\rx/inside.txt",
    ] {
        srv.put_object(&srv.key(name), b"1").await;
    }
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    for command in ["LIST", "NLST", "MLSD", "LIST -a"] {
        let bytes = listing(&mut c, command).await;
        let text = String::from_utf8_lossy(&bytes);
        println!("{command}: {text:?}");
        assert!(!has_raw_control(&bytes), "{command}: {text:?}");
        assert!(!text.contains("FAKE-invoice"), "{command}: {text:?}");
        assert!(text.contains("real.txt"), "{command}: {text:?}");
        assert_eq!(text.lines().count(), 1, "{command}: {text:?}");
    }
    let stat = c.cmd("STAT .").await;
    println!("STAT: {:?}", stat.text);
    assert_eq!(stat.code, 213);
    assert!(stat.text.contains("real.txt"), "{}", stat.text);
    assert!(!stat.text.contains("FAKE-invoice"), "{}", stat.text);
    assert!(!stat.text.contains("only"), "{}", stat.text);
    assert!(
        !stat.text.chars().any(|ch| ch.is_control() && ch != '\n'),
        "{:?}",
        stat.text
    );
    srv.stop().await;
}

/// Item 5: RNTO and MKD into a directory that does not exist get `550`, as STOR does, and
/// create nothing; into one that exists they work.
#[tokio::test]
async fn rnto_and_mkd_need_an_existing_parent_like_stor() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    srv.put_object(&srv.key("a.txt"), b"abc").await;
    c.epsv().await;
    let stor = c.cmd("STOR missing/x.txt").await;
    let mkd = c.cmd("MKD missing/sub").await;
    c.expect("RNFR a.txt", 350).await;
    let rnto = c.cmd("RNTO missing/b.txt").await;
    println!(
        "STOR {} / MKD {} / RNTO {} into a missing directory",
        stor.code, mkd.code, rnto.code
    );
    assert_eq!(stor.code, 550, "{}", stor.text);
    assert_eq!(mkd.code, 550, "{}", mkd.text);
    assert_eq!(rnto.code, 550, "{}", rnto.text);
    assert_eq!(srv.keys().await, vec![srv.key("a.txt")]);
    // A file is not a directory either.
    assert_eq!(c.cmd("MKD a.txt/sub").await.code, 550);
    c.expect("RNFR a.txt", 350).await;
    assert_eq!(c.cmd("RNTO a.txt/b.txt").await.code, 550);
    // With the parent made, both work.
    c.expect("MKD d", 257).await;
    c.expect("MKD d/sub", 257).await;
    c.expect("RNFR a.txt", 350).await;
    c.expect("RNTO d/b.txt", 250).await;
    assert_eq!(
        srv.object(&srv.key("d/b.txt")).await.as_deref(),
        Some(&b"abc"[..])
    );
    srv.stop().await;
}

/// The `bytes` of the last audit line of `event` (`upload`, `download`) with `result`.
async fn audited_bytes(logs: &Logs, event: &str, result: &str) -> u64 {
    let line = logs
        .wait_for(
            &[("event", event), ("result", result)],
            Duration::from_secs(10),
        )
        .await;
    line.get("bytes").and_then(|b| b.as_u64()).unwrap_or(0)
}

const MIB: usize = 1 << 20;

/// Item 6: an upload cut off by ABOR is audited (and counted in metrics, from the same
/// figure) with the bytes that really came over the data connection, not 0.
#[tokio::test]
async fn an_aborted_upload_reports_the_bytes_it_moved() {
    let srv = TestServer::start().await;
    let (logs, _guard) = Logs::capture();
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.set_reply_timeout(Duration::from_secs(60));
    let port = c.epsv().await;
    c.send_raw(b"STOR cut.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    let sent = 12 * MIB;
    data.write_all(&vec![7u8; sent]).await.expect("upload");
    // Let the server read what the kernel holds, then abort.
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.send_raw(b"ABOR\r\n").await;
    let first = c.reply().await.code;
    assert_eq!(first, 426);
    assert_eq!(c.reply().await.code, 226);
    data.reset();
    let bytes = audited_bytes(&logs, "upload", "aborted").await;
    println!("upload: {sent} bytes sent, then ABOR; audited bytes {bytes}");
    assert!(
        bytes >= (sent - MIB) as u64 && bytes <= sent as u64,
        "audited {bytes}, sent {sent}"
    );
    // Cut by a reset (what a killed client leaves): failed, with its bytes too.
    let port = c.epsv().await;
    c.send_raw(b"STOR reset.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    let sent = 6 * MIB;
    data.write_all(&vec![7u8; sent]).await.expect("upload");
    tokio::time::sleep(Duration::from_millis(800)).await;
    data.reset();
    assert_eq!(c.reply().await.code, 426);
    let bytes = audited_bytes(&logs, "upload", "failed").await;
    println!("upload: {sent} bytes sent, then a reset; audited bytes {bytes}");
    assert!(
        bytes >= (sent - MIB) as u64 && bytes <= sent as u64,
        "audited {bytes}, sent {sent}"
    );
    srv.stop().await;
}

/// Issue 15 item 3: an interrupted transfer's audit `reason` says what interrupted it — `abor`
/// for the client's ABOR, `shutdown` when the grace period ended it, `control_connection_lost`
/// when the client's control connection went away (all three were `abor` before).
#[tokio::test]
async fn an_interrupted_upload_is_audited_with_what_interrupted_it() {
    let srv = TestServer::start_with(|c| c.shutdown.grace_seconds = 1).await;
    let (logs, _guard) = Logs::capture();
    let reason_of = async |path: &str| {
        let line = logs
            .wait_for(
                &[("event", "upload"), ("result", "aborted"), ("path", path)],
                Duration::from_secs(20),
            )
            .await;
        let reason = line.get("reason").and_then(|r| r.as_str()).unwrap_or("");
        println!("{path}: audited reason {reason:?}");
        reason.to_string()
    };

    // The client sends ABOR.
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(b"STOR abor.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(&[1u8; 1000]).await.expect("upload");
    c.send_raw(b"ABOR\r\n").await;
    assert_eq!(c.reply().await.code, 426);
    assert_eq!(c.reply().await.code, 226);
    data.reset();
    assert_eq!(reason_of("/abor.bin").await, "abor");

    // The control connection goes away mid-upload.
    let port = c.epsv().await;
    c.send_raw(b"STOR lost.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(&[1u8; 1000]).await.expect("upload");
    drop(c);
    assert_eq!(reason_of("/lost.bin").await, "control_connection_lost");
    data.reset();

    // The shutdown grace period ends an upload the client does not finish.
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.set_reply_timeout(Duration::from_secs(20));
    let port = c.epsv().await;
    c.send_raw(b"STOR shut.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(&[1u8; 1000]).await.expect("upload");
    srv.begin_shutdown();
    let r = c.reply().await;
    assert_eq!(r.code, 426, "{}", r.text);
    assert_eq!(reason_of("/shut.bin").await, "shutdown");
    data.reset();
    srv.stop().await;
}

/// Item 6: a download the client cuts by ABOR after 10 MiB reports what its data connection
/// carried: at least the 10 MiB read, and not the whole file (what the kernel's socket
/// buffers held when the ABOR came is counted too: it left the server). A ranged download
/// (REST n) reports the bytes sent, not the object's size.
#[tokio::test]
async fn a_cut_or_ranged_download_reports_the_bytes_it_moved() {
    let srv = TestServer::start().await;
    let size = 64 * MIB;
    srv.put_object(&srv.key("big.bin"), &vec![3u8; size]).await;
    let (logs, _guard) = Logs::capture();
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.set_reply_timeout(Duration::from_secs(60));

    let port = c.epsv().await;
    c.send_raw(b"RETR big.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    let read = 10 * MIB;
    data.read_exact(read).await.expect("first 10 MiB");
    c.send_raw(b"ABOR\r\n").await;
    assert_eq!(c.reply().await.code, 426);
    assert_eq!(c.reply().await.code, 226);
    data.reset();
    let bytes = audited_bytes(&logs, "download", "aborted").await;
    println!("download of {size} bytes cut by ABOR after {read} read; audited bytes {bytes}");
    assert!(
        bytes >= read as u64 && bytes < size as u64,
        "audited {bytes}, read {read} of {size}"
    );

    // REST n: the bytes from n on.
    let rest = size - 1000;
    c.expect(&format!("REST {rest}"), 350).await;
    let port = c.epsv().await;
    c.send_raw(b"RETR big.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let got = c
        .data_connect(port, true)
        .await
        .read_all()
        .await
        .expect("tail");
    assert_eq!(got.len(), 1000);
    assert_eq!(c.reply().await.code, 226);
    let bytes = audited_bytes(&logs, "download", "ok").await;
    println!("REST {rest} + RETR: audited bytes {bytes}");
    assert_eq!(bytes, 1000);
    srv.stop().await;
}

/// The suite the implicit port negotiates with a client offering `suites` (in that order of
/// preference) at `version`.
async fn negotiated_suite(
    addr: SocketAddr,
    version: &'static rustls::SupportedProtocolVersion,
    suites: &[rustls::SupportedCipherSuite],
) -> rustls::CipherSuite {
    use crate::common::raw::AcceptAny;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites = suites.to_vec();
    let provider = Arc::new(provider);
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.get_ref()
        .1
        .negotiated_cipher_suite()
        .expect("suite")
        .suite()
}

/// Item 8: the server's cipher order wins (testssl's "server cipher order"): a client that
/// prefers ChaCha20 and lists AES-256-GCM last gets AES-256-GCM, in TLS 1.3 and 1.2.
#[tokio::test]
async fn the_server_cipher_order_wins() {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    use rustls::CipherSuite;
    let srv = TestServer::start().await;
    let tls13 = [
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
    ];
    let got13 = negotiated_suite(srv.implicit, &rustls::version::TLS13, &tls13).await;
    let tls12 = [
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ];
    let got12 = negotiated_suite(srv.implicit, &rustls::version::TLS12, &tls12).await;
    println!("client prefers ChaCha20: TLS 1.3 got {got13:?}, TLS 1.2 got {got12:?}");
    assert_eq!(got13, CipherSuite::TLS13_AES_256_GCM_SHA384);
    assert!(
        matches!(
            got12,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        ),
        "{got12:?}"
    );
    srv.stop().await;
}

/// An upload of `size` bytes to `name` cut by a reset after all were sent: its parts are kept
/// for a resume.
async fn cut_upload(srv: &TestServer, c: &mut RawClient, name: &str, size: usize) {
    let port = c.epsv().await;
    c.send_raw(format!("STOR {name}\r\n").as_bytes()).await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(&vec![5u8; size]).await.expect("upload");
    tokio::time::sleep(Duration::from_millis(800)).await;
    data.reset();
    assert_eq!(c.reply().await.code, 426);
    let key = srv.key(name);
    srv.eventually("the cut upload is kept", || async {
        srv.open_multipart_uploads_for(&key).await == 1
    })
    .await;
}

/// Item 7: a STOR from byte 0 (what FileZilla sends after an interrupted upload: it never
/// sees the kept bytes) replaces the file, and the upload kept for a resume is aborted once
/// the new file is complete, rather than left open until the resume window ends.
#[tokio::test]
async fn a_stor_from_zero_aborts_the_upload_kept_for_resume() {
    let srv = TestServer::start().await;
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    c.set_reply_timeout(Duration::from_secs(60));
    cut_upload(&srv, &mut c, "big.bin", 12 * MIB).await;
    // S3 times uploads in whole seconds: the new STOR starts in a later second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let port = c.epsv().await;
    c.send_raw(b"STOR big.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(b"fresh").await.expect("upload");
    data.finish().await.expect("finish");
    assert_eq!(c.reply().await.code, 226);
    let key = srv.key("big.bin");
    assert_eq!(srv.object(&key).await.as_deref(), Some(&b"fresh"[..]));
    let mut open = 1;
    for _ in 0..50 {
        open = srv.open_multipart_uploads_for(&key).await;
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("after STOR from 0: {open} multipart uploads open for the key");
    assert_eq!(open, 0, "the kept upload was left open");
    c.expect("SIZE big.bin", 213).await;
    srv.stop().await;
}

/// The size a listing command gives `name` (MLSD's `size` fact), if it lists it.
fn mlsd_size(listing: &[u8], name: &str) -> Option<u64> {
    String::from_utf8_lossy(listing).lines().find_map(|l| {
        let (facts, n) = l.split_once(' ')?;
        (n == name).then(|| {
            facts
                .split(';')
                .find_map(|f| f.strip_prefix("size="))
                .and_then(|s| s.parse().ok())
        })?
    })
}

/// Item 7, second half: with `s3.list_kept_uploads`, a name whose interrupted upload is kept
/// is listed (LIST, NLST, MLSD) with the bytes the upload holds, as a partial file on a disk
/// would be, so clients that resume from a listing (FileZilla) see where to continue; an
/// older object under the name is shown with the kept size too. Off (the default), listings
/// show objects only.
#[tokio::test]
async fn kept_uploads_are_listed_with_their_size_when_enabled() {
    for enabled in [false, true] {
        let srv = TestServer::start_with(|c| c.s3.list_kept_uploads = enabled).await;
        srv.put_object(&srv.key("old.bin"), b"old").await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
        c.set_reply_timeout(Duration::from_secs(60));
        cut_upload(&srv, &mut c, "new.bin", 12 * MIB).await;
        cut_upload(&srv, &mut c, "old.bin", 12 * MIB).await;
        let mlsd = listing(&mut c, "MLSD").await;
        let list = String::from_utf8_lossy(&listing(&mut c, "LIST").await).to_string();
        let nlst = String::from_utf8_lossy(&listing(&mut c, "NLST").await).to_string();
        let (new, old) = (mlsd_size(&mlsd, "new.bin"), mlsd_size(&mlsd, "old.bin"));
        // What the kept upload holds (whole parts), as SIZE reports it.
        let size = c.expect("SIZE new.bin", 213).await;
        let held: u64 = size.text[4..].trim().parse().expect("SIZE");
        println!(
            "list_kept_uploads = {enabled}: SIZE new.bin {held}; MLSD new.bin {new:?}, old.bin {old:?}"
        );
        assert!(held > 0 && held < 12 * MIB as u64);
        if enabled {
            assert_eq!((new, old), (Some(held), Some(held)));
            assert!(
                list.contains(&format!(" {held} ")) && list.contains("new.bin"),
                "{list}"
            );
            assert!(nlst.lines().any(|l| l == "new.bin"), "{nlst}");
        } else {
            assert_eq!((new, old), (None, Some(3)));
            assert!(!list.contains("new.bin"), "{list}");
        }
        srv.stop().await;
    }
}

/// Item 7: clients that resume from what the listing shows. `lftp mirror -R --continue`
/// compares the local file with the remote listing: with `s3.list_kept_uploads` it sees the
/// kept bytes and sends only the rest (REST n + STOR); without, it sees no remote file and
/// sends the whole file from byte 0 (which then aborts the kept upload). Either way the
/// object is the whole file.
#[tokio::test]
async fn lftp_mirror_continue_resumes_from_the_listed_size() {
    use crate::common::clients::{self, assert_ok, lftp, random_bytes, Mode};
    let size = 12 * MIB + 77;
    let data = random_bytes(size);
    for enabled in [false, true] {
        let srv = TestServer::start_with(|c| c.s3.list_kept_uploads = enabled).await;
        let (logs, _guard) = Logs::capture();
        let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
        c.set_reply_timeout(Duration::from_secs(60));
        c.expect("MKD m", 257).await;
        // The local file is older than the cut upload (mirror resumes only onto a newer
        // partial file).
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("m")).expect("mkdir");
        std::fs::write(dir.path().join("m/big.bin"), &data).expect("write");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        // The cut upload sent the file's first 10 MiB; its whole parts are kept.
        let port = c.epsv().await;
        c.send_raw(b"STOR m/big.bin\r\n").await;
        assert_eq!(c.reply().await.code, 150);
        let mut d = c.data_connect(port, true).await;
        d.write_all(&data[..10 * MIB]).await.expect("upload");
        tokio::time::sleep(Duration::from_millis(800)).await;
        d.reset();
        assert_eq!(c.reply().await.code, 426);
        let key = srv.key("m/big.bin");
        srv.eventually("the cut upload is kept", || async {
            srv.open_multipart_uploads_for(&key).await == 1
        })
        .await;
        let size_reply = c.expect("SIZE m/big.bin", 213).await;
        let held: u64 = size_reply.text[4..].trim().parse().expect("SIZE");
        let script = format!(
            "mirror -R --continue --no-perms {} /m",
            dir.path().join("m").display()
        );
        let out = clients::run(lftp(Mode::Explicit, srv.explicit, USER, PASSWORD, &script)).await;
        assert_ok(&out, "lftp mirror -R --continue");
        assert!(
            srv.object(&key).await.as_deref() == Some(&data[..]),
            "the object is not the whole file"
        );
        let sent = audited_bytes(&logs, "upload", "ok").await;
        println!(
            "list_kept_uploads = {enabled}: {held} bytes kept; lftp mirror -R --continue sent \
             {sent} of {size} bytes"
        );
        if enabled {
            assert_eq!(sent, size as u64 - held, "did not resume from {held}");
        } else {
            assert_eq!(sent, size as u64);
        }
        srv.stop().await;
    }
}
