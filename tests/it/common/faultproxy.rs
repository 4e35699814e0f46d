//! A fault-injecting proxy between the server under test and SeaweedFS (test-only, never part of
//! the product).
//!
//! It speaks just enough HTTP/1.1 on the client → S3 direction to know where each request starts
//! and ends (request line, headers, then the body), so it can classify every request ([`Kind`])
//! and act on it. What aws-sdk-s3 1.157 sends here (seen with `FAULTPROXY_TRACE=1`): every body
//! with `Content-Length`, parts included — the server's parts are in memory, so the CRC32 goes
//! in an `x-amz-checksum-crc32` header rather than an aws-chunked trailer. `Transfer-Encoding:
//! chunked` is handled anyway, in case a streaming body ever appears. Responses are piped back
//! untouched: the SDK does not pipeline, so a response has fully arrived before the next request
//! on that connection starts.
//!
//! Rules are set at run time from the test (shared state, first matching rule wins):
//! [`Action::Error`] answers an S3 XML error without forwarding the request (`503 SlowDown`,
//! `500 InternalError`), [`Action::Reset`] forwards the head and `K` body bytes and then resets
//! both connections (SO_LINGER 0 → RST), [`Action::Stall`] reads the head and then neither reads
//! nor answers until the proxy is dropped, [`Action::Delay`] forwards the request after a wait,
//! [`Action::Hold`] reads the whole request first, then waits and forwards it.
//! A rule applies `n` times or forever.
//! [`FaultProxy::refuse_connections`] takes S3 down altogether (connection refused) until
//! [`FaultProxy::heal`]. Every request is counted by kind, so tests can assert that a retry
//! really happened.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpListener, TcpStream,
    },
    sync::Mutex as AsyncMutex,
};
use tokio_util::sync::CancellationToken;

/// What an S3 request is, from its method, query and headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    PutObject,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    Other,
}

/// Which requests a rule applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match {
    Kind(Kind),
    /// `UploadPart` with this part number.
    Part(u32),
    /// Every request.
    Any,
}

impl Match {
    fn matches(self, kind: Kind, part: Option<u32>) -> bool {
        match self {
            Match::Kind(k) => k == kind,
            Match::Part(n) => kind == Kind::UploadPart && part == Some(n),
            Match::Any => true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer `status` with an S3 error document carrying `code`; the request never reaches S3.
    Error { status: u16, code: &'static str },
    /// Forward the head and this many body bytes, then reset both connections.
    Reset { after_body_bytes: usize },
    /// Read the head, then hold the connection without reading or answering.
    Stall,
    /// Wait this long, then forward the request as usual (even if the client has gone
    /// meanwhile): an S3 request that takes its time.
    Delay(Duration),
    /// Read the whole request (body included), then wait this long and forward it, even if the
    /// client has gone meanwhile: a request S3 has received in full and is still working on,
    /// which the client can no longer call back by closing its connection.
    Hold(Duration),
}

impl Action {
    pub const SLOW_DOWN: Action = Action::Error {
        status: 503,
        code: "SlowDown",
    };
    pub const INTERNAL_ERROR: Action = Action::Error {
        status: 500,
        code: "InternalError",
    };
}

struct Rule {
    when: Match,
    action: Action,
    /// `None`: forever.
    remaining: Option<usize>,
}

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    seen: HashMap<Kind, usize>,
    injected: HashMap<Kind, usize>,
    /// [`Action::Hold`] requests whose body has been read, and of those, the ones forwarded.
    held: usize,
    released: usize,
}

impl State {
    /// The action for this request (if a rule matches), using up one of the rule's times.
    fn decide(&mut self, kind: Kind, part: Option<u32>) -> Option<Action> {
        *self.seen.entry(kind).or_default() += 1;
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.when.matches(kind, part) && r.remaining != Some(0))?;
        if let Some(n) = rule.remaining.as_mut() {
            *n -= 1;
        }
        *self.injected.entry(kind).or_default() += 1;
        Some(rule.action)
    }
}

pub struct FaultProxy {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
    /// Ends everything when the proxy is dropped.
    stop: CancellationToken,
    /// Ends the current listener and its connections ([`FaultProxy::refuse_connections`]).
    listening: Mutex<CancellationToken>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .parse()
            .expect("upstream host:port");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let stop = CancellationToken::new();
        let proxy = FaultProxy {
            addr,
            upstream,
            state: Arc::new(Mutex::new(State::default())),
            listening: Mutex::new(stop.child_token()),
            stop,
        };
        proxy.accept(listener);
        proxy
    }

    /// Accepts on `listener` until [`FaultProxy::refuse_connections`] or the drop.
    fn accept(&self, listener: TcpListener) {
        let token = self.stop.child_token();
        *self.listening.lock().unwrap_or_else(|p| p.into_inner()) = token.clone();
        let (state, upstream) = (self.state.clone(), self.upstream);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = token.cancelled() => return,
                };
                if let Ok((client, _)) = accepted {
                    let (state, token) = (state.clone(), token.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = serve(client, upstream, state) => {}
                            _ = token.cancelled() => {}
                        }
                    });
                }
            }
        });
    }

    /// S3 is down: the listening socket is closed (new connections are refused) and every open
    /// connection is closed. [`FaultProxy::heal`] listens again on the same address.
    pub async fn refuse_connections(&self) {
        self.listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cancel();
        // Let the accept task see the cancellation and drop the listener.
        while TcpStream::connect(self.addr).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The endpoint to give the server (`s3.endpoint`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Applies `action` to the next `times` requests matching `when`.
    pub fn inject(&self, when: Match, action: Action, times: usize) {
        self.add(when, action, Some(times));
    }

    /// Applies `action` to every request matching `when` from now on.
    pub fn always(&self, when: Match, action: Action) {
        self.add(when, action, None);
    }

    /// Removes every rule and listens again if connections were refused: S3 is back.
    pub async fn heal(&self) {
        self.lock().rules.clear();
        let refused = self
            .listening
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_cancelled();
        if refused {
            let listener = TcpListener::bind(self.addr).await.expect("listen again");
            self.accept(listener);
        }
    }

    /// Requests of `kind` seen so far (injected or forwarded).
    pub fn seen(&self, kind: Kind) -> usize {
        self.lock().seen.get(&kind).copied().unwrap_or(0)
    }

    /// Requests of `kind` a rule acted on.
    pub fn injected(&self, kind: Kind) -> usize {
        self.lock().injected.get(&kind).copied().unwrap_or(0)
    }

    /// [`Action::Hold`] requests read in full so far, and how many of them were forwarded.
    pub fn held(&self) -> (usize, usize) {
        let s = self.lock();
        (s.held, s.released)
    }

    fn add(&self, when: Match, action: Action, remaining: Option<usize>) {
        self.lock().rules.push(Rule {
            when,
            action,
            remaining,
        });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FaultProxy {
    /// Ends every connection, stalled ones included.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// One request head: its raw bytes and what the proxy needs from it.
struct Head {
    raw: Vec<u8>,
    kind: Kind,
    part: Option<u32>,
    body: BodyFraming,
}

enum BodyFraming {
    Length(usize),
    Chunked,
}

/// Serves one client connection: request after request until either side closes.
async fn serve(client: TcpStream, upstream: SocketAddr, state: Arc<Mutex<State>>) {
    let (read, write) = client.into_split();
    let mut reader = BufReader::new(read);
    let writer = Arc::new(AsyncMutex::new(write));
    // Opened at the first forwarded request; responses are copied back by `pipe`.
    let mut up: Option<(OwnedWriteHalf, tokio::task::JoinHandle<()>)> = None;
    loop {
        let Some(head) = read_head(&mut reader).await else {
            break;
        };
        let action = lock(&state).decide(head.kind, head.part);
        match action {
            None | Some(Action::Delay(_)) | Some(Action::Hold(_)) => {
                if let Some(Action::Delay(wait)) = action {
                    tokio::time::sleep(wait).await;
                }
                let body = match read_body(&mut reader, &head.body).await {
                    Some(b) => b,
                    None => break,
                };
                if let Some(Action::Hold(wait)) = action {
                    lock(&state).held += 1;
                    tokio::time::sleep(wait).await;
                    // On a connection of its own, response awaited: S3 finishes the request
                    // whether or not the client is still there to read the answer.
                    let response = exchange(upstream, &head.raw, &body).await;
                    lock(&state).released += 1;
                    let mut w = writer.lock().await;
                    if w.write_all(&response.unwrap_or_default()).await.is_err() {
                        break;
                    }
                    continue;
                }
                if up.is_none() {
                    let Ok(tcp) = TcpStream::connect(upstream).await else {
                        break;
                    };
                    let (r, w) = tcp.into_split();
                    up = Some((w, tokio::spawn(pipe(r, writer.clone()))));
                }
                let Some((w, _)) = up.as_mut() else { break };
                if w.write_all(&head.raw).await.is_err() || w.write_all(&body).await.is_err() {
                    break;
                }
            }
            Some(Action::Error { status, code }) => {
                if read_body(&mut reader, &head.body).await.is_none() {
                    break;
                }
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>injected by the test fault proxy</Message>\
                     <RequestId>faultproxy</RequestId></Error>"
                );
                let reason = if status == 503 {
                    "Service Unavailable"
                } else {
                    "Internal Server Error"
                };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n\
                     Content-Length: {}\r\nx-amz-request-id: faultproxy\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let mut w = writer.lock().await;
                let _ = w.write_all(response.as_bytes()).await;
                let _ = w.shutdown().await;
                break;
            }
            Some(Action::Reset { after_body_bytes }) => {
                let body = read_body(&mut reader, &head.body).await.unwrap_or_default();
                if after_body_bytes > 0 {
                    if let Ok(mut tcp) = TcpStream::connect(upstream).await {
                        let cut = after_body_bytes.min(body.len());
                        let _ = tcp.write_all(&head.raw).await;
                        let _ = tcp.write_all(&body[..cut]).await;
                        reset(&tcp);
                    }
                }
                reset(reader.get_ref().as_ref());
                break;
            }
            Some(Action::Stall) => {
                // Hold everything open, reading nothing: the proxy's drop ends this task.
                std::future::pending::<()>().await;
            }
        }
    }
    if let Some((_, task)) = up {
        task.abort();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Copies responses from S3 to the client.
async fn pipe(mut from: OwnedReadHalf, to: Arc<AsyncMutex<OwnedWriteHalf>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.lock().await.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.lock().await.shutdown().await;
}

/// One request on a connection of its own; the whole response (`None` if S3 could not be
/// reached or its answer did not arrive in full).
async fn exchange(upstream: SocketAddr, head: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let mut tcp = TcpStream::connect(upstream).await.ok()?;
    tcp.write_all(head).await.ok()?;
    tcp.write_all(body).await.ok()?;
    let mut reader = BufReader::new(tcp);
    let mut response = Vec::new();
    let mut length = 0usize;
    loop {
        let at = response.len();
        if reader.read_until(b'\n', &mut response).await.ok()? == 0 {
            return None;
        }
        let line = String::from_utf8_lossy(&response[at..]).to_ascii_lowercase();
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
        if line == "\r\n" {
            break;
        }
    }
    let at = response.len();
    response.resize(at + length, 0);
    reader.read_exact(&mut response[at..]).await.ok()?;
    Some(response)
}

/// SO_LINGER 0: the close that follows sends RST instead of FIN.
fn reset(tcp: &TcpStream) {
    #[allow(deprecated)]
    let _ = tcp.set_linger(Some(Duration::ZERO));
}

async fn read_head(reader: &mut BufReader<OwnedReadHalf>) -> Option<Head> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        if reader.read_until(b'\n', &mut raw).await.ok()? == 0 {
            return None;
        }
        if raw.len() > 64 * 1024 {
            return None;
        }
        if &raw[before..] == b"\r\n" && before > 0 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let mut lines = text.split("\r\n");
    let request_line = lines.next()?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut length = 0usize;
    let mut chunked = false;
    let mut copy = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => length = value.parse().ok()?,
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            "x-amz-copy-source" => copy = true,
            _ => {}
        }
    }
    if std::env::var_os("FAULTPROXY_TRACE").is_some() {
        eprintln!("faultproxy: {}", text.trim_end());
    }
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params: Vec<(&str, &str)> = query
        .split('&')
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let has = |k: &str| params.iter().any(|(n, _)| *n == k);
    let part = params
        .iter()
        .find(|(n, _)| *n == "partNumber")
        .and_then(|(_, v)| v.parse().ok());
    let kind = match method.as_str() {
        "PUT" if has("partNumber") && has("uploadId") && copy => Kind::UploadPartCopy,
        "PUT" if has("partNumber") && has("uploadId") => Kind::UploadPart,
        "PUT" if !has("tagging") && !copy => Kind::PutObject,
        "POST" if has("uploads") => Kind::CreateMultipartUpload,
        "POST" if has("uploadId") => Kind::CompleteMultipartUpload,
        "DELETE" if has("uploadId") => Kind::AbortMultipartUpload,
        _ => Kind::Other,
    };
    Some(Head {
        raw,
        kind,
        part,
        body: if chunked {
            BodyFraming::Chunked
        } else {
            BodyFraming::Length(length)
        },
    })
}

/// The body exactly as it travels (chunk framing kept), or `None` if the client went away.
async fn read_body(
    reader: &mut BufReader<OwnedReadHalf>,
    framing: &BodyFraming,
) -> Option<Vec<u8>> {
    match framing {
        BodyFraming::Length(n) => {
            let mut body = vec![0u8; *n];
            reader.read_exact(&mut body).await.ok()?;
            Some(body)
        }
        BodyFraming::Chunked => {
            let mut body = Vec::new();
            loop {
                let start = body.len();
                reader.read_until(b'\n', &mut body).await.ok()?;
                let line = String::from_utf8_lossy(&body[start..]).to_string();
                let size_text = line.trim().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size_text, 16).ok()?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    loop {
                        let at = body.len();
                        if reader.read_until(b'\n', &mut body).await.ok()? == 0 {
                            return None;
                        }
                        if &body[at..] == b"\r\n" {
                            return Some(body);
                        }
                    }
                }
                let at = body.len();
                body.resize(at + size + 2, 0);
                reader.read_exact(&mut body[at..]).await.ok()?;
            }
        }
    }
}
