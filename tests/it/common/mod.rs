//! Fixtures shared by every integration test module.
//!
//! - [`seaweedfs`]: the real S3 server (SeaweedFS `weed mini`), started once per test binary;
//!   each test takes its own bucket from it.
//! - [`server`]: a real ftps-s3 server per test, on that SeaweedFS.
//! - [`duplex`]: sessions over in-memory pipes on the in-memory store, no listener, for the
//!   session's rules and (on the paused clock) its timeouts.
//! - [`clients`]: curl, lftp and Python ftplib as child processes; [`raw`]: a line-level client.
//! - [`pki`]: a throwaway CA issuing client certificates; [`logs`]: the server's log lines.
//! - [`faultproxy`]: an HTTP fault injector between a server and SeaweedFS; [`http`]: a GET for
//!   the admin listener.

pub mod binary;
pub mod clients;
pub mod duplex;
pub mod faultproxy;
pub mod http;
pub mod logs;
pub mod pki;
pub mod raw;
pub mod seaweedfs;
pub mod server;
pub mod users;

/// A block of `len` ports free on every one of `ips` (loopback addresses). Taken below Linux's
/// ephemeral range (32768+), which other tests' servers and clients use, so nothing else grabs
/// them between this probe and the binds.
pub fn free_port_block(ips: &[&str], len: u16) -> u16 {
    let seed = u64::from(std::process::id())
        ^ u64::from(
            std::time::UNIX_EPOCH
                .elapsed()
                .map(|d| d.subsec_nanos())
                .unwrap_or(0),
        );
    for attempt in 0..200u64 {
        let base = 20_000 + ((seed + attempt * 7919) % 12_000) as u16;
        let all_free = ips.iter().all(|ip| {
            (base..base + len).all(|port| std::net::TcpListener::bind((*ip, port)).is_ok())
        });
        if all_free {
            return base;
        }
    }
    panic!("no block of {len} free ports in 20000-32000 on {ips:?}");
}

/// The SHA-256 of `data` in lowercase hex, as the server records and reports it (HASH, audit).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Says loudly that a test could not run. The harness captures `eprintln!` of passing tests, so
/// a skip printed that way is never seen; this writes to the process's stderr directly.
pub fn skipped(test: &str, reason: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {reason}");
}
