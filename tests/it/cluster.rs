//! The cluster mode (`[cluster]`): three replicas (127.0.0.2–.4, the binary, each with its own
//! JSON log) behind a real HAProxy that spreads *every* port round-robin with no stickiness
//! (`balance roundrobin`, `send-proxy-v2`). A data connection reaches the replica holding its
//! session only by chance; the others relay it to the owner of its port. curl, lftp and Python
//! ftplib upload and download, explicit and implicit, as two users from the same addresses;
//! every byte must arrive, and each file in its own user's home. Run with
//! `tls.require_session_reuse` on and off. Prints the table the issue asks for (transfers,
//! successes, relayed data connections); `FTPS_CLUSTER_FILES` (default 7: 168 transfers per setting, 336 in all) sets files per client
//! and mode.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use crate::admin::metric;
use crate::common::users::{self, UserToml};
use crate::common::{
    clients::{self, assert_ok, curl, lftp, python_with, random_bytes, Mode},
    free_port_block,
    http::get,
    seaweedfs,
};
use crate::haproxy::{
    haproxy_available, haproxy_config, start_haproxy, start_replica, wait_for, PROXY_IP,
};

const REPLICAS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
const USERS: [&str; 2] = ["acme", "other"];
/// Passive ports in all (each replica owns a third).
const PASSIVE_PORTS: u16 = 12;

struct Ports {
    explicit: u16,
    implicit: u16,
    relay: u16,
    admin: u16,
    passive_first: u16,
    passive_last: u16,
}

fn replica_config(
    dir: &Path,
    ordinal: usize,
    p: &Ports,
    bucket: &str,
    endpoint: &str,
    reuse: bool,
) -> PathBuf {
    let ip = REPLICAS[ordinal];
    let peers: Vec<String> = REPLICAS
        .iter()
        .map(|r| format!("\"{r}:{}\"", p.relay))
        .collect();
    let config = dir.join(format!("{ip}.toml"));
    std::fs::write(
        &config,
        format!(
            "[listeners]\nexplicit = \"{ip}:{e}\"\nimplicit = \"{ip}:{i}\"\n\
             proxy_protocol = true\ntrusted_proxies = [\"{PROXY_IP}/32\"]\n\
             [tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\nrequire_session_reuse = {reuse}\n\
             [passive]\nports = \"{pf}-{pl}\"\nadvertise_address = \"{PROXY_IP}\"\n\
             [cluster]\npeers = [{peers}]\nlisten = \"{ip}:{relay}\"\nordinal = {ordinal}\n\
             [admin]\nlisten = \"{ip}:{admin}\"\n\
             [storage]\nbackend = \"s3\"\n\
             [s3]\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nregion = \"{region}\"\n\
             force_path_style = true\npart_size_mib = 5\n\
             [auth]\nusers_file = \"{users}\"\nfailure_delay_ms = 50\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n",
            e = p.explicit,
            i = p.implicit,
            pf = p.passive_first,
            pl = p.passive_last,
            relay = p.relay,
            admin = p.admin,
            peers = peers.join(", "),
            region = seaweedfs::REGION,
            cert = dir.join("cert.pem").display(),
            key = dir.join("key.pem").display(),
            users = dir.join("users.toml").display(),
        ),
    )
    .expect("replica config");
    config
}

#[derive(Clone, Copy, Debug)]
enum Client {
    Curl,
    Lftp,
    Python,
}

struct Job {
    client: Client,
    mode: Mode,
    user: &'static str,
    source: String,
    remote: String,
    body: Vec<u8>,
}

/// Uploads then downloads `job`'s file through the proxy; the bytes downloaded.
async fn run_job(job: &Job, dir: &Path, p: &Ports) -> Vec<u8> {
    let tag = format!("{}-{}", job.user, job.remote);
    let up = dir.join(format!("{tag}.up"));
    let down = dir.join(format!("{tag}.down"));
    std::fs::write(&up, &job.body).expect("write");
    let port = match job.mode {
        Mode::Explicit => p.explicit,
        Mode::Implicit => p.implicit,
    };
    let addr = SocketAddr::new(PROXY_IP.parse().expect("ip"), port);
    let password = format!("{}-password", job.user);
    let what = format!(
        "{:?} {} as {} from {}",
        job.client,
        job.mode.name(),
        job.user,
        job.source
    );
    match job.client {
        Client::Curl => {
            let url = format!("{}/{}", clients::url(job.mode, addr), job.remote);
            let mut c = curl(job.user, &password);
            c.args(["--interface", &job.source, "-T"])
                .arg(&up)
                .arg(&url);
            assert_ok(&clients::run(c).await, &format!("{what}: upload"));
            let mut c = curl(job.user, &password);
            c.args(["--interface", &job.source, "-o"])
                .arg(&down)
                .arg(&url);
            assert_ok(&clients::run(c).await, &format!("{what}: download"));
        }
        Client::Lftp => {
            let script = format!(
                "set net:socket-bind-ipv4 {}; put {} -o {r}; get {r} -o {}",
                job.source,
                up.display(),
                down.display(),
                r = job.remote
            );
            let out = clients::run(lftp(job.mode, addr, job.user, &password, &script)).await;
            assert_ok(&out, &what);
        }
        Client::Python => {
            let (u, d) = (up.to_string_lossy(), down.to_string_lossy());
            let c = python_with(
                job.mode,
                addr,
                job.user,
                &password,
                &["--source-address", &job.source],
                &["put", &u, &job.remote, "get", &job.remote, &d],
            );
            assert_ok(&clients::run(c).await, &what);
        }
    }
    std::fs::read(&down).unwrap_or_default()
}

/// Sums one series over the replicas' `/metrics`.
async fn sum_metric(p: &Ports, series: &str) -> f64 {
    let mut total = 0.0;
    for ip in REPLICAS {
        let admin = SocketAddr::new(ip.parse().expect("ip"), p.admin);
        let (code, text) = get(admin, "/metrics").await;
        assert_eq!(code, 200);
        total += metric(&text, series).unwrap_or_else(|| panic!("{series} missing on {ip}"));
    }
    total
}

async fn three_replicas_round_robin(reuse: bool) {
    if !haproxy_available() {
        assert!(
            std::env::var_os("FTPS_TESTS_REQUIRE_HAPROXY").is_none(),
            "haproxy is not installed (scripts/install-test-deps.sh)"
        );
        eprintln!("SKIPPED: haproxy is not installed (scripts/install-test-deps.sh)");
        return;
    }
    let files: usize = std::env::var("FTPS_CLUSTER_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let sw = seaweedfs::s3().await;
    let bucket = sw.new_bucket().await;
    let dir = tempfile::tempdir().expect("tempdir");
    ftps_s3::tls::ensure_self_signed(dir.path()).expect("certificate");
    let users: Vec<UserToml> = USERS
        .iter()
        .map(|user| {
            UserToml::new(user)
                .password(&format!("{user}-password"))
                .permissions(&["list", "read", "write", "overwrite"])
        })
        .collect();
    users::write(&dir.path().join("users.toml"), &users);
    let ips: Vec<&str> = std::iter::once(PROXY_IP).chain(REPLICAS).collect();
    let base = free_port_block(&ips, 4 + PASSIVE_PORTS);
    let ports = Ports {
        explicit: base,
        implicit: base + 1,
        relay: base + 2,
        admin: base + 3,
        passive_first: base + 4,
        passive_last: base + 3 + PASSIVE_PORTS,
    };

    let mut replicas = Vec::new();
    for (ordinal, ip) in REPLICAS.iter().enumerate() {
        let config = replica_config(dir.path(), ordinal, &ports, &bucket, sw.endpoint(), reuse);
        let (mut p, log) = start_replica(dir.path(), ip, &config).await;
        wait_for(&mut p, &log, |t| t.matches("\"listening\"").count() >= 2).await;
        replicas.push((p, log));
    }
    let front = SocketAddr::new(PROXY_IP.parse().expect("ip"), ports.explicit);
    let haproxy = start_haproxy(
        dir.path(),
        &haproxy_config(
            "roundrobin",
            &REPLICAS,
            (ports.explicit, ports.implicit),
            (ports.passive_first, ports.passive_last),
        ),
        front,
    )
    .await;

    // Every client and mode, `files` times, as both users from the same address at once.
    let mut jobs = Vec::new();
    let mut n = 0usize;
    for client in [Client::Curl, Client::Lftp, Client::Python] {
        for mode in [Mode::Explicit, Mode::Implicit] {
            for f in 0..files {
                for user in USERS {
                    // One multipart upload (above the 5 MiB part size) per client.
                    let len = if f == 0 && mode == Mode::Explicit && user == "acme" {
                        6 * 1024 * 1024 + 17
                    } else {
                        50_000 + n * 1_009
                    };
                    jobs.push(Job {
                        client,
                        mode,
                        user,
                        source: format!("127.0.0.{}", 20 + f % 20),
                        remote: format!("{client:?}-{}-{f}.bin", mode.name()),
                        body: random_bytes(len),
                    });
                    n += 1;
                }
            }
        }
    }
    let mut downloads = Vec::new();
    for batch in jobs.chunks(8) {
        downloads.extend(
            futures::future::join_all(batch.iter().map(|j| run_job(j, dir.path(), &ports))).await,
        );
    }
    let mut ok = 0usize;
    for (job, down) in jobs.iter().zip(&downloads) {
        let key = format!("partners/{}/{}", job.user, job.remote);
        let stored = seaweedfs::get_object(&sw.client(), &bucket, &key).await;
        assert!(
            stored.as_deref() == Some(&job.body[..]),
            "{key}: S3 content differs"
        );
        assert!(*down == job.body, "{key}: download differs");
        ok += 2;
    }
    let relayed_out = sum_metric(&ports, "ftps_passive_relayed_total{direction=\"out\"}").await;
    let relayed_in = sum_metric(&ports, "ftps_passive_relayed_total{direction=\"in\"}").await;
    let transfers = jobs.len() * 2;
    eprintln!(
        "cluster table: require_session_reuse={reuse} replicas=3 balance=roundrobin \
         transfers={transfers} byte_exact={ok} relayed_data_connections={relayed_out} \
         (received by owners: {relayed_in})"
    );
    assert_eq!(ok, transfers);
    // Round-robin over three replicas sends about two thirds of data connections elsewhere.
    assert!(relayed_out > 0.0, "no data connection was relayed");
    assert_eq!(relayed_out, relayed_in, "every relayed connection arrived");
    drop(haproxy);
    for (p, _) in replicas {
        p.stop().await;
    }
}

#[tokio::test]
async fn three_replicas_round_robin_with_session_reuse() {
    three_replicas_round_robin(true).await;
}

#[tokio::test]
async fn three_replicas_round_robin_without_session_reuse() {
    three_replicas_round_robin(false).await;
}
