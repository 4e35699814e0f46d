//! The session engine in-process over an in-memory pipe (`common::duplex`), on tokio's paused
//! clock: the timeouts of a control connection, each checked to fire exactly when configured,
//! and session rules that need no data connection. Each test takes milliseconds of real time.

use std::time::Duration;

use ftps_s3::net::ListenerKind;
use tokio::time::Instant;

use crate::common::duplex::DuplexServer;
use crate::common::server::{PASSWORD, USER};

/// `elapsed` is `expected`, give or take the timer's millisecond.
fn took(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(5),
        "took {elapsed:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn idle_control_connection_gets_421_after_the_idle_timeout() {
    let mut srv = DuplexServer::start_with(|c| c.limits.control_idle_timeout_secs = 300).await;
    let mut c = srv.greeted().await;
    let start = Instant::now();
    let r = c.reply().await;
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("Idle timeout"), "{}", r.text);
    took(start.elapsed(), Duration::from_secs(300));
    c.closed().await;
}

#[tokio::test(start_paused = true)]
async fn each_command_restarts_the_idle_timer() {
    let mut srv = DuplexServer::start_with(|c| c.limits.control_idle_timeout_secs = 300).await;
    let mut c = srv.login(USER, PASSWORD).await;
    let start = Instant::now();
    // Four commands 200 s apart: 800 s in all, longer than the timeout, never idle for it.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(200)).await;
        c.expect("NOOP", 200).await;
    }
    took(start.elapsed(), Duration::from_secs(800));
    let last = Instant::now();
    let r = c.reply().await;
    assert_eq!(r.code, 421, "{}", r.text);
    took(last.elapsed(), Duration::from_secs(300));
    c.closed().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_login_is_answered_after_the_failure_delay() {
    let mut srv = DuplexServer::start_with(|c| c.auth.failure_delay_ms = 1500).await;
    let mut c = srv.greeted().await;
    c.expect("AUTH TLS", 234).await;
    c.handshake().await;
    c.expect(&format!("USER {USER}"), 331).await;
    let start = Instant::now();
    c.expect("PASS wrong", 530).await;
    took(start.elapsed(), Duration::from_millis(1500));
    // A good password is not delayed.
    c.expect(&format!("USER {USER}"), 331).await;
    let start = Instant::now();
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    took(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_client_silent_after_auth_tls_is_dropped_after_the_handshake_timeout() {
    let mut srv = DuplexServer::start_with(|c| c.limits.tls_handshake_timeout_secs = 7).await;
    let mut c = srv.greeted().await;
    c.expect("AUTH TLS", 234).await;
    let start = Instant::now();
    // No ClientHello: the session gives up on the handshake and closes, with no reply (the
    // connection is neither plain nor TLS any more).
    assert!(c.try_reply().await.is_none(), "a reply after 234");
    took(start.elapsed(), Duration::from_secs(7));
    c.closed().await;
}

#[tokio::test(start_paused = true)]
async fn implicit_listener_is_tls_first_then_greets_with_data_protected() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let mut c = srv.connect_to(ListenerKind::Implicit);
    c.handshake().await;
    assert_eq!(c.reply().await.code, 220);
    c.table(&[
        // MS-FTPS §3.2.5.6: the implicit AUTH TLS was already processed.
        ("AUTH TLS", 534),
        (&format!("USER {USER}"), 331),
        (&format!("PASS {PASSWORD}"), 230),
        // MS-FTPS: PBSZ 0 and PROT P are implied; PROT P without PBSZ is fine here.
        ("PROT P", 200),
        ("PWD", 257),
    ])
    .await;
}

#[tokio::test(start_paused = true)]
async fn implicit_client_that_never_starts_tls_is_dropped_after_the_handshake_timeout() {
    let mut srv = DuplexServer::start_with(|c| c.limits.tls_handshake_timeout_secs = 9).await;
    let c = srv.connect_to(ListenerKind::Implicit);
    let start = Instant::now();
    // Nothing is sent before TLS: the session ends with no greeting.
    c.closed().await;
    took(start.elapsed(), Duration::from_secs(9));
}

#[tokio::test(start_paused = true)]
async fn pasv_with_no_client_connecting_gets_425_after_the_connect_timeout() {
    let mut srv = DuplexServer::start_with(|c| c.limits.data_connect_timeout_secs = 30).await;
    let mut c = srv.login(USER, PASSWORD).await;
    c.expect("PBSZ 0", 200).await;
    c.expect("PROT P", 200).await;
    c.expect("PASV", 227).await;
    let start = Instant::now();
    c.send_line("LIST").await;
    let mut r = c.reply().await;
    if r.code == 150 {
        r = c.reply().await;
    }
    assert_eq!(r.code, 425, "{}", r.text);
    took(start.elapsed(), Duration::from_secs(30));
    // The session goes on.
    c.expect("NOOP", 200).await;
}

#[tokio::test(start_paused = true)]
async fn server_shutdown_tells_an_idle_session_421() {
    let mut srv = DuplexServer::start_with(|_| {}).await;
    let mut c = srv.login(USER, PASSWORD).await;
    let start = Instant::now();
    srv.shut_down();
    let r = c.reply().await;
    assert_eq!(r.code, 421, "{}", r.text);
    assert!(r.text.contains("shutting down"), "{}", r.text);
    took(start.elapsed(), Duration::ZERO);
    c.closed().await;
}

#[tokio::test(start_paused = true)]
async fn a_second_session_from_the_address_over_its_limit_gets_421() {
    let mut srv = DuplexServer::start_with(|c| c.limits.max_sessions_per_ip = 1).await;
    let mut first = srv.greeted().await;
    let mut second = srv.connect();
    let r = second.reply().await;
    assert_eq!(r.code, 421, "{}", r.text);
    second.closed().await;
    first.expect("FEAT", 211).await;
    first.expect("QUIT", 221).await;
    first.closed().await;
    // The slot is free again.
    let mut third = srv.greeted().await;
    third.expect("QUIT", 221).await;
}

#[tokio::test(start_paused = true)]
async fn plain_ftp_where_tls_is_not_required() {
    let mut srv = DuplexServer::start_with(|c| c.listeners.require_tls = false).await;
    let mut c = srv.greeted().await;
    c.table(&[
        ("PWD", 530),
        ("USER acme", 331),
        (&format!("PASS {PASSWORD}"), 230),
        ("PWD", 257),
        // PBSZ and PROT need AUTH TLS first (RFC 4217 §4): no TLS session to protect data with.
        ("PBSZ 0", 503),
        ("PROT C", 503),
        ("QUIT", 221),
    ])
    .await;
    c.closed().await;
}
