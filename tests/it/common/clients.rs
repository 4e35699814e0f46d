//! Running the independent FTPS clients (curl, lftp, Python ftplib) as child processes, each
//! bounded in time and killed if it overruns (no hung test, no orphan process).

use std::{net::SocketAddr, path::Path, process::Output, time::Duration};

use tokio::process::Command;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// Explicit (AUTH TLS on the plain port) or implicit (TLS from the first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Explicit,
    Implicit,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Explicit => "explicit",
            Mode::Implicit => "implicit",
        }
    }
}

/// Runs `cmd` to completion (or kills it after the timeout) and returns its output.
pub async fn run(mut cmd: Command) -> Output {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    let desc = format!("{cmd:?}");
    match tokio::time::timeout(CLIENT_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("cannot run {desc}: {e} (run scripts/install-test-deps.sh)"),
        Err(_) => panic!("{desc} did not finish within {CLIENT_TIMEOUT:?}"),
    }
}

/// Panics with the client's output unless it succeeded.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ftp://host:port` (explicit) or `ftps://host:port` (implicit).
pub fn url(mode: Mode, addr: SocketAddr) -> String {
    match mode {
        Mode::Explicit => format!("ftp://{addr}"),
        Mode::Implicit => format!("ftps://{addr}"),
    }
}

/// curl with TLS required on both channels and the test certificate trusted blindly.
pub fn curl(user: &str, password: &str) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "-k", "--ssl-reqd", "--max-time", "100"])
        .arg("-u")
        .arg(format!("{user}:{password}"));
    c
}

/// lftp running `script` after the settings that make it strict (no silent retries).
pub fn lftp(mode: Mode, addr: SocketAddr, user: &str, password: &str, script: &str) -> Command {
    let mut c = Command::new("lftp");
    c.arg("-c").arg(format!(
        "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 30; \
         set ssl:verify-certificate no; set ftp:ssl-force yes; set ftp:ssl-protect-data yes; \
         open -u {user},{password} {}; {script}",
        url(mode, addr)
    ));
    c
}

/// The Python ftplib client (`tests/clients/ftps_client.py`) running `steps`.
pub fn python(mode: Mode, addr: SocketAddr, user: &str, password: &str, steps: &[&str]) -> Command {
    python_with(mode, addr, user, password, &[], steps)
}

/// As [`python`], with extra options (`--active`, `--tls-max 1.2`, …) before the steps.
pub fn python_with(
    mode: Mode,
    addr: SocketAddr,
    user: &str,
    password: &str,
    options: &[&str],
    steps: &[&str],
) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ftps_client.py");
    let mut c = Command::new("python3");
    c.arg(script)
        .args(["--mode", mode.name(), "--host"])
        .arg(addr.ip().to_string())
        .arg("--port")
        .arg(addr.port().to_string())
        .args([
            "--user",
            user,
            "--password",
            password,
            "--insecure",
            "--reuse-session",
        ])
        .args(options)
        .args(steps);
    c
}

/// Random bytes that are not all one value (so a misplaced range shows).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    for b in v.iter_mut() {
        // xorshift: fast, deterministic per length, good enough for test data.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    v
}
