//! Two replicas behind a real HAProxy: the multi-replica setup of a deployment, on one machine.
//!
//! Two `ftps-s3` processes (the binary, each with its own JSON log) listen on 127.0.0.2 and
//! 127.0.0.3 with the same SeaweedFS bucket, `listeners.proxy_protocol` on and 127.0.0.1 (the
//! proxy's source) trusted, both advertising 127.0.0.1 for PASV. HAProxy (Debian's package)
//! listens on 127.0.0.1 for explicit and implicit control connections and for the passive port
//! range, with `balance source` (a client IP always reaches the same replica, for its control
//! and its data connections) and `send-proxy-v2`. Clients bind distinct source addresses
//! (127.0.0.10, .11, …) so stickiness spreads them over both replicas.
//!
//! Checked: every upload is byte-exact in S3 and every download byte-exact; both replicas
//! served sessions; each audit line carries its client's own address (never the proxy's), and
//! all of one client's lines are in one replica's log.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::process::{Child, Command};

use crate::common::users::{self, UserToml};
use crate::common::{
    clients::{self, assert_ok, curl, python_with, random_bytes, Mode},
    free_port_block,
    seaweedfs::{self, ACCESS_KEY, REGION},
};

const REPLICAS: [&str; 2] = ["127.0.0.2", "127.0.0.3"];
pub(crate) const PROXY_IP: &str = "127.0.0.1";
const USER: &str = "acme";
const PASSWORD: &str = "acme-password";
/// Passive ports per replica (and on the proxy).
const PASSIVE_PORTS: u16 = 10;

struct Ports {
    explicit: u16,
    implicit: u16,
    passive_first: u16,
    passive_last: u16,
}

impl Ports {
    fn new() -> Ports {
        let base = free_port_block(&[PROXY_IP, REPLICAS[0], REPLICAS[1]], 2 + PASSIVE_PORTS);
        Ports {
            explicit: base,
            implicit: base + 1,
            passive_first: base + 2,
            passive_last: base + 1 + PASSIVE_PORTS,
        }
    }
}

/// A child process killed (by PID, SIGKILL) when dropped, so a failing test leaves none behind.
pub(crate) struct Process {
    name: String,
    child: Child,
}

impl Process {
    pub(crate) async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// Panics with `log` if the process has already exited.
    pub(crate) fn assert_running(&mut self, log: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early ({status}):\n{log}", self.name);
        }
    }

    /// Waits (up to 10 s) until `addr` accepts connections, panicking with `log` if the
    /// process exits first.
    async fn wait_accepting(&mut self, log: &Path, addr: SocketAddr) {
        for _ in 0..100 {
            self.assert_running(&std::fs::read_to_string(log).unwrap_or_default());
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

pub(crate) fn haproxy_available() -> bool {
    std::process::Command::new("haproxy")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// HAProxy in TCP mode on [`PROXY_IP`]: explicit, implicit and the passive range, each spread
/// over `replicas` by `balance` (`source`, `roundrobin`), with `send-proxy-v2`.
pub(crate) fn haproxy_config(
    balance: &str,
    replicas: &[&str],
    (explicit, implicit): (u16, u16),
    (passive_first, passive_last): (u16, u16),
) -> String {
    let mut cfg = format!(
        "global\n    maxconn 2000\n\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 2m\n    timeout server 2m\n\n\
         frontend ftp_explicit\n    bind {PROXY_IP}:{explicit}\n    default_backend explicit\n\n\
         frontend ftp_implicit\n    bind {PROXY_IP}:{implicit}\n    default_backend implicit\n\n\
         frontend ftp_passive\n    bind {PROXY_IP}:{passive_first}-{passive_last}\n    default_backend passive\n",
    );
    // The same servers in the same order in every backend: `balance source` then maps a client
    // IP to the same replica for its control and its data connections. Passive servers have no
    // port: HAProxy connects to the port the client connected to.
    for (backend, port) in [
        ("explicit", format!(":{explicit}")),
        ("implicit", format!(":{implicit}")),
        ("passive", String::new()),
    ] {
        cfg.push_str(&format!(
            "\nbackend {backend}\n    balance {balance}\n    source {PROXY_IP}\n"
        ));
        for (n, ip) in replicas.iter().enumerate() {
            cfg.push_str(&format!("    server r{n} {ip}{port} send-proxy-v2\n"));
        }
    }
    cfg
}

fn replica_config(dir: &Path, ip: &str, ports: &Ports, bucket: &str, endpoint: &str) -> PathBuf {
    let config = dir.join(format!("{ip}.toml"));
    std::fs::write(
        &config,
        format!(
            "[listeners]\nexplicit = \"{ip}:{e}\"\nimplicit = \"{ip}:{i}\"\n\
             proxy_protocol = true\ntrusted_proxies = [\"{PROXY_IP}/32\"]\n\
             [tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\n\
             [passive]\nports = \"{pf}-{pl}\"\nadvertise_address = \"{PROXY_IP}\"\n\
             [storage]\nbackend = \"s3\"\n\
             [s3]\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"{REGION}\"\n\
             force_path_style = true\npart_size_mib = 5\n\
             [auth]\nusers_file = \"{users}\"\nfailure_delay_ms = 50\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n",
            e = ports.explicit,
            i = ports.implicit,
            pf = ports.passive_first,
            pl = ports.passive_last,
            cert = dir.join("cert.pem").display(),
            key = dir.join("key.pem").display(),
            users = dir.join("users.toml").display(),
        ),
    )
    .expect("replica config");
    config
}

pub(crate) async fn start_replica(dir: &Path, ip: &str, config: &Path) -> (Process, PathBuf) {
    let log = dir.join(format!("{ip}.log"));
    let mut c = crate::common::binary::server_command();
    c.arg("serve")
        .arg("--config")
        .arg(config)
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true);
    let child = c.spawn().expect("spawn ftps-s3");
    (
        Process {
            name: format!("ftps-s3 on {ip}"),
            child,
        },
        log,
    )
}

/// Starts HAProxy with `config` (written into `dir`, its log beside it) and waits until its
/// `front` address accepts connections.
pub(crate) async fn start_haproxy(dir: &Path, config: &str, front: SocketAddr) -> Process {
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, config).expect("haproxy.cfg");
    let log = dir.join("haproxy.log");
    // -db: foreground, no daemon, so the PID we hold is HAProxy's own.
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::fs::File::create(dir.join("haproxy.err")).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn haproxy");
    let mut haproxy = Process {
        name: "haproxy".into(),
        child,
    };
    haproxy
        .wait_accepting(&dir.join("haproxy.err"), front)
        .await;
    haproxy
}

/// Waits until `ready` holds for the process's log, or panics with the log.
pub(crate) async fn wait_for(p: &mut Process, log: &Path, ready: impl Fn(&str) -> bool) {
    for _ in 0..300 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if ready(&text) {
            return;
        }
        p.assert_running(&text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} not ready after 30 s:\n{}",
        p.name,
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// One client's work: who it is, what it uploads, how.
struct Job {
    source: IpAddr,
    remote: String,
    body: Vec<u8>,
    client: &'static str,
}

/// Uploads then downloads through the proxy; returns the bytes downloaded.
async fn run_job(job: &Job, dir: &Path, ports: &Ports) -> Vec<u8> {
    let local_up = dir.join(format!("{}.up", job.source));
    let local_down = dir.join(format!("{}.down", job.source));
    std::fs::write(&local_up, &job.body).expect("write");
    let source = job.source.to_string();
    let proxy_explicit = SocketAddr::new(PROXY_IP.parse().expect("ip"), ports.explicit);
    let proxy_implicit = SocketAddr::new(PROXY_IP.parse().expect("ip"), ports.implicit);
    match job.client {
        "python-explicit" | "python-implicit" => {
            let (mode, addr) = if job.client == "python-explicit" {
                (Mode::Explicit, proxy_explicit)
            } else {
                (Mode::Implicit, proxy_implicit)
            };
            let up = local_up.to_string_lossy().to_string();
            let down = local_down.to_string_lossy().to_string();
            let c = python_with(
                mode,
                addr,
                USER,
                PASSWORD,
                &["--source-address", &source],
                &[
                    "put",
                    &up,
                    &job.remote,
                    "size",
                    &job.remote,
                    "get",
                    &job.remote,
                    &down,
                ],
            );
            assert_ok(
                &clients::run(c).await,
                &format!("{} from {source}", job.client),
            );
            std::fs::read(&local_down).expect("downloaded file")
        }
        "curl" => {
            // Upload on the explicit port, download on the implicit one: two sessions, which
            // stickiness must send to the same replica.
            let mut up = curl(USER, PASSWORD);
            up.args(["--interface", &source, "-T"])
                .arg(&local_up)
                .arg(format!("ftp://{proxy_explicit}/{}", job.remote));
            assert_ok(
                &clients::run(up).await,
                &format!("curl upload from {source}"),
            );
            let mut down = curl(USER, PASSWORD);
            down.args(["--interface", &source])
                .arg(format!("ftps://{proxy_implicit}/{}", job.remote));
            let out = clients::run(down).await;
            assert_ok(&out, &format!("curl download from {source}"));
            out.stdout
        }
        other => panic!("unknown client {other}"),
    }
}

/// The audit lines of a replica's JSON log.
pub(crate) fn audit_lines(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .expect("replica log")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect()
}

#[tokio::test]
async fn two_replicas_behind_haproxy_serve_sticky_sessions_with_the_client_address() {
    if !haproxy_available() {
        // .ci/run installs haproxy and sets this, so CI never skips.
        assert!(
            std::env::var_os("FTPS_TESTS_REQUIRE_HAPROXY").is_none(),
            "haproxy is not installed (scripts/install-test-deps.sh)"
        );
        crate::common::skipped(
            "two_replicas_behind_haproxy",
            "haproxy is not installed (scripts/install-test-deps.sh)",
        );
        return;
    }
    let sw = seaweedfs::s3().await;
    let bucket = sw.new_bucket().await;
    let dir = tempfile::tempdir().expect("tempdir");
    ftps_s3::tls::ensure_self_signed(dir.path()).expect("certificate");
    users::write(
        &dir.path().join("users.toml"),
        &[UserToml::new(USER)
            .password(PASSWORD)
            .home("partners/acme/")
            .permissions(&["list", "read", "write", "overwrite"])],
    );
    let ports = Ports::new();

    let mut replicas = Vec::new();
    for ip in REPLICAS {
        let config = replica_config(dir.path(), ip, &ports, &bucket, sw.endpoint());
        let (mut p, log) = start_replica(dir.path(), ip, &config).await;
        // Both listeners bound.
        wait_for(&mut p, &log, |t| t.matches("\"listening\"").count() >= 2).await;
        replicas.push((ip, p, log));
    }
    let proxy = SocketAddr::new(PROXY_IP.parse().expect("ip"), ports.explicit);
    let haproxy = start_haproxy(
        dir.path(),
        &haproxy_config(
            "source",
            &REPLICAS,
            (ports.explicit, ports.implicit),
            (ports.passive_first, ports.passive_last),
        ),
        proxy,
    )
    .await;

    let clients = [
        "python-explicit",
        "python-implicit",
        "curl",
        "python-explicit",
        "python-implicit",
        "curl",
        "python-explicit",
        "python-implicit",
    ];
    let jobs: Vec<Job> = clients
        .iter()
        .enumerate()
        .map(|(n, client)| {
            let source: IpAddr = format!("127.0.0.{}", 10 + n).parse().expect("ip");
            // One file above the 5 MiB part size: a multipart upload through the proxy.
            let len = if n == 0 {
                6 * 1024 * 1024 + 17
            } else {
                100_000 + n * 37_501
            };
            Job {
                source,
                remote: format!("from-{}.bin", 10 + n),
                body: random_bytes(len),
                client,
            }
        })
        .collect();
    let downloads =
        futures::future::join_all(jobs.iter().map(|j| run_job(j, dir.path(), &ports))).await;

    let s3 = sw.client();
    for (job, down) in jobs.iter().zip(&downloads) {
        assert!(
            *down == job.body,
            "{} from {}: download differs ({} of {} bytes)",
            job.client,
            job.source,
            down.len(),
            job.body.len()
        );
        let key = format!("partners/acme/{}", job.remote);
        let stored = s3
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .expect("GetObject")
            .body
            .collect()
            .await
            .expect("body")
            .into_bytes();
        assert!(stored == job.body, "{key}: S3 content differs");
    }

    // Which replica served which client, from the audit lines alone.
    let mut served_by: BTreeMap<IpAddr, BTreeSet<&str>> = BTreeMap::new();
    let mut per_replica: BTreeMap<&str, usize> = BTreeMap::new();
    for (ip, _, log) in &replicas {
        let lines = audit_lines(log);
        for line in &lines {
            let addr: SocketAddr = line["client_addr"]
                .as_str()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("audit line without client_addr: {line}"));
            assert_ne!(
                addr.ip().to_string(),
                PROXY_IP,
                "an audit line names the proxy: {line}"
            );
            // And the session knows it came through HAProxy.
            let via = line["spans"]
                .as_array()
                .and_then(|spans| spans.iter().find(|s| s["name"] == "session"))
                .and_then(|session| session["proxy_addr"].as_str())
                .unwrap_or_default();
            assert!(
                via.starts_with(&format!("{PROXY_IP}:")),
                "audit line without the proxy's address: {line}"
            );
            served_by.entry(addr.ip()).or_default().insert(ip);
        }
        let logins = lines.iter().filter(|l| l["event"] == "login").count();
        per_replica.insert(ip, logins);
        eprintln!("replica {ip}: {logins} logins, {} audit lines", lines.len());
        if let Some(upload) = lines.iter().find(|l| l["event"] == "upload") {
            eprintln!("replica {ip}, an upload's audit line: {upload}");
        }
    }
    for job in &jobs {
        let replicas_of_client = served_by.get(&job.source).cloned().unwrap_or_default();
        assert_eq!(
            replicas_of_client.len(),
            1,
            "{} ({}): audit lines in {replicas_of_client:?}, expected exactly one replica",
            job.source,
            job.client
        );
        let replica = replicas_of_client
            .iter()
            .next()
            .copied()
            .unwrap_or_default();
        let log = &replicas.iter().find(|r| r.0 == replica).expect("replica").2;
        let lines = audit_lines(log);
        let mine = |event: &str| {
            lines.iter().any(|l| {
                l["event"] == event
                    && l["result"] == "ok"
                    && l["client_addr"]
                        .as_str()
                        .is_some_and(|a| a.starts_with(&format!("{}:", job.source)))
                    && (event == "login"
                        || (l["path"] == format!("/{}", job.remote)
                            && l["bytes"] == job.body.len()))
            })
        };
        for event in ["login", "upload", "download"] {
            assert!(
                mine(event),
                "{}: no {event} audit line in {replica}'s log",
                job.source
            );
        }
        eprintln!("{} ({}) -> {replica}", job.source, job.client);
    }
    assert!(
        per_replica.values().all(|&n| n > 0),
        "both replicas must serve sessions: {per_replica:?}"
    );
    // The proxy's source was trusted and every data connection matched its control client.
    for (ip, _, log) in &replicas {
        let text = std::fs::read_to_string(log).expect("log");
        assert!(!text.contains("refused"), "{ip} refused something:\n{text}");
    }

    haproxy.stop().await;
    for (_, p, _) in replicas {
        p.stop().await;
    }
}
