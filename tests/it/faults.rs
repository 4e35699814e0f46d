//! Fault injection: uploads that go wrong on the client side (reset, ABOR, TLS error) or on the
//! S3 side (5xx on a part or on the completion, connection reset mid-part, a stalled part, S3
//! down for the rest of the upload), and SIGTERM of the real binary mid-upload.
//!
//! S3 faults come from [`FaultProxy`] between the server and SeaweedFS; results are read from
//! SeaweedFS directly. Each scenario runs [`runs`] times, 3 by default (odd runs overwrite an
//! existing object), and after every run checks the one property that matters: the key holds
//! either the complete new object (same SHA-256 as what was sent) or exactly what it held
//! before — never a partial object — and no multipart upload is left open unless the scenario
//! keeps one for resume on purpose. Each scenario prints its row of the summary table; with `--nocapture` the last one
//! to finish prints the whole table:
//!
//! `cargo test --test it faults:: -- --nocapture` (`FAULT_RUNS=10` for more runs of each).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    net::TcpStream,
    process::Child,
};

use crate::common::users::{self, UserToml};
use crate::common::{
    clients::{self, random_bytes},
    faultproxy::{Action, FaultProxy, Kind, Match},
    http,
    raw::{DataStream, RawClient, Reply},
    seaweedfs,
    server::{TestServer, HOME, PASSWORD, USER},
    sha256_hex,
};

const MIB: usize = 1024 * 1024;
/// Runs per scenario: 3, or `FAULT_RUNS` from the environment for a longer soak.
fn runs() -> usize {
    std::env::var("FAULT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(3)
}
/// Uploads are 12 MiB + 5 bytes: three parts of the test part size (5 MiB), the last short.
const BODY: usize = 12 * MIB + 5;
/// How much a cut-off upload sends before the cut: two full parts are then stored or in flight.
const CUT_AT: usize = 11 * MIB;
/// The scenarios that record a row (the last one to finish prints the table).
const SCENARIOS: usize = 17;

/// What the key must hold after a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The complete upload.
    New,
    /// What it held before (an older object, or nothing).
    Previous,
}

/// One scenario's runs, summed up as a table row.
struct Tally {
    scenario: &'static str,
    runs: usize,
    correct: usize,
    partial: usize,
    leaked: usize,
    kept: usize,
    failures: Vec<String>,
}

static ROWS: Mutex<Vec<String>> = Mutex::new(Vec::new());

const HEADER: &str = "| scenario | runs | objects correct | partial objects | leaked multipart uploads | kept for resume (on purpose) |\n| --- | --- | --- | --- | --- | --- |";

impl Tally {
    fn new(scenario: &'static str) -> Tally {
        Tally {
            scenario,
            runs: 0,
            correct: 0,
            partial: 0,
            leaked: 0,
            kept: 0,
            failures: Vec::new(),
        }
    }

    /// Checks one run through SeaweedFS: the content of `key`, and the multipart uploads open
    /// for it once cleanup (asynchronous after a cut connection) has had time to happen.
    /// `keep` is how many uploads the scenario keeps for resume on purpose (0 or 1).
    async fn check(
        &mut self,
        srv: &TestServer,
        key: &str,
        expect: Expect,
        previous: Option<&[u8]>,
        body: &[u8],
        keep: usize,
    ) {
        self.runs += 1;
        let mut open = srv.open_multipart_uploads_for(key).await;
        for _ in 0..100 {
            if open <= keep {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            open = srv.open_multipart_uploads_for(key).await;
        }
        let content = srv.object(key).await;
        let got = content.as_deref();
        let ok = match expect {
            Expect::New => got == Some(body),
            Expect::Previous => got == previous,
        };
        let partial = got.is_some() && got != previous && got != Some(body);
        let leaked = open.saturating_sub(keep);
        let kept = open.min(keep);
        self.correct += usize::from(ok);
        self.partial += usize::from(partial);
        self.leaked += leaked;
        self.kept += kept;
        if !ok || partial || leaked > 0 || kept != keep {
            self.failures.push(format!(
                "{key}: content sha256 {:?} (sent {}, previous {:?}), {open} open multipart \
                 upload(s), {keep} expected",
                got.map(sha256_hex),
                sha256_hex(body),
                previous.map(sha256_hex),
            ));
        }
    }

    fn row(&self) -> String {
        format!(
            "| {} | {} | {}/{} | {} | {} | {} |",
            self.scenario, self.runs, self.correct, self.runs, self.partial, self.leaked, self.kept
        )
    }

    /// Records the row (printing the table when every scenario is in) and fails on any bad run.
    fn finish(self) {
        let row = self.row();
        println!("{HEADER}\n{row}");
        if let Ok(mut rows) = ROWS.lock() {
            rows.push(row);
            if rows.len() == SCENARIOS {
                rows.sort();
                println!("\nS3 fault injection, all scenarios:\n{HEADER}");
                for r in rows.iter() {
                    println!("{r}");
                }
            }
        }
        assert!(
            self.failures.is_empty(),
            "{}: {}",
            self.scenario,
            self.failures.join("\n")
        );
        assert_eq!(self.runs, runs());
    }
}

/// A server whose S3 endpoint is the proxy; `resume` keeps cut-off uploads (the production
/// default) instead of aborting them.
async fn start(resume: bool) -> (TestServer, FaultProxy) {
    start_tuned(resume, |b| b).await
}

/// As [`start`], with the server's S3 client settings changed by `tune`.
async fn start_tuned(
    resume: bool,
    tune: impl FnOnce(aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder,
) -> (TestServer, FaultProxy) {
    let proxy = FaultProxy::start(seaweedfs::s3().await.endpoint()).await;
    let url = proxy.url();
    let srv = TestServer::start_with_s3_client(
        |c| {
            c.s3.endpoint = Some(url);
            c.s3.resume_window_secs = if resume { 86_400 } else { 0 };
        },
        tune,
    )
    .await;
    (srv, proxy)
}

/// Run `i`'s file name, and the previous content put there first on odd runs.
async fn prepare(srv: &TestServer, scenario: &str, i: usize) -> (String, Option<Vec<u8>>) {
    let name = format!("{scenario}-{i}.bin");
    let previous = (i % 2 == 1).then(|| format!("previous content of run {i}").into_bytes());
    if let Some(p) = &previous {
        srv.put_object(&srv.key(&name), p).await;
    }
    (name, previous)
}

/// Logs in, STOR `name`, opens the data connection (TLS) and sends `body`.
async fn begin_upload(srv: &TestServer, name: &str, body: &[u8]) -> (RawClient, DataStream) {
    let mut c = RawClient::login_explicit(srv.explicit, USER, PASSWORD).await;
    // The final reply may wait for the SDK's retries and timeouts.
    c.set_reply_timeout(Duration::from_secs(120));
    let port = c.epsv().await;
    c.send_raw(format!("STOR {name}\r\n").as_bytes()).await;
    let opening = c.reply().await;
    assert_eq!(opening.code, 150, "{}", opening.text);
    let mut data = c.data_connect(port, true).await;
    data.write_all(body).await.expect("send body");
    (c, data)
}

/// A whole upload with a clean end (close_notify); the final reply.
async fn upload(srv: &TestServer, name: &str, body: &[u8]) -> Reply {
    let (mut c, data) = begin_upload(srv, name, body).await;
    data.finish().await.expect("close_notify");
    c.reply().await
}

// ---------------------------------------------------------------------------------------------
// Client-side failures

/// Runs [`runs`] uploads that the client breaks: each sends `sent` bytes of the body, then `cut`
/// ends it (and checks the replies). The key must keep what it held. With `resume` the cut
/// upload is kept on purpose: exactly one open multipart upload holding the two full parts.
async fn client_fault(
    scenario: &'static str,
    file: &str,
    resume: bool,
    sent: usize,
    cut: impl AsyncFn(&mut RawClient, DataStream),
) {
    let (srv, _proxy) = start(resume).await;
    let mut tally = Tally::new(scenario);
    let body = random_bytes(BODY);
    for i in 0..runs() {
        let (name, previous) = prepare(&srv, file, i).await;
        let (mut c, data) = begin_upload(&srv, &name, &body[..sent]).await;
        cut(&mut c, data).await;
        let key = srv.key(&name);
        if resume {
            let parts = srv.kept_parts(&key).await;
            assert_eq!(
                parts,
                vec![5 * MIB as i64; 2],
                "{key}: the full parts are kept"
            );
        }
        let keep = usize::from(resume);
        tally
            .check(
                &srv,
                &key,
                Expect::Previous,
                previous.as_deref(),
                &body,
                keep,
            )
            .await;
    }
    tally.finish();
    srv.stop().await;
}

/// TCP reset on the data connection (no close_notify): `426`.
async fn reset_data(c: &mut RawClient, data: DataStream) {
    // Let the server read what was sent, so parts are in flight when the reset comes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    data.reset();
    let r = c.reply().await;
    assert_eq!(r.code, 426, "{}", r.text);
}

#[tokio::test]
async fn client_reset_mid_stor_leaves_no_partial_object() {
    client_fault(
        "client TCP reset mid-STOR",
        "reset",
        false,
        CUT_AT,
        reset_data,
    )
    .await;
}

/// With a resume window (the production default) the cut upload is kept for REST + STOR.
#[tokio::test]
async fn client_reset_mid_stor_keeps_exactly_the_upload_for_resume() {
    client_fault(
        "client TCP reset mid-STOR, resume window on",
        "kept",
        true,
        CUT_AT,
        reset_data,
    )
    .await;
}

#[tokio::test]
async fn abor_mid_stor_leaves_no_partial_object() {
    client_fault("ABOR mid-STOR", "abor", false, CUT_AT, async |c, data| {
        c.send_raw(b"ABOR\r\n").await;
        assert_eq!(c.reply().await.code, 426);
        assert_eq!(c.reply().await.code, 226);
        drop(data);
        c.expect("NOOP", 200).await;
    })
    .await;
}

/// ABOR while S3 is still creating the multipart upload (its `CreateMultipartUpload` arrived in
/// full and is held at S3): the server must learn the upload's id and abort it. Dropping the
/// request on ABOR does not call it back, and an upload S3 creates after that, with nobody left
/// to abort it, stays open (and its parts billed) until a lifecycle rule removes it.
#[tokio::test]
async fn abor_while_the_multipart_upload_is_created_leaves_no_multipart_upload() {
    const HOLD: Duration = Duration::from_secs(2);
    let scenario = "ABOR mid-STOR, CreateMultipartUpload held at S3";
    let (srv, proxy) = start(false).await;
    let mut tally = Tally::new(scenario);
    let body = random_bytes(BODY);
    for i in 0..runs() {
        let (name, previous) = prepare(&srv, "creating", i).await;
        proxy.inject(
            Match::Kind(Kind::CreateMultipartUpload),
            Action::Hold(HOLD),
            1,
        );
        let (held, released) = proxy.held();
        let (mut c, data) = begin_upload(&srv, &name, &body[..CUT_AT]).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while proxy.held().0 == held {
            assert!(
                Instant::now() < deadline,
                "{scenario}: no CreateMultipartUpload"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        c.send_raw(b"ABOR\r\n").await;
        assert_eq!(c.reply().await.code, 426);
        assert_eq!(c.reply().await.code, 226);
        drop(data);
        // S3 has created the upload (and answered) before the check below looks for it.
        while proxy.held().1 == released {
            assert!(Instant::now() < deadline, "{scenario}: never released");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let key = srv.key(&name);
        tally
            .check(&srv, &key, Expect::Previous, previous.as_deref(), &body, 0)
            .await;
    }
    tally.finish();
    srv.stop().await;
}

/// A TLS record that does not decrypt, written under the TLS session mid-upload.
#[tokio::test]
async fn tls_error_mid_stor_leaves_no_partial_object() {
    // An application-data record header (TLS 1.2) and 64 bytes that are not its ciphertext.
    let mut record = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    record.extend(random_bytes(64));
    let record = &record;
    client_fault(
        "TLS error (bad record) mid-STOR",
        "tlserr",
        false,
        CUT_AT,
        async |c, data| {
            data.corrupt(record).await.expect("send the bad record");
            let r = c.reply().await;
            assert_eq!(r.code, 426, "{}", r.text);
        },
    )
    .await;
}

/// Every byte sent, then FIN without close_notify: the TLS 1.3 upload trap (docs/TESTING.md). The
/// server cannot tell this from a cut connection, so it must not commit.
#[tokio::test]
async fn tls_close_without_close_notify_is_not_committed() {
    client_fault(
        "whole body, then FIN without close_notify",
        "nonotify",
        false,
        BODY,
        async |c, data| {
            data.close_without_notify().await.expect("FIN");
            let r = c.reply().await;
            assert_eq!(r.code, 426, "{}", r.text);
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// S3-side failures the SDK retries: the upload succeeds

/// Runs [`runs`] whole uploads with `fault` armed before each; each must end 226 with the object
/// intact, and `retried` must see the fault's retries in the proxy's counts.
async fn retried_fault(
    scenario: &'static str,
    file: &str,
    arm: impl Fn(&FaultProxy),
    retried: impl Fn(&FaultProxy, usize),
) {
    retried_fault_tuned(scenario, file, |b| b, arm, retried).await;
}

/// As [`retried_fault`], with the server's S3 client settings changed by `tune`.
async fn retried_fault_tuned(
    scenario: &'static str,
    file: &str,
    tune: impl FnOnce(aws_sdk_s3::config::Builder) -> aws_sdk_s3::config::Builder,
    arm: impl Fn(&FaultProxy),
    retried: impl Fn(&FaultProxy, usize),
) {
    let (srv, proxy) = start_tuned(false, tune).await;
    let mut tally = Tally::new(scenario);
    let body = random_bytes(BODY);
    for i in 0..runs() {
        let (name, previous) = prepare(&srv, file, i).await;
        arm(&proxy);
        let started = Instant::now();
        let r = upload(&srv, &name, &body).await;
        assert_eq!(r.code, 226, "{scenario}: {}", r.text);
        println!("{scenario}: run {i} took {:?}", started.elapsed());
        retried(&proxy, i + 1);
        let key = srv.key(&name);
        tally
            .check(&srv, &key, Expect::New, previous.as_deref(), &body, 0)
            .await;
    }
    tally.finish();
    srv.stop().await;
}

#[tokio::test]
async fn s3_503_slowdown_on_one_part_is_retried_and_the_upload_succeeds() {
    retried_fault(
        "S3 503 SlowDown on part 2 (once)",
        "slowdown",
        |p| p.inject(Match::Part(2), Action::SLOW_DOWN, 1),
        |p, runs| {
            assert_eq!(p.injected(Kind::UploadPart), runs);
            // Three parts per upload, plus the one retry.
            assert_eq!(p.seen(Kind::UploadPart), runs * 4, "the SDK retried part 2");
        },
    )
    .await;
}

#[tokio::test]
async fn s3_500_on_complete_multipart_upload_is_retried_and_the_upload_succeeds() {
    retried_fault(
        "S3 500 InternalError on CompleteMultipartUpload (once)",
        "complete500",
        |p| {
            p.inject(
                Match::Kind(Kind::CompleteMultipartUpload),
                Action::INTERNAL_ERROR,
                1,
            )
        },
        |p, runs| {
            assert_eq!(p.injected(Kind::CompleteMultipartUpload), runs);
            assert_eq!(p.seen(Kind::CompleteMultipartUpload), runs * 2);
        },
    )
    .await;
}

#[tokio::test]
async fn s3_connection_reset_mid_part_is_retried_and_the_upload_succeeds() {
    retried_fault(
        "S3 connection reset after 1 MiB of part 2 (once)",
        "s3reset",
        |p| {
            p.inject(
                Match::Part(2),
                Action::Reset {
                    after_body_bytes: MIB,
                },
                1,
            )
        },
        |p, runs| {
            assert_eq!(p.injected(Kind::UploadPart), runs);
            assert_eq!(p.seen(Kind::UploadPart), runs * 4);
        },
    )
    .await;
}

/// The same S3 faults under a real client: curl (OpenSSL, TLS 1.3 on both channels) uploads
/// while S3 answers 503 to part 2 and 500 to the completion once each; the upload succeeds.
/// Then, with S3 refusing connections, curl's STOR fails with `451` (the server's existence
/// check fails before any data moves) and curl exits non-zero.
#[tokio::test]
async fn curl_uploads_through_s3_faults() {
    let (srv, proxy) = start(false).await;
    let mut tally = Tally::new("curl (TLS 1.3): 503 on part 2 and 500 on Complete (once each)");
    let body = random_bytes(BODY);
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src.bin");
    std::fs::write(&src, &body).expect("write");
    let base = clients::url(clients::Mode::Explicit, srv.explicit);
    for i in 0..runs() {
        let (name, previous) = prepare(&srv, "curl", i).await;
        proxy.inject(Match::Part(2), Action::SLOW_DOWN, 1);
        proxy.inject(
            Match::Kind(Kind::CompleteMultipartUpload),
            Action::INTERNAL_ERROR,
            1,
        );
        let mut c = clients::curl(USER, PASSWORD);
        c.arg("--tlsv1.3")
            .arg("-T")
            .arg(&src)
            .arg(format!("{base}/{name}"));
        clients::assert_ok(&clients::run(c).await, "curl upload");
        assert_eq!(proxy.injected(Kind::UploadPart), i + 1);
        assert_eq!(proxy.injected(Kind::CompleteMultipartUpload), i + 1);
        let key = srv.key(&name);
        tally
            .check(&srv, &key, Expect::New, previous.as_deref(), &body, 0)
            .await;
    }
    tally.finish();

    // S3 gone before the upload starts: curl must fail, and show the reply.
    proxy.refuse_connections().await;
    let mut c = clients::curl(USER, PASSWORD);
    c.arg("-T").arg(&src).arg(format!("{base}/refused.bin"));
    let out = clients::run(c).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "curl succeeded with S3 down");
    assert!(
        stderr.contains("451"),
        "curl's error names the reply: {stderr}"
    );
    proxy.heal().await;
    assert_eq!(srv.object(&srv.key("refused.bin")).await, None);
    srv.stop().await;
}

// ---------------------------------------------------------------------------------------------
// S3 down for the rest of the upload: the upload fails cleanly

/// Every UploadPart from part 2 on and every CompleteMultipartUpload answers 503 (S3 overloaded
/// for good); AbortMultipartUpload still gets through. The client gets `451`, the key keeps what
/// it held, and the multipart upload is aborted.
#[tokio::test]
async fn s3_failing_for_the_rest_of_the_upload_fails_cleanly_with_451() {
    let (srv, proxy) = start(false).await;
    let mut tally = Tally::new("S3 503 on every later part and on Complete");
    let body = random_bytes(BODY);
    for i in 0..runs() {
        let (name, previous) = prepare(&srv, "down503", i).await;
        proxy.always(
            Match::Kind(Kind::CompleteMultipartUpload),
            Action::SLOW_DOWN,
        );
        for part in 2..=3 {
            proxy.always(Match::Part(part), Action::SLOW_DOWN);
        }
        let r = upload(&srv, &name, &body).await;
        assert_eq!(r.code, 451, "{}", r.text);
        let key = srv.key(&name);
        tally
            .check(&srv, &key, Expect::Previous, previous.as_deref(), &body, 0)
            .await;
        assert!(
            proxy.seen(Kind::AbortMultipartUpload) > i,
            "the upload was aborted"
        );
        proxy.heal().await;
    }
    tally.finish();
    srv.stop().await;
}

/// S3 unreachable from the moment the first part is on its way, AbortMultipartUpload included
/// (`go_down` takes it away). The client gets `451` and the key keeps what it held; the abort
/// cannot reach S3, so right after the failure exactly one multipart upload is open. When S3 is
/// back, the server's background retry of the abort (5 s after the failure, then less often)
/// removes it; a server stopped before that leaves it to the bucket lifecycle rule (README,
/// "S3 retries and timeouts").
async fn s3_gone_for_the_rest(
    scenario: &'static str,
    file: &str,
    go_down: impl AsyncFn(&FaultProxy),
) {
    let (srv, proxy) = start(false).await;
    let mut tally = Tally::new(scenario);
    let body = random_bytes(BODY);
    for i in 0..runs() {
        let (name, previous) = prepare(&srv, file, i).await;
        let took = upload_as_s3_goes(&srv, &proxy, &name, &body, &go_down).await;
        println!("{scenario}: run {i}: 451 {took:?} after the last byte");
        proxy.heal().await;
        let key = srv.key(&name);
        assert_eq!(
            srv.open_multipart_uploads_for(&key).await,
            1,
            "the abort could not reach S3: one upload is open until S3 is back"
        );
        tally
            .check(&srv, &key, Expect::Previous, previous.as_deref(), &body, 0)
            .await;
    }
    tally.finish();
    srv.stop().await;
}

/// Uploads `body` to `name` and takes S3 away (`go_down`) once part 1 is on its way: the reply
/// is `451`. Returns how long it took after the last byte.
async fn upload_as_s3_goes(
    srv: &TestServer,
    proxy: &FaultProxy,
    name: &str,
    body: &[u8],
    go_down: &impl AsyncFn(&FaultProxy),
) -> Duration {
    let before = proxy.seen(Kind::UploadPart);
    let (mut c, mut data) = begin_upload(srv, name, &body[..5 * MIB + 1]).await;
    // Part 1 is full and on its way: from here on S3 is gone.
    for _ in 0..100 {
        if proxy.seen(Kind::UploadPart) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    go_down(proxy).await;
    data.write_all(&body[5 * MIB + 1..])
        .await
        .expect("send the rest");
    data.finish().await.expect("close_notify");
    let started = Instant::now();
    let r = c.reply().await;
    assert_eq!(r.code, 451, "{}", r.text);
    started.elapsed()
}

/// As above, but the server is stopped as soon as S3 is back, while the failed abort waits for
/// its first retry (5 s after the failure): shutdown makes that try at once (the background
/// work's last try, within the cleanup wait), so no upload is left open when `stop` returns.
#[tokio::test]
async fn stopping_the_server_makes_a_failed_aborts_retry_at_once() {
    let (srv, proxy) = start(false).await;
    let body = random_bytes(BODY);
    let (name, _) = prepare(&srv, "abort-at-stop", 0).await;
    let key = srv.key(&name);
    upload_as_s3_goes(&srv, &proxy, &name, &body, &async |p: &FaultProxy| {
        p.refuse_connections().await
    })
    .await;
    proxy.heal().await;
    assert_eq!(
        srv.open_multipart_uploads_for(&key).await,
        1,
        "the abort could not reach S3"
    );
    let bucket = srv.bucket.clone();
    let started = Instant::now();
    srv.stop().await;
    let stopped_in = started.elapsed();
    let client = seaweedfs::s3().await.client();
    let open = seaweedfs::open_uploads(&client, &bucket, &key).await.len();
    assert_eq!(open, 0, "{key}: aborted by the time the server stopped");
    assert!(
        stopped_in < Duration::from_secs(4),
        "stopped in {stopped_in:?}: the retry was made at once, not after its 5 s delay"
    );
}

/// Every connection to S3 reset (no HTTP answer at all).
#[tokio::test]
async fn s3_resetting_every_connection_fails_cleanly() {
    s3_gone_for_the_rest(
        "S3 resets every connection after part 1 (abort retried once S3 is back)",
        "unreachable",
        async |p| {
            p.always(
                Match::Any,
                Action::Reset {
                    after_body_bytes: 0,
                },
            )
        },
    )
    .await;
}

/// S3's port closed: connection refused, open connections closed.
#[tokio::test]
async fn s3_refusing_connections_fails_cleanly() {
    s3_gone_for_the_rest(
        "S3 refuses connections after part 1 (abort retried once S3 is back)",
        "refused",
        async |p| p.refuse_connections().await,
    )
    .await;
}

/// A part whose request S3 neither reads nor answers: the SDK's read timeout ends the attempt
/// and the retry goes through. The product's read timeout is 60 s + 1 s per MiB of part (65 s
/// here; a run then takes ~66 s), so the test shortens it to 3 s, keeping the connect timeout,
/// to run in seconds: what is under test is that a timed-out part is retried and the upload
/// completes whole.
#[tokio::test]
async fn s3_stalled_part_times_out_is_retried_and_the_upload_succeeds() {
    retried_fault_tuned(
        "S3 stalls part 1 past the SDK read timeout (once)",
        "stall",
        |b| {
            b.timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(Duration::from_secs(3))
                    .build(),
            )
        },
        |p| p.inject(Match::Part(1), Action::Stall, 1),
        |p, runs| {
            assert_eq!(p.injected(Kind::UploadPart), runs);
            assert_eq!(p.seen(Kind::UploadPart), runs * 4);
        },
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// SIGTERM of the real binary

/// The `ftps-s3` binary on SeaweedFS (through nothing: SIGTERM is the fault), JSON logs on
/// stderr so the test can read the listening addresses.
pub(crate) struct Binary {
    child: Child,
    pub(crate) explicit: std::net::SocketAddr,
    pub(crate) admin: std::net::SocketAddr,
    bucket: String,
    /// Lines on stderr before the listeners were reported that are not JSON log lines (the
    /// warnings printed before logging starts).
    pub(crate) startup_text: Vec<String>,
    _dir: tempfile::TempDir,
}

fn write_binary_config(
    dir: &Path,
    bucket: &str,
    endpoint: &str,
    grace: u64,
    resume: u64,
    extra: &str,
) -> PathBuf {
    let (cert, key) = ftps_s3::tls::ensure_self_signed(dir).expect("cert");
    let users = dir.join("users.toml");
    users::write(
        &users,
        &[UserToml::new(USER)
            .password(PASSWORD)
            .home(HOME)
            .permissions(&["list", "read", "write", "overwrite", "delete"])],
    );
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[listeners]\nexplicit = \"127.0.0.1:0\"\nimplicit = \"off\"\n\
             [tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             [auth]\nusers_file = \"{}\"\nfailure_delay_ms = 50\n\
             [passive]\nports = \"40000-44999\"\n\
             [storage]\nbackend = \"s3\"\n\
             [s3]\nbucket = \"{bucket}\"\nregion = \"{}\"\nendpoint = \"{endpoint}\"\n\
             force_path_style = true\npart_size_mib = 5\nupload_concurrency = 2\n\
             resume_window_secs = {resume}\n\
             [shutdown]\ngrace_seconds = {grace}\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n{extra}",
            cert.display(),
            key.display(),
            users.display(),
            seaweedfs::REGION,
        ),
    )
    .expect("config");
    config
}

impl Binary {
    async fn start(grace: u64, resume: u64) -> Binary {
        Binary::start_with(grace, resume, None, &[], "").await
    }

    /// `bucket`: a bucket name to use instead of a new one (e.g. one that does not exist);
    /// `env`: extra environment (`FTPS_S3_*` overrides, unrelated variables); `extra`: TOML tables
    /// the base config does not have.
    pub(crate) async fn start_with(
        grace: u64,
        resume: u64,
        bucket: Option<&str>,
        env: &[(&str, &str)],
        extra: &str,
    ) -> Binary {
        let sw = seaweedfs::s3().await;
        let bucket = match bucket {
            Some(b) => b.to_string(),
            None => sw.new_bucket().await,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_binary_config(dir.path(), &bucket, sw.endpoint(), grace, resume, extra);
        let mut cmd = crate::common::binary::server_command();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().expect("spawn ftps-s3");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let (mut explicit, mut admin) = (None, None);
        let mut startup_text = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while explicit.is_none() || admin.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match tokio::time::timeout(left, lines.next_line()).await {
                Ok(Ok(Some(l))) => l,
                other => panic!("ftps-s3 did not report its listeners: {other:?}"),
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                startup_text.push(line);
                continue;
            };
            let addr = v["addr"].as_str().and_then(|a| a.parse().ok());
            match (v["message"].as_str(), v["listener"].as_str()) {
                (Some("listening"), Some("explicit")) => explicit = addr,
                (Some(m), _) if m.starts_with("admin listener") => admin = addr,
                _ => {}
            }
        }
        // Keep draining the log so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Binary {
            child,
            explicit: explicit.expect("explicit address"),
            admin: admin.expect("admin address"),
            bucket,
            startup_text,
            _dir: dir,
        }
    }

    fn sigterm(&self) {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
    }

    /// Waits for the process to exit; its exit code.
    async fn exit_code(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the server exits in time")
            .expect("wait")
            .code()
    }

    pub(crate) fn key(&self, name: &str) -> String {
        format!("{HOME}{name}")
    }

    pub(crate) async fn object(&self, key: &str) -> Option<Vec<u8>> {
        let client = seaweedfs::s3().await.client();
        seaweedfs::get_object(&client, &self.bucket, key).await
    }

    async fn open_uploads(&self) -> usize {
        let client = seaweedfs::s3().await.client();
        seaweedfs::open_uploads(&client, &self.bucket, "")
            .await
            .len()
    }

    /// After the process exited: `key` holds exactly `body` and no multipart upload is open.
    async fn tally_completed(&self, tally: &mut Tally, key: &str, body: &[u8]) {
        tally.runs += 1;
        let got = self.object(key).await;
        let ok = got.as_deref() == Some(body);
        tally.correct += usize::from(ok);
        tally.partial += usize::from(got.is_some() && !ok);
        let open = self.open_uploads().await;
        tally.leaked += open;
        if !ok || open != 0 {
            tally.failures.push(format!(
                "{key}: sha256 {:?}, want {}; {open} open uploads",
                got.as_deref().map(sha256_hex),
                sha256_hex(body)
            ));
        }
    }

    /// Waits (up to 30 s) until `n` parts of `key`'s open uploads are stored.
    async fn wait_for_stored_parts(&self, key: &str, n: usize) {
        // Polled: a fixed sleep was too short on a slow machine.
        let stored_by = Instant::now() + Duration::from_secs(30);
        while self.stored_parts(key).await < n {
            assert!(
                Instant::now() < stored_by,
                "{key}: {n} parts stored within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Parts stored so far in the open multipart uploads of exactly `key`.
    async fn stored_parts(&self, key: &str) -> usize {
        let client = seaweedfs::s3().await.client();
        let mut parts = 0;
        for (k, upload_id) in seaweedfs::open_uploads(&client, &self.bucket, key).await {
            if k != key {
                continue;
            }
            let out = client
                .list_parts()
                .bucket(&self.bucket)
                .key(&k)
                .upload_id(&upload_id)
                .send()
                .await
                .expect("ListParts");
            parts += out.parts().len();
        }
        parts
    }
}

/// `GET path` on the admin listener: the status code.
async fn http_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    http::get(addr, path).await.0
}

/// New connections are refused once the accept loop has seen the shutdown (it races the idle
/// session's `421` by a few milliseconds); one that reached the backlog just before is closed
/// without a greeting.
async fn assert_refused(addr: std::net::SocketAddr) {
    for _ in 0..40 {
        let Ok(mut tcp) = TcpStream::connect(addr).await else {
            return;
        };
        let mut greeting = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut greeting)).await;
        assert!(
            matches!(read, Ok(Ok(0) | Err(_))),
            "a connection made while draining was served: {read:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{addr} still accepts connections 2 s into the drain");
}

/// The drain, end to end on the real binary: SIGTERM → `/readyz` 503 at once while `/healthz`
/// stays 200, new connections refused, an idle session told `421`, the upload in flight
/// finishes with `226` and the right SHA-256, and the process exits 0. Repeated [`runs`] times.
#[tokio::test]
async fn sigterm_drains_an_upload_in_flight_within_the_grace_period() {
    let mut tally = Tally::new("SIGTERM mid-upload, upload finishes within grace");
    let body = random_bytes(BODY);
    for i in 0..runs() {
        let mut bin = Binary::start(30, 0).await;
        assert_eq!(http_status(bin.admin, "/healthz").await, 200);
        let name = format!("drain-{i}.bin");
        let mut idle = RawClient::login_explicit(bin.explicit, USER, PASSWORD).await;
        let mut c = RawClient::login_explicit(bin.explicit, USER, PASSWORD).await;
        let port = c.epsv().await;
        c.send_raw(format!("STOR {name}\r\n").as_bytes()).await;
        assert_eq!(c.reply().await.code, 150);
        let mut data = c.data_connect(port, true).await;
        data.write_all(&body[..CUT_AT]).await.expect("first half");

        bin.sigterm();
        let r = idle.try_reply().await.expect("421 to the idle session");
        assert_eq!(r.code, 421, "{}", r.text);
        // Both checked right after the idle session heard of the shutdown.
        assert_eq!(http_status(bin.admin, "/readyz").await, 503);
        assert_eq!(http_status(bin.admin, "/healthz").await, 200);
        assert_refused(bin.explicit).await;

        data.write_all(&body[CUT_AT..]).await.expect("the rest");
        data.finish().await.expect("close_notify");
        let r = c.reply().await;
        assert_eq!(r.code, 226, "{}", r.text);
        assert_eq!(c.try_reply().await.map(|r| r.code), Some(421));
        assert_eq!(bin.exit_code(Duration::from_secs(30)).await, Some(0));

        bin.tally_completed(&mut tally, &bin.key(&name), &body)
            .await;
    }
    tally.finish();
}

/// An upload that cannot finish within a short grace period (the client stops sending): when
/// the grace period is over the server ends it with `426`, aborts (resume window 0) or keeps
/// (resume window on) the multipart upload, and exits 0; the key never holds a partial object.
async fn sigterm_cuts_an_unfinished_upload(scenario: &'static str, resume: u64) {
    let mut tally = Tally::new(scenario);
    let body = random_bytes(BODY);
    for i in 0..runs() {
        let mut bin = Binary::start(2, resume).await;
        let name = format!("cut-{i}.bin");
        let mut c = RawClient::login_explicit(bin.explicit, USER, PASSWORD).await;
        let port = c.epsv().await;
        c.send_raw(format!("STOR {name}\r\n").as_bytes()).await;
        assert_eq!(c.reply().await.code, 150);
        let mut data = c.data_connect(port, true).await;
        data.write_all(&body[..CUT_AT]).await.expect("first part");
        // Two full parts are read; wait until they are stored so "kept" has something to keep.
        let key = bin.key(&name);
        bin.wait_for_stored_parts(&key, 2).await;
        let started = Instant::now();
        bin.sigterm();
        let r = tokio::time::timeout(Duration::from_secs(30), c.reply())
            .await
            .expect("a reply when the grace period is over");
        assert_eq!(r.code, 426, "{}", r.text);
        let code = bin.exit_code(Duration::from_secs(30)).await;
        let took = started.elapsed();
        println!("{scenario}: run {i}: 426 and exit {code:?} {took:?} after SIGTERM");
        assert_eq!(code, Some(0));
        drop(data);

        tally.runs += 1;
        let got = bin.object(&key).await;
        tally.correct += usize::from(got.is_none());
        tally.partial += usize::from(got.is_some());
        let open = bin.open_uploads().await;
        let keep = usize::from(resume > 0);
        tally.leaked += open.saturating_sub(keep);
        tally.kept += open.min(keep);
        if got.is_some() || open != keep {
            tally.failures.push(format!(
                "{key}: object {:?}; {open} open uploads, {keep} expected",
                got.as_deref().map(sha256_hex)
            ));
        }
    }
    tally.finish();
}

#[tokio::test]
async fn sigterm_past_the_grace_period_aborts_the_unfinished_upload() {
    sigterm_cuts_an_unfinished_upload("SIGTERM, upload cannot finish in grace (resume off)", 0)
        .await;
}

#[tokio::test]
async fn sigterm_past_the_grace_period_keeps_the_unfinished_upload_for_resume() {
    sigterm_cuts_an_unfinished_upload("SIGTERM, upload cannot finish in grace (resume on)", 86_400)
        .await;
}

/// A STOR from byte 0 over a file with an upload kept for resume aborts the kept upload in the
/// background once it completes (`226` does not wait for it). SIGTERM right after the `226`,
/// while that abort is on its way (S3 takes 2 s to answer it, through the fault proxy):
/// shutdown waits for the background abort (the server's one tracker, bounded), so when the
/// process has exited no multipart upload is left open. Repeated [`runs`] times.
#[tokio::test]
async fn sigterm_right_after_a_replacing_stor_waits_for_the_background_abort() {
    let mut tally = Tally::new("SIGTERM right after a STOR replaced a kept upload");
    let body = random_bytes(BODY);
    let proxy = FaultProxy::start(seaweedfs::s3().await.endpoint()).await;
    proxy.always(
        Match::Kind(Kind::AbortMultipartUpload),
        Action::Delay(Duration::from_secs(2)),
    );
    let endpoint = proxy.url();
    for i in 0..runs() {
        let env = [("FTPS_S3_S3__ENDPOINT", endpoint.as_str())];
        let mut bin = Binary::start_with(30, 86_400, None, &env, "").await;
        let name = format!("replaced-{i}.bin");
        let key = bin.key(&name);
        let mut c = RawClient::login_explicit(bin.explicit, USER, PASSWORD).await;
        // A cut upload, kept for resume: two full parts stored, then a reset.
        let port = c.epsv().await;
        c.send_raw(format!("STOR {name}\r\n").as_bytes()).await;
        assert_eq!(c.reply().await.code, 150);
        let mut data = c.data_connect(port, true).await;
        data.write_all(&body[..CUT_AT]).await.expect("first parts");
        bin.wait_for_stored_parts(&key, 2).await;
        data.reset();
        let r = c.reply().await;
        assert_eq!(r.code, 426, "{}", r.text);
        assert_eq!(bin.open_uploads().await, 1, "{key}: the cut upload is kept");
        // S3's upload times are whole seconds: only uploads started in an earlier second than
        // the replacing STOR are aborted.
        tokio::time::sleep(Duration::from_millis(1100)).await;

        // The whole file again from byte 0 (no REST): it replaces the kept upload.
        let small = &body[..64 * 1024];
        let port = c.epsv().await;
        c.send_raw(format!("STOR {name}\r\n").as_bytes()).await;
        assert_eq!(c.reply().await.code, 150);
        let mut data = c.data_connect(port, true).await;
        data.write_all(small).await.expect("body");
        data.finish().await.expect("close_notify");
        let r = c.reply().await;
        assert_eq!(r.code, 226, "{}", r.text);
        bin.sigterm();
        assert_eq!(bin.exit_code(Duration::from_secs(30)).await, Some(0));

        bin.tally_completed(&mut tally, &key, small).await;
    }
    tally.finish();
    // Through the proxy, delayed: each run really had an abort on its way at SIGTERM.
    assert_eq!(proxy.seen(Kind::AbortMultipartUpload), runs());
}
