//! Logical folders (`[[user.folder]]`) on real S3 with real clients: a user sees only their
//! folders under a virtual `/`, each folder lands in its own bucket and prefix with its own
//! permissions, nothing outside the folders is reachable, and renames cross folders only within
//! one bucket. The jail is checked with curl, lftp and Python ftplib (a table printed with
//! `--nocapture`), and the protocol rules with a raw client.

use std::collections::BTreeSet;

use aws_sdk_s3::Client;

use crate::common::clients::{self, curl, lftp, python, url, Mode};
use crate::common::faultproxy::{FaultProxy, Kind};
use crate::common::raw::RawClient;
use crate::common::seaweedfs;
use crate::common::server::TestServer;
use crate::common::users::{self, UserToml};

const USER: &str = "folders";
const PASSWORD: &str = "folders-password";
const REPORT: &[u8] = b"quarterly report\n";

/// The folders user: `/inbox` (drop box in bucket A), `/outbox` (read-only in bucket B), and
/// two folders in the server's default bucket under a virtual `/shared`. Its `home` is written
/// (and ignored: the user has folders).
fn folders_user(bucket_a: &str, bucket_b: &str) -> String {
    UserToml::new(USER)
        .password(PASSWORD)
        .home("ignored/")
        .folder(
            "/inbox",
            Some(bucket_a),
            "in/acme/",
            &["list", "write", "rename"],
        )
        .folder("/outbox", Some(bucket_b), "out/acme/", &["list", "read"])
        .folder("/shared/drafts", None, "drafts/acme", users::ALL)
        .folder(
            "/shared/final",
            None,
            "final/acme/",
            &["list", "read", "rename"],
        )
        .render()
}

struct Setup {
    srv: TestServer,
    s3: Client,
    bucket_a: String,
    bucket_b: String,
}

async fn setup() -> Setup {
    setup_with(|_| {}).await
}

async fn setup_with(adjust: impl FnOnce(&mut ftps_s3::config::Config)) -> Setup {
    let sw = seaweedfs::s3().await;
    let (bucket_a, bucket_b) = (sw.new_bucket().await, sw.new_bucket().await);
    let srv = TestServer::start_with_users(&folders_user(&bucket_a, &bucket_b), adjust).await;
    let s3 = sw.client();
    put(&s3, &bucket_b, "out/acme/report.txt", REPORT).await;
    for c in ["curl", "lftp", "ftplib"] {
        srv.put_object(&format!("drafts/acme/{c}.txt"), c.as_bytes())
            .await;
    }
    Setup {
        srv,
        s3,
        bucket_a,
        bucket_b,
    }
}

async fn put(s3: &Client, bucket: &str, key: &str, body: &[u8]) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(body.to_vec().into())
        .send()
        .await
        .expect("PutObject");
}

async fn keys(s3: &Client, bucket: &str) -> BTreeSet<String> {
    let out = s3
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// What one client run showed: succeeded or not, and the first 5xx code in its output.
struct Seen {
    ok: bool,
    code: Option<String>,
    out: String,
}

async fn run(cmd: tokio::process::Command) -> Seen {
    let o = clients::run(cmd).await;
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let code = out
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 3 && w.starts_with('5'))
        .map(str::to_string);
    Seen {
        ok: o.status.success(),
        code,
        out,
    }
}

/// One row of the jail table.
struct Row {
    client: &'static str,
    check: &'static str,
    /// `None`: must succeed; `Some(code)`: must fail, and with that code wherever the client
    /// shows one (curl does not for every failure).
    refused_with: Option<&'static str>,
    seen: Seen,
    /// A check beyond the exit status (the listing's names, the bytes read).
    extra: Result<(), String>,
}

impl Row {
    fn passed(&self) -> bool {
        let status = match self.refused_with {
            None => self.seen.ok,
            Some(want) => !self.seen.ok && self.seen.code.as_deref().is_none_or(|c| c == want),
        };
        status && self.extra.is_ok()
    }
}

fn row(
    client: &'static str,
    check: &'static str,
    refused_with: Option<&'static str>,
    seen: Seen,
) -> Row {
    Row {
        client,
        check,
        refused_with,
        seen,
        extra: Ok(()),
    }
}

/// Names, one a line, must be exactly the three top-level entries.
fn root_names(out: &str) -> Result<(), String> {
    let names: BTreeSet<&str> = out
        .lines()
        .map(|l| l.trim().trim_matches('/'))
        .filter(|l| !l.is_empty())
        .collect();
    let want: BTreeSet<&str> = ["inbox", "outbox", "shared"].into();
    if names == want {
        Ok(())
    } else {
        Err(format!("listed {names:?}"))
    }
}

fn bytes_are(out: &str, want: &[u8]) -> Result<(), String> {
    if out.as_bytes().starts_with(want) {
        Ok(())
    } else {
        Err(format!("read {out:?}"))
    }
}

async fn curl_rows(s: &Setup, file: &std::path::Path) -> Vec<Row> {
    let base = url(Mode::Explicit, s.srv.explicit);
    let c = || curl(USER, PASSWORD);
    let mut rows = Vec::new();

    let mut cmd = c();
    cmd.arg("-l").arg(format!("{base}/"));
    let seen = run(cmd).await;
    let extra = root_names(&seen.out);
    rows.push(Row {
        extra,
        ..row("curl", "list / shows exactly the folders", None, seen)
    });

    let mut cmd = c();
    cmd.arg("-T")
        .arg(file)
        .arg(format!("{base}/inbox/curl.txt"));
    rows.push(row("curl", "upload into /inbox", None, run(cmd).await));

    let mut cmd = c();
    cmd.arg(format!("{base}/outbox/report.txt"));
    let seen = run(cmd).await;
    let extra = bytes_are(&seen.out, REPORT);
    rows.push(Row {
        extra,
        ..row("curl", "download from /outbox", None, seen)
    });

    let mut cmd = c();
    cmd.arg("-T")
        .arg(file)
        .arg(format!("{base}/outbox/curl.txt"));
    rows.push(row(
        "curl",
        "upload into /outbox (read-only)",
        Some("550"),
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.args(["--path-as-is", "-T"])
        .arg(file)
        .arg(format!("{base}/inbox/../escape.txt"));
    rows.push(row(
        "curl",
        "upload to /inbox/../escape.txt",
        Some("550"),
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.args(["--ftp-method", "nocwd"])
        .arg(format!("{base}/etc/passwd"));
    rows.push(row(
        "curl",
        "download /etc/passwd (outside)",
        Some("550"),
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.args(["--ftp-method", "nocwd", "-T"])
        .arg(file)
        .arg(format!("{base}/elsewhere/x.txt"));
    rows.push(row(
        "curl",
        "upload to /elsewhere/x.txt (outside)",
        Some("550"),
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.arg("-T").arg(file).arg(format!("{base}/root.txt"));
    rows.push(row(
        "curl",
        "CWD / + STOR root.txt",
        Some("550"),
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.args([
        "-I",
        "-Q",
        "RNFR /inbox/curl.txt",
        "-Q",
        "RNTO /outbox/curl.txt",
    ])
    .arg(format!("{base}/"));
    rows.push(row(
        "curl",
        "rename /inbox -> /outbox (two buckets)",
        Some("553"),
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.args([
        "-I",
        "-Q",
        "RNFR /shared/drafts/curl.txt",
        "-Q",
        "RNTO /shared/final/curl.txt",
    ])
    .arg(format!("{base}/"));
    rows.push(row(
        "curl",
        "rename /shared/drafts -> /shared/final (one bucket)",
        None,
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.arg(format!("{base}/inbox/curl.txt"));
    rows.push(row(
        "curl",
        "download from /inbox (no read)",
        Some("550"),
        run(cmd).await,
    ));

    let mut cmd = c();
    cmd.args(["-I", "-Q", "DELE /outbox/report.txt"])
        .arg(format!("{base}/"));
    rows.push(row(
        "curl",
        "delete in /outbox (no delete)",
        Some("550"),
        run(cmd).await,
    ));
    rows
}

async fn lftp_rows(s: &Setup, file: &std::path::Path) -> Vec<Row> {
    let addr = s.srv.explicit;
    let f = file.display();
    // `get`, not `cat`: lftp 4.9 does not exit after a failed `cat` under cmd:fail-exit.
    let got = file.with_file_name("lftp-got.txt");
    let g = got.display();
    let l = |script: String| lftp(Mode::Explicit, addr, USER, PASSWORD, &script);
    let mut rows = Vec::new();

    let seen = run(l("cls -1 /".into())).await;
    let extra = root_names(&seen.out);
    rows.push(Row {
        extra,
        ..row("lftp", "list / shows exactly the folders", None, seen)
    });
    let cases: [(&str, String, Option<&str>); 9] = [
        (
            "upload into /inbox",
            format!("put {f} -o /inbox/lftp.txt"),
            None,
        ),
        (
            "upload into /outbox (read-only)",
            format!("put {f} -o /outbox/lftp.txt"),
            Some("550"),
        ),
        (
            "cd /inbox + upload to ../escape.txt",
            format!("cd /inbox; put {f} -o ../escape.txt"),
            Some("550"),
        ),
        (
            "download /etc/passwd (outside)",
            format!("get /etc/passwd -o {g}"),
            Some("550"),
        ),
        (
            "upload to /elsewhere/x.txt (outside)",
            format!("put {f} -o /elsewhere/x.txt"),
            Some("550"),
        ),
        (
            "cd / + upload root.txt",
            format!("cd /; put {f} -o root.txt"),
            Some("550"),
        ),
        (
            "rename /inbox -> /outbox (two buckets)",
            "mv /inbox/lftp.txt /outbox/lftp.txt".into(),
            Some("553"),
        ),
        (
            "rename /shared/drafts -> /shared/final (one bucket)",
            "mv /shared/drafts/lftp.txt /shared/final/lftp.txt".into(),
            None,
        ),
        (
            "delete in /outbox (no delete)",
            "rm /outbox/report.txt".into(),
            Some("550"),
        ),
    ];
    for (check, script, refused) in cases {
        rows.push(row("lftp", check, refused, run(l(script)).await));
    }
    let seen = run(l(format!("get /outbox/report.txt -o {g}"))).await;
    let read = std::fs::read(&got).unwrap_or_default();
    let extra = bytes_are(&String::from_utf8_lossy(&read), REPORT);
    rows.push(Row {
        extra,
        ..row("lftp", "download from /outbox", None, seen)
    });
    rows.push(row(
        "lftp",
        "download from /inbox (no read)",
        Some("550"),
        run(l(format!("get /inbox/lftp.txt -o {g}"))).await,
    ));
    rows
}

async fn ftplib_rows(s: &Setup, file: &std::path::Path) -> Vec<Row> {
    let addr = s.srv.explicit;
    let f = file.to_str().expect("utf-8 path");
    let p = |steps: &[&str]| python(Mode::Explicit, addr, USER, PASSWORD, steps);
    let mut rows = Vec::new();

    let seen = run(p(&["nlst", "/"])).await;
    let extra = root_names(&seen.out);
    rows.push(Row {
        extra,
        ..row("ftplib", "list / shows exactly the folders", None, seen)
    });
    let cases: [(&str, Vec<&str>, Option<&str>); 11] = [
        (
            "upload into /inbox",
            vec!["put", f, "/inbox/ftplib.txt"],
            None,
        ),
        (
            "download from /outbox",
            vec!["get", "/outbox/report.txt", "-"],
            None,
        ),
        (
            "upload into /outbox (read-only)",
            vec!["put", f, "/outbox/ftplib.txt"],
            Some("550"),
        ),
        (
            "cd /inbox + upload to ../../escape.txt",
            vec!["cd", "/inbox", "put", f, "../../escape.txt"],
            Some("550"),
        ),
        (
            "download /etc/passwd (outside)",
            vec!["get", "/etc/passwd", "-"],
            Some("550"),
        ),
        (
            "cd to /elsewhere (outside)",
            vec!["cd", "/elsewhere"],
            Some("550"),
        ),
        (
            "cd / + upload root.txt",
            vec!["cd", "/", "put", f, "root.txt"],
            Some("550"),
        ),
        (
            "rename /inbox -> /outbox (two buckets)",
            vec!["mv", "/inbox/ftplib.txt", "/outbox/ftplib.txt"],
            Some("553"),
        ),
        (
            "rename /shared/drafts -> /shared/final (one bucket)",
            vec![
                "mv",
                "/shared/drafts/ftplib.txt",
                "/shared/final/ftplib.txt",
            ],
            None,
        ),
        (
            "download from /inbox (no read)",
            vec!["get", "/inbox/ftplib.txt", "-"],
            Some("550"),
        ),
        (
            "mkdir in /outbox (no mkdir)",
            vec!["mkdir", "/outbox/d"],
            Some("550"),
        ),
    ];
    for (check, steps, refused) in cases {
        let seen = run(p(&steps)).await;
        let extra = if check == "download from /outbox" {
            bytes_are(&seen.out, REPORT)
        } else {
            Ok(())
        };
        rows.push(Row {
            extra,
            ..row("ftplib", check, refused, seen)
        });
    }
    rows
}

#[tokio::test]
async fn the_folder_jail_holds_for_curl_lftp_and_ftplib() {
    let s = setup().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("upload.txt");
    std::fs::write(&file, b"uploaded through a folder\n").expect("write");

    let mut rows = curl_rows(&s, &file).await;
    rows.extend(lftp_rows(&s, &file).await);
    rows.extend(ftplib_rows(&s, &file).await);

    println!("\nfolder jail (user {USER}: /inbox = A:in/acme/ list+write+rename, /outbox = B:out/acme/ list+read, /shared/drafts + /shared/final = default bucket):");
    println!(
        "{:<8} {:<52} {:<10} {:<10} result",
        "client", "check", "expected", "seen"
    );
    for r in &rows {
        let expected = r
            .refused_with
            .map_or("ok".to_string(), |c| format!("refused {c}"));
        let seen = match (&r.seen.ok, &r.seen.code) {
            (true, _) => "ok".to_string(),
            (false, Some(c)) => format!("refused {c}"),
            (false, None) => "refused".to_string(),
        };
        let result = match (&r.extra, r.passed()) {
            (Err(why), _) => format!("FAIL ({why})"),
            (Ok(()), true) => "pass".to_string(),
            (Ok(()), false) => "FAIL".to_string(),
        };
        println!(
            "{:<8} {:<52} {:<10} {:<10} {result}",
            r.client, r.check, expected, seen
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{} / {}:\n{}", r.client, r.check, r.seen.out))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n---\n"));

    // In S3: uploads landed in bucket A under the folder's prefix, the outbox is untouched,
    // renames within the default bucket moved, and no escape wrote anything anywhere.
    let names = |prefix: &str| -> BTreeSet<String> {
        ["curl", "lftp", "ftplib"]
            .iter()
            .map(|c| format!("{prefix}{c}.txt"))
            .collect()
    };
    assert_eq!(keys(&s.s3, &s.bucket_a).await, names("in/acme/"));
    assert_eq!(
        keys(&s.s3, &s.bucket_b).await,
        BTreeSet::from(["out/acme/report.txt".to_string()])
    );
    let default: BTreeSet<String> = s.srv.keys().await.into_iter().collect();
    assert_eq!(default, names("final/acme/"));
    assert_eq!(
        s.srv.object("final/acme/curl.txt").await.as_deref(),
        Some(&b"curl"[..])
    );
    s.srv.stop().await;
}

/// Reads a listing over a fresh EPSV data connection; returns its text.
async fn listing(c: &mut RawClient, cmd: &str) -> String {
    let port = c.epsv().await;
    c.send_raw(format!("{cmd}\r\n").as_bytes()).await;
    let mut data = c.data_connect(port, true).await;
    let opening = c.reply().await;
    assert_eq!(opening.code, 150, "{cmd}: {}", opening.text);
    let text = String::from_utf8(data.read_all().await.expect("listing")).expect("utf-8");
    assert_eq!(c.reply().await.code, 226, "{cmd}");
    text
}

/// Every command on virtual directories, mount points and paths outside, as a table of reply
/// codes; the listings of virtual directories show the folders as directories.
#[tokio::test]
async fn virtual_directories_and_mount_points_follow_the_rules() {
    let s = setup().await;
    let mut c = RawClient::login_explicit(s.srv.explicit, USER, PASSWORD).await;
    let mut wrong = Vec::new();
    for (line, code) in [
        ("PWD", 257),
        ("CWD /", 250),
        ("CWD /shared", 250),
        ("CDUP", 250),
        ("CWD inbox", 250),
        ("CWD ..", 250),
        ("CWD /elsewhere", 550),
        ("CWD /inbox/../../etc", 550),
        ("SIZE /", 550),
        ("MDTM /shared", 550),
        ("SIZE /outbox/report.txt", 213),
        ("MDTM /outbox/report.txt", 213),
        ("SIZE /elsewhere/x", 550),
        ("MKD /", 550),
        ("MKD /new", 550),
        ("MKD /shared/new", 550),
        ("MKD /inbox", 550),
        ("MKD /shared/drafts/sub", 257),
        ("RMD /shared/drafts/sub", 250),
        ("RMD /", 550),
        ("RMD /shared", 550),
        ("RMD /shared/drafts", 550),
        ("DELE /", 550),
        ("DELE /shared/drafts", 550),
        ("DELE /elsewhere/x", 550),
        ("RNFR /", 550),
        ("RNFR /shared", 550),
        ("RNFR /shared/drafts", 550),
        ("RNFR /elsewhere/x", 550),
        ("RNFR /shared/drafts/curl.txt", 350),
        ("RNTO /shared", 550),
        ("RNFR /shared/drafts/curl.txt", 350),
        ("RNTO /elsewhere/x", 550),
        ("RNFR /shared/drafts/curl.txt", 350),
        ("RNTO /shared/final", 550),
        ("RNFR /shared/drafts/curl.txt", 350),
        ("RNTO /inbox/curl.txt", 553),
        ("STAT /", 213),
        ("STAT /elsewhere", 550),
    ] {
        let r = c.cmd(line).await;
        if r.code != code {
            wrong.push(format!("{line}: expected {code}, got {}", r.text));
        }
    }
    let mlst = c.cmd("MLST /").await;
    if !(mlst.code == 250 && mlst.text.contains("type=dir;") && mlst.text.contains("perm=el;")) {
        wrong.push(format!("MLST /: {}", mlst.text));
    }
    let stat = c.cmd("STAT /shared").await;
    if !(stat.text.contains(" drafts") && stat.text.contains(" final")) {
        wrong.push(format!("STAT /shared: {}", stat.text));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let mlsd = listing(&mut c, "MLSD /").await;
    let mut lines: Vec<&str> = mlsd.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{mlsd}");
    for (line, name) in lines.iter().zip(["inbox", "outbox", "shared"]) {
        assert!(
            line.starts_with("type=dir;") && line.ends_with(&format!(" {name}")),
            "{mlsd}"
        );
    }
    let list = listing(&mut c, "LIST /shared").await;
    assert!(
        list.lines().count() == 2 && list.lines().all(|l| l.starts_with('d')),
        "{list}"
    );
    assert_eq!(
        listing(&mut c, "NLST /shared").await,
        "/shared/drafts\r\n/shared/final\r\n"
    );
    c.expect("CWD /shared", 250).await;
    assert_eq!(listing(&mut c, "NLST").await, "drafts\r\nfinal\r\n");
    // Inside a folder: the store's listing, under the folder's prefix.
    assert_eq!(
        listing(&mut c, "NLST /outbox").await,
        "/outbox/report.txt\r\n"
    );
    c.expect("QUIT", 221).await;
    s.srv.stop().await;
}

/// Every S3 request the proxy has seen, of any kind.
fn s3_requests(proxy: &FaultProxy) -> usize {
    [
        Kind::PutObject,
        Kind::CreateMultipartUpload,
        Kind::UploadPart,
        Kind::UploadPartCopy,
        Kind::CompleteMultipartUpload,
        Kind::AbortMultipartUpload,
        Kind::Other,
    ]
    .into_iter()
    .map(|k| proxy.seen(k))
    .sum()
}

/// Paths outside the folders and virtual directories are answered without asking S3: the
/// server's S3 traffic goes through a counting proxy, which sees nothing for them.
#[tokio::test]
async fn outside_paths_and_virtual_dirs_never_reach_s3() {
    let proxy = FaultProxy::start(seaweedfs::s3().await.endpoint()).await;
    let endpoint = proxy.url();
    let s = setup_with(|c| c.s3.endpoint = Some(endpoint)).await;
    let mut c = RawClient::login_explicit(s.srv.explicit, USER, PASSWORD).await;
    let before = s3_requests(&proxy);
    let mut wrong = Vec::new();
    for (line, code) in [
        ("CWD /elsewhere", 550),
        ("CWD /", 250),
        ("CWD /shared", 250),
        ("CWD ..", 250),
        ("SIZE /etc/passwd", 550),
        ("MDTM /elsewhere/x", 550),
        ("DELE /inbox/../x.txt", 550),
        ("MKD /new", 550),
        ("RMD /shared", 550),
        ("RNFR /x", 550),
        ("MLST /", 250),
        ("MLST /nowhere", 550),
        ("STAT /", 213),
        ("STAT /shared", 213),
        ("STAT /nowhere", 550),
        ("SIZE /shared", 550),
        ("HASH /", 550),
        ("RETR /etc/passwd", 550),
    ] {
        let r = c.cmd(line).await;
        if r.code != code {
            wrong.push(format!("{line}: expected {code}, got {}", r.text));
        }
    }
    let mlsd = listing(&mut c, "MLSD /").await;
    assert_eq!(mlsd.lines().count(), 3, "{mlsd}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let after = s3_requests(&proxy);
    println!("S3 requests for 18 commands and one MLSD outside the folders or on virtual directories: {}", after - before);
    assert_eq!(
        after, before,
        "S3 was asked about paths outside the folders"
    );
    // The counter counts: a SIZE inside a folder is a request.
    c.expect("SIZE /outbox/report.txt", 213).await;
    assert!(
        s3_requests(&proxy) > after,
        "the proxy saw no request for a SIZE in /outbox"
    );
    c.expect("QUIT", 221).await;
    s.srv.stop().await;
}

/// A user with folders and `quota_bytes`: what counts is every folder they can change (files
/// already in `/inbox` included), not a read-only `/outbox`; past the quota an upload into
/// `/inbox` gets `552` and leaves nothing.
#[tokio::test]
async fn the_quota_of_a_user_with_folders_counts_the_folders_they_can_change() {
    let sw = seaweedfs::s3().await;
    let (bucket_a, bucket_b) = (sw.new_bucket().await, sw.new_bucket().await);
    let s3 = sw.client();
    const KIB: usize = 1024;
    // Outbox: 2 MiB the partner may read, not theirs. Inbox: 600 KiB already there.
    put(&s3, &bucket_b, "out/acme/big.bin", &vec![7; 2048 * KIB]).await;
    put(&s3, &bucket_a, "in/acme/old.bin", &vec![1; 600 * KIB]).await;
    let user = UserToml::new("quotafolders")
        .password(PASSWORD)
        .limit("quota_bytes", 1024 * KIB as u64)
        .folder("/inbox", Some(&bucket_a), "in/acme/", &["list", "write"])
        .folder("/outbox", Some(&bucket_b), "out/acme/", &["list", "read"])
        .render();
    let srv = TestServer::start_with_users(&user, |_| {}).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (fits, over) = (dir.path().join("fits.bin"), dir.path().join("over.bin"));
    std::fs::write(&fits, vec![2; 300 * KIB]).expect("write");
    std::fs::write(&over, vec![3; 200 * KIB]).expect("write");
    let (fits, over) = (fits.to_str().expect("utf-8"), over.to_str().expect("utf-8"));

    let ftplib = |steps: &[&str]| {
        python(
            Mode::Explicit,
            srv.explicit,
            "quotafolders",
            PASSWORD,
            steps,
        )
    };
    // 600 + 300 KiB of 1024: fits (it would not if the outbox's 2 MiB counted).
    let seen = run(ftplib(&["put", fits, "/inbox/fits.bin"])).await;
    assert!(
        seen.ok,
        "300 KiB into /inbox under a 1 MiB quota:\n{}",
        seen.out
    );
    // 900 + 200 KiB: past the quota.
    // `tryput` reads the final reply after the server cut the data connection.
    let seen = run(ftplib(&["tryput", over, "/inbox/over.bin"])).await;
    println!(
        "quota 1024 KiB, /inbox holding 600 KiB (+ 2048 KiB in read-only /outbox): 300 KiB upload ok; 200 KiB upload: {}",
        seen.out.lines().last().unwrap_or_default()
    );
    // The reply comes straight after `tryput …:` or, when the server cut the data connection
    // while ftplib was still sending, after the send error (`…: SSLEOFError; then 552 …`).
    let refused = seen.out.lines().any(|l| {
        l.starts_with("tryput /inbox/over.bin: ")
            && (l.contains(": 552 ") || l.contains("then 552 "))
    });
    assert!(refused, "200 KiB more must pass the quota:\n{}", seen.out);
    assert_eq!(
        keys(&s3, &bucket_a).await,
        BTreeSet::from([
            "in/acme/fits.bin".to_string(),
            "in/acme/old.bin".to_string()
        ])
    );
    assert!(seaweedfs::open_uploads(&s3, &bucket_a, "").await.is_empty());
    srv.stop().await;
}
