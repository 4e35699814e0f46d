//! Passive ports at scale: a small `passive.ports` range must carry many transfers one after the
//! other (ports in TIME_WAIT are reused) and many sessions at once (one port serves several
//! clients with different addresses), with refusals counted in `ftps_passive_refused_total`.

use std::net::SocketAddr;

use crate::admin::metric;
use crate::common::clients::{self, assert_ok, lftp, python_with, random_bytes, Mode};
use crate::common::free_port_block;
use crate::common::http::get;
use crate::common::logs::Logs;
use crate::common::server::{TestServer, PASSWORD, USER};

/// A server on 127.0.0.1 whose passive range is `ports` free ports, with the admin listener.
async fn start_with_ports(
    ports: u16,
    adjust: impl FnOnce(&mut ftps_s3::config::Config),
) -> TestServer {
    let first = free_port_block(&["127.0.0.1"], ports);
    TestServer::start_with(|c| {
        c.passive.ports = format!("{first}-{}", first + ports - 1);
        c.admin.listen = Some("127.0.0.1:0".parse().expect("addr"));
        adjust(c);
    })
    .await
}

/// PASV/EPSV refusals this test's server logged (the metric is process-wide, shared by the
/// tests running at the same time).
fn refusals(logs: &Logs) -> usize {
    logs.lines()
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("passive port refused"))
        })
        .count()
}

/// Asserts no PASV/EPSV was refused, and that the metric counting them exists.
async fn assert_no_refusals(srv: &TestServer, logs: &Logs) {
    assert_eq!(refusals(logs), 0, "PASV/EPSV refused");
    let text = metrics(srv).await;
    assert!(
        metric(&text, "ftps_passive_refused_total").is_some(),
        "no ftps_passive_refused_total in:\n{text}"
    );
}

async fn metrics(srv: &TestServer) -> String {
    let (code, text) = get(srv.admin.expect("admin listener"), "/metrics").await;
    assert_eq!(code, 200);
    text
}

/// 200 data connections in one session (100 RETR, 100 LIST) through 10 passive ports: the
/// server closes each data connection first, so each port sits in TIME_WAIT for a minute after
/// use; without address reuse the range is exhausted after ~10 transfers (425).
#[tokio::test]
async fn two_hundred_transfers_in_one_session_through_ten_ports() {
    let (logs, _capture) = Logs::capture();
    let srv = start_with_ports(10, |_| {}).await;
    let body = random_bytes(5_000);
    srv.put_object(&srv.key("f.bin"), &body).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("f.bin").to_string_lossy().to_string();
    let mut steps: Vec<&str> = Vec::new();
    for _ in 0..100 {
        steps.extend(["get", "f.bin", &local, "ls"]);
    }
    let out = clients::run(python_with(
        Mode::Explicit,
        srv.explicit,
        USER,
        PASSWORD,
        &[],
        &steps,
    ))
    .await;
    assert_ok(&out, "200 RETR/LIST in one session");
    assert_eq!(std::fs::read(&local).expect("downloaded"), body);
    assert_no_refusals(&srv, &logs).await;
}

/// `lftp mirror` of 100 files over implicit FTPS through 10 passive ports: every file arrives,
/// byte-exact, and no PASV/EPSV is refused.
#[tokio::test]
async fn lftp_mirror_of_a_hundred_files_through_ten_ports() {
    let (logs, _capture) = Logs::capture();
    let srv = start_with_ports(10, |_| {}).await;
    let mut bodies = Vec::new();
    for i in 0..100 {
        let body = random_bytes(1_000 + i);
        srv.put_object(&srv.key(&format!("tree/f{i:03}.bin")), &body)
            .await;
        bodies.push(body);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("mirror");
    let script = format!("mirror tree {}", target.display());
    let out = clients::run(lftp(Mode::Implicit, srv.implicit, USER, PASSWORD, &script)).await;
    assert_ok(&out, "lftp mirror");
    for (i, body) in bodies.iter().enumerate() {
        let got = std::fs::read(target.join(format!("f{i:03}.bin")))
            .unwrap_or_else(|e| panic!("f{i:03}.bin not mirrored: {e}"));
        assert_eq!(&got, body, "f{i:03}.bin differs");
    }
    assert_no_refusals(&srv, &logs).await;
}

/// Address reuse must not let two live listeners share a port: with a one-port range, a second
/// session's PASV is refused while the first session's listener waits, and counted.
#[tokio::test]
async fn a_port_waiting_for_one_client_is_not_given_to_another_session_from_it() {
    use crate::common::raw::RawClient;
    let (logs, _capture) = Logs::capture();
    let srv = start_with_ports(1, |c| c.limits.data_connect_timeout_secs = 2).await;
    let mut a = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let mut b = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = a.epsv().await;
    // Same client address, the only port taken: refused (after waiting for it to free).
    let r = b.cmd("EPSV").await;
    assert_eq!(r.code, 425, "{r:?}");
    assert_eq!(refusals(&logs), 1);
    let text = metrics(&srv).await;
    assert!(
        metric(&text, "ftps_passive_refused_total").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        metric(&text, "ftps_passive_ports_in_use").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    // The first session's port still works.
    a.send_raw(b"LIST\r\n").await;
    assert_eq!(a.reply().await.code, 150);
    let mut data = a.data_connect(port, true).await;
    data.read_all().await.expect("listing");
    assert_eq!(a.reply().await.code, 226);
    // Freed: now the second session gets it.
    assert_eq!(b.epsv().await, port);
}

/// 50 sessions from 10 client addresses (127.0.0.2–.11), all at once, through 4 passive ports:
/// each session uploads and downloads its own file; everything byte-exact, nothing refused.
#[tokio::test]
async fn fifty_sessions_from_ten_addresses_share_four_ports() {
    let (logs, _capture) = Logs::capture();
    let srv = start_with_ports(4, |c| {
        c.limits.max_sessions_per_user = 100;
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut jobs = Vec::new();
    for n in 0..50usize {
        let source = format!("127.0.0.{}", 2 + n % 10);
        let body = random_bytes(20_000 + n * 997);
        let up = dir.path().join(format!("{n}.up"));
        let down = dir.path().join(format!("{n}.down"));
        std::fs::write(&up, &body).expect("write");
        let mode = if n % 2 == 0 {
            Mode::Explicit
        } else {
            Mode::Implicit
        };
        let addr: SocketAddr = match mode {
            Mode::Explicit => srv.explicit,
            Mode::Implicit => srv.implicit,
        };
        let remote = format!("m{n}.bin");
        let c = python_with(
            mode,
            addr,
            USER,
            PASSWORD,
            &["--source-address", &source],
            &[
                "put",
                &up.to_string_lossy(),
                &remote,
                "ls",
                "get",
                &remote,
                &down.to_string_lossy(),
            ],
        );
        jobs.push(tokio::spawn(async move {
            let out = clients::run(c).await;
            (n, source, out, body, down)
        }));
    }
    for job in jobs {
        let (n, source, out, body, down) = job.await.expect("job");
        assert_ok(&out, &format!("session {n} from {source}"));
        assert_eq!(std::fs::read(&down).expect("download"), body, "session {n}");
        assert_eq!(
            srv.object(&srv.key(&format!("m{n}.bin"))).await,
            Some(body),
            "session {n}: object in S3"
        );
    }
    assert_no_refusals(&srv, &logs).await;
}
