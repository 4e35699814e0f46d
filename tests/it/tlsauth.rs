//! Client-certificate authentication (`tls.client_auth`, `certificate_cn`) and hot reload of the
//! certificate and the users file, against a real server with real TLS: the raw rustls client
//! presenting certificates from a throwaway CA, and curl with `--cert` / `--key`.

use std::{path::Path, time::Duration};

use ftps_s3::config::{ClientAuth, Config};

use crate::common::clients::{self, assert_ok, curl, random_bytes};
use crate::common::logs::Logs;
use crate::common::pki::Ca;
use crate::common::raw::{ClientCert, RawClient};
use crate::common::server::{TestServer, PASSWORD, USER};
use crate::common::users::{self, UserToml};

/// `partner`: certificate only (CN `partner.example`); `both`: certificate (CN `both.example`)
/// and password `both-password`.
fn cert_users() -> String {
    let partner = UserToml::new("partner")
        .certificate_cn("partner.example")
        .permissions(users::ALL);
    let both = UserToml::new("both")
        .certificate_cn("both.example")
        .password("both-password")
        .permissions(users::ALL);
    partner.render() + &both.render()
}

/// A server asking for client certificates issued by `ca` (written into `dir`).
async fn server(ca: &Ca, dir: &Path, mode: ClientAuth) -> TestServer {
    server_with(ca, dir, mode, |_| {}).await
}

async fn server_with(
    ca: &Ca,
    dir: &Path,
    mode: ClientAuth,
    adjust: impl FnOnce(&mut Config),
) -> TestServer {
    let ca_file = ca.write(dir, "ca.pem");
    TestServer::start_with_users(&cert_users(), |c| {
        c.tls.client_auth = mode;
        c.tls.client_ca_file = Some(ca_file);
        adjust(c);
    })
    .await
}

/// Explicit FTPS with `cert` presented, up to the reply to `USER name`.
async fn explicit_user(srv: &TestServer, cert: Option<ClientCert>, name: &str) -> (RawClient, u16) {
    let (mut c, g) = RawClient::connect_as(srv.explicit, cert).await;
    assert_eq!(g.code, 220);
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    let code = c.cmd(&format!("USER {name}")).await.code;
    (c, code)
}

/// STOR then RETR of `body` at `path` on a logged-in session with PROT P; returns what RETR
/// gave back.
async fn round_trip(c: &mut RawClient, path: &str, body: &[u8]) -> Vec<u8> {
    let port = c.epsv().await;
    c.expect(&format!("STOR {path}"), 150).await;
    let mut data = c.data_connect(port, true).await;
    data.write_all(body).await.expect("body");
    data.finish().await.expect("finish");
    assert_eq!(c.reply().await.code, 226, "STOR {path}");
    let port = c.epsv().await;
    c.expect(&format!("RETR {path}"), 150).await;
    let got = c
        .data_connect(port, true)
        .await
        .read_all()
        .await
        .expect("RETR data");
    assert_eq!(c.reply().await.code, 226, "RETR {path}");
    got
}

#[tokio::test]
async fn required_mode_refuses_handshakes_without_a_client_certificate() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(&ca, dir.path(), ClientAuth::Required).await;

    // Implicit: no certificate, no session (no greeting).
    assert!(RawClient::try_connect_implicit(srv.implicit, None)
        .await
        .is_none());
    // A certificate from another CA is no better.
    let stranger = Ca::new("other CA").client("partner.example");
    assert!(
        RawClient::try_connect_implicit(srv.implicit, Some(stranger.cert.clone()))
            .await
            .is_none()
    );
    // Explicit: AUTH TLS is accepted, the handshake is not (the raw client speaks TLS 1.2, where
    // the server's refusal ends the handshake itself).
    let (mut c, g) = RawClient::connect(srv.explicit).await;
    assert_eq!(g.code, 220);
    c.expect("AUTH TLS", 234).await;
    assert!(
        c.handshake().await.is_err(),
        "a handshake without a certificate went through"
    );

    // With a certificate from the CA, a password user still logs in with the password: the
    // certificate only lets the handshake through.
    let id = ca.client("anyone.example");
    let (mut c, g) = RawClient::try_connect_implicit(srv.implicit, Some(id.cert.clone()))
        .await
        .expect("handshake with a certificate");
    assert_eq!(g.code, 220);
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    // Data connections under "required" resume the control session, certificate included.
    c.expect("TYPE I", 200).await;
    let body = random_bytes(70_000);
    assert_eq!(round_trip(&mut c, "req.bin", &body).await, body);
    srv.stop().await;
}

#[tokio::test]
async fn optional_mode_accepts_clients_with_and_without_certificates() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(&ca, dir.path(), ClientAuth::Optional).await;
    let id = ca.client("anyone.example");
    for cert in [None, Some(id.cert.clone())] {
        let with = cert.is_some();
        let (mut c, code) = explicit_user(&srv, cert, USER).await;
        assert_eq!(code, 331, "with a certificate: {with}");
        c.expect(&format!("PASS {PASSWORD}"), 230).await;
        c.expect("NOOP", 200).await;
    }
    // But a certificate from another CA fails the handshake even though it is optional.
    let stranger = Ca::new("other CA").client("anyone.example");
    assert!(
        RawClient::try_connect_implicit(srv.implicit, Some(stranger.cert.clone()))
            .await
            .is_none()
    );
    srv.stop().await;
}

#[tokio::test]
async fn certificate_only_user_logs_in_at_user_with_232_and_transfers() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(&ca, dir.path(), ClientAuth::Optional).await;
    let (logs, _guard) = Logs::capture();
    let id = ca.client("partner.example");

    let (mut c, code) = explicit_user(&srv, Some(id.cert.clone()), "partner").await;
    assert_eq!(code, 232);
    // A password sent anyway is superfluous, not an error (RFC 959 §5.4: 202).
    c.expect("PASS anything", 202).await;
    c.expect("PBSZ 0", 200).await;
    c.expect("PROT P", 200).await;
    c.expect("PWD", 257).await;
    let body = random_bytes(200_000);
    assert_eq!(round_trip(&mut c, "in.bin", &body).await, body);
    assert_eq!(
        srv.object("partners/partner/in.bin").await.as_deref(),
        Some(&body[..])
    );
    logs.wait_for(
        &[
            ("message", "audit"),
            ("event", "login"),
            ("result", "ok"),
            ("user", "partner"),
        ],
        Duration::from_secs(5),
    )
    .await;

    // Implicit FTPS too.
    let (mut c, g) = RawClient::try_connect_implicit(srv.implicit, Some(id.cert.clone()))
        .await
        .expect("implicit with a certificate");
    assert_eq!(g.code, 220);
    c.expect("USER partner", 232).await;
    c.expect("SIZE in.bin", 213).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_certificate_is_answered_like_a_wrong_password() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_with(&ca, dir.path(), ClientAuth::Optional, |c| {
        c.auth.max_failures = 2;
    })
    .await;
    let (logs, _guard) = Logs::capture();

    // Wrong CN, then no certificate: 331, then 530 whatever the password.
    let wrong = ca.client("someone.else");
    for (cert, reason) in [
        (Some(wrong.cert.clone()), "client_certificate_mismatch"),
        (None, "no_client_certificate"),
    ] {
        let (mut c, code) = explicit_user(&srv, cert, "partner").await;
        assert_eq!(code, 331, "{reason}");
        c.expect("PASS guess", 530).await;
        let line = logs
            .wait_for(
                &[
                    ("event", "login"),
                    ("result", "failed"),
                    ("user", "partner"),
                    ("reason", reason),
                ],
                Duration::from_secs(5),
            )
            .await;
        // The audit line names the certificate that was presented, if any.
        let presented = line.get("client_cert_cn").and_then(|v| v.as_str());
        let expected = (reason == "client_certificate_mismatch").then_some("someone.else");
        assert_eq!(presented, expected, "{line}");
    }
    // Those were failures like any other: the user is now throttled, and even the right
    // certificate gets 331 and 530 until the ban ends.
    let right = ca.client("partner.example");
    let (mut c, code) = explicit_user(&srv, Some(right.cert.clone()), "partner").await;
    assert_eq!(code, 331);
    c.expect("PASS x", 530).await;
    logs.wait_for(
        &[
            ("event", "login"),
            ("user", "partner"),
            ("reason", "throttled"),
        ],
        Duration::from_secs(5),
    )
    .await;
    srv.stop().await;
}

#[tokio::test]
async fn a_user_with_certificate_and_password_needs_both() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(&ca, dir.path(), ClientAuth::Optional).await;
    let right = ca.client("both.example");
    let wrong = ca.client("partner.example");
    for (cert, password, expect) in [
        (Some(right.cert.clone()), "both-password", 230),
        (Some(right.cert.clone()), "wrong", 530),
        (None, "both-password", 530),
        (Some(wrong.cert.clone()), "both-password", 530),
    ] {
        let with = cert.is_some();
        let (mut c, code) = explicit_user(&srv, cert, "both").await;
        assert_eq!(code, 331, "USER never logs in a user with a password");
        let r = c.cmd(&format!("PASS {password}")).await;
        assert_eq!(r.code, expect, "certificate: {with}, password {password}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn curl_logs_in_with_a_client_certificate() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(&ca, dir.path(), ClientAuth::Required).await;
    let (cert, key) = ca.client("partner.example").write(dir.path(), "partner");
    let src = dir.path().join("src.bin");
    let body = random_bytes(300_000);
    std::fs::write(&src, &body).expect("write");

    // No password at all: USER is answered 232 and curl goes on.
    let mut c = curl("partner", "");
    c.arg("--cert").arg(&cert).arg("--key").arg(&key);
    c.arg("-T")
        .arg(&src)
        .arg(format!("ftp://{}/up.bin", srv.explicit));
    assert_ok(
        &clients::run(c).await,
        "curl upload with a client certificate",
    );
    assert_eq!(
        srv.object("partners/partner/up.bin").await.as_deref(),
        Some(&body[..])
    );

    let got = dir.path().join("got.bin");
    let mut c = curl("partner", "");
    c.arg("--cert").arg(&cert).arg("--key").arg(&key);
    c.arg("-o")
        .arg(&got)
        .arg(format!("ftps://{}/up.bin", srv.implicit));
    assert_ok(&clients::run(c).await, "curl implicit download");
    assert!(std::fs::read(&got).expect("read") == body, "bytes differ");

    // Without the certificate curl cannot even start TLS.
    let mut c = curl("partner", "");
    c.arg(format!("ftp://{}/", srv.explicit));
    let out = clients::run(c).await;
    assert!(
        !out.status.success(),
        "curl without a certificate succeeded"
    );
    srv.stop().await;
}

/// Lays out `files` the way the kubelet mounts a Secret, and updates it the way the kubelet
/// does: the files in a new directory `dir/<version>`, the symlink `..data` swapped to it in one
/// rename, and `dir/<name> -> ..data/<name>` (made once, never changed).
fn mount_secret(dir: &Path, version: &str, files: &[(&str, &[u8])]) {
    use std::os::unix::fs::symlink;
    let data = dir.join(version);
    std::fs::create_dir(&data).expect("version dir");
    for (name, bytes) in files {
        std::fs::write(data.join(name), bytes).expect("write");
    }
    let tmp = dir.join("..data_tmp");
    symlink(version, &tmp).expect("symlink");
    std::fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    for (name, _) in files {
        let link = dir.join(name);
        if link.symlink_metadata().is_err() {
            symlink(format!("..data/{name}"), &link).expect("symlink");
        }
    }
}

/// A self-signed server certificate: (certificate PEM, key PEM, certificate DER).
fn server_cert() -> (String, String, Vec<u8>) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
    (
        c.cert.pem(),
        c.key_pair.serialize_pem(),
        c.cert.der().to_vec(),
    )
}

#[tokio::test]
async fn a_swapped_kubernetes_secret_serves_the_new_certificate_and_keeps_sessions() {
    let (logs, _capture) = Logs::capture();
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("tls");
    std::fs::create_dir(&secret).expect("mkdir");
    let (cert1, key1, der1) = server_cert();
    let (cert2, key2, der2) = server_cert();
    mount_secret(
        &secret,
        "..2026_11_25_08_00_00.1",
        &[("tls.crt", cert1.as_bytes()), ("tls.key", key1.as_bytes())],
    );
    let srv = TestServer::start_with(|c| {
        c.tls.cert_file = secret.join("tls.crt");
        c.tls.key_file = secret.join("tls.key");
        c.tls.reload_interval_secs = 1;
        c.admin.listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let admin = srv.admin.expect("admin listener");
    let mut old = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    assert!(
        old.server_certificate().as_deref() == Some(&der1[..]),
        "old was not served certificate 1"
    );

    // cert-manager renewed: the kubelet swaps ..data to a new directory.
    mount_secret(
        &secret,
        "..2026_11_25_09_00_00.2",
        &[("tls.crt", cert2.as_bytes()), ("tls.key", key2.as_bytes())],
    );
    logs.wait_for(
        &[("file", "certificate"), ("level", "INFO")],
        Duration::from_secs(10),
    )
    .await;
    let (c, _) = RawClient::connect_implicit(srv.implicit).await;
    assert!(
        c.server_certificate().as_deref() == Some(&der2[..]),
        "c was not served certificate 2"
    );
    let c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    assert!(
        c.server_certificate().as_deref() == Some(&der2[..]),
        "c was not served certificate 2"
    );

    // The session from before goes on: commands, and data connections that resume its TLS
    // session (made with the old certificate).
    old.expect("NOOP", 200).await;
    let body = random_bytes(150_000);
    assert_eq!(
        round_trip(&mut old, "during-rotation.bin", &body).await,
        body
    );
    assert!(
        old.server_certificate().as_deref() == Some(&der1[..]),
        "old was not served certificate 1"
    );

    // A broken renewal: logged, and the good certificate stays.
    mount_secret(
        &secret,
        "..2026_11_25_10_00_00.3",
        &[
            ("tls.crt", b"-----BEGIN CERTIFICATE-----\ngarbage\n"),
            ("tls.key", key2.as_bytes()),
        ],
    );
    let error = logs
        .wait_for(
            &[("file", "certificate"), ("level", "ERROR")],
            Duration::from_secs(10),
        )
        .await;
    let text = error["error"].as_str().unwrap_or_default();
    assert!(text.starts_with("tls.cert_file:"), "{error}");
    let (c, _) = RawClient::connect_implicit(srv.implicit).await;
    assert!(
        c.server_certificate().as_deref() == Some(&der2[..]),
        "c was not served certificate 2"
    );
    old.expect("NOOP", 200).await;
    // /readyz stays ready (the good certificate serves) and says what went wrong.
    let body = crate::admin::readyz_until(admin, 200).await;
    assert!(
        body.contains("certificate: ok (changed files did not load")
            && body.contains("tls.cert_file"),
        "{body}"
    );
    // Reported once, not at every check.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        logs.matching(&[("file", "certificate"), ("level", "ERROR")])
            .len(),
        1
    );
    srv.stop().await;
}

#[tokio::test]
async fn the_users_file_is_reloaded_and_a_bad_one_keeps_the_old_users() {
    let (logs, _capture) = Logs::capture();
    let srv = TestServer::start_with(|c| c.auth.reload_interval_secs = 1).await;
    let mut session = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let (mut c, code) = explicit_user(&srv, None, "newbie").await;
    assert_eq!(code, 331);
    c.expect("PASS newbie-password", 530).await;

    // Add a user, replacing the file in one rename as a careful tool (or the kubelet) does.
    let mut text = std::fs::read_to_string(&srv.users_file).expect("users");
    let newbie = UserToml::new("newbie")
        .password("newbie-password")
        .permissions(&["list"]);
    text.push_str(&newbie.render());
    let tmp = srv.users_file.with_extension("tmp");
    std::fs::write(&tmp, &text).expect("write");
    std::fs::rename(&tmp, &srv.users_file).expect("rename");
    logs.wait_for(
        &[("file", "users"), ("level", "INFO")],
        Duration::from_secs(10),
    )
    .await;
    let mut newbie = RawClient::login_explicit(srv.explicit, "newbie", "newbie-password").await;
    newbie.expect("PWD", 257).await;

    // A broken edit, written in place: the users from before still log in.
    std::fs::write(&srv.users_file, "[[user]]\nname = ").expect("write");
    let error = logs
        .wait_for(
            &[("file", "users"), ("level", "ERROR")],
            Duration::from_secs(10),
        )
        .await;
    let text = error["error"].as_str().unwrap_or_default();
    assert!(text.starts_with("auth.users_file:"), "{error}");
    RawClient::login_explicit(srv.explicit, "newbie", "newbie-password").await;
    RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    session.expect("NOOP", 200).await;
    newbie.expect("NOOP", 200).await;
    srv.stop().await;
}

#[tokio::test]
async fn python_ftplib_and_lftp_log_in_with_a_client_certificate() {
    let ca = Ca::new("test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server(&ca, dir.path(), ClientAuth::Required).await;
    let (cert, key) = ca.client("partner.example").write(dir.path(), "partner");
    let src = dir.path().join("src.bin");
    let body = random_bytes(100_000);
    std::fs::write(&src, &body).expect("write");
    let src = src.to_string_lossy().into_owned();
    let cert = cert.to_string_lossy().into_owned();
    let key = key.to_string_lossy().into_owned();

    // ftplib sends PASS only after a 3xx to USER: the 232 ends its login.
    for (mode, addr) in [
        (clients::Mode::Explicit, srv.explicit),
        (clients::Mode::Implicit, srv.implicit),
    ] {
        let remote = format!("py-{}.bin", mode.name());
        let out = clients::run(clients::python_with(
            mode,
            addr,
            "partner",
            "unused",
            &["--cert", &cert, "--key", &key],
            &["put", &src, &remote, "size", &remote],
        ))
        .await;
        assert_ok(&out, "python with a client certificate");
        assert_eq!(
            srv.object(&format!("partners/partner/{remote}"))
                .await
                .as_deref(),
            Some(&body[..])
        );
    }

    let got = dir.path().join("got.bin");
    let mut c = tokio::process::Command::new("lftp");
    c.arg("-c").arg(format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 30; \
         set ssl:verify-certificate no; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; \
         set ssl:cert-file {cert}; set ssl:key-file {key}; \
         open -u partner,unused ftp://{}; get py-explicit.bin -o {}",
        srv.explicit,
        got.display()
    ));
    assert_ok(&clients::run(c).await, "lftp with a client certificate");
    assert!(std::fs::read(&got).expect("read") == body, "bytes differ");
    srv.stop().await;
}
