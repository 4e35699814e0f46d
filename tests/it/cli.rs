//! The `ftps-s3` binary: `check-config` names what is wrong, `hash-password` makes hashes the
//! server accepts, and `serve` with no configuration starts the development default.

use std::{path::Path, process::Stdio, time::Duration};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::common::clients::{self, assert_ok, curl, random_bytes};
use crate::common::seaweedfs;
use crate::common::users::{self, UserToml};

fn bin() -> Command {
    crate::common::binary::server_command()
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let (cert, key) = ftps_s3::tls::ensure_self_signed(dir).expect("cert");
    let users = dir.join("users.toml");
    std::fs::write(&users, "").expect("users");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n[auth]\nusers_file = \"{}\"\n{extra}",
            cert.display(),
            key.display(),
            users.display()
        ),
    )
    .expect("config");
    config
}

/// `check-config --offline` (no S3 requests, no port binding: these configs name no real S3).
async fn check_config(config: &Path) -> (bool, String) {
    let mut c = bin();
    c.arg("check-config")
        .arg("--offline")
        .arg("--config")
        .arg(config);
    run_check(c).await
}

async fn run_check(c: Command) -> (bool, String) {
    let out = clients::run(c).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn check_config_accepts_a_good_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[s3]\nbucket = \"b\"\n");
    let (ok, text) = check_config(&config).await;
    assert!(ok, "{text}");
    assert!(text.contains("OK"), "{text}");
}

#[tokio::test]
async fn check_config_names_a_key_with_the_wrong_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        "[s3]\nbucket = \"b\"\npart_size_mib = \"eight\"\n",
    );
    let (ok, text) = check_config(&config).await;
    assert!(!ok, "must fail: {text}");
    assert!(text.contains("s3.part_size_mib"), "{text}");
}

#[tokio::test]
async fn check_config_names_a_missing_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[s3]\nbucket = \"b\"\n");
    std::fs::remove_file(dir.path().join("cert.pem")).expect("rm");
    let (ok, text) = check_config(&config).await;
    assert!(!ok, "must fail: {text}");
    assert!(
        text.contains("tls.cert_file") && text.contains("cert.pem"),
        "{text}"
    );
}

#[tokio::test]
async fn check_config_checks_folders_and_warns_about_an_ignored_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[s3]\nbucket = \"b\"\n");
    let user = || {
        UserToml::new("acme")
            .certificate_cn("acme.example")
            .home("p/")
    };
    let users_file = dir.path().join("users.toml");
    users::write(
        &users_file,
        &[user().folder("/inbox", None, "in/", &["list"])],
    );
    let (ok, text) = check_config(&config).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("warning: user[0] (\"acme\"): home is ignored: the user has folders"),
        "{text}"
    );
    let nested =
        user()
            .folder("/in", None, "in/", &["list"])
            .folder("/in/x", None, "x/", &["list"]);
    users::write(&users_file, &[nested]);
    let (ok, text) = check_config(&config).await;
    assert!(!ok, "must fail: {text}");
    assert!(
        text.contains("folder[1] (\"/in/x\"): folders cannot be inside one another"),
        "{text}"
    );
}

/// `write_config`'s config with `lines` added to its `[tls]` table.
fn with_tls(config: &Path, lines: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let text = text.replacen("[tls]\n", &format!("[tls]\n{lines}\n"), 1);
    std::fs::write(config, text).expect("config");
}

#[tokio::test]
async fn check_config_checks_the_client_certificate_settings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "[s3]\nbucket = \"b\"\n");
    users::write(
        &dir.path().join("users.toml"),
        &[UserToml::new("partner")
            .certificate_cn("partner.example")
            .home("p/")
            .permissions(&["list"])],
    );
    // A certificate-only user while no certificate is asked for: valid, with a warning.
    let (ok, text) = check_config(&config).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("warning: user partner has a certificate_cn but tls.client_auth = \"none\""),
        "{text}"
    );

    with_tls(&config, "client_auth = \"required\"");
    let (ok, text) = check_config(&config).await;
    assert!(!ok, "must fail: {text}");
    assert!(text.contains("tls.client_ca_file: must be set"), "{text}");

    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").expect("ca");
    with_tls(&config, &format!("client_ca_file = \"{}\"", ca.display()));
    let (ok, text) = check_config(&config).await;
    assert!(!ok, "must fail: {text}");
    assert!(
        text.contains("tls.client_ca_file:") && text.contains("ca.pem"),
        "{text}"
    );

    // Any CA certificate will do for the check: the server's own self-signed one.
    std::fs::copy(dir.path().join("cert.pem"), &ca).expect("ca");
    let (ok, text) = check_config(&config).await;
    assert!(ok, "{text}");
    assert!(text.contains("client certificates: required"), "{text}");
    assert!(!text.contains("warning"), "{text}");
}

#[tokio::test]
async fn hash_password_ignores_the_trailing_newline() {
    let mut c = bin();
    c.arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"s3cret\n").await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("wait");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let users =
        ftps_s3::auth::UserStore::parse(&UserToml::new("u").password_hash(&hash).home("").render())
            .expect("users");
    assert!(users.verify("u", "s3cret").await.is_some());
    assert!(users.verify("u", "s3cret\n").await.is_none());
}

/// `serve` run with its log (stderr) read: [`ServeLog::start`] waits until a line names the
/// listening address, [`ServeLog::stop`] stops the server and returns every line it logged.
struct ServeLog {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    log: Vec<String>,
    /// The explicit listener's address, as `listening_addr` found it in the log.
    addr: String,
}

impl ServeLog {
    async fn start(mut c: Command, listening_addr: impl Fn(&str) -> Option<String>) -> ServeLog {
        c.stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = c.spawn().expect("spawn");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut log = Vec::new();
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
        {
            let addr = listening_addr(&line);
            log.push(line);
            if let Some(addr) = addr {
                return ServeLog {
                    child,
                    lines,
                    log,
                    addr,
                };
            }
        }
        panic!("no listening address in:\n{}", log.join("\n"));
    }

    async fn stop(mut self) -> Vec<String> {
        let _ = self.child.start_kill();
        while let Ok(Ok(Some(line))) =
            tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await
        {
            self.log.push(line);
        }
        self.log
    }
}

/// The address of a JSON log's `listening` line; every line must be JSON.
fn json_listening_addr(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
    if v["message"] != "listening" {
        return None;
    }
    v["addr"].as_str().map(str::to_string)
}

/// `serve` with no config in `dir`, with `env` set; returns the child and the printed password.
async fn start_development_default(
    dir: &Path,
    env: &[(&str, &str)],
) -> (tokio::process::Child, String) {
    let mut c = bin();
    c.arg("serve")
        .current_dir(dir)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c.spawn().expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while let Ok(Ok(Some(line))) =
        tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await
    {
        if let Some(rest) = line.split("password: ").nth(1) {
            let password = rest.split_whitespace().next().unwrap_or("").to_string();
            // Keep reading: a closed pipe would fail the server's next print.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, password);
        }
    }
    let _ = child.kill().await;
    let out = child.wait_with_output().await.expect("wait");
    panic!(
        "no password printed; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `serve` with no config: explicit on 127.0.0.1:2121, implicit on :9990, local storage under
/// ./data, a password generated once, kept in ./data and printed at every start. A log level
/// from the environment (`FTPS_S3_LOG__LEVEL`) applies and does not leave the development default.
/// The ports are fixed by design; when something else holds them this test cannot run and says so.
#[tokio::test]
async fn serve_without_config_starts_the_development_default() {
    for port in [2121, 9990] {
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            crate::common::skipped(
                "serve_without_config_starts_the_development_default",
                &format!("127.0.0.1:{port} is in use (the development default's fixed port)"),
            );
            return;
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, password) = start_development_default(dir.path(), &[]).await;
    let src = dir.path().join("hello.txt");
    let body = random_bytes(100_000);
    std::fs::write(&src, &body).expect("write");
    let mut up = curl("demo", &password);
    up.arg("-T").arg(&src).arg("ftp://127.0.0.1:2121/hello.txt");
    assert_ok(&clients::run(up).await, "explicit upload");
    let mut down = curl("demo", &password);
    down.arg("ftps://127.0.0.1:9990/hello.txt");
    let out = clients::run(down).await;
    assert_ok(&out, "implicit download");
    assert!(out.stdout == body);
    let stored = std::fs::read(dir.path().join("data/files/demo/hello.txt")).expect("stored file");
    assert!(stored == body);
    assert!(dir.path().join("data/tls/cert.pem").is_file());
    let _ = child.kill().await;
    let stderr = child.wait_with_output().await.expect("wait").stderr;
    assert!(String::from_utf8_lossy(&stderr).contains("DEVELOPMENT"));

    // Again, with a log level: still the development default, with the same password.
    let (mut child, again) =
        start_development_default(dir.path(), &[("FTPS_S3_LOG__LEVEL", "debug")]).await;
    assert_eq!(again, password, "the demo password must survive a restart");
    let mut list = curl("demo", &password);
    list.arg("ftp://127.0.0.1:2121/");
    let out = clients::run(list).await;
    assert_ok(&out, "list after restart");
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello.txt"));
    let _ = child.kill().await;
    let stderr = child.wait_with_output().await.expect("wait").stderr;
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(stderr.contains("DEVELOPMENT"), "{stderr}");
    assert!(
        stderr.contains("DEBUG"),
        "log.level=debug applies: {stderr}"
    );
    assert!(
        !stderr.contains("\x1b["),
        "no colours when stderr is not a terminal: {stderr}"
    );
}

/// A config on a local directory in `dir`, explicit FTPS on a free port, `extra` appended; one
/// user `u` / `s3cret-pass` who may list, read and write.
fn local_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let files = dir.join("files");
    std::fs::create_dir_all(files.join("u")).expect("home");
    let config = write_config(
        dir,
        &format!(
            "[listeners]\nexplicit = \"127.0.0.1:0\"\nimplicit = \"off\"\n\
             [storage]\nbackend = \"local\"\nlocal_root = \"{}\"\n{extra}",
            files.display()
        ),
    );
    users::write(
        &dir.join("users.toml"),
        &[UserToml::new("u")
            .password("s3cret-pass")
            .home("u/")
            .permissions(&["list", "read", "write"])],
    );
    config
}

/// JSON logs carry the span tree: every line of a command's work names the session (id, user,
/// client address, TLS) and the command (verb, final reply code), so one STOR can be followed
/// from its audit line. The password never appears.
#[tokio::test]
async fn json_logs_nest_each_command_in_the_session_span() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = local_config(dir.path(), "[log]\nformat = \"json\"\nlevel = \"info\"\n");
    let mut c = bin();
    c.arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG");
    let server = ServeLog::start(c, json_listening_addr).await;
    let src = dir.path().join("up.bin");
    std::fs::write(&src, random_bytes(10_000)).expect("write");
    let mut up = curl("u", "s3cret-pass");
    up.arg("-T")
        .arg(&src)
        .arg(format!("ftp://{}/up.bin", server.addr));
    assert_ok(&clients::run(up).await, "upload");
    let rest = server.stop().await.join("\n");
    assert!(
        !rest.contains("s3cret-pass"),
        "the password is logged:\n{rest}"
    );
    let upload: serde_json::Value = rest
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "audit" && v["event"] == "upload")
        .unwrap_or_else(|| panic!("no audit upload line in:\n{rest}"));
    assert_eq!(upload["result"], "ok", "{upload}");
    let spans = upload["spans"].as_array().expect("span list");
    let session = spans
        .iter()
        .find(|s| s["name"] == "session")
        .unwrap_or_else(|| panic!("no session span: {upload}"));
    assert_eq!(session["user"], "u", "{upload}");
    assert_eq!(session["listener"], "explicit", "{upload}");
    assert!(session["tls_version"].as_str().is_some(), "{upload}");
    assert_eq!(session["session_id"], upload["session_id"], "{upload}");
    let command = spans.last().expect("innermost span");
    assert_eq!(command["name"], "command", "{upload}");
    assert_eq!(command["command"], "STOR", "{upload}");
}

/// `check-config` (online) with S3 credentials from the environment as given: `None` removes
/// them, and every other source of credentials is cut off so none is found by accident.
async fn check_config_online(config: &Path, keys: Option<(&str, &str)>) -> (bool, String) {
    let mut c = bin();
    c.arg("check-config").arg("--config").arg(config);
    for v in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ] {
        c.env_remove(v);
    }
    c.env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        );
    if let Some((key, secret)) = keys {
        c.env("AWS_ACCESS_KEY_ID", key)
            .env("AWS_SECRET_ACCESS_KEY", secret);
    }
    let (ok, text) = run_check(c).await;
    println!("--- check-config {}:\n{text}", config.display());
    (ok, text)
}

/// A config for the shared SeaweedFS: `s3` is the `[s3]` table's body; a user `acme` in `home`.
fn s3_config(dir: &Path, s3: &str) -> std::path::PathBuf {
    let config = write_config(
        dir,
        &format!("[listeners]\nexplicit = \"127.0.0.1:0\"\nimplicit = \"off\"\n[s3]\n{s3}\n"),
    );
    users::write(
        &dir.join("users.toml"),
        &[UserToml::new("acme").password("pw").permissions(&["list"])],
    );
    config
}

const KEYS: Option<(&str, &str)> = Some((seaweedfs::ACCESS_KEY, seaweedfs::SECRET_KEY));

/// A folder's bucket is probed like a user's own bucket: a missing one fails `check-config`.
#[tokio::test]
async fn check_config_probes_the_buckets_of_folders() {
    let sw = seaweedfs::s3().await;
    let (bucket, other) = (sw.new_bucket().await, sw.new_bucket().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = format!(
        "bucket = \"{bucket}\"\nendpoint = \"{}\"\nforce_path_style = true",
        sw.endpoint()
    );
    let config = s3_config(dir.path(), &s3);
    let with_folder = |folder_bucket: &str| {
        let user = UserToml::new("acme").password("pw").folder(
            "/in",
            Some(folder_bucket),
            "in/",
            &["list"],
        );
        users::write(&dir.path().join("users.toml"), &[user]);
    };
    with_folder(&other);
    let (ok, text) = check_config_online(&config, KEYS).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "s3: bucket \"{other}\" (bucket of user \"acme\"): OK"
        )),
        "{text}"
    );
    with_folder("no-such-folder-bucket");
    let (ok, text) = check_config_online(&config, KEYS).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("no-such-folder-bucket") && text.contains("NoSuchBucket"),
        "{text}"
    );
}

/// Each S3 mistake a new user makes is found by `check-config` (exit 1), named with the S3
/// error and the setting to fix; the right settings pass. Against the real SeaweedFS.
#[tokio::test]
async fn check_config_probes_s3_and_names_each_mistake() {
    let sw = seaweedfs::s3().await;
    let bucket = sw.new_bucket().await;
    let endpoint = sw.endpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = format!("bucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true");

    let config = s3_config(dir.path(), &good);
    let (ok, text) = check_config_online(&config, KEYS).await;
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("s3: bucket \"{bucket}\" (s3.bucket): OK")),
        "{text}"
    );

    // A bucket that does not exist.
    let config = s3_config(
        dir.path(),
        &good.replace(&format!("\"{bucket}\""), "\"no-such-bucket-here\""),
    );
    let (ok, text) = check_config_online(&config, KEYS).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("NoSuchBucket: s3.bucket = \"no-such-bucket-here\" does not exist"),
        "{text}"
    );

    // An endpoint where nothing listens.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let wrong = format!("http://127.0.0.1:{closed}");
    let config = s3_config(dir.path(), &good.replace(endpoint, &wrong));
    let (ok, text) = check_config_online(&config, KEYS).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("connection refused") && text.contains(&format!("s3.endpoint = \"{wrong}\"")),
        "{text}"
    );

    // A wrong access key, a wrong secret, no keys at all.
    let config = s3_config(dir.path(), &good);
    let (ok, text) = check_config_online(&config, Some(("nosuchkey", seaweedfs::SECRET_KEY))).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("InvalidAccessKeyId") && text.contains("AWS_ACCESS_KEY_ID"),
        "{text}"
    );
    let (ok, text) =
        check_config_online(&config, Some((seaweedfs::ACCESS_KEY, "wrong-secret"))).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("SignatureDoesNotMatch") && text.contains("AWS_SECRET_ACCESS_KEY"),
        "{text}"
    );
    let (ok, text) = check_config_online(&config, None).await;
    assert!(!ok, "{text}");
    assert!(text.contains("AWS_ACCESS_KEY_ID"), "{text}");

    // `localhost` without path-style addressing: the client asks for <bucket>.localhost.
    let config = s3_config(
        dir.path(),
        &good
            .replace("127.0.0.1", "localhost")
            .replace("force_path_style = true", "force_path_style = false"),
    );
    let (ok, text) = check_config_online(&config, KEYS).await;
    assert!(!ok, "{text}");
    assert!(text.contains("s3.force_path_style = true"), "{text}");

    // --offline skips the probe.
    let config = s3_config(dir.path(), &good.replace(endpoint, &wrong));
    let mut c = bin();
    c.arg("check-config")
        .arg("--offline")
        .arg("--config")
        .arg(&config);
    let (ok, text) = run_check(c).await;
    assert!(ok && text.contains("offline"), "{text}");
}

/// The listener checks: a port another process holds, a port below 1024 without
/// CAP_NET_BIND_SERVICE, a passive range that includes a listener.
#[tokio::test]
async fn check_config_finds_listener_ports_that_cannot_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr");
    let config = write_config(
        dir.path(),
        &format!("[listeners]\nexplicit = \"{taken_addr}\"\nimplicit = \"off\"\n[storage]\nbackend = \"local\"\n"),
    );
    let mut c = bin();
    c.arg("check-config").arg("--config").arg(&config);
    let (ok, text) = run_check(c).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("listeners.explicit: {taken_addr} is in use")),
        "{text}"
    );
    drop(taken);

    let config = write_config(
        dir.path(),
        "[listeners]\nexplicit = \"127.0.0.1:30005\"\nimplicit = \"off\"\n[passive]\nports = \"30000-30019\"\n[storage]\nbackend = \"local\"\n",
    );
    let mut c = bin();
    c.arg("check-config").arg("--config").arg(&config);
    let (ok, text) = run_check(c).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("passive.ports:") && text.contains("30005"),
        "{text}"
    );

    // Port 990 as an unprivileged user: as root, drop to nobody with no capabilities (setpriv).
    let unprivileged_start: u16 =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1024);
    if unprivileged_start <= 990 {
        eprintln!("SKIPPED (port < 1024 part): net.ipv4.ip_unprivileged_port_start = {unprivileged_start}");
        return;
    }
    let config = write_config(
        dir.path(),
        "[listeners]\nexplicit = \"127.0.0.1:990\"\nimplicit = \"off\"\n[storage]\nbackend = \"local\"\n",
    );
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let mut c = if is_root {
        if std::process::Command::new("setpriv")
            .arg("--help")
            .output()
            .is_err()
        {
            eprintln!("SKIPPED (port < 1024 part): running as root and setpriv is missing");
            return;
        }
        // nobody must be able to read the config, certificate and key.
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let path = entry.expect("entry").path();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .expect("chmod");
        }
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_ftps-s3"));
        c
    } else {
        bin()
    };
    c.arg("check-config").arg("--config").arg(&config);
    let (ok, text) = run_check(c).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "listeners.explicit: binding port 990 (below 1024) needs CAP_NET_BIND_SERVICE"
        ),
        "{text}"
    );
}

/// `scripts/quickstart.sh --once`, as README tells a new user to run it: SeaweedFS, certificate,
/// users, config, check-config, serve, a curl upload read back from S3, then everything stopped.
#[tokio::test]
async fn quickstart_script_runs_end_to_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port")
    };
    let (explicit, implicit) = (free(), free());
    let mut c = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/quickstart.sh"
    ));
    for (k, _) in std::env::vars() {
        if k.starts_with("FTPS_S3_") {
            c.env_remove(k);
        }
    }
    c.arg("--once")
        .env("QUICKSTART_DIR", dir.path())
        .env("QUICKSTART_BIN", env!("CARGO_BIN_EXE_ftps-s3"))
        .env("QUICKSTART_EXPLICIT_PORT", explicit.to_string())
        .env("QUICKSTART_IMPLICIT_PORT", implicit.to_string());
    let out = clients::run(c).await;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for expected in [
        "s3: bucket \"ftps-quickstart\" (s3.bucket): OK",
        "config.toml: OK",
        "  hello from ftps-s3 quickstart",
        "stopping ftps-s3",
        "stopped seaweedfs",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
    // Nothing left running: the SeaweedFS PID file is gone and the ports are free again.
    assert!(!dir.path().join("seaweedfs/weed.pid").exists(), "{text}");
    std::net::TcpListener::bind(("127.0.0.1", explicit)).expect("explicit port freed");
}

/// lftp sends the server's IP address as SNI on every handshake, which rustls logged as a
/// warning each time; logs written to a pipe or a file carried ANSI colour codes. Neither now.
#[tokio::test]
async fn lftp_handshakes_log_no_sni_warning_and_pipes_get_no_colours() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = local_config(dir.path(), "");
    let mut c = bin();
    c.arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR");
    let server = ServeLog::start(c, |line| {
        let rest = line.split("addr=").nth(1)?;
        rest.split_whitespace().next().map(str::to_string)
    })
    .await;
    let addr: std::net::SocketAddr = server.addr.parse().expect("listening address");
    let out = clients::run(clients::lftp(
        clients::Mode::Explicit,
        addr,
        "u",
        "s3cret-pass",
        "ls",
    ))
    .await;
    assert_ok(&out, "lftp ls");
    let log = server.stop().await.join("\n");
    assert!(
        log.contains("disconnected"),
        "the session is logged:\n{log}"
    );
    assert!(!log.contains("SNI"), "no SNI warning:\n{log}");
    assert!(!log.contains('\u{1b}'), "no ANSI codes in a pipe:\n{log}");
}

/// `log.level = "debug"` is the server's debug lines, not the AWS SDK's and hyper's (they were
/// 97 % of a debug log): dependencies stay at `info`. Against SeaweedFS, with an upload.
#[tokio::test]
async fn log_level_debug_is_this_crates_debug_only() {
    let sw = seaweedfs::s3().await;
    let bucket = sw.new_bucket().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = s3_config(
        dir.path(),
        &format!(
            "bucket = \"{bucket}\"\nendpoint = \"{}\"\nforce_path_style = true\n[log]\nformat = \"json\"\nlevel = \"debug\"",
            sw.endpoint()
        ),
    );
    let mut c = bin();
    c.arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let server = ServeLog::start(c, json_listening_addr).await;
    let addr = server.addr.clone();
    let src = dir.path().join("up.bin");
    std::fs::write(&src, random_bytes(10_000)).expect("write");
    // The users file of s3_config: acme / pw, list only; a listing makes S3 calls too.
    let mut ls = curl("acme", "pw");
    ls.arg(format!("ftp://{addr}/"));
    assert_ok(&clients::run(ls).await, "list");
    let log: Vec<serde_json::Value> = server
        .stop()
        .await
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    let debug_from = |prefix: &str| {
        log.iter()
            .filter(|v| v["level"] == "DEBUG")
            .filter(|v| v["target"].as_str().is_some_and(|t| t.starts_with(prefix)))
            .count()
    };
    assert!(
        debug_from("ftps_s3") > 0,
        "the server's debug lines: {log:?}"
    );
    for dependency in ["aws", "hyper", "rustls", "h2", "tokio"] {
        assert_eq!(
            debug_from(dependency),
            0,
            "{dependency} debug lines at log.level = debug"
        );
    }
}

/// `--version` names the commit it was built from; `--config` says what it takes.
#[tokio::test]
async fn version_names_the_commit_and_config_has_help() {
    let mut c = bin();
    c.arg("--version");
    let out = clients::run(c).await;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let commit = version
        .strip_prefix(concat!("ftps-s3 ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    for command in ["serve", "check-config"] {
        let mut c = bin();
        c.args([command, "--help"]);
        let out = clients::run(c).await;
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--config <FILE>") && help.contains("TOML config file"),
            "{command}: {help}"
        );
    }
}

/// On a terminal, `hash-password` asks twice without echo and refuses two different answers
/// (driven through a pseudo-terminal by Python's `pty`).
#[tokio::test]
async fn hash_password_prompts_on_a_terminal() {
    const DRIVER: &str = r#"
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], "hash-password"])
out = b""
def read_until(token):
    global out
    deadline = time.time() + 20
    while token not in out and time.time() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
read_until(b"Password: ")
os.write(fd, sys.argv[2].encode() + b"\n")
read_until(b"Again: ")
os.write(fd, sys.argv[3].encode() + b"\n")
read_until(b"\n$")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let run = |first: &str, second: &str| {
        let mut c = Command::new("python3");
        c.arg("-c")
            .arg(DRIVER)
            .arg(env!("CARGO_BIN_EXE_ftps-s3"))
            .arg(first)
            .arg(second);
        c
    };
    let out = clients::run(run("pty-secret", "pty-secret")).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Password: ") && text.contains("Again: "),
        "{text}"
    );
    assert!(
        !text.contains("pty-secret"),
        "the password is echoed: {text}"
    );
    let hash = text
        .split_whitespace()
        .find(|w| w.starts_with("$argon2id$"))
        .unwrap_or_else(|| panic!("no hash in {text}"));
    let users =
        ftps_s3::auth::UserStore::parse(&UserToml::new("u").password_hash(hash).home("").render())
            .expect("users");
    assert!(users.verify("u", "pty-secret").await.is_some());

    let out = clients::run(run("one", "other")).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("the two passwords differ"), "{text}");
}

/// A configuring `FTPS_S3_*` variable without `--config` leaves the development default, and
/// the error says which variable did it.
#[tokio::test]
async fn a_configuring_variable_says_it_left_the_development_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = bin();
    c.arg("serve")
        .current_dir(dir.path())
        .env("FTPS_S3_S3__REGION", "eu-west-1");
    let out = clients::run(c).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("FTPS_S3_S3__REGION set")
            && stderr.contains("not the development default")
            && stderr.contains("s3.bucket: must be set"),
        "{stderr}"
    );
}
