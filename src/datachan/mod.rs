//! Data connections: passive listeners from a port pool, the connection itself (plain or TLS by
//! PROT level), and an idle timeout on every read and write.
//!
//! Rules enforced here, once:
//! - A data connection must come from the control connection's peer address; connections from
//!   anywhere else are dropped and we keep waiting (port-stealing defence, ARCHITECTURE.md).
//! - Under PROT P the data connection is TLS with the data acceptor, which sends no TLS 1.3
//!   tickets (see `tls.rs` for why).
//! - Waiting for the client to connect and handshake is bounded (`limits.data_connect_timeout`),
//!   and so is every read and write afterwards (`limits.data_idle_timeout`).

mod idle;
mod passive;

use std::{io, net::IpAddr, time::Duration};

use tokio_rustls::TlsAcceptor;

pub use idle::IdleTimeout;
pub use passive::{PassiveListener, PassivePortPool};

use crate::tls::MaybeTls;

/// Normalises an address for comparison: IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Accepts the client's data connection on `listener` and, with `tls`, completes the TLS
/// handshake. Only `peer` may connect. The whole step is bounded by `timeout`.
pub async fn open(
    listener: &PassiveListener,
    peer: IpAddr,
    tls: Option<&TlsAcceptor>,
    timeout: Duration,
) -> io::Result<MaybeTls> {
    let open = async {
        let tcp = listener.accept_from(peer).await?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok(MaybeTls::Plain(tcp)),
            Some(acceptor) => Ok(MaybeTls::Tls(Box::new(acceptor.accept(tcp).await?))),
        }
    };
    tokio::time::timeout(timeout, open).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "no data connection (or TLS handshake) within the timeout",
        )
    })?
}
