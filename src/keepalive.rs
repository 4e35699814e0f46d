//! TCP keepalive on control and data connections (`listeners.tcp_keepalive_secs`).
//!
//! Load balancers and NAT tables forget a flow that carries no packet for a while (AWS NLB:
//! 350 s). During a long transfer the control connection is idle, so without probes the client
//! never receives its `226`. A probe is a packet without data: it refreshes the flow in every
//! middlebox on the path without touching the FTP stream.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Turns keepalive on with probes after `secs` of silence and every `secs` after that; `0`
/// leaves the socket alone (off). Failure is logged, not fatal: the connection still works.
pub fn apply(tcp: &TcpStream, secs: u64) {
    if secs == 0 {
        return;
    }
    let every = Duration::from_secs(secs);
    let params = TcpKeepalive::new().with_time(every).with_interval(every);
    if let Err(e) = SockRef::from(tcp).set_tcp_keepalive(&params) {
        tracing::warn!(error = %e, "cannot set TCP keepalive");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sets_the_idle_time_or_nothing() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let c = TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        apply(&c, 0);
        assert!(!SockRef::from(&c).keepalive().expect("get"));
        apply(&c, 7);
        let s = SockRef::from(&c);
        assert!(s.keepalive().expect("get"));
        assert_eq!(
            s.tcp_keepalive_time().expect("time"),
            Duration::from_secs(7)
        );
        assert_eq!(
            s.tcp_keepalive_interval().expect("interval"),
            Duration::from_secs(7)
        );
    }
}
