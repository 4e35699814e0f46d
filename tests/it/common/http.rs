//! Bare HTTP/1.1 with no client library in between: a GET for the admin listener (`/healthz`,
//! `/readyz`, `/metrics`), as a load balancer or Prometheus does it; reading one request, for
//! the in-test receivers of webhooks and identity requests.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// `GET path` over HTTP/1.1; the status code and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut tcp = TcpStream::connect(addr).await?;
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await?;
        std::io::Result::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("admin answers within 10 s")
        .expect("admin HTTP exchange");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, body.to_string())
}

/// Request line, headers (lowercased names) and body of one request; `None` on anything
/// malformed or slow.
pub async fn read_request(
    tcp: &mut TcpStream,
) -> Option<(String, HashMap<String, String>, Vec<u8>)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        read_more(tcp, &mut buf, 4096).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let want = len - body.len();
        read_more(tcp, &mut body, want).await?;
    }
    Some((request_line, headers, body))
}

/// Appends up to `at_most` bytes read within 10 s; `None` at EOF, on an error or timeout.
async fn read_more(tcp: &mut TcpStream, buf: &mut Vec<u8>, at_most: usize) -> Option<()> {
    let mut chunk = vec![0u8; at_most];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
        .await
        .ok()?
        .ok()?;
    if n == 0 {
        return None;
    }
    buf.extend_from_slice(&chunk[..n]);
    Some(())
}
