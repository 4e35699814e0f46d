//! Upload events (`[events]`): a real server on SeaweedFS, curl as the client, and an HTTP
//! receiver in the test that records every request and answers as the test scripts it. The
//! signature is checked here with `hmac` directly, not with the server's own function.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
    sync::Notify,
};

use crate::admin::metric;
use crate::common::clients::{assert_ok, curl, random_bytes, run, url, Mode};
use crate::common::http::get;
use crate::common::logs::Logs;
use crate::common::raw::RawClient;
use crate::common::server::{TestServer, HOME, PASSWORD, USER};

const SECRET: &str = "test-webhook-secret";

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Read the request, then never answer (a stuck receiver).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: Option<u16>,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    /// The signature header matches an HMAC-SHA256 of the body under [`SECRET`].
    fn signature_valid(&self) -> bool {
        let Some(header) = self.headers.get("x-ftps-s3-signature") else {
            return false;
        };
        let Some(hex) = header.strip_prefix("sha256=") else {
            return false;
        };
        let Ok(given) = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
        else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(&self.body);
        mac.verify_slice(&given).is_ok()
    }
}

/// A tiny HTTP/1.1 receiver: one request per connection (`Connection: close`), bounded reads.
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    arrived: Arc<Notify>,
}

impl Receiver {
    /// Answers from `script` in order, then 200.
    async fn start(script: &[Answer]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let r = Receiver {
            addr: listener.local_addr().expect("addr"),
            received: Arc::default(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            arrived: Arc::default(),
        };
        let (received, script, arrived) = (r.received.clone(), r.script.clone(), r.arrived.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (received, script, arrived) =
                    (received.clone(), script.clone(), arrived.clone());
                tokio::spawn(async move {
                    let Some((headers, body)) = read_request(tcp).await else {
                        return;
                    };
                    let answer = script
                        .lock()
                        .expect("script")
                        .pop_front()
                        .unwrap_or(Answer::Status(200));
                    let (mut tcp, headers) = headers;
                    let answered = match answer {
                        Answer::Status(code) => Some(code),
                        Answer::Hang => None,
                    };
                    received.lock().expect("received").push(Received {
                        headers,
                        body,
                        answered,
                    });
                    arrived.notify_waiters();
                    match answer {
                        Answer::Status(code) => {
                            let reply = format!(
                                "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                            );
                            let _ = tcp.write_all(reply.as_bytes()).await;
                            let _ = tcp.shutdown().await;
                        }
                        Answer::Hang => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            drop(tcp);
                        }
                    }
                });
            }
        });
        r
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }

    /// Waits until `n` requests have arrived (panics after `timeout`).
    async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.arrived.notified();
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("{} of {n} webhook requests arrived: {got:#?}", got.len());
            }
            let _ = tokio::time::timeout(left, notified).await;
        }
    }
}

type Head = (TcpStream, HashMap<String, String>);

/// Headers (lowercased names) and body of one request; `None` on anything malformed or slow.
async fn read_request(mut tcp: TcpStream) -> Option<(Head, Vec<u8>)> {
    let (request_line, headers, body) = crate::common::http::read_request(&mut tcp).await?;
    assert!(request_line.starts_with("POST /hook "), "{request_line}");
    Some(((tcp, headers), body))
}

/// A server posting events to `url`, signed with [`SECRET`], retrying after 200 ms.
async fn server_posting_to(
    url: String,
    dir: &Path,
    adjust: impl FnOnce(&mut ftps_s3::config::Config),
) -> TestServer {
    let secret_file = dir.join("webhook-secret");
    // A trailing newline, as `echo` or a Kubernetes secret made from a file would leave.
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("secret file");
    TestServer::start_with(move |c| {
        c.events.webhook_url = Some(url);
        c.events.webhook_secret_file = Some(secret_file);
        c.events.retry_initial_ms = 200;
        adjust(c);
    })
    .await
}

fn write_file(dir: &Path, name: &str, body: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write file");
    path
}

/// Uploads `file` to `/name` with curl; returns how long curl took.
async fn curl_upload(srv: &TestServer, file: &Path, name: &str) -> Duration {
    let started = Instant::now();
    let mut c = curl(USER, PASSWORD);
    c.arg("-T")
        .arg(file)
        .arg(format!("{}/{name}", url(Mode::Explicit, srv.explicit)));
    assert_ok(&run(c).await, "curl upload");
    started.elapsed()
}

/// Runs FTP commands (`-Q`) with curl, after a listing of `/`.
async fn curl_quote(srv: &TestServer, commands: &[&str]) {
    let mut c = curl(USER, PASSWORD);
    for cmd in commands {
        c.arg("-Q").arg(cmd);
    }
    c.arg("-o").arg("/dev/null");
    c.arg(format!("{}/", url(Mode::Explicit, srv.explicit)));
    assert_ok(&run(c).await, "curl -Q");
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fields every event has, with the values this test's client gives them.
fn assert_common(e: &serde_json::Value, srv: &TestServer, kind: &str) {
    assert_eq!(e["type"], kind, "{e:#}");
    assert_eq!(e["user"], USER, "{e:#}");
    assert_eq!(e["bucket"], srv.bucket.as_str(), "{e:#}");
    let addr = e["client_addr"].as_str().expect("client_addr");
    assert!(addr.starts_with("127.0.0.1:"), "{e:#}");
    let id = e["id"].as_str().expect("id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let time = e["time"].as_str().expect("time");
    let at = chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339 time");
    let age = chrono::Utc::now().signed_duration_since(at);
    assert!(age.num_seconds().abs() < 60, "time {time} is now");
}

#[tokio::test]
async fn upload_rename_and_delete_post_signed_events() {
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(receiver.url(), dir.path(), |_| {}).await;
    let body = random_bytes(300 * 1024 + 7);
    let file = write_file(dir.path(), "report.csv", &body);

    curl_upload(&srv, &file, "report.csv").await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let upload = &got[0];
    println!(
        "sample event as received:\n  X-Ftps-S3-Signature: {}\n  X-Ftps-S3-Event-Id: {}\n  \
         body: {}\n  signature valid: {}",
        upload.headers["x-ftps-s3-signature"],
        upload.headers["x-ftps-s3-event-id"],
        String::from_utf8_lossy(&upload.body),
        upload.signature_valid()
    );
    assert!(upload.signature_valid(), "{upload:#?}");
    assert_eq!(upload.headers["content-type"], "application/json");
    let e = upload.json();
    assert_common(&e, &srv, "upload.completed");
    assert_eq!(
        upload.headers["x-ftps-s3-event-id"],
        e["id"].as_str().expect("id")
    );
    assert_eq!(upload.headers["x-ftps-s3-event-type"], "upload.completed");
    assert_eq!(e["path"], "/report.csv");
    assert_eq!(e["key"], format!("{HOME}report.csv"));
    assert_eq!(e["size"], body.len() as u64);
    assert_eq!(e["sha256"], sha256_hex(&body));
    assert_eq!(e["object"], "file");
    assert!(e.get("from_path").is_none(), "{e:#}");
    assert_eq!(
        srv.object(&srv.key("report.csv")).await.as_deref(),
        Some(&body[..])
    );

    curl_quote(&srv, &["RNFR report.csv", "RNTO done.csv"]).await;
    let got = receiver.wait_for(2, Duration::from_secs(20)).await;
    let rename = &got[1];
    assert!(rename.signature_valid(), "{rename:#?}");
    let e = rename.json();
    assert_common(&e, &srv, "object.renamed");
    assert_eq!(e["path"], "/done.csv");
    assert_eq!(e["key"], format!("{HOME}done.csv"));
    assert_eq!(e["from_path"], "/report.csv");
    assert_eq!(e["from_key"], format!("{HOME}report.csv"));
    assert_eq!(e["size"], body.len() as u64);
    assert_eq!(
        e["sha256"],
        sha256_hex(&body),
        "read back from the renamed object"
    );

    curl_quote(&srv, &["DELE done.csv"]).await;
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let delete = &got[2];
    assert!(delete.signature_valid(), "{delete:#?}");
    let e = delete.json();
    assert_common(&e, &srv, "object.deleted");
    assert_eq!(e["path"], "/done.csv");
    assert_eq!(e["key"], format!("{HOME}done.csv"));
    assert!(e["size"].is_null() && e["sha256"].is_null(), "{e:#}");

    let ids: Vec<_> = got.iter().map(|r| r.json()["id"].clone()).collect();
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn a_rejected_event_is_retried_with_the_same_id_and_body() {
    let receiver = Receiver::start(&[Answer::Status(500), Answer::Status(500)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(receiver.url(), dir.path(), |_| {}).await;
    let file = write_file(dir.path(), "a.bin", b"retry me");

    curl_upload(&srv, &file, "a.bin").await;
    let got = receiver.wait_for(3, Duration::from_secs(20)).await;
    let answers: Vec<_> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [Some(500), Some(500), Some(200)]);
    for r in &got {
        assert!(r.signature_valid(), "{r:#?}");
        assert_eq!(r.body, got[0].body, "every retry sends the same bytes");
        assert_eq!(
            r.headers["x-ftps-s3-event-id"],
            got[0].headers["x-ftps-s3-event-id"]
        );
    }
    let e = got[0].json();
    assert_eq!(e["type"], "upload.completed");
    assert_eq!(e["size"], 8);
    // Delivered: no fourth attempt.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(receiver.received().len(), 3);
    srv.stop().await;
}

#[tokio::test]
async fn an_event_is_given_up_after_max_attempts() {
    let receiver = Receiver::start(&[Answer::Status(503); 10]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(receiver.url(), dir.path(), |c| c.events.max_attempts = 3).await;
    let file = write_file(dir.path(), "a.bin", b"x");
    curl_upload(&srv, &file, "a.bin").await;
    receiver.wait_for(3, Duration::from_secs(20)).await;
    // 200 ms, 400 ms, then it would be 800 ms: wait well past that.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.received().len(), 3, "events.max_attempts = 3");
    srv.stop().await;
}

#[tokio::test]
async fn a_cut_off_upload_posts_no_event() {
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(receiver.url(), dir.path(), |c| c.s3.resume_window_secs = 0).await;

    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    let port = c.epsv().await;
    c.send_raw(b"STOR cut.bin\r\n").await;
    assert_eq!(c.reply().await.code, 150);
    let mut data = c.data_connect(port, true).await;
    data.write_all(&random_bytes(6 * 1024 * 1024))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    data.reset();
    let r = c.reply().await;
    assert_eq!(r.code, 426, "{}", r.text);
    c.expect("QUIT", 221).await;
    assert_eq!(srv.object(&srv.key("cut.bin")).await, None);

    // Events go out in order: once the next upload's event is in, the cut one would be too.
    let file = write_file(dir.path(), "after.bin", b"after");
    curl_upload(&srv, &file, "after.bin").await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paths: Vec<_> = receiver
        .received()
        .iter()
        .map(|r| r.json()["path"].clone())
        .collect();
    assert_eq!(paths, ["/after.bin"], "{got:#?}");
    srv.stop().await;
}

#[tokio::test]
async fn a_stuck_receiver_does_not_delay_replies() {
    // Every request hangs; each attempt may take 30 s.
    let receiver = Receiver::start(&[Answer::Hang; 20]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(receiver.url(), dir.path(), |c| c.events.timeout_secs = 30).await;
    let file = write_file(dir.path(), "a.bin", &random_bytes(64 * 1024));
    let mut took = Vec::new();
    for i in 0..3 {
        took.push(curl_upload(&srv, &file, &format!("a{i}.bin")).await);
    }
    println!("uploads with a stuck webhook took {took:?}");
    // The first event is being sent (and hangs) while the uploads go on.
    receiver.wait_for(1, Duration::from_secs(10)).await;
    for t in &took {
        assert!(
            *t < Duration::from_secs(10),
            "an upload waited for the webhook: {took:?}"
        );
    }
    // Shutdown does not wait for the stuck receiver either (5 s grace + 5 s drain at most).
    let stopping = Instant::now();
    srv.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_receiver_does_not_delay_replies() {
    // A port nobody listens on: every attempt is refused at once.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", closed.local_addr().expect("addr"));
    drop(closed);
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(url, dir.path(), |_| {}).await;
    let file = write_file(dir.path(), "a.bin", &random_bytes(64 * 1024));
    for i in 0..3 {
        let t = curl_upload(&srv, &file, &format!("a{i}.bin")).await;
        assert!(t < Duration::from_secs(10), "upload {i} took {t:?}");
    }
    assert!(srv.object(&srv.key("a2.bin")).await.is_some());
    srv.stop().await;
}

/// `check-config` reads the secret as `serve` does: a missing one is named by its key.
#[tokio::test]
async fn check_config_names_a_missing_webhook_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = ftps_s3::tls::ensure_self_signed(dir.path()).expect("cert");
    let users = dir.path().join("users.toml");
    std::fs::write(&users, "").expect("users");
    let secret = dir.path().join("secret");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n[auth]\nusers_file = \"{}\"\n\
             [s3]\nbucket = \"b\"\n[events]\nwebhook_url = \"https://hooks.example/x\"\n\
             webhook_secret_file = \"{}\"\n",
            cert.display(),
            key.display(),
            users.display(),
            secret.display()
        ),
    )
    .expect("config");
    let check = || {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_ftps-s3"));
        c.env_remove("FTPS_S3_EVENTS__WEBHOOK_URL");
        c.args(["check-config", "--offline", "--config"])
            .arg(&config);
        c
    };
    let out = run(check()).await;
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "must fail without the secret file");
    assert!(
        text.contains("events.webhook_secret_file") && text.contains("cannot read"),
        "{text}"
    );
    std::fs::write(&secret, "s3cret\n").expect("secret");
    let out = run(check()).await;
    assert_ok(&out, "check-config with the secret");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("events: signed POST to https://hooks.example/x"),
        "{text}"
    );
}

#[tokio::test]
async fn a_full_queue_drops_new_events_and_counts_them() {
    let (logs, _capture) = Logs::capture();
    let receiver = Receiver::start(&[Answer::Hang; 10]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(receiver.url(), dir.path(), |c| {
        c.events.queue_size = 1;
        c.events.timeout_secs = 30;
        c.admin.listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let admin = srv.admin.expect("admin listener");
    let (_, before) = get(admin, "/metrics").await;
    let dropped_before = metric(&before, "ftps_events_dropped_total").unwrap_or(0.0);

    let file = write_file(dir.path(), "a.bin", b"queued");
    // The first event is taken off the queue and hangs in its POST.
    curl_upload(&srv, &file, "a0.bin").await;
    receiver.wait_for(1, Duration::from_secs(10)).await;
    // The second fills the queue (one place); the third finds it full.
    curl_upload(&srv, &file, "a1.bin").await;
    curl_upload(&srv, &file, "a2.bin").await;
    let line = logs
        .wait_for(
            &[("message", "event dropped"), ("reason", "queue full")],
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(line["event_type"], "upload.completed", "{line}");

    let (_, text) = get(admin, "/metrics").await;
    let dropped = metric(&text, "ftps_events_dropped_total").unwrap_or(0.0);
    assert!(
        dropped >= dropped_before + 1.0,
        "{dropped_before} -> {dropped}"
    );
    for name in [
        "ftps_events_queued",
        "ftps_events_delivered_total",
        "ftps_events_retries_total",
        "ftps_events_failed_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{text}"
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn cloudevents_mode_wraps_the_event_in_an_envelope() {
    let receiver = Receiver::start(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_posting_to(receiver.url(), dir.path(), |c| {
        c.events.format = ftps_s3::config::EventFormat::CloudEvents;
    })
    .await;
    let body = random_bytes(1000);
    let file = write_file(dir.path(), "c.bin", &body);
    curl_upload(&srv, &file, "c.bin").await;
    let got = receiver.wait_for(1, Duration::from_secs(20)).await;
    let r = &got[0];
    assert!(r.signature_valid(), "{r:#?}");
    assert_eq!(r.headers["content-type"], "application/cloudevents+json");
    let ce = r.json();
    assert_eq!(ce["specversion"], "1.0", "{ce:#}");
    assert_eq!(ce["type"], "upload.completed");
    assert_eq!(ce["source"], "ftps-s3");
    assert_eq!(ce["subject"], "/c.bin");
    assert_eq!(ce["datacontenttype"], "application/json");
    assert_eq!(ce["id"], ce["data"]["id"]);
    assert_eq!(ce["time"], ce["data"]["time"]);
    assert_common(&ce["data"], &srv, "upload.completed");
    assert_eq!(ce["data"]["size"], 1000);
    assert_eq!(ce["data"]["sha256"], sha256_hex(&body));
    srv.stop().await;
}
