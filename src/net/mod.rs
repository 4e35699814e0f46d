//! Connections below the FTP protocol: who the client is ([`ClientAddr`], through the PROXY
//! protocol when a load balancer fronts the server), which listener took the connection
//! ([`ListenerKind`]) and the stream itself ([`MaybeTls`], over any [`ControlIo`] for the control
//! connection; [`DataStream`] with a [`ReadAhead`] under TLS for data connections). Nothing here knows FTP; the session, the data channel, limits, auth and audit all
//! read these types.

pub mod client_addr;
pub mod listener;
pub mod proxy_protocol;
pub mod read_ahead;
pub mod stream;

pub use client_addr::ClientAddr;
pub use listener::ListenerKind;
pub use proxy_protocol::{ProxyError, ProxyPolicy};
pub use read_ahead::{read_ahead, ReadAhead};
pub use stream::{ControlIo, ControlStream, DataStream, MaybeTls};
