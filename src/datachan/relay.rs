//! Several replicas behind one address with no affinity (`[cluster]`; ARCHITECTURE.md,
//! "Several replicas behind one address").
//!
//! Each replica owns a slice of `passive.ports` (by ordinal) and answers PASV/EPSV only with
//! ports of its slice. A load balancer may deliver the data connection to any replica; every
//! replica therefore listens on all the ports it does not own and relays each connection there
//! to the owner's relay listener (`cluster.listen`), behind a PROXY v2 header naming the client
//! and the port. The owner hands it to its passive pool as if it had accepted it itself, so the
//! client-address check still holds; the bytes are not touched, so TLS stays end to end between
//! client and owner (and resumption of the owner's control session still works).
//!
//! Only replicas (the addresses `cluster.peers` resolve to) may connect to the relay listener:
//! a header there names any client, so anyone else could steal a data connection.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpSocket, TcpStream},
};
use tokio_util::sync::CancellationToken;

use super::{passive::bind_reusable, PassivePortPool};
use crate::config::{Config, PortRange};
use crate::proxy::{read_relay_header, relay_header, ClientAddr, ProxyPolicy};

/// Bound on connecting to the owner and on checking a relay peer's address (DNS included).
const PEER_TIMEOUT: Duration = Duration::from_secs(5);

/// The listeners of the cluster mode, bound, not yet serving.
pub struct Relay {
    /// `cluster.listen`: connections relayed to us.
    inbound: TcpListener,
    /// One per port of the range we do not own: (listener, port, owner's relay address).
    forwarders: Vec<(TcpListener, u16, String)>,
    peers: Arc<Vec<String>>,
    /// Relayed connections leave from `cluster.listen`'s address (when it is not the
    /// unspecified one), so that the owner sees this replica's peer address.
    source: Option<IpAddr>,
}

/// A listener that could not be bound: the config key, the address, why.
pub type BindError = (&'static str, SocketAddr, io::Error);

impl Relay {
    /// Binds `cluster.listen` and, on the FTP listeners' address, every port of
    /// `passive.ports` outside `owned`.
    pub fn bind(
        config: &Config,
        range: PortRange,
        owned: PortRange,
        n: usize,
    ) -> Result<Option<Relay>, BindError> {
        let Some(listen) = config.cluster.listen else {
            return Ok(None);
        };
        let inbound = bind_reusable(listen).map_err(|e| ("cluster.listen", listen, e))?;
        let ip = config
            .listeners
            .explicit
            .or(config.listeners.implicit)
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let mut forwarders = Vec::new();
        for port in range.first..=range.last {
            if owned.contains(port) {
                continue;
            }
            let owner = (0..n)
                .find(|&i| range.slice(i, n).is_some_and(|s| s.contains(port)))
                .and_then(|i| config.cluster.peers.get(i));
            let Some(owner) = owner else { continue };
            let addr = SocketAddr::new(ip, port);
            let l = bind_reusable(addr).map_err(|e| ("passive.ports", addr, e))?;
            forwarders.push((l, port, owner.clone()));
        }
        Ok(Some(Relay {
            inbound,
            forwarders,
            peers: Arc::new(config.cluster.peers.clone()),
            source: Some(listen.ip()).filter(|ip| !ip.is_unspecified()),
        }))
    }

    /// Serves until `stop`: relays connections on the ports we do not own to their owners,
    /// and hands connections relayed to us to `pool`.
    pub fn spawn(
        self,
        pool: PassivePortPool,
        proxy: Option<Arc<ProxyPolicy>>,
        keepalive_secs: u64,
        stop: CancellationToken,
    ) {
        for (listener, port, owner) in self.forwarders {
            tokio::spawn(forward_loop(
                listener,
                port,
                Arc::new(owner),
                self.source,
                proxy.clone(),
                keepalive_secs,
                stop.clone(),
            ));
        }
        tokio::spawn(inbound_loop(
            self.inbound,
            self.peers,
            pool,
            keepalive_secs,
            stop,
        ));
    }
}

/// Accepts until `stop`, backing off on errors (EMFILE and friends) instead of spinning.
async fn accept(l: &TcpListener, stop: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            r = l.accept() => match r {
                Ok(a) => return Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "relay accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn forward_loop(
    listener: TcpListener,
    port: u16,
    owner: Arc<String>,
    source: Option<IpAddr>,
    proxy: Option<Arc<ProxyPolicy>>,
    keepalive_secs: u64,
    stop: CancellationToken,
) {
    while let Some((mut inbound, from)) = accept(&listener, &stop).await {
        let (owner, proxy) = (owner.clone(), proxy.clone());
        tokio::spawn(async move {
            let client = match &proxy {
                None => ClientAddr::direct(from),
                Some(p) => match p.client_of(&mut inbound, from).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(data_peer = %from, error = %e,
                            "refused a data connection: PROXY protocol");
                        return;
                    }
                },
            };
            crate::keepalive::apply(&inbound, keepalive_secs);
            if let Err(e) = forward(inbound, client, port, &owner, source, keepalive_secs).await {
                tracing::warn!(client_addr = %client, port, owner = %owner, error = %e,
                    "relaying a data connection to its replica failed");
            }
        });
    }
}

/// Connects to `owner`, sends the relay header, then copies both ways until both ends close.
async fn forward(
    mut inbound: TcpStream,
    client: ClientAddr,
    port: u16,
    owner: &str,
    source: Option<IpAddr>,
    keepalive_secs: u64,
) -> io::Result<()> {
    let connect = async {
        let target = tokio::net::lookup_host(owner)
            .await?
            .next()
            .ok_or_else(|| io::Error::other("the owner's name resolves to nothing"))?;
        let socket = match target {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if let Some(ip) = source.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        socket.connect(target).await
    };
    let mut out = tokio::time::timeout(PEER_TIMEOUT, connect)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting to the owner"))??;
    let _ = out.set_nodelay(true);
    let _ = inbound.set_nodelay(true);
    crate::keepalive::apply(&out, keepalive_secs);
    let destination = SocketAddr::new(out.peer_addr()?.ip(), port);
    out.write_all(&relay_header(client.addr(), destination)?)
        .await?;
    crate::metrics::passive_relayed("out");
    // Ends when both directions have ended; the owner's data idle timeout bounds a stalled
    // transfer (it closes its end), keepalive a vanished peer.
    tokio::io::copy_bidirectional(&mut inbound, &mut out).await?;
    Ok(())
}

async fn inbound_loop(
    listener: TcpListener,
    peers: Arc<Vec<String>>,
    pool: PassivePortPool,
    keepalive_secs: u64,
    stop: CancellationToken,
) {
    while let Some((mut stream, from)) = accept(&listener, &stop).await {
        let (peers, pool) = (peers.clone(), pool.clone());
        tokio::spawn(async move {
            if !is_peer(from.ip(), &peers).await {
                tracing::warn!(peer = %from, "refused a relay connection: not a cluster.peers address");
                return;
            }
            match read_relay_header(&mut stream).await {
                Ok((client, port)) => {
                    crate::keepalive::apply(&stream, keepalive_secs);
                    crate::metrics::passive_relayed("in");
                    pool.dispatch_relayed(port, stream, ClientAddr::proxied(client, from));
                }
                Err(e) => tracing::warn!(peer = %from, error = %e, "refused a relay connection"),
            }
        });
    }
}

/// Whether `ip` is one of the addresses `peers` resolve to now (pods' addresses change when
/// they restart, so resolve each time).
async fn is_peer(ip: IpAddr, peers: &[String]) -> bool {
    let ip = ip.to_canonical();
    let check = async {
        for p in peers {
            if let Ok(mut addrs) = tokio::net::lookup_host(p.as_str()).await {
                if addrs.any(|a| a.ip().to_canonical() == ip) {
                    return true;
                }
            }
        }
        false
    };
    tokio::time::timeout(PEER_TIMEOUT, check)
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_peer_addresses_are_peers() {
        let peers = vec!["127.0.0.2:2100".to_string(), "127.0.0.3:2100".to_string()];
        assert!(is_peer("127.0.0.3".parse().expect("ip"), &peers).await);
        assert!(is_peer("::ffff:127.0.0.2".parse().expect("ip"), &peers).await);
        assert!(!is_peer("127.0.0.4".parse().expect("ip"), &peers).await);
    }
}
