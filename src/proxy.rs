//! Moved to [`crate::net`] (`client_addr`, `proxy_protocol`); these paths stay for existing
//! imports.

pub use crate::net::client_addr::ClientAddr;
pub use crate::net::proxy_protocol::{
    read_relay_header, relay_header, ProxyError, ProxyPolicy, HEADER_TIMEOUT, V2_MAX_LEN,
};
