//! The admin HTTP listener: `/healthz`, `/readyz` (about this process; storage reported, gating
//! only when opted in; fails as soon as shutdown starts) and `/metrics` (Prometheus text with
//! real values after real sessions).

use std::{net::SocketAddr, time::Duration};

use crate::common::clients::random_bytes;
use crate::common::http::get;
use crate::common::raw::RawClient;
use crate::common::server::{TestServer, PASSWORD, USER};
use crate::faults::Binary;

/// A server with the admin listener on an ephemeral port.
async fn start_with_admin(adjust: impl FnOnce(&mut ftps_s3::config::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.admin.listen = Some("127.0.0.1:0".parse().expect("addr"));
        adjust(c);
    })
    .await
}

fn admin_addr(srv: &TestServer) -> SocketAddr {
    srv.admin.expect("admin listener")
}

/// The value of one series (`name{labels}` exactly as rendered) in Prometheus text.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Polls `/readyz` until its status is `status`; the last body.
pub(crate) async fn readyz_until(addr: SocketAddr, status: u16) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        let (code, body) = get(addr, "/readyz").await;
        if code == status {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never answered {status}; last body:\n{last}");
}

/// A complete STOR of `body` as `acme`, with the raw client.
async fn upload(srv: &TestServer, path: &str, body: &[u8]) {
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(format!("STOR {path}\r\n").as_bytes()).await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(body).await.expect("send body");
    data.finish().await.expect("close_notify");
    assert_eq!(c.reply().await.code, 226);
    c.expect("QUIT", 221).await;
}

#[tokio::test]
async fn healthz_answers_and_unknown_paths_are_404() {
    let srv = start_with_admin(|_| {}).await;
    let addr = admin_addr(&srv);
    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_string()));
    assert_eq!(get(addr, "/nothing-here").await.0, 404);
    srv.stop().await;
}

#[tokio::test]
async fn admin_listener_is_off_unless_configured() {
    let srv = TestServer::start().await;
    assert_eq!(srv.admin, None);
    srv.stop().await;
}

#[tokio::test]
async fn readyz_is_ready_when_up_and_fails_as_soon_as_shutdown_starts() {
    let srv = start_with_admin(|_| {}).await;
    let addr = admin_addr(&srv);
    let body = readyz_until(addr, 200).await;
    assert!(body.starts_with("ready\n"), "{body}");
    // Ready does not wait for the first storage check; its result shows up in the body.
    let (code, body) = readyz_showing(addr, "storage: ok").await;
    assert_eq!(code, 200, "{body}");

    // An upload in flight keeps the server draining (up to the grace period) after shutdown
    // starts, with the admin listener still up.
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(b"STOR draining.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(&random_bytes(64 * 1024))
        .await
        .expect("send body");

    srv.begin_shutdown();
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("shutdown: in progress"), "{body}");
    assert_eq!(get(addr, "/healthz").await.0, 200);

    data.finish().await.expect("close_notify");
    let _ = c.reply().await;
    srv.stop().await;
}

/// Polls `/readyz` until its body contains `text`; the last (status, body).
async fn readyz_showing(addr: SocketAddr, text: &str) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = get(addr, "/readyz").await;
        if last.1.contains(text) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/readyz never showed {text:?}; last body:\n{}", last.1);
}

/// Issue 11, item 7, on the real binary: a failing storage check (a bucket that does not
/// exist) is reported in `/readyz`'s body and as `ftps_storage_up 0`, but the pod stays ready:
/// readiness is about this process. An unrelated `FTPS_S3_*` variable only warns (item 8).
#[tokio::test]
async fn readyz_reports_storage_failures_but_stays_ready_by_default() {
    let bin = Binary::start_with(
        5,
        0,
        Some("no-such-bucket-for-readyz"),
        &[
            ("FTPS_S3_ADMIN__STORAGE_CHECK_INTERVAL_SECS", "1"),
            ("FTPS_S3_SOME_OTHER_TOOL_HOME", "/tmp/elsewhere"),
        ],
        "",
    )
    .await;
    assert!(
        bin.startup_text.iter().any(|l| l
            == "warning: ignoring environment variable FTPS_S3_SOME_OTHER_TOOL_HOME: not a configuration key"),
        "{:?}",
        bin.startup_text
    );
    let (code, body) = readyz_showing(bin.admin, "2 failed check(s) in a row").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(body.contains("not gating readiness"), "{body}");
    assert!(body.contains("listeners: ok"), "{body}");
    let (_, metrics) = get(bin.admin, "/metrics").await;
    assert_eq!(metric(&metrics, "ftps_storage_up"), Some(0.0), "{metrics}");
    assert!(
        metric(&metrics, "ftps_storage_consecutive_failures").unwrap_or(0.0) >= 2.0,
        "{metrics}"
    );
}

/// With `admin.readiness_storage_failures = 2` the operator opts in: unready once two checks in
/// a row failed (real binary).
#[tokio::test]
async fn readyz_gates_on_storage_after_n_failures_when_opted_in() {
    let bin = Binary::start_with(
        5,
        0,
        Some("no-such-bucket-for-readyz"),
        &[
            ("FTPS_S3_ADMIN__STORAGE_CHECK_INTERVAL_SECS", "1"),
            ("FTPS_S3_ADMIN__READINESS_STORAGE_FAILURES", "2"),
        ],
        "",
    )
    .await;
    let (code, body) = readyz_showing(bin.admin, "1 failed check(s) in a row").await;
    assert_eq!(code, 200, "one failure is below the threshold: {body}");
    let (code, body) = readyz_showing(bin.admin, "2 failed check(s) in a row").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("unready after 2 in a row"), "{body}");
}

/// Needs the session to call `metrics::login` and `metrics::transfer_finished`.
#[tokio::test]
async fn metrics_count_logins_and_uploads() {
    let srv = start_with_admin(|_| {}).await;
    let addr = admin_addr(&srv);
    let (code, before) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    let uploaded_before =
        metric(&before, "ftps_transfer_bytes_total{direction=\"upload\"}").unwrap_or(0.0);

    let body = random_bytes(100_000);
    upload(&srv, "metrics.bin", &body).await;

    let (_, text) = get(addr, "/metrics").await;
    for name in [
        "ftps_sessions_active",
        "ftps_logins_total",
        "ftps_transfers_total",
        "ftps_transfer_bytes_total",
        "ftps_transfer_duration_seconds",
        "ftps_passive_ports_in_use",
        "ftps_passive_refused_total",
        "ftps_storage_checks_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    let logins = metric(&text, "ftps_logins_total{result=\"ok\"}").unwrap_or(0.0);
    assert!(logins >= 1.0, "no successful login counted:\n{text}");
    let stors = metric(
        &text,
        "ftps_transfers_total{command=\"STOR\",result=\"ok\"}",
    );
    assert!(stors.unwrap_or(0.0) >= 1.0, "no STOR counted:\n{text}");
    let uploaded = metric(&text, "ftps_transfer_bytes_total{direction=\"upload\"}").unwrap_or(0.0);
    assert!(
        uploaded >= uploaded_before + body.len() as f64,
        "upload bytes {uploaded_before} -> {uploaded}:\n{text}"
    );
    let timed = metric(
        &text,
        "ftps_transfer_duration_seconds_count{command=\"STOR\"}",
    );
    assert!(timed.unwrap_or(0.0) >= 1.0, "no STOR duration:\n{text}");
    srv.stop().await;
}

/// Needs `metrics::s3_interceptor()` attached in `vfs::s3::client_from_sdk_config`.
#[tokio::test]
async fn metrics_time_s3_requests() {
    let srv = start_with_admin(|_| {}).await;
    let addr = admin_addr(&srv);
    upload(&srv, "s3-metrics.bin", &random_bytes(10_000)).await;
    let (_, text) = get(addr, "/metrics").await;
    let put = metric(
        &text,
        "ftps_s3_request_duration_seconds_count{operation=\"PutObject\"}",
    );
    assert!(put.unwrap_or(0.0) >= 1.0, "no PutObject timed:\n{text}");
    srv.stop().await;
}

/// `failed` counts credentials that did not match, `refused` logins the throttle turned away
/// before looking at them (README, metrics table).
#[tokio::test]
async fn metrics_tell_failed_from_refused_logins() {
    let srv = start_with_admin(|c| {
        c.auth.max_failures = 1;
        c.auth.failure_delay_ms = 0;
    })
    .await;
    let addr = admin_addr(&srv);
    let (_, before) = get(addr, "/metrics").await;
    let failed_before = metric(&before, "ftps_logins_total{result=\"failed\"}").unwrap_or(0.0);
    let refused_before = metric(&before, "ftps_logins_total{result=\"refused\"}").unwrap_or(0.0);
    let (mut c, _) = RawClient::connect(srv.explicit).await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    for _ in 0..2 {
        c.expect("USER acme", 331).await;
        c.expect("PASS wrong", 530).await;
    }
    let (_, after) = get(addr, "/metrics").await;
    let failed = metric(&after, "ftps_logins_total{result=\"failed\"}").unwrap_or(0.0);
    let refused = metric(&after, "ftps_logins_total{result=\"refused\"}").unwrap_or(0.0);
    assert!(failed >= failed_before + 1.0, "{failed_before} -> {failed}");
    assert!(
        refused >= refused_before + 1.0,
        "{refused_before} -> {refused}"
    );
    srv.stop().await;
}
