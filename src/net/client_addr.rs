//! [`ClientAddr`]: who is at the other end of a connection.
//!
//! It is the one value every rule reads (logs and spans, audit lines, login throttling,
//! `allowed_ips`, per-address session limits, the passive data-connection check and the
//! PORT/EPRT target check), so no rule can look at a proxy's address by mistake. With the PROXY
//! protocol it is the source the header names ([`super::proxy_protocol`]).

use std::{
    fmt,
    net::{IpAddr, SocketAddr},
};

/// Who is at the other end of a connection, as far as the server's rules are concerned: the
/// TCP peer, or with the PROXY protocol the source named in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr {
    addr: SocketAddr,
    /// The proxy the connection came through, when the address came from a header.
    via: Option<SocketAddr>,
}

impl ClientAddr {
    /// A client connected directly (or through a proxy that sent `LOCAL`/`UNKNOWN`).
    pub fn direct(tcp_peer: SocketAddr) -> Self {
        ClientAddr {
            addr: canonical(tcp_peer),
            via: None,
        }
    }

    /// A client named by a PROXY header received from `proxy`.
    pub fn proxied(source: SocketAddr, proxy: SocketAddr) -> Self {
        ClientAddr {
            addr: canonical(source),
            via: Some(proxy),
        }
    }

    /// The client's address and port. IPv4-mapped IPv6 addresses are shown as IPv4, so one
    /// client has one address in every log line and limit.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn ip(&self) -> IpAddr {
        self.addr.ip()
    }

    /// The proxy's address, if the connection came through one.
    pub fn via(&self) -> Option<SocketAddr> {
        self.via
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.addr.fmt(f)
    }
}

pub(crate) fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}
