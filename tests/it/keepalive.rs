//! TCP keepalive (`listeners.tcp_keepalive_secs`): a cloud load balancer drops a flow that has
//! been idle for a while (AWS NLB: 350 s), and during a long transfer the control connection is
//! idle. Here an in-test TCP proxy in front of the control port drops a flow after 5 s without
//! a packet, as such a balancer does; keepalive probes are packets without data, so the proxy
//! sees them in the kernel's count of segments received (`TCP_INFO` `tcpi_segs_in`).

use std::{
    net::SocketAddr,
    os::fd::{AsRawFd, RawFd},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use crate::common::clients::{self, assert_ok, curl, random_bytes};
use crate::common::server::{TestServer, PASSWORD, USER};

/// Segments the socket has received (data, ACKs and keepalive probes alike).
fn segs_in(fd: RawFd) -> Option<u32> {
    // SAFETY: TCP_INFO writes at most `len` bytes into `info`, a plain C struct; `fd` is a
    // socket kept open by the caller.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let r = libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        );
        (r == 0).then_some(info.tcpi_segs_in)
    }
}

/// A TCP proxy to `upstream` that closes a flow once no packet has crossed it for `idle`.
/// Returns its address and the number of flows it dropped.
async fn idle_dropping_proxy(
    upstream: SocketAddr,
    idle: Duration,
) -> (SocketAddr, Arc<Mutex<u32>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("addr");
    let dropped = Arc::new(Mutex::new(0u32));
    let count = dropped.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(upstream).await else {
                continue;
            };
            tokio::spawn(flow(client, server, idle, count.clone()));
        }
    });
    (addr, dropped)
}

async fn flow(client: TcpStream, server: TcpStream, idle: Duration, dropped: Arc<Mutex<u32>>) {
    let fds = [client.as_raw_fd(), server.as_raw_fd()];
    let last = Arc::new(Mutex::new(Instant::now()));
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pipe(cr, sw, last.clone()));
    let down = tokio::spawn(pipe(sr, cw, last.clone()));
    let mut seen = fds.map(segs_in);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if up.is_finished() && down.is_finished() {
            return;
        }
        // The halves are alive (owned by the pipes, which have not both ended): fds valid.
        let now = fds.map(segs_in);
        if now != seen {
            seen = now;
            *last.lock().expect("lock") = Instant::now();
        }
        if last.lock().expect("lock").elapsed() > idle {
            // Both sockets close: what the client sees of a balancer that forgot the flow.
            up.abort();
            down.abort();
            *dropped.lock().expect("lock") += 1;
            return;
        }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    last: Arc<Mutex<Instant>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => {
                *last.lock().expect("lock") = Instant::now();
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A ~20 s upload (curl throttled) whose control connection runs through a proxy that drops
/// flows idle for 5 s: with `listeners.tcp_keepalive_secs = 2` the server's probes keep the
/// flow alive and curl gets its `226`.
#[tokio::test]
async fn keepalive_keeps_an_idle_control_connection_through_a_dropping_proxy() {
    let srv = TestServer::start_with(|c| c.listeners.tcp_keepalive_secs = 2).await;
    let (proxy, dropped) = idle_dropping_proxy(srv.implicit, Duration::from_secs(5)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("long.bin");
    let body = random_bytes(2_000_000);
    std::fs::write(&src, &body).expect("write");
    let t0 = Instant::now();
    let mut c = curl(USER, PASSWORD);
    // The client sends no keepalives of its own: only the server's probes cross the proxy.
    c.args(["--no-keepalive", "--limit-rate", "100K", "-T"])
        .arg(&src)
        .arg(format!("ftps://{proxy}/long.bin"));
    let out = clients::run(c).await;
    let took = t0.elapsed();
    assert_ok(&out, "throttled upload through the idle-dropping proxy");
    assert!(
        took > Duration::from_secs(12),
        "the upload took only {took:?}"
    );
    assert_eq!(
        *dropped.lock().expect("lock"),
        0,
        "the proxy dropped a flow"
    );
    assert_eq!(srv.object(&srv.key("long.bin")).await, Some(body));
    srv.stop().await;
}
