//! The global upload memory budget (`limits.upload_memory_mib`): many uploads at once through a
//! budget of two parts all arrive byte-exact, none fails, they wait for buffers instead, and the
//! budget in use (`ftps_upload_memory_in_use_bytes`) never goes above it.
//!
//! The server is the real binary in a process of its own: metrics are per process, and the other
//! tests of this binary upload at the same time.

use std::time::Duration;

use crate::admin::metric;
use crate::common::{
    clients::{self, assert_ok, curl, random_bytes},
    http,
    server::{PASSWORD, USER},
};
use crate::faults::Binary;

const MIB: usize = 1024 * 1024;

/// 6 curl uploads of 16 MiB at once (5 MiB parts, 2 in flight each: 20 MiB per upload without a
/// budget) through a budget of 10 MiB = 2 parts. A 3 s data idle timeout also shows that an
/// upload waiting for the budget is not taken for a stalled client.
#[tokio::test]
async fn concurrent_uploads_wait_for_the_budget_and_all_arrive() {
    let bin = Binary::start_with(
        5,
        0,
        None,
        &[],
        "[limits]\nupload_memory_mib = 10\ndata_idle_timeout_secs = 3\n",
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let uploads = 6;
    let mut bodies = Vec::new();
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..uploads {
        let body = random_bytes(16 * MIB);
        let src = dir.path().join(format!("f{i}.bin"));
        std::fs::write(&src, &body).expect("write");
        bodies.push(body);
        let mut up = curl(USER, PASSWORD);
        up.arg("-T")
            .arg(&src)
            .arg(format!("ftp://{}/budget-{i}.bin", bin.explicit));
        clients.spawn(async move { (i, clients::run(up).await) });
    }
    // Sample the budget in use while the uploads run.
    let mut peak = 0.0f64;
    let mut samples = 0;
    while !clients.is_empty() {
        let (code, text) = http::get(bin.admin, "/metrics").await;
        assert_eq!(code, 200);
        let in_use = metric(&text, "ftps_upload_memory_in_use_bytes")
            .unwrap_or_else(|| panic!("no ftps_upload_memory_in_use_bytes:\n{text}"));
        peak = peak.max(in_use);
        samples += 1;
        tokio::select! {
            Some(done) = clients.join_next() => {
                let (i, out) = done.expect("client task");
                assert_ok(&out, &format!("upload {i}"));
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    for (i, body) in bodies.iter().enumerate() {
        let stored = bin
            .object(&bin.key(&format!("budget-{i}.bin")))
            .await
            .unwrap_or_else(|| panic!("budget-{i}.bin not stored"));
        assert!(stored == *body, "budget-{i}.bin differs from what was sent");
    }
    let (_, text) = http::get(bin.admin, "/metrics").await;
    let limit = metric(&text, "ftps_upload_memory_limit_bytes").expect("limit metric");
    let waits = metric(&text, "ftps_upload_memory_waits_total").expect("waits metric");
    let after = metric(&text, "ftps_upload_memory_in_use_bytes").expect("in-use metric");
    eprintln!(
        "budget {limit} B: peak in use {peak} B over {samples} samples, {waits} waits, {after} B after"
    );
    assert_eq!(limit, (10 * MIB) as f64);
    assert!(peak > 0.0, "the budget in use was never seen above 0");
    assert!(
        peak <= limit,
        "budget in use {peak} B above the budget {limit} B"
    );
    assert!(
        waits >= 1.0,
        "6 uploads through 2 parts never waited: the budget was not used"
    );
    assert_eq!(after, 0.0, "reservations left after every upload ended");
}
