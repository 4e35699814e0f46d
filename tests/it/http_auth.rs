//! External identity (`auth.http_url`): a real server on SeaweedFS, curl and a raw FTPS client,
//! and an identity endpoint in the test that records every request and answers as the test
//! scripts it (user record, refusal, 500, or no answer at all).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::{io::AsyncWriteExt, net::TcpListener};

use crate::common::clients::{assert_ok, curl, run, url, Mode};
use crate::common::raw::RawClient;
use crate::common::server::{TestServer, PASSWORD, USER};

const TOKEN: &str = "idp-test-token";
/// The only password the endpoint accepts.
const GOOD: &str = "right-horse";

/// How the endpoint answers a request whose user is the key of the script.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// A user record with this home for password [`GOOD`], `{"allow": false}` otherwise.
    Record(&'static str),
    /// As `Record`, with these fields (a JSON object) added to the record.
    RecordWith(&'static str, &'static str),
    /// As `Record`, with two folders instead of a home: `/inbox` (list, write) at
    /// `<prefix>in/` and `/outbox` (list, read) at `<prefix>out/`, in the default bucket.
    Folders(&'static str),
    Status(u16),
    /// Read the request, then never answer.
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: serde_json::Value,
}

struct Endpoint {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    /// Answers by user name from `script`; unknown users get `{"allow": false}`.
    async fn start(script: &[(&'static str, Behaviour)]) -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<HashMap<&'static str, Behaviour>> =
            Arc::new(script.iter().copied().collect());
        let rec = received.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (rec, script) = (rec.clone(), script.clone());
                tokio::spawn(async move {
                    let Some((line, headers, body)) =
                        crate::common::http::read_request(&mut tcp).await
                    else {
                        return;
                    };
                    assert!(line.starts_with("POST /auth "), "{line}");
                    let body: serde_json::Value =
                        serde_json::from_slice(&body).expect("JSON request");
                    let user = body["user"].as_str().unwrap_or_default().to_string();
                    let password = body["password"].as_str().unwrap_or_default().to_string();
                    rec.lock()
                        .expect("received")
                        .push(Received { headers, body });
                    let record = |home: &str, extra: &str| {
                        let mut r = serde_json::json!({
                            "allow": true,
                            "home": home,
                            "permissions": ["list", "read", "write", "mkdir"],
                        });
                        let extra: serde_json::Value = serde_json::from_str(extra).expect("extra");
                        for (k, v) in extra.as_object().expect("an object") {
                            r[k] = v.clone();
                        }
                        r.to_string()
                    };
                    let (status, answer) = match script.get(user.as_str()).copied() {
                        Some(Behaviour::Record(home)) if password == GOOD => {
                            (200, record(home, "{}"))
                        }
                        Some(Behaviour::RecordWith(home, extra)) if password == GOOD => {
                            (200, record(home, extra))
                        }
                        Some(Behaviour::Folders(prefix)) if password == GOOD => (
                            200,
                            serde_json::json!({
                                "allow": true,
                                "folders": [
                                    {"path": "/inbox", "prefix": format!("{prefix}in/"), "permissions": ["list", "write"]},
                                    {"path": "/outbox", "prefix": format!("{prefix}out/"), "permissions": ["list", "read"]},
                                ],
                            })
                            .to_string(),
                        ),
                        Some(Behaviour::Status(code)) => (code, "{}".to_string()),
                        Some(Behaviour::Hang) => {
                            tokio::time::sleep(Duration::from_secs(600)).await;
                            return;
                        }
                        _ => (200, r#"{"allow": false}"#.to_string()),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = tcp.write_all(reply.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        Endpoint { addr, received }
    }

    fn url(&self) -> String {
        format!("http://{}/auth", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("received").clone()
    }

    fn count_for(&self, user: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| r.body["user"] == user)
            .count()
    }
}

/// A server asking `endpoint`, with a bearer token, after `adjust`.
async fn server_asking(
    endpoint: &Endpoint,
    dir: &std::path::Path,
    adjust: impl FnOnce(&mut ftps_s3::config::Config),
) -> TestServer {
    let token = dir.join("idp-token");
    std::fs::write(&token, format!("{TOKEN}\n")).expect("token file");
    let url = endpoint.url();
    TestServer::start_with(move |c| {
        c.auth.http_url = Some(url);
        c.auth.http_secret_file = Some(token);
        c.auth.http_timeout_ms = 1000;
        adjust(c);
    })
    .await
}

/// USER + PASS over explicit FTPS with a raw client; the PASS reply code and how long it took.
async fn pass_reply(srv: &TestServer, user: &str, password: &str) -> (u16, Duration) {
    let (mut c, g) = RawClient::connect(srv.explicit).await;
    assert_eq!(g.code, 220);
    c.expect("AUTH TLS", 234).await;
    c.handshake().await.expect("handshake");
    c.set_reply_timeout(Duration::from_secs(30));
    c.expect(&format!("USER {user}"), 331).await;
    let started = Instant::now();
    let r = c.cmd(&format!("PASS {password}")).await;
    (r.code, started.elapsed())
}

/// The record's limits apply as a users file's do: `quota_files = 1` lets one new file in and
/// answers the second with `552`.
#[tokio::test]
async fn http_user_record_limits_apply() {
    let endpoint = Endpoint::start(&[(
        "dave",
        Behaviour::RecordWith(
            "idp/dave/",
            r#"{"quota_files": 1, "max_download_kib_s": 1024}"#,
        ),
    )])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_asking(&endpoint, dir.path(), |_| {}).await;
    let file = dir.path().join("a.csv");
    std::fs::write(&file, b"a,b\n").expect("file");
    let put = |name: &str| {
        let mut c = curl("dave", GOOD);
        c.arg("-v")
            .arg("-T")
            .arg(&file)
            .arg(format!("{}/{name}", url(Mode::Explicit, srv.explicit)));
        c
    };
    assert_ok(&run(put("one.csv")).await, "the first file");
    let out = run(put("two.csv")).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("< 552") && stderr.contains("quota_files"),
        "the second new file is refused:\n{stderr}"
    );
    assert_eq!(srv.keys().await, ["idp/dave/one.csv"]);
}

#[tokio::test]
async fn http_user_uploads_into_the_home_the_endpoint_returned_and_is_cached() {
    let endpoint = Endpoint::start(&[("carol", Behaviour::Record("idp/carol/"))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_asking(&endpoint, dir.path(), |c| c.auth.http_cache_secs = 60).await;
    let file = dir.path().join("report.csv");
    std::fs::write(&file, b"a,b\n1,2\n").expect("file");

    let mut c = curl("carol", GOOD);
    c.arg("-T")
        .arg(&file)
        .arg(format!("{}/report.csv", url(Mode::Explicit, srv.explicit)));
    assert_ok(&run(c).await, "curl upload as the HTTP user");
    assert_eq!(
        srv.object("idp/carol/report.csv").await.as_deref(),
        Some(&b"a,b\n1,2\n"[..]),
        "the upload lands under the home the endpoint returned: {:?}",
        srv.keys().await
    );
    let got = endpoint.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let r = &got[0];
    assert_eq!(
        r.headers.get("authorization").map(String::as_str),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(r.body["user"], "carol");
    assert_eq!(r.body["password"], GOOD);
    assert_eq!(r.body["client_addr"], "127.0.0.1");
    assert_eq!(r.body["listener"], "explicit");
    assert!(r.body.get("certificate_cn").is_none(), "{:#}", r.body);

    // Within http_cache_secs: the same login is answered from the cache.
    let mut c = curl("carol", GOOD);
    c.arg(format!("{}/", url(Mode::Explicit, srv.explicit)));
    let out = run(c).await;
    assert_ok(&out, "curl list as the HTTP user, again");
    assert!(String::from_utf8_lossy(&out.stdout).contains("report.csv"));
    assert_eq!(endpoint.count_for("carol"), 1, "no second request");

    // A user from the file never reaches the endpoint.
    let mut c = curl(USER, PASSWORD);
    c.arg(format!("{}/", url(Mode::Explicit, srv.explicit)));
    assert_ok(&run(c).await, "curl list as the file user");
    assert_eq!(endpoint.received().len(), 1, "{:#?}", endpoint.received());
    println!(
        "http user: upload at idp/carol/report.csv, endpoint asked {} time(s) for 2 logins + 1 file login",
        endpoint.received().len()
    );
}

/// An endpoint's answer with `folders`: the user sees only them, each with its permissions.
#[tokio::test]
async fn http_user_with_folders_sees_only_them() {
    let endpoint = Endpoint::start(&[("dave", Behaviour::Folders("idp/dave/"))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_asking(&endpoint, dir.path(), |_| {}).await;
    let base = url(Mode::Explicit, srv.explicit);
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"for the inbox\n").expect("file");

    let mut c = curl("dave", GOOD);
    c.arg("-l").arg(format!("{base}/"));
    let out = run(c).await;
    assert_ok(&out, "curl NLST / as the HTTP user with folders");
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect();
    assert_eq!(names, ["inbox", "outbox"]);

    let mut c = curl("dave", GOOD);
    c.arg("-T").arg(&file).arg(format!("{base}/inbox/a.txt"));
    assert_ok(&run(c).await, "curl upload into /inbox");
    let mut c = curl("dave", GOOD);
    c.arg("-T").arg(&file).arg(format!("{base}/outbox/a.txt"));
    let out = run(c).await;
    assert!(
        !out.status.success(),
        "upload into the read-only /outbox must fail"
    );
    assert_eq!(srv.keys().await, ["idp/dave/in/a.txt"]);
}

#[tokio::test]
async fn http_refusals_errors_and_timeouts_fail_closed_with_530() {
    let endpoint = Endpoint::start(&[
        ("carol", Behaviour::Record("idp/carol/")),
        ("broken", Behaviour::Status(500)),
        ("forbidden", Behaviour::Status(403)),
        ("stuck", Behaviour::Hang),
    ])
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Every address and user gets many tries here: this test is about the answers.
    let srv = server_asking(&endpoint, dir.path(), |c| {
        c.auth.max_failures = 100;
        c.auth.failure_delay_ms = 500;
    })
    .await;
    let delay = Duration::from_millis(500);
    let timeout = Duration::from_millis(1000);

    let (code, took) = pass_reply(&srv, "carol", "wrong").await;
    assert_eq!(code, 530, "wrong password");
    println!("wrong password: {code} after {took:?}");
    let (code, took) = pass_reply(&srv, "forbidden", GOOD).await;
    assert_eq!(code, 530, "403");
    println!("endpoint 403: {code} after {took:?}");
    let (code, took) = pass_reply(&srv, "broken", GOOD).await;
    assert_eq!(code, 530, "endpoint 500");
    println!("endpoint 500: {code} after {took:?}");
    let (code, took) = pass_reply(&srv, "stuck", GOOD).await;
    assert_eq!(code, 530, "endpoint timeout");
    assert!(
        took >= timeout && took < timeout + delay + Duration::from_millis(1500),
        "the 530 comes after the timeout and the failure delay, not later: {took:?}"
    );
    println!(
        "endpoint timeout: {code} after {took:?} (http_timeout_ms 1000 + failure_delay_ms 500)"
    );
    assert_eq!(endpoint.count_for("stuck"), 1);
    // Refusals are not cached: the right password still works afterwards.
    let (code, _) = pass_reply(&srv, "carol", GOOD).await;
    assert_eq!(code, 230, "right password after a wrong one");
}

#[tokio::test]
async fn http_password_burst_is_throttled_before_the_endpoint() {
    let endpoint = Endpoint::start(&[("carol", Behaviour::Record("idp/carol/"))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let srv = server_asking(&endpoint, dir.path(), |c| {
        c.auth.max_failures = 3;
        c.auth.http_cache_secs = 0;
    })
    .await;
    let tries: Vec<_> = (0..10)
        .map(|i| {
            let addr = srv.explicit;
            tokio::spawn(async move {
                let (mut c, _) = RawClient::connect(addr).await;
                c.expect("AUTH TLS", 234).await;
                c.handshake().await.expect("handshake");
                c.set_reply_timeout(Duration::from_secs(60));
                c.expect("USER carol", 331).await;
                c.cmd(&format!("PASS wrong-{i}")).await.code
            })
        })
        .collect();
    for t in tries {
        assert_eq!(t.await.expect("task"), 530);
    }
    let asked = endpoint.count_for("carol");
    assert!(
        asked <= 3,
        "at most auth.max_failures = 3 requests reach the endpoint, got {asked}"
    );
    // Banned now: even the right password is refused without asking.
    let (code, _) = pass_reply(&srv, "carol", GOOD).await;
    assert_eq!(code, 530);
    assert_eq!(endpoint.count_for("carol"), asked);
    println!(
        "10 wrong passwords at once: {asked} reached the endpoint; then the right one: {code}"
    );
}
