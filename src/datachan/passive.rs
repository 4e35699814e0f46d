//! Passive mode (PASV, EPSV): the server listens on a port from `passive.ports` and the client
//! connects to it.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::atomic::{AtomicUsize, Ordering},
};

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::config::PortRange;
use crate::proxy::{ClientAddr, ProxyPolicy};

/// Hands out listeners on ports of the configured range. A port is "in use" exactly while its
/// listener is bound, so the kernel is the bookkeeper: we try ports round-robin from a cursor
/// until one binds.
pub struct PassivePortPool {
    range: PortRange,
    cursor: AtomicUsize,
}

/// A bound passive listener, owned by one session until its transfer starts.
pub struct PassiveListener {
    listener: TcpListener,
    port: u16,
    /// Counts the port in `ftps_passive_ports_in_use` while the listener lives.
    _in_use: crate::metrics::PassivePortGuard,
}

impl PassivePortPool {
    pub fn new(range: PortRange) -> Self {
        // Start at a random offset so restarts do not all contend for the first ports.
        let start = rand::random::<usize>() % range.len();
        PassivePortPool {
            range,
            cursor: AtomicUsize::new(start),
        }
    }

    /// Binds a listener on `ip` (the control connection's local address).
    pub fn bind(&self, ip: IpAddr) -> io::Result<PassiveListener> {
        let n = self.range.len();
        for _ in 0..n {
            let i = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            // In range by construction: i < len = last - first + 1.
            let port = self.range.first.saturating_add(i as u16);
            let addr = SocketAddr::new(ip, port);
            let socket = match ip {
                IpAddr::V4(_) => TcpSocket::new_v4()?,
                IpAddr::V6(_) => TcpSocket::new_v6()?,
            };
            // No SO_REUSEADDR: two sessions must never share a passive port.
            if socket.bind(addr).is_err() {
                continue;
            }
            if let Ok(listener) = socket.listen(8) {
                return Ok(PassiveListener {
                    listener,
                    port,
                    _in_use: crate::metrics::passive_port_acquired(),
                });
            }
        }
        crate::metrics::passive_refused();
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "every port of passive.ports is in use",
        ))
    }
}

impl PassiveListener {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next connection from `client`; connections from other addresses are closed at once.
    /// With `proxy`, connections come from the proxy: its header must name the client, and it
    /// is read here, so the stream returned starts with the client's first byte.
    pub async fn accept_from(
        &self,
        client: ClientAddr,
        proxy: Option<&ProxyPolicy>,
    ) -> io::Result<TcpStream> {
        loop {
            let (mut stream, from) = self.listener.accept().await?;
            let data_client = match proxy {
                None => ClientAddr::direct(from),
                Some(policy) => match policy.client_of(&mut stream, from).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(
                            client_addr = %client,
                            data_peer = %from,
                            error = %e,
                            "refused a data connection: PROXY protocol"
                        );
                        continue;
                    }
                },
            };
            if data_client.ip() == client.ip() {
                return Ok(stream);
            }
            tracing::warn!(
                client_addr = %client,
                data_peer = %data_client,
                "refused a data connection from another address than the control connection's"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pool_hands_out_distinct_ports_and_reports_exhaustion() {
        let base = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
            l.local_addr().expect("addr").port()
        };
        let range = PortRange {
            first: base,
            last: base.saturating_add(1),
        };
        let pool = PassivePortPool::new(range);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        let a = pool.bind(ip);
        let b = pool.bind(ip);
        if let (Ok(a), Ok(b)) = (&a, &b) {
            assert_ne!(a.port(), b.port());
            assert!(pool.bind(ip).is_err(), "both ports are taken");
        }
    }
}
