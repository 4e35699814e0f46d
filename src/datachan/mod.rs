//! Data connections: passive listeners from a port pool, active connects, the connection itself
//! (plain or TLS by PROT level), an idle timeout on every read and write, and a count of the
//! bytes moved.
//!
//! Rules enforced here, once:
//! - Passive: a data connection must come from the control connection's client address (with
//!   the PROXY protocol: from a trusted proxy, with a header naming that client); connections
//!   from anywhere else are dropped and we keep waiting (port stealing). One port serves
//!   sessions of different client addresses at once; `passive.rs` dispatches by address.
//! - Active (PORT/EPRT): we connect only to the control connection's client address, on a port
//!   of at least 1024 (no FTP bounce); the address check is in [`active_target`].
//! - Under PROT P the data connection is TLS with the session's data acceptor, which sends no
//!   TLS 1.3 tickets (see `tls.rs` for why) and can resume only this session's TLS sessions;
//!   with `require_resumption` a full handshake is refused (RFC 4217 §10).
//! - Passive connections are accepted, and under PROT P their TLS handshake started, as soon as
//!   the client connects ([`EagerPassive`]), not when the transfer command arrives: some clients
//!   (aioftp) finish the handshake before they send STOR/RETR, most send the command first.
//! - Waiting for the connection and the handshake is bounded (`limits.data_connect_timeout`),
//!   and so is every read and write afterwards (`limits.data_idle_timeout`).

pub mod ascii;
mod idle;
mod metered;
mod passive;
pub mod relay;

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tokio::{net::TcpSocket, task::JoinHandle};
use tokio_rustls::TlsAcceptor;
use tracing::Instrument;

pub use idle::IdleTimeout;
pub use metered::Metered;
pub use passive::{PassiveListener, PassivePortPool};

use crate::net::{read_ahead, DataStream, MaybeTls};
use crate::proxy::ClientAddr;

/// How the next data connection will be made.
pub enum DataPlan {
    /// PASV/EPSV: the client connects to our listener.
    Passive(EagerPassive),
    /// PORT/EPRT: we connect to the client.
    Active(SocketAddr),
}

/// A passive data connection being accepted in the background from PASV/EPSV on: the accept
/// and, under PROT P, the server side of the TLS handshake run as soon as the client connects,
/// so a client that completes its handshake before sending STOR/RETR (aioftp) is not left
/// waiting for a server that waits for the command. [`open`] awaits the result. Dropping it
/// (another PASV, the session's end) stops the task and frees the port.
pub struct EagerPassive {
    port: u16,
    task: JoinHandle<Result<DataStream, OpenError>>,
}

impl EagerPassive {
    /// Starts accepting on `listener`; with `tls`, the handshake follows at once, bounded by
    /// `handshake_timeout` (waiting for the client to connect is bounded later, by [`open`]).
    pub fn start(
        mut listener: PassiveListener,
        tls: Option<TlsAcceptor>,
        handshake_timeout: Duration,
    ) -> EagerPassive {
        let port = listener.port();
        let task = tokio::spawn(
            async move {
                let tcp = listener.accept().await?;
                drop(listener);
                let _ = tcp.set_nodelay(true);
                let Some(acceptor) = tls else {
                    return Ok(MaybeTls::Plain(tcp));
                };
                let tls = tokio::time::timeout(handshake_timeout, acceptor.accept(read_ahead(tcp)))
                    .await
                    .map_err(|_| OpenError::Timeout(handshake_timeout))??;
                Ok(MaybeTls::Tls(Box::new(tls)))
            }
            .in_current_span(),
        );
        EagerPassive { port, task }
    }

    /// The port the client was told to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for EagerPassive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to require of a data connection.
pub struct DataSecurity<'a> {
    /// TLS acceptor under PROT P, `None` in the clear.
    pub tls: Option<&'a TlsAcceptor>,
    /// Refuse TLS handshakes that do not resume this session's TLS session.
    pub require_resumption: bool,
    /// `listeners.tcp_keepalive_secs` (0: off).
    pub keepalive_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no data connection (or TLS handshake) within {0:?}")]
    Timeout(Duration),
    #[error("data connection failed: {0}")]
    Io(#[from] io::Error),
    /// PROT C after PASV/EPSV under PROT P: the connection was already secured.
    #[error("the data protection level changed after PASV/EPSV")]
    ProtChanged,
    /// The data connection's TLS handshake was a full one, not a resumption of the control
    /// connection's session.
    #[error("the data connection did not resume the control connection's TLS session")]
    NotResumed,
}

/// Why a PORT/EPRT target is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActiveRefusal {
    #[error("active mode is disabled on this server")]
    Disabled,
    #[error("data connections go only to the client's own address")]
    OtherAddress,
    #[error("data connections go only to ports 1024 and above")]
    PrivilegedPort,
}

/// Checks a PORT/EPRT target: the control peer's own address, an unprivileged port. A target
/// elsewhere would make us attack a third host for the client (the FTP bounce attack, RFC 2577).
pub fn active_target(
    target: SocketAddr,
    client: ClientAddr,
    enabled: bool,
) -> Result<SocketAddr, ActiveRefusal> {
    if !enabled {
        return Err(ActiveRefusal::Disabled);
    }
    if target.ip().to_canonical() != client.ip() {
        return Err(ActiveRefusal::OtherAddress);
    }
    if target.port() < 1024 {
        return Err(ActiveRefusal::PrivilegedPort);
    }
    Ok(target)
}

/// Opens the data connection of `plan` and, under PROT P, completes the TLS handshake (we are
/// the TLS server either way, RFC 4217 §7). Active connections leave from `local_ip`, from
/// `source_port` when one is set. The whole step is bounded by `timeout`.
pub async fn open(
    plan: &mut DataPlan,
    local_ip: IpAddr,
    source_port: Option<u16>,
    security: DataSecurity<'_>,
    timeout: Duration,
) -> Result<DataStream, OpenError> {
    let open = async {
        let tcp = match plan {
            // The pool matched the connection's client address (PROXY header included) to
            // this session's; the handshake under PROT P may be done already.
            DataPlan::Passive(eager) => {
                let conn = (&mut eager.task)
                    .await
                    .map_err(|e| io::Error::other(format!("data connection task: {e}")))??;
                match (conn, security.tls) {
                    (MaybeTls::Plain(tcp), Some(_)) => tcp,
                    (MaybeTls::Plain(tcp), None) => return Ok(MaybeTls::Plain(tcp)),
                    (tls @ MaybeTls::Tls(_), Some(_)) => {
                        return resumed_or_refused(tls, security.require_resumption)
                    }
                    (MaybeTls::Tls(_), None) => return Err(OpenError::ProtChanged),
                }
            }
            DataPlan::Active(target) => {
                let socket = match target {
                    SocketAddr::V4(_) => TcpSocket::new_v4()?,
                    SocketAddr::V6(_) => TcpSocket::new_v6()?,
                };
                if let Some(port) = source_port {
                    // Several sessions may use source port 989 towards different clients.
                    socket.set_reuseaddr(true)?;
                    socket.bind(SocketAddr::new(local_ip, port))?;
                }
                socket.connect(*target).await?
            }
        };
        let _ = tcp.set_nodelay(true);
        crate::keepalive::apply(&tcp, security.keepalive_secs);
        let Some(acceptor) = security.tls else {
            return Ok(MaybeTls::Plain(tcp));
        };
        let tls = MaybeTls::Tls(Box::new(acceptor.accept(read_ahead(tcp)).await?));
        resumed_or_refused(tls, security.require_resumption)
    };
    tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| OpenError::Timeout(timeout))?
}

/// RFC 4217 §10: with `require_resumption`, a data connection that did not resume the control
/// connection's TLS session is refused.
fn resumed_or_refused(tls: DataStream, require_resumption: bool) -> Result<DataStream, OpenError> {
    if require_resumption && !tls.resumed() {
        return Err(OpenError::NotResumed);
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    #[test]
    fn active_targets_must_be_the_peer_on_a_high_port() {
        let peer = ClientAddr::direct(sa("192.0.2.7:50000"));
        assert_eq!(
            active_target(sa("192.0.2.7:40000"), peer, true),
            Ok(sa("192.0.2.7:40000"))
        );
        assert_eq!(
            active_target(sa("[::ffff:192.0.2.7]:40000"), peer, true).map(|a| a.port()),
            Ok(40000)
        );
        assert_eq!(
            active_target(sa("192.0.2.8:40000"), peer, true),
            Err(ActiveRefusal::OtherAddress)
        );
        assert_eq!(
            active_target(sa("192.0.2.7:25"), peer, true),
            Err(ActiveRefusal::PrivilegedPort)
        );
        assert_eq!(
            active_target(sa("192.0.2.7:40000"), peer, false),
            Err(ActiveRefusal::Disabled)
        );
    }
}
