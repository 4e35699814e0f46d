//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, v1 and v2), which carries the client's
//! address through a TCP load balancer.
//!
//! Behind a TCP proxy every connection comes from the proxy; with `listeners.proxy_protocol` the
//! proxy prepends a header naming the real client, which becomes the connection's
//! [`ClientAddr`].
//!
//! Rules enforced here, once:
//! - A header is read only from a TCP peer in `listeners.trusted_proxies`; any other connection
//!   is closed before a byte is read or sent: otherwise anyone could claim any address.
//! - The header is read first (before the `220` greeting, before the implicit port's TLS
//!   ClientHello), exactly, without consuming a byte after it, bounded in size (spec §2.1: 107
//!   bytes for v1; [`V2_MAX_LEN`] for v2) and in time ([`HEADER_TIMEOUT`]).
//! - `LOCAL` (v2, a proxy's own health check) and `UNKNOWN` (v1) mean "no client behind this":
//!   the TCP peer is the client (spec §2.2). UDP and UNIX-socket sources are refused.
//!
//! Parsing is the `ppp` crate's; this module only decides how many bytes make the header.

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use ipnet::IpNet;
use ppp::{v1, v2, HeaderResult};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::client_addr::{canonical, ClientAddr};

/// Time a trusted proxy has to send the whole header. Proxies send it with the connection's
/// first bytes, so anything slower is broken or hostile.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest v1 header, CRLF included (spec §2.1).
const V1_MAX_LEN: usize = 107;
/// The longest v2 header accepted: the 16-byte fixed part, addresses and TLVs. Load balancers
/// add a few TLVs (AWS NLB: the VPC endpoint id; HAProxy: ALPN, unique id), far below this.
pub const V2_MAX_LEN: usize = 4096;
const V1_PREFIX: &[u8] = b"PROXY";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 fixed part: signature, version/command, family/protocol, length.
const V2_FIXED_LEN: usize = 16;

/// Why a connection's client address could not be established. The connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{0} is not in listeners.trusted_proxies")]
    Untrusted(SocketAddr),
    #[error("no complete PROXY protocol header within {0:?}")]
    Timeout(Duration),
    #[error("the PROXY protocol header is longer than {0} bytes")]
    TooLong(usize),
    #[error("the connection does not start with a PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(String),
    #[error("PROXY protocol header for a {0} connection (only TCP is served)")]
    Unsupported(&'static str),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] io::Error),
}

/// `listeners.proxy_protocol` with its trusted sources.
#[derive(Clone, Debug)]
pub struct ProxyPolicy {
    trusted: Vec<IpNet>,
    timeout: Duration,
}

impl ProxyPolicy {
    /// A policy with the given header timeout ([`HEADER_TIMEOUT`] in the server, shorter in
    /// tests). `ProxyPolicy::from_config` is in `config.rs`, so `net` depends on nothing above it.
    pub fn with_timeout(trusted: Vec<IpNet>, timeout: Duration) -> Self {
        ProxyPolicy { trusted, timeout }
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a connection from `tcp_peer`: refuses untrusted peers without reading,
    /// then reads exactly the header, within the timeout.
    pub async fn client_of<R: AsyncRead + Unpin>(
        &self,
        stream: &mut R,
        tcp_peer: SocketAddr,
    ) -> Result<ClientAddr, ProxyError> {
        if !self.is_trusted(tcp_peer.ip()) {
            return Err(ProxyError::Untrusted(tcp_peer));
        }
        let header = tokio::time::timeout(self.timeout, read_header(stream))
            .await
            .map_err(|_| ProxyError::Timeout(self.timeout))??;
        Ok(match source_of(&header)? {
            Some(source) => ClientAddr::proxied(source, tcp_peer),
            None => ClientAddr::direct(tcp_peer),
        })
    }
}

/// The PROXY v2 header one replica sends another in front of a relayed data connection
/// (`datachan/relay.rs`): the client's address, and as destination the passive port it
/// connected to.
pub fn relay_header(client: SocketAddr, destination: SocketAddr) -> io::Result<Vec<u8>> {
    let (client, destination) = match (canonical(client), canonical(destination)) {
        // One family in a header: a v4 client towards a v6 destination is written as v6.
        (SocketAddr::V4(c), SocketAddr::V6(d)) => (
            SocketAddr::new(c.ip().to_ipv6_mapped().into(), c.port()),
            SocketAddr::V6(d),
        ),
        (SocketAddr::V6(c), SocketAddr::V4(d)) => (
            SocketAddr::V6(c),
            SocketAddr::new(d.ip().to_ipv6_mapped().into(), d.port()),
        ),
        pair => pair,
    };
    v2::Builder::with_addresses(
        v2::Version::Two | v2::Command::Proxy,
        v2::Protocol::Stream,
        (client, destination),
    )
    .build()
}

/// Reads a relayed data connection's header (from a peer replica, within [`HEADER_TIMEOUT`]):
/// the client and the destination port.
pub async fn read_relay_header<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<(SocketAddr, u16), ProxyError> {
    let header = tokio::time::timeout(HEADER_TIMEOUT, read_header(stream))
        .await
        .map_err(|_| ProxyError::Timeout(HEADER_TIMEOUT))??;
    match HeaderResult::parse(&header) {
        HeaderResult::V2(Ok(h)) if h.command == v2::Command::Proxy => match h.addresses {
            v2::Addresses::IPv4(a) => Ok((
                SocketAddr::new(a.source_address.into(), a.source_port),
                a.destination_port,
            )),
            v2::Addresses::IPv6(a) => Ok((
                canonical(SocketAddr::new(a.source_address.into(), a.source_port)),
                a.destination_port,
            )),
            _ => Err(ProxyError::Unsupported("non-TCP relayed")),
        },
        _ => Err(ProxyError::Malformed(
            "not a relay header (v2 PROXY)".into(),
        )),
    }
}

/// Reads one header, v1 or v2, and not a byte more: on the implicit port the TLS ClientHello
/// follows at once, possibly in the same segment.
async fn read_header<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, ProxyError> {
    // Both signatures are at least five bytes long, and v1's shortest line is 15.
    let mut buf = vec![0u8; V1_PREFIX.len()];
    r.read_exact(&mut buf).await?;
    if buf == V1_PREFIX {
        // A line ending in CRLF: byte by byte, so nothing after it is consumed.
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX_LEN {
                return Err(ProxyError::TooLong(V1_MAX_LEN));
            }
            buf.push(r.read_u8().await?);
        }
    } else if V2_SIGNATURE.starts_with(&buf) {
        buf.resize(V2_FIXED_LEN, 0);
        r.read_exact(&mut buf[V1_PREFIX.len()..]).await?;
        let rest = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if V2_FIXED_LEN + rest > V2_MAX_LEN {
            return Err(ProxyError::TooLong(V2_MAX_LEN));
        }
        buf.resize(V2_FIXED_LEN + rest, 0);
        r.read_exact(&mut buf[V2_FIXED_LEN..]).await?;
    } else {
        return Err(ProxyError::Missing);
    }
    Ok(buf)
}

/// The source address a complete header names; `None` for `LOCAL` and `UNKNOWN`.
fn source_of(header: &[u8]) -> Result<Option<SocketAddr>, ProxyError> {
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            v1::Addresses::Unknown => None,
            v1::Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
            v1::Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        }),
        HeaderResult::V2(Ok(h)) => {
            if h.command == v2::Command::Local {
                return Ok(None);
            }
            match (h.protocol, h.addresses) {
                // Spec §2.2: with an unspecified family the receiver ignores the addresses.
                (_, v2::Addresses::Unspecified) => Ok(None),
                (v2::Protocol::Stream, v2::Addresses::IPv4(a)) => Ok(Some(SocketAddr::new(
                    a.source_address.into(),
                    a.source_port,
                ))),
                (v2::Protocol::Stream, v2::Addresses::IPv6(a)) => Ok(Some(SocketAddr::new(
                    a.source_address.into(),
                    a.source_port,
                ))),
                (_, v2::Addresses::Unix(_)) => Err(ProxyError::Unsupported("UNIX socket")),
                _ => Err(ProxyError::Unsupported("UDP")),
            }
        }
        HeaderResult::V1(Err(e)) => Err(ProxyError::Malformed(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(ProxyError::Malformed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relay_headers_round_trip_client_and_port() {
        let h = relay_header(sa("192.0.2.7:5000"), sa("10.0.0.3:30005")).expect("header");
        let mut input = h.clone();
        input.extend_from_slice(b"TLS");
        let mut r = &input[..];
        let (client, port) = read_relay_header(&mut r).await.expect("parse");
        assert_eq!((client, port), (sa("192.0.2.7:5000"), 30005));
        assert_eq!(r, b"TLS", "nothing after the header consumed");
        let h = relay_header(sa("192.0.2.7:5000"), sa("[fd00::3]:30005")).expect("mixed");
        let (client, _) = read_relay_header(&mut &h[..]).await.expect("parse");
        assert_eq!(client, sa("192.0.2.7:5000"));
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    fn policy() -> ProxyPolicy {
        ProxyPolicy::with_timeout(
            vec![
                "10.0.0.0/8".parse().expect("net"),
                "fd00::/8".parse().expect("net"),
            ],
            Duration::from_millis(200),
        )
    }

    fn v2(command: u8, family_protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | command);
        h.push(family_protocol);
        h.extend((body.len() as u16).to_be_bytes());
        h.extend(body);
        h
    }

    fn v2_tcp4(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut body = src.to_vec();
        body.extend([192, 0, 2, 1]);
        body.extend(sport.to_be_bytes());
        body.extend(990u16.to_be_bytes());
        body.extend(tlvs);
        v2(1, 0x11, &body)
    }

    async fn client(bytes: &[u8], peer: &str) -> (Result<ClientAddr, ProxyError>, Vec<u8>) {
        let mut r = bytes;
        let got = policy().client_of(&mut r, sa(peer)).await;
        (got, r.to_vec())
    }

    #[tokio::test]
    async fn v2_names_the_client_and_leaves_the_rest_unread() {
        let mut input = v2_tcp4([203, 0, 113, 7], 51234, &[0x04, 0, 1, 0x2a]);
        input.extend(b"\x16\x03\x01 ClientHello");
        let (got, rest) = client(&input, "10.1.2.3:40000").await;
        let got = got.expect("client");
        assert_eq!(got.addr(), sa("203.0.113.7:51234"));
        assert_eq!(got.via(), Some(sa("10.1.2.3:40000")));
        assert_eq!(rest, b"\x16\x03\x01 ClientHello");
    }

    #[tokio::test]
    async fn v2_ipv6_and_mapped_addresses() {
        let mut body = vec![0u8; 36];
        body[..16].copy_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .expect("v6")
                .octets(),
        );
        body[32..34].copy_from_slice(&4000u16.to_be_bytes());
        let (got, _) = client(&v2(1, 0x21, &body), "[fd00::1]:5").await;
        assert_eq!(got.expect("client").addr(), sa("[2001:db8::7]:4000"));
        // A trusted IPv4 proxy seen on a dual-stack socket as ::ffff:10.0.0.1.
        let input = v2_tcp4([198, 51, 100, 9], 7, &[]);
        let (got, _) = client(&input, "[::ffff:10.0.0.1]:5").await;
        assert_eq!(
            got.expect("client").ip(),
            "198.51.100.9".parse::<IpAddr>().expect("ip")
        );
    }

    #[tokio::test]
    async fn v1_tcp4_tcp6_and_unknown() {
        let (got, rest) = client(
            b"PROXY TCP4 198.51.100.2 192.0.2.1 4567 21\r\nUSER",
            "10.0.0.1:9",
        )
        .await;
        assert_eq!(got.expect("client").addr(), sa("198.51.100.2:4567"));
        assert_eq!(rest, b"USER");
        let (got, _) = client(
            b"PROXY TCP6 2001:db8::2 2001:db8::1 4567 21\r\n",
            "10.0.0.1:9",
        )
        .await;
        assert_eq!(got.expect("client").addr(), sa("[2001:db8::2]:4567"));
        let (got, _) = client(b"PROXY UNKNOWN\r\n", "10.0.0.1:9").await;
        assert_eq!(got.expect("client"), ClientAddr::direct(sa("10.0.0.1:9")));
    }

    #[tokio::test]
    async fn local_and_unspecified_use_the_tcp_peer() {
        let (got, _) = client(&v2(0, 0x00, &[]), "10.0.0.1:9").await;
        assert_eq!(got.expect("client"), ClientAddr::direct(sa("10.0.0.1:9")));
        // LOCAL with addresses (some health checkers send them): still the peer.
        let mut local = v2_tcp4([203, 0, 113, 7], 1, &[]);
        local[12] = 0x20;
        let (got, _) = client(&local, "10.0.0.1:9").await;
        assert_eq!(got.expect("client").addr(), sa("10.0.0.1:9"));
    }

    #[tokio::test]
    async fn untrusted_peers_are_refused_before_reading() {
        let input = v2_tcp4([203, 0, 113, 7], 1, &[]);
        let (got, rest) = client(&input, "192.0.2.50:9").await;
        assert!(matches!(got, Err(ProxyError::Untrusted(_))), "{got:?}");
        assert_eq!(rest, input, "nothing read");
    }

    #[tokio::test]
    async fn bad_headers_are_refused() {
        for (input, what) in [
            (&b"USER anonymous\r\n"[..], "no header"),
            (
                &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 garbage\r\n"[..],
                "v1 garbage",
            ),
            (&b"PROXY TCP9 1.2.3.4 5.6.7.8 1 2\r\n"[..], "v1 protocol"),
        ] {
            let (got, _) = client(input, "10.0.0.1:9").await;
            assert!(got.is_err(), "{what}: {got:?}");
        }
        // v1 without CRLF within 107 bytes.
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        let (got, _) = client(&long, "10.0.0.1:9").await;
        assert!(matches!(got, Err(ProxyError::TooLong(107))), "{got:?}");
        // v2 announcing more than V2_MAX_LEN.
        let mut big = v2_tcp4([1, 2, 3, 4], 1, &[]);
        big[14..16].copy_from_slice(&5000u16.to_be_bytes());
        let (got, _) = client(&big, "10.0.0.1:9").await;
        assert!(matches!(got, Err(ProxyError::TooLong(_))), "{got:?}");
        // v2 UDP and UNIX sources.
        let mut udp = v2_tcp4([1, 2, 3, 4], 1, &[]);
        udp[13] = 0x12;
        let (got, _) = client(&udp, "10.0.0.1:9").await;
        assert!(
            matches!(got, Err(ProxyError::Unsupported("UDP"))),
            "{got:?}"
        );
        let (got, _) = client(&v2(1, 0x31, &[0u8; 216]), "10.0.0.1:9").await;
        assert!(matches!(got, Err(ProxyError::Unsupported(_))), "{got:?}");
        // A v2 header cut short: the stream ends.
        let short = v2_tcp4([1, 2, 3, 4], 1, &[]);
        let (got, _) = client(&short[..20], "10.0.0.1:9").await;
        assert!(matches!(got, Err(ProxyError::Io(_))), "{got:?}");
    }

    #[tokio::test]
    async fn a_slow_header_times_out() {
        let (mut tx, mut rx) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        tx.write_all(b"PROXY TCP4 1.2.3.4").await.expect("write");
        let started = std::time::Instant::now();
        let got = policy().client_of(&mut rx, sa("10.0.0.1:9")).await;
        assert!(matches!(got, Err(ProxyError::Timeout(_))), "{got:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(tx);
    }
}
