//! Can this process bind the configured listeners? Each one is bound once and released: a port
//! another process holds, or a port below 1024 without `CAP_NET_BIND_SERVICE`, is found by
//! `check-config` instead of by `serve` at the next restart.

use std::{io::ErrorKind, net::SocketAddr};

use crate::config::Config;

/// One line per listener that cannot be bound, naming the key and the fix.
pub fn check(config: &Config) -> Vec<String> {
    let listeners = [
        ("listeners.explicit", config.listeners.explicit),
        ("listeners.implicit", config.listeners.implicit),
        ("admin.listen", config.admin.listen),
    ];
    listeners
        .into_iter()
        .filter_map(|(key, addr)| Some((key, addr?)))
        .filter_map(|(key, addr)| bind_problem(key, addr))
        .collect()
}

fn bind_problem(key: &str, addr: SocketAddr) -> Option<String> {
    let e = std::net::TcpListener::bind(addr).err()?;
    Some(match e.kind() {
        ErrorKind::AddrInUse => format!(
            "{key}: {addr} is in use by another process (or by this server, already running): \
             stop it or choose another port"
        ),
        ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "{key}: binding port {} (below 1024) needs CAP_NET_BIND_SERVICE: \
             `setcap cap_net_bind_service=+ep $(command -v ftps-s3)`, systemd \
             AmbientCapabilities=CAP_NET_BIND_SERVICE, or use a port >= 1024 (2121, 9990)",
            addr.port()
        ),
        ErrorKind::AddrNotAvailable => {
            format!("{key}: {addr} is not an address of this machine: use one it has, or 0.0.0.0")
        }
        _ => format!("{key}: cannot bind {addr}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut c = Config::default();
        c.listeners.explicit = Some(taken.local_addr().expect("addr"));
        c.listeners.implicit = None;
        let problems = check(&c);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("listeners.explicit:") && problems[0].contains("in use"),
            "{problems:?}"
        );
        drop(taken);
        assert!(check(&c).is_empty());
    }
}
