//! Per-user quotas (`quota_bytes`, `quota_files`) and bandwidth limits (`max_upload_kib_s`,
//! `max_download_kib_s`) with real clients (curl, Python ftplib), SeaweedFS and TLS.

use std::{path::Path, time::Duration, time::Instant};

use crate::admin::metric;
use crate::common::{
    clients::{self, assert_ok, curl, python, random_bytes, Mode},
    faultproxy::{Action, FaultProxy, Kind, Match},
    http,
    raw::RawClient,
    seaweedfs,
    server::TestServer,
    users::{self, UserToml},
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A `[[user]]` named `name` (password `<name>-password`, home `partners/<name>/`, every
/// permission) with `limit` set.
fn user(name: &str, limit: &str, value: u64) -> String {
    UserToml::new(name)
        .password(&format!("{name}-password"))
        .permissions(users::ALL)
        .limit(limit, value)
        .render()
}

fn write(dir: &Path, name: &str, len: usize) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, random_bytes(len)).expect("write");
    p
}

/// Keys under `partners/<name>/`.
async fn keys_of(srv: &TestServer, name: &str) -> Vec<String> {
    let prefix = format!("partners/{name}/");
    let mut keys = srv.keys().await;
    keys.retain(|k| k.starts_with(&prefix));
    keys
}

/// ftplib as `name`, running `steps` in one session; stdout.
async fn ftplib(srv: &TestServer, name: &str, steps: &[&str]) -> String {
    let out = clients::run(python(
        Mode::Explicit,
        srv.explicit,
        name,
        &format!("{name}-password"),
        steps,
    ))
    .await;
    assert_ok(&out, "ftplib session");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (a) `quota_bytes` = 7 MiB with 5 MiB parts: 2 MiB fits; a 6 MiB upload crosses the line
/// after its first part went to S3 as a multipart upload, gets `552`, and that multipart
/// upload is aborted (the test server keeps interrupted uploads for resume, so only the quota
/// path can have removed it). The same ftplib session then uploads a file that fits.
#[tokio::test]
async fn an_upload_past_quota_bytes_gets_552_and_leaves_no_object_and_no_multipart_upload() {
    let srv = TestServer::start_with_users(&user("q", "quota_bytes", 7 * MIB as u64), |c| {
        c.s3.part_size_mib = 5;
        c.admin.listen = Some("127.0.0.1:0".parse().expect("addr"));
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = write(dir.path(), "first.bin", 2 * MIB);
    let big = write(dir.path(), "big.bin", 6 * MIB);
    let small = write(dir.path(), "small.bin", MIB);
    let url = |name: &str| format!("ftp://{}/{name}", srv.explicit);

    let mut up = curl("q", "q-password");
    up.arg("-T").arg(&first).arg(url("first.bin"));
    assert_ok(&clients::run(up).await, "2 MiB upload within the quota");

    let mut up = curl("q", "q-password");
    up.args(["-v", "-w", "%{size_upload}\n"])
        .arg("-T")
        .arg(&big)
        .arg(url("big.bin"));
    let out = clients::run(up).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let sent = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let reply = stderr
        .lines()
        .find(|l| l.starts_with("< 552"))
        .unwrap_or("(no 552 seen)")
        .to_string();
    assert!(
        !out.status.success(),
        "curl's upload past the quota succeeded"
    );
    // curl reads the 552 when its last bytes fit in the socket buffers before the server closed
    // the data connection; otherwise it stops at the send error (exit 55) without reading it.
    assert!(
        reply.starts_with("< 552") || out.status.code() == Some(55),
        "curl saw neither the 552 nor a send error:\n{stderr}"
    );

    // The same session keeps working after its own refused upload.
    let session = ftplib(
        &srv,
        "q",
        &[
            "tryput",
            &big.to_string_lossy(),
            "big.bin",
            "put",
            &small.to_string_lossy(),
            "small.bin",
            "nlst",
        ],
    )
    .await;
    assert!(
        session.contains("tryput big.bin:") && session.contains("552"),
        "ftplib's upload past the quota was not refused with 552:\n{session}"
    );
    let mut names: Vec<&str> = session
        .lines()
        .filter(|l| !l.starts_with("tryput"))
        .collect();
    names.sort();
    assert_eq!(names, ["first.bin", "small.bin"], "{session}");

    let keys = keys_of(&srv, "q").await;
    let multipart = srv.open_multipart_uploads().await;
    eprintln!(
        "quota_bytes 7 MiB (2 MiB stored): curl sent {sent} B of 6 MiB, reply {reply:?}; \
         ftplib: {:?}; objects left {keys:?}; multipart uploads left {multipart}",
        session.lines().next().unwrap_or("")
    );
    assert_eq!(keys, ["partners/q/first.bin", "partners/q/small.bin"]);
    assert_eq!(multipart, 0, "a multipart upload was left behind");
    let (_, text) = http::get(srv.admin.expect("admin"), "/metrics").await;
    let refused = metric(
        &text,
        r#"ftps_quota_refusals_total{quota="quota_bytes",when="transfer"}"#,
    )
    .unwrap_or_else(|| panic!("no refusal metric:\n{text}"));
    assert!(refused >= 2.0, "{refused} refusals counted, 2 made");
}

/// Two uploads of one user at once (two ftplib sessions), 4 MiB each, `quota_bytes` = 6 MiB:
/// together they may not pass it, so one gets `552` (when their bytes together cross the line,
/// or at the start if the other was done), the other completes, and nothing of the refused one
/// remains.
#[tokio::test]
async fn concurrent_uploads_of_one_user_do_not_pass_the_quota_together() {
    let srv = TestServer::start_with_users(&user("c", "quota_bytes", 6 * MIB as u64), |c| {
        c.s3.part_size_mib = 5;
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let one = write(dir.path(), "1.bin", 4 * MIB);
    let two = write(dir.path(), "2.bin", 4 * MIB);
    let (one, two) = (one.to_string_lossy(), two.to_string_lossy());
    let (steps_a, steps_b) = (["tryput", &one, "1.bin"], ["tryput", &two, "2.bin"]);
    let (a, b) = tokio::join!(ftplib(&srv, "c", &steps_a), ftplib(&srv, "c", &steps_b));
    let keys = keys_of(&srv, "c").await;
    let multipart = srv.open_multipart_uploads().await;
    eprintln!(
        "two 4 MiB uploads at once, quota 6 MiB: {:?} / {:?}; objects {keys:?}; \
         multipart uploads left {multipart}",
        a.trim(),
        b.trim()
    );
    let ok = |out: &str| out.contains(": 226");
    let refused = |out: &str| out.contains(": 552") || out.contains("then 552");
    assert!(
        (ok(&a) && refused(&b)) || (refused(&a) && ok(&b)),
        "one completes, the other gets 552:\n{a}\n{b}"
    );
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(multipart, 0);
}

/// (b) `quota_files` = 2: the third new file is refused before `150`; replacing a file adds
/// none; (d) a delete makes room again.
#[tokio::test]
async fn quota_files_counts_new_files_and_a_delete_frees_one() {
    let srv = TestServer::start_with_users(&user("f", "quota_files", 2), |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = write(dir.path(), "a", 10).to_string_lossy().into_owned();
    let out = ftplib(
        &srv,
        "f",
        &[
            "put", &a, "1.txt", "put", &a, "2.txt", "tryput", &a, "3.txt", "tryput", &a, "1.txt",
            "rm", "2.txt", "tryput", &a, "3.txt",
        ],
    )
    .await;
    eprintln!("quota_files 2:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("tryput 3.txt: 552"), "{out}");
    assert!(lines[0].contains("quota_files"), "{out}");
    assert!(lines[1].starts_with("tryput 1.txt: 226"), "{out}");
    assert!(lines[2].starts_with("tryput 3.txt: 226"), "{out}");
    assert_eq!(
        keys_of(&srv, "f").await,
        ["partners/f/1.txt", "partners/f/3.txt"]
    );
}

/// (c) Objects already under the prefix count from the login (others' and markers do not);
/// an ALLO size that does not fit is refused before `150`; (d) a delete frees their bytes.
#[tokio::test]
async fn objects_already_stored_count_at_login_and_a_delete_frees_them() {
    let srv = TestServer::start_with_users(&user("p", "quota_bytes", 4 * MIB as u64), |_| {}).await;
    srv.put_object("partners/p/old/report.bin", &random_bytes(3 * MIB))
        .await;
    srv.put_object("partners/p/old/", b"").await;
    srv.put_object("partners/other/big.bin", &random_bytes(3 * MIB))
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let two = write(dir.path(), "two", 2 * MIB)
        .to_string_lossy()
        .into_owned();
    let one = write(dir.path(), "one", MIB / 2)
        .to_string_lossy()
        .into_owned();
    let out = ftplib(
        &srv,
        "p",
        &[
            "tryput",
            &two,
            "new.bin",
            "raw",
            "ALLO 2097152",
            "tryput",
            &one,
            "half.bin",
            "tryput",
            &one,
            "half.bin",
            "rm",
            "old/report.bin",
            "tryput",
            &two,
            "new.bin",
        ],
    )
    .await;
    eprintln!("quota_bytes 4 MiB with 3 MiB stored before login:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("552"),
        "3 MiB stored + 2 MiB passed 4 MiB: {out}"
    );
    assert!(lines[1].starts_with("202"), "ALLO: {out}");
    assert!(
        lines[2].contains("552"),
        "ALLO announced 2 MiB, 1 MiB left: refused before 150: {out}"
    );
    assert!(lines[3].contains("226"), "3.5 MiB fits: {out}");
    assert!(lines[4].contains("226"), "after the delete 2.5 MiB: {out}");
    assert_eq!(
        keys_of(&srv, "p").await,
        [
            "partners/p/half.bin",
            "partners/p/new.bin",
            "partners/p/old/"
        ]
    );
    assert_eq!(srv.open_multipart_uploads().await, 0);
}

/// Counting a large home takes one ListObjectsV2 per 1,000 keys: the login must not wait for it
/// (a client's login timeout is often 30 s), and the first upload must (the count still holds).
/// Here the login's count takes 5 s at S3.
#[tokio::test]
async fn the_count_does_not_hold_up_the_login_and_the_first_upload_waits_for_it() {
    let proxy = FaultProxy::start(seaweedfs::s3().await.endpoint()).await;
    let endpoint = proxy.url();
    let srv = TestServer::start_with_users(&user("slow", "quota_bytes", MIB as u64), |c| {
        c.s3.endpoint = Some(endpoint)
    })
    .await;
    srv.put_object("partners/slow/old.bin", &random_bytes(900 * KIB))
        .await;
    // The next request the server sends that is not an upload: the login's ListObjectsV2.
    proxy.inject(
        Match::Kind(Kind::Other),
        Action::Delay(Duration::from_secs(5)),
        1,
    );
    let started = Instant::now();
    let c = RawClient::login_explicit(srv.explicit, "slow", "slow-password").await;
    let login = started.elapsed();
    drop(c);
    let dir = tempfile::tempdir().expect("tempdir");
    let over = write(dir.path(), "over", 200 * KIB)
        .to_string_lossy()
        .into_owned();
    let out = ftplib(&srv, "slow", &["tryput", &over, "over.bin"]).await;
    eprintln!("login with a 5 s count: 230 after {login:?}; then {out}");
    assert_eq!(proxy.injected(Kind::Other), 1, "the count was delayed");
    assert!(
        login < Duration::from_secs(4),
        "the login waited for the count: {login:?}"
    );
    assert!(
        out.contains("552"),
        "900 KiB stored + 200 KiB passes 1 MiB: {out}"
    );
}

/// APPE counts what it adds: onto a 2 MiB file with `quota_bytes` = 3 MiB, 512 KiB fit and the
/// next 1 MiB gets `552`, leaving the file as it was after the first append.
#[tokio::test]
async fn appends_count_what_they_add() {
    let srv = TestServer::start_with_users(&user("a", "quota_bytes", 3 * MIB as u64), |_| {}).await;
    let base = random_bytes(2 * MIB);
    srv.put_object("partners/a/log.bin", &base).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let half = write(dir.path(), "half", MIB / 2);
    let one = write(dir.path(), "one", MIB);
    let out = ftplib(
        &srv,
        "a",
        &[
            "tryappend",
            &half.to_string_lossy(),
            "log.bin",
            "tryappend",
            &one.to_string_lossy(),
            "log.bin",
        ],
    )
    .await;
    eprintln!("APPE with quota_bytes 3 MiB onto 2 MiB:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].contains(": 226"), "{out}");
    assert!(lines[1].contains("552"), "{out}");
    let mut want = base;
    want.extend(std::fs::read(&half).expect("read"));
    let stored = srv.object("partners/a/log.bin").await.expect("stored");
    assert!(stored == want, "the file is 2 MiB + the first append only");
    assert_eq!(srv.open_multipart_uploads().await, 0);
}

/// Bytes per second of a transfer of `bytes` that took `took`, in KiB/s.
fn kib_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / KIB as f64 / took.as_secs_f64()
}

/// (e) `max_download_kib_s` = 256: 640 KiB take at least (640 − 128 burst) / 256 = 2 s, and two
/// sessions of the user downloading 320 KiB each at once share the rate (2 s together again).
#[tokio::test]
async fn downloads_are_paced_and_a_users_sessions_share_the_rate() {
    let srv = TestServer::start_with_users(&user("slow", "max_download_kib_s", 256), |_| {}).await;
    srv.put_object("partners/slow/one.bin", &random_bytes(640 * KIB))
        .await;
    srv.put_object("partners/slow/half.bin", &random_bytes(320 * KIB))
        .await;
    let get = |name: &str| {
        let mut c = curl("slow", "slow-password");
        c.arg("-o")
            .arg("/dev/null")
            .arg(format!("ftp://{}/{name}", srv.explicit));
        c
    };
    let expected = Duration::from_secs(2);
    let started = Instant::now();
    assert_ok(&clients::run(get("one.bin")).await, "download");
    let one = started.elapsed();

    let started = Instant::now();
    let (a, b) = tokio::join!(clients::run(get("half.bin")), clients::run(get("half.bin")));
    assert_ok(&a, "first parallel download");
    assert_ok(&b, "second parallel download");
    let both = started.elapsed();
    eprintln!(
        "max_download_kib_s 256: 640 KiB in {one:.2?} ({:.0} KiB/s); 2 × 320 KiB at once in \
         {both:.2?} ({:.0} KiB/s together); expected ≥ {expected:?} each",
        kib_s(640 * KIB, one),
        kib_s(640 * KIB, both)
    );
    // 5 % for timer and clock granularity; the upper bound shows it is the pacing, not a stall.
    let floor = expected.mul_f64(0.95);
    assert!(one >= floor && one < expected * 3, "{one:?}");
    assert!(both >= floor && both < expected * 3, "{both:?}");
}

/// (e) `max_upload_kib_s` = 256: a 640 KiB upload takes at least 2 s and arrives intact.
#[tokio::test]
async fn uploads_are_paced() {
    let srv = TestServer::start_with_users(&user("up", "max_upload_kib_s", 256), |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let src = write(dir.path(), "u.bin", 640 * KIB);
    let mut up = curl("up", "up-password");
    up.arg("-T")
        .arg(&src)
        .arg(format!("ftp://{}/u.bin", srv.explicit));
    let started = Instant::now();
    assert_ok(&clients::run(up).await, "upload");
    let took = started.elapsed();
    eprintln!(
        "max_upload_kib_s 256: 640 KiB in {took:.2?} ({:.0} KiB/s)",
        kib_s(640 * KIB, took)
    );
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    let stored = srv.object("partners/up/u.bin").await.expect("stored");
    assert!(
        stored == std::fs::read(&src).expect("read"),
        "content differs"
    );
}
