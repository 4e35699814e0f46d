//! PROXY protocol (`listeners.proxy_protocol`): the client address comes from the header on
//! control and passive data connections, only trusted sources are served, and a bad or slow
//! header is bounded. Headers are built here by hand from HAProxy's `proxy-protocol.txt`,
//! independently of the server's parser; `haproxy.rs` runs the real HAProxy in front of two
//! replicas.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{
    clients::random_bytes,
    raw::RawClient,
    server::{TestServer, PASSWORD, USER},
};

/// A v2 `PROXY` header (TCP over IPv4) naming `src` as the client.
pub fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        panic!("IPv4 only");
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21); // version 2, PROXY
    h.push(0x11); // AF_INET, STREAM
    h.extend(12u16.to_be_bytes());
    h.extend(s.octets());
    h.extend(d.octets());
    h.extend(src.port().to_be_bytes());
    h.extend(dst.port().to_be_bytes());
    h
}

fn v1_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    format!(
        "PROXY TCP4 {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

async fn proxied_server(trusted: &str) -> TestServer {
    let trusted = trusted.parse().expect("cidr");
    TestServer::start_with(|c| {
        c.listeners.proxy_protocol = true;
        c.listeners.trusted_proxies = vec![trusted];
        c.limits.max_sessions_per_ip = 1;
    })
    .await
}

/// STAT's "Connected from" line: the client address the session uses.
async fn assert_connected_from(c: &mut RawClient, addr: &str) {
    let stat = c.expect("STAT", 211).await;
    let line = format!("Connected from {addr}");
    assert!(stat.text.contains(&line), "{}", stat.text);
}

/// What the server sends on a connection before closing it, within `limit`.
async fn bytes_before_close(tcp: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(limit, tcp.read_to_end(&mut got)).await {
        Ok(_) => got,
        Err(_) => panic!("the server kept the connection open for {limit:?}"),
    }
}

/// The header's source is the client: STAT shows it, EPRT may target only it, the upload records
/// it in S3, the data
/// connection through the "proxy" is accepted only with a header naming the same client
/// (another address, or no header at all, is port stealing), and per-address session limits
/// count the header's address, not the proxy's.
#[tokio::test]
async fn the_header_names_the_client_on_control_and_data_connections() {
    let srv = proxied_server("127.0.0.1/32").await;
    let client = sa("198.51.100.7:50123");
    let (mut c, greeting) =
        RawClient::connect_after(srv.explicit, &v2_header(client, srv.explicit)).await;
    assert_eq!(greeting.code, 220);
    c.secure_login(USER, PASSWORD).await;
    assert_connected_from(&mut c, "198.51.100.7:50123").await;
    // Active mode targets the client too: the proxy's own address is someone else.
    c.expect("EPRT |1|127.0.0.1|40000|", 504).await;
    c.expect("EPRT |1|198.51.100.7|40000|", 200).await;

    let body = random_bytes(300_000);
    let port = c.epsv().await;
    c.send_raw(b"STOR proxied.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    // Another client's address in the data connection's header: dropped.
    let thief = v2_header(sa("198.51.100.8:40000"), srv.explicit);
    let stolen = c.try_data_connect_after(port, &thief, true).await;
    assert!(
        stolen.is_err(),
        "a data connection for another client was accepted"
    );
    // No header at all: dropped too (its TLS ClientHello is not a header).
    let bare = c.try_data_connect_after(port, &[], true).await;
    assert!(
        bare.is_err(),
        "a data connection without a header was accepted"
    );
    // The control connection's client (another source port, as a real client would use).
    let own = v2_header(sa("198.51.100.7:50124"), srv.explicit);
    let mut data = c
        .try_data_connect_after(port, &own, true)
        .await
        .expect("the client's own data connection");
    data.write_all(&body).await.expect("body");
    data.finish().await.expect("finish");
    assert_eq!(c.reply().await.code, 226);
    let key = srv.key("proxied.bin");
    assert!(srv.object(&key).await == Some(body), "stored byte-exact");
    let meta = srv.metadata(&key).await;
    assert_eq!(
        meta.get("client-addr").map(String::as_str),
        Some("198.51.100.7")
    );

    // max_sessions_per_ip = 1 counts clients, not the proxy: a second client is served, a
    // second session of the first is refused.
    let (_other, g) =
        RawClient::connect_after(srv.explicit, &v2_header(sa("198.51.100.9:1"), srv.explicit))
            .await;
    assert_eq!(g.code, 220, "{}", g.text);
    let (_again, g) =
        RawClient::connect_after(srv.explicit, &v2_header(sa("198.51.100.7:2"), srv.explicit))
            .await;
    assert_eq!(g.code, 421, "{}", g.text);
    c.expect("QUIT", 221).await;
}

/// Login throttling counts the header's address: behind one proxy, a client guessing passwords
/// is refused, the next client is not (without the header both would share the proxy's address).
#[tokio::test]
async fn login_throttling_counts_clients_not_the_proxy() {
    let srv = TestServer::start_with(|c| {
        c.listeners.proxy_protocol = true;
        c.listeners.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
        c.auth.max_failures = 2;
    })
    .await;
    let login = |from: &'static str, user: &'static str, password: &'static str| {
        let addr = srv.explicit;
        async move {
            let (mut c, g) = RawClient::connect_after(addr, &v2_header(sa(from), addr)).await;
            assert_eq!(g.code, 220);
            c.expect("AUTH TLS", 234).await;
            c.handshake().await.expect("handshake");
            c.expect(&format!("USER {user}"), 331).await;
            c.cmd(&format!("PASS {password}")).await.code
        }
    };
    assert_eq!(login("198.51.100.30:1", "drop", "wrong").await, 530);
    assert_eq!(login("198.51.100.30:2", "drop", "wrong").await, 530);
    // The guesser's address is now refused, even with acme's right password.
    assert_eq!(login("198.51.100.30:3", USER, PASSWORD).await, 530);
    // Another client behind the same proxy is not.
    assert_eq!(login("198.51.100.31:1", USER, PASSWORD).await, 230);
}

/// The implicit port reads the header before the TLS ClientHello; v1 headers work too, and a
/// `LOCAL` header (a load balancer's health check) is served as the proxy itself.
#[tokio::test]
async fn implicit_port_and_v1_and_local_headers() {
    let srv = proxied_server("127.0.0.1/32").await;
    let (mut c, g) = RawClient::connect_implicit_after(
        srv.implicit,
        &v1_header(sa("203.0.113.5:6000"), srv.implicit),
    )
    .await;
    assert_eq!(g.code, 220);
    c.expect(&format!("USER {USER}"), 331).await;
    c.expect(&format!("PASS {PASSWORD}"), 230).await;
    assert_connected_from(&mut c, "203.0.113.5:6000").await;
    let port = c.epsv().await;
    c.send_raw(b"LIST\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let own = v1_header(sa("203.0.113.5:6001"), srv.implicit);
    let mut data = c
        .try_data_connect_after(port, &own, true)
        .await
        .expect("data connection");
    data.read_all().await.expect("listing");
    assert_eq!(c.reply().await.code, 226);

    let mut local = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    local.extend([0x20, 0x00, 0, 0]); // version 2, LOCAL, no addresses
    let (mut h, g) = RawClient::connect_after(srv.explicit, &local).await;
    assert_eq!(g.code, 220);
    h.secure_login(USER, PASSWORD).await;
    assert_connected_from(&mut h, "127.0.0.1:").await;
}

/// With the PROXY protocol on, a connection from a source outside `trusted_proxies` is closed
/// before anything is sent, even with a well-formed header: anyone could claim any address.
#[tokio::test]
async fn untrusted_sources_are_closed_unanswered() {
    let srv = proxied_server("10.0.0.0/8").await;
    for addr in [srv.explicit, srv.implicit] {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(&v2_header(sa("198.51.100.7:1"), addr))
            .await
            .expect("header");
        let got = bytes_before_close(&mut tcp, Duration::from_secs(3)).await;
        assert!(
            got.is_empty(),
            "{addr}: sent {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

/// A connection that does not start with a header is closed without a greeting; one whose header
/// never completes (or never comes: the client waits for a 220 that needs the header first) is
/// closed after the 5 s header timeout, not held.
#[tokio::test]
async fn malformed_and_slow_headers_are_bounded() {
    let srv = proxied_server("127.0.0.1/32").await;
    for bad in [
        &b"USER acme\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 999.2.3.4 5.6.7.8 1 2\r\n",
        &[b'P'; 200][..],
    ] {
        let mut tcp = TcpStream::connect(srv.explicit).await.expect("connect");
        tcp.write_all(bad).await.expect("write");
        let got = bytes_before_close(&mut tcp, Duration::from_secs(3)).await;
        assert!(
            got.is_empty(),
            "{:?}: sent {:?}",
            String::from_utf8_lossy(bad),
            got
        );
    }
    // A v2 header announcing 64 KiB of TLVs: refused at once, not read.
    let mut huge = v2_header(sa("198.51.100.7:1"), srv.explicit);
    huge[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    let mut tcp = TcpStream::connect(srv.explicit).await.expect("connect");
    tcp.write_all(&huge).await.expect("write");
    assert!(bytes_before_close(&mut tcp, Duration::from_secs(3))
        .await
        .is_empty());

    let started = Instant::now();
    let mut partial = TcpStream::connect(srv.explicit).await.expect("connect");
    partial
        .write_all(b"PROXY TCP4 198.51")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(srv.implicit).await.expect("connect");
    let (a, b) = tokio::join!(
        bytes_before_close(&mut partial, Duration::from_secs(9)),
        bytes_before_close(&mut silent, Duration::from_secs(9)),
    );
    let waited = started.elapsed();
    assert!(a.is_empty() && b.is_empty(), "{a:?} {b:?}");
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "closed after {waited:?}, expected the 5 s header timeout"
    );
    // The server still serves proxied clients after all that.
    let (_c, g) = RawClient::connect_after(
        srv.explicit,
        &v2_header(sa("198.51.100.20:1"), srv.explicit),
    )
    .await;
    assert_eq!(g.code, 220);
}
