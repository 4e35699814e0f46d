//! Passive mode (PASV, EPSV): shared listeners on the ports of `passive.ports`, and the
//! dispatcher that hands each incoming data connection to the session waiting for it.
//!
//! One port serves several sessions at once when their clients have different addresses: PASV
//! registers the session as waiting on (port, client address); the port's accept task takes the
//! client address of each connection (from the PROXY header when `listeners.proxy_protocol` is
//! on, read once, here) and gives the connection to the session registered for it. Two sessions
//! of one address never wait on one port, so the match is unambiguous; a connection nobody waits
//! for is closed (port stealing from another address). A port's listener is bound exactly while
//! at least one session waits on it (`ftps_passive_ports_in_use`), with `SO_REUSEADDR`, so a
//! port whose earlier data connections sit in TIME_WAIT can be bound again at once; on Linux a
//! second *listening* socket on the port is still refused (tested below).

use std::{
    collections::{hash_map::Entry, HashMap},
    io,
    net::{IpAddr, SocketAddr},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, Weak,
    },
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    sync::{oneshot, Notify},
    task::JoinHandle,
};

use crate::config::PortRange;
use crate::proxy::{ClientAddr, ProxyPolicy};

/// How often a PASV waiting for a free port tries again.
const RETRY: Duration = Duration::from_millis(20);

/// Backlog of each passive listener: several sessions' clients may connect at once.
const BACKLOG: u32 = 64;

/// Hands out passive ports: a port to each PASV/EPSV, shared between clients of different
/// addresses. Clones share the pool.
#[derive(Clone)]
pub struct PassivePortPool {
    shared: Arc<Shared>,
}

struct Shared {
    range: PortRange,
    cursor: AtomicUsize,
    /// With the PROXY protocol: data connections come from the proxy, with a header.
    proxy: Option<Arc<ProxyPolicy>>,
    /// Listening ports (local address and port) and who waits on each.
    ports: Mutex<HashMap<SocketAddr, Port>>,
    /// Woken whenever a session stops waiting on a port (a PASV may be waiting for one).
    freed: Notify,
    next_id: AtomicU64,
}

/// A bound port: its accept task and the sessions waiting on it, by client address.
struct Port {
    waiting: HashMap<IpAddr, Waiter>,
    /// Aborted (closing the listener) when the entry is removed.
    _accept: AbortOnDrop,
    /// Counts the port in `ftps_passive_ports_in_use` while it is bound.
    _in_use: crate::metrics::PassivePortGuard,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<TcpStream>,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One session waiting on a passive port for its client's data connection, until the
/// connection is taken or this is dropped.
pub struct PassiveListener {
    shared: Arc<Shared>,
    addr: SocketAddr,
    client: IpAddr,
    id: u64,
    rx: oneshot::Receiver<TcpStream>,
}

impl PassivePortPool {
    pub fn new(range: PortRange, proxy: Option<Arc<ProxyPolicy>>) -> Self {
        // Start at a random offset so restarts do not all contend for the first ports.
        let start = rand::random::<usize>() % range.len();
        PassivePortPool {
            shared: Arc::new(Shared {
                range,
                cursor: AtomicUsize::new(start),
                proxy,
                ports: Mutex::new(HashMap::new()),
                freed: Notify::new(),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// A port on `local` (the control connection's local address) on which no other session
    /// of `client` waits; if every port has one, waits up to `wait` for one to be freed.
    pub async fn acquire(
        &self,
        local: IpAddr,
        client: IpAddr,
        wait: Duration,
    ) -> io::Result<PassiveListener> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let freed = self.shared.freed.notified();
            tokio::pin!(freed);
            // Registered before trying, so a port freed in between still wakes us.
            freed.as_mut().enable();
            match self.try_acquire(local, client) {
                Ok(l) => return Ok(l),
                Err(e) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(e);
                    }
                    // Woken when a port is freed; polled too, because a freed port's listener
                    // closes a moment later, when its accept task has ended.
                    let _ = tokio::time::timeout_at(
                        deadline.min(tokio::time::Instant::now() + RETRY),
                        freed,
                    )
                    .await;
                }
            }
        }
    }

    fn try_acquire(&self, local: IpAddr, client: IpAddr) -> io::Result<PassiveListener> {
        let shared = &self.shared;
        let client = client.to_canonical();
        let n = shared.range.len();
        let mut ports = shared.lock();
        for _ in 0..n {
            let i = shared.cursor.fetch_add(1, Ordering::Relaxed) % n;
            // In range by construction: i < len = last - first + 1.
            let addr = SocketAddr::new(local, shared.range.first.saturating_add(i as u16));
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            match ports.entry(addr) {
                Entry::Occupied(mut e) => {
                    if e.get().waiting.contains_key(&client) {
                        continue;
                    }
                    e.get_mut().waiting.insert(client, Waiter { id, tx });
                }
                Entry::Vacant(e) => {
                    // Busy (another process, or our own listener still closing): next port.
                    let Ok(listener) = bind_reusable(addr) else {
                        continue;
                    };
                    let task = tokio::spawn(accept_loop(listener, addr, Arc::downgrade(shared)));
                    e.insert(Port {
                        waiting: HashMap::from([(client, Waiter { id, tx })]),
                        _accept: AbortOnDrop(task),
                        _in_use: crate::metrics::passive_port_acquired(),
                    });
                }
            }
            return Ok(PassiveListener {
                shared: shared.clone(),
                addr,
                client,
                id,
                rx,
            });
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "every port of passive.ports is in use for this client address",
        ))
    }

    /// A data connection another replica relayed (`relay.rs`): for `port`, from `client`.
    pub fn dispatch_relayed(&self, port: u16, stream: TcpStream, client: ClientAddr) {
        let addr = self
            .shared
            .lock()
            .keys()
            .find(|a| a.port() == port)
            .copied();
        match addr {
            Some(addr) => self.shared.dispatch(addr, stream, client),
            None => tracing::warn!(
                data_peer = %client,
                port,
                "refused a relayed data connection: no session waits on this port"
            ),
        }
    }

    /// Ports bound now (what `ftps_passive_ports_in_use` counts for this pool).
    pub fn ports_in_use(&self) -> usize {
        self.shared.lock().len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Port>> {
        // A panic while holding the lock cannot leave the map half-updated in a way that
        // matters more than losing every passive port.
        self.ports.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes `client`'s waiter `id` (if `id` is given, only that one) from `addr`, closing
    /// the port when nobody waits on it any more. The waiter's sender, if it was there.
    fn remove(&self, addr: SocketAddr, client: IpAddr, id: Option<u64>) -> Option<Waiter> {
        let mut ports = self.lock();
        let port = ports.get_mut(&addr)?;
        if id.is_some_and(|id| port.waiting.get(&client).is_some_and(|w| w.id != id)) {
            return None;
        }
        let waiter = port.waiting.remove(&client)?;
        if port.waiting.is_empty() {
            ports.remove(&addr);
        }
        drop(ports);
        self.freed.notify_waiters();
        Some(waiter)
    }

    /// Gives `stream` (from `data_client`) to the session waiting for that address on `addr`.
    fn dispatch(&self, addr: SocketAddr, stream: TcpStream, data_client: ClientAddr) {
        match self.remove(addr, data_client.ip().to_canonical(), None) {
            // A session that stopped waiting meanwhile drops it (closing it).
            Some(w) => {
                let _ = w.tx.send(stream);
            }
            None => tracing::warn!(
                data_peer = %data_client,
                port = addr.port(),
                "refused a data connection: no session waits on this port for its address"
            ),
        }
    }
}

impl PassiveListener {
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The data connection of this session's client; with the PROXY protocol its header has
    /// been read, so the stream starts with the client's first byte.
    pub async fn accept(&mut self) -> io::Result<TcpStream> {
        (&mut self.rx)
            .await
            .map_err(|_| io::Error::other("the passive port was closed"))
    }
}

impl Drop for PassiveListener {
    fn drop(&mut self) {
        self.shared.remove(self.addr, self.client, Some(self.id));
    }
}

/// A listener on `addr` with `SO_REUSEADDR`: binds over TIME_WAIT connections, not over
/// another listener.
pub(super) fn bind_reusable(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

async fn accept_loop(listener: TcpListener, addr: SocketAddr, shared: Weak<Shared>) {
    loop {
        let (mut stream, from) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, port = addr.port(), "passive accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match shared.proxy.clone() {
            None => shared.dispatch(addr, stream, ClientAddr::direct(from)),
            // The header is read off the accept loop, so a slow sender delays nobody else;
            // `client_of` bounds the read.
            Some(policy) => {
                tokio::spawn(async move {
                    match policy.client_of(&mut stream, from).await {
                        Ok(client) => shared.dispatch(addr, stream, client),
                        Err(e) => tracing::warn!(
                            data_peer = %from,
                            error = %e,
                            "refused a data connection: PROXY protocol"
                        ),
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn free_range(len: u16) -> PortRange {
        // Probe a free port; the ones after it are very likely free too on a test machine.
        let base = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
            l.local_addr().expect("addr").port()
        };
        PortRange {
            first: base,
            last: base.saturating_add(len - 1),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// A pool of one free port, and its listener acquired for `client`. The probed port may be
    /// taken between the probe and the bind: probe again rather than skip (a skipped test would
    /// pass without checking anything).
    async fn one_port_pool(local: IpAddr, client: IpAddr) -> (PassivePortPool, PassiveListener) {
        for _ in 0..20 {
            let pool = PassivePortPool::new(free_range(1), None);
            if let Ok(l) = pool.acquire(local, client, Duration::ZERO).await {
                return (pool, l);
            }
        }
        panic!("no free port in 20 probes");
    }

    #[tokio::test]
    async fn a_second_listener_on_a_reusable_port_is_refused() {
        let a = bind_reusable("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let addr = a.local_addr().expect("addr");
        assert!(bind_reusable(addr).is_err(), "two live listeners on {addr}");
        drop(a);
        bind_reusable(addr).expect("free again");
    }

    #[tokio::test]
    async fn a_port_is_shared_by_clients_of_different_addresses_only() {
        let local = ip("127.0.0.1");
        let (pool, mut a) = one_port_pool(local, ip("127.0.0.2")).await;
        let mut b = pool
            .acquire(local, ip("127.0.0.3"), Duration::ZERO)
            .await
            .expect("another address shares the port");
        assert_eq!(a.port(), b.port());
        assert_eq!(pool.ports_in_use(), 1);
        // A second session of the same address: no port for it.
        assert!(pool
            .acquire(local, ip("127.0.0.2"), Duration::from_millis(50))
            .await
            .is_err());

        // Each connection reaches the session of its own source address.
        let port = a.port();
        for (src, byte) in [("127.0.0.3", b'b'), ("127.0.0.2", b'a')] {
            let s = TcpSocket::new_v4().expect("socket");
            s.bind(SocketAddr::new(ip(src), 0)).expect("bind source");
            let mut c = s
                .connect(SocketAddr::new(local, port))
                .await
                .expect("connect");
            c.write_all(&[byte]).await.expect("write");
        }
        let mut got = [0u8; 1];
        a.accept()
            .await
            .expect("a")
            .read_exact(&mut got)
            .await
            .expect("read");
        assert_eq!(got, [b'a']);
        b.accept()
            .await
            .expect("b")
            .read_exact(&mut got)
            .await
            .expect("read");
        assert_eq!(got, [b'b']);
        // Both taken: the port is closed, counted as no longer in use.
        assert_eq!(pool.ports_in_use(), 0);
        drop((a, b));
        assert_eq!(pool.ports_in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiting_pasv_gets_the_port_when_it_is_freed() {
        let local = ip("127.0.0.1");
        let (pool, first) = one_port_pool(local, local).await;
        let port = first.port();
        let release = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(first);
        };
        let (second, ()) =
            tokio::join!(pool.acquire(local, local, Duration::from_secs(5)), release);
        assert_eq!(second.expect("freed port").port(), port);
    }
}
