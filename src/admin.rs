//! The admin HTTP listener (`admin.listen`): `/healthz`, `/readyz` and `/metrics`, for
//! Kubernetes probes, load balancer health checks and Prometheus.
//!
//! - `/healthz`: 200 while the process serves HTTP at all (liveness).
//! - `/readyz`: 200 when this pod should get new sessions, else 503; the body says which
//!   check failed. Ready is about this process only: the FTP listeners are bound and accepting,
//!   the certificate is loaded (a changed certificate that did not load is shown, but the one in
//!   use still serves), and shutdown has not started (it fails at once on SIGTERM, while
//!   transfers drain, so the load balancer stops sending sessions). Storage is checked in the
//!   background every `admin.storage_check_interval_secs` and the probe reads the cached
//!   result (probes never cause S3 requests): its result is a line of the body and the
//!   `ftps_storage_up` metric, and makes the pod unready only when the operator opts in with
//!   `admin.readiness_storage_failures = N` (after N failed checks in a row). A storage outage
//!   hits every replica at once: gating on it by default would mark them all unready together,
//!   refusing new sessions and the next data connection of running ones cluster-wide.
//! - `/metrics`: every metric in the Prometheus text format ([`crate::metrics::render`]).
//!
//! hyper 1 directly rather than a web framework: three fixed GET routes need no router, and
//! hyper is already in the tree through the S3 client. The listener is bound with the FTP
//! listeners (a busy port stops the start, naming `admin.listen`) and stops after the
//! sessions have drained, so `/metrics` and `/readyz` stay up during the grace period.

use std::{
    convert::Infallible,
    fmt::Write as _,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, header, server::conn::http1, service::service_fn, Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{net::TcpListener, sync::Semaphore, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::background::Background;
use crate::metrics;

/// How long one storage check may take before it counts as failed.
const STORAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once (the port is for probes and a scraper, not the public).
const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// A storage reachability check: `Ok` when the store answers, else what went wrong.
pub type StorageProbe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// The last storage check.
#[derive(Clone, Debug)]
enum StorageState {
    NotChecked,
    Reachable {
        at: Instant,
    },
    Unreachable {
        at: Instant,
        error: String,
        /// Checks failed in a row, this one included.
        failures: u32,
    },
}

/// What `/readyz` reports. Parts are set by whoever knows them (the server when its listeners
/// accept, the TLS loader, the storage checks); draining follows the server's shutdown token.
#[derive(Debug)]
pub struct Readiness {
    listeners: AtomicBool,
    certificate: AtomicBool,
    /// Why the last changed certificate did not load (the previous one still serves); `None`
    /// once a changed one loads.
    certificate_reload_error: Mutex<Option<String>>,
    storage: Mutex<StorageState>,
    /// `admin.readiness_storage_failures`: unready after this many failed checks in a row;
    /// 0 never.
    storage_gate: AtomicU32,
    shutdown: CancellationToken,
}

/// The answer to `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    pub ready: bool,
    /// One line per check, for people reading the probe's output.
    pub text: String,
}

impl Readiness {
    /// Nothing ready yet; draining once `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Arc<Readiness> {
        Arc::new(Readiness {
            listeners: AtomicBool::new(false),
            certificate: AtomicBool::new(false),
            certificate_reload_error: Mutex::new(None),
            storage: Mutex::new(StorageState::NotChecked),
            storage_gate: AtomicU32::new(0),
            shutdown,
        })
    }

    /// Opt in to gating readiness on storage: unready after `failures` failed checks in a row
    /// (0: never, the default).
    pub fn set_storage_gate(&self, failures: u32) {
        self.storage_gate.store(failures, Ordering::Relaxed);
    }

    /// The FTP listeners are bound and their accept loops run.
    pub fn set_listeners_bound(&self, bound: bool) {
        self.listeners.store(bound, Ordering::Relaxed);
    }

    /// A usable certificate is loaded (a failed reload that keeps the old one leaves this on).
    pub fn set_certificate_loaded(&self, loaded: bool) {
        self.certificate.store(loaded, Ordering::Relaxed);
    }

    /// Records a certificate reload: `Err` when changed files did not load and the previous
    /// certificate stays in use (still ready: it serves), `Ok` when changed files were loaded.
    pub fn record_certificate_reload(&self, result: Result<(), String>) {
        *self
            .certificate_reload_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = result.err();
    }

    /// Records a storage check's result.
    pub fn record_storage(&self, result: Result<(), String>) {
        let at = Instant::now();
        let mut state = self.storage.lock().unwrap_or_else(|p| p.into_inner());
        let failures = match (&result, &*state) {
            (Ok(()), _) => 0,
            (Err(_), StorageState::Unreachable { failures, .. }) => failures.saturating_add(1),
            (Err(_), _) => 1,
        };
        metrics::storage_check(result.is_ok(), u64::from(failures));
        *state = match result {
            Ok(()) => StorageState::Reachable { at },
            Err(error) => StorageState::Unreachable {
                at,
                error,
                failures,
            },
        };
    }

    pub fn report(&self) -> ReadinessReport {
        let mut text = String::new();
        let mut ready = true;
        let mut line = |ok: bool, what: &str, detail: &str| {
            ready &= ok;
            let _ = writeln!(text, "{what}: {detail}");
        };
        let listeners = self.listeners.load(Ordering::Relaxed);
        line(
            listeners,
            "listeners",
            if listeners { "ok" } else { "not accepting yet" },
        );
        let certificate = self.certificate.load(Ordering::Relaxed);
        let reload_error = self
            .certificate_reload_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let detail = match (certificate, reload_error) {
            (false, _) => "not loaded".to_string(),
            (true, None) => "ok".to_string(),
            (true, Some(e)) => {
                format!("ok (changed files did not load, the previous certificate serves: {e})")
            }
        };
        line(certificate, "certificate", &detail);
        let storage = self
            .storage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let gate = self.storage_gate.load(Ordering::Relaxed);
        let gating = match gate {
            0 => "not gating readiness".to_string(),
            n => format!("unready after {n} in a row"),
        };
        match storage {
            StorageState::NotChecked => line(true, "storage", "not checked yet"),
            StorageState::Reachable { at } => line(
                true,
                "storage",
                &format!("ok (checked {} s ago)", at.elapsed().as_secs()),
            ),
            StorageState::Unreachable {
                at,
                error,
                failures,
            } => line(
                gate == 0 || failures < gate,
                "storage",
                &format!(
                    "unreachable (checked {} s ago, {failures} failed check(s) in a row, \
                     {gating}): {error}",
                    at.elapsed().as_secs()
                ),
            ),
        }
        let draining = self.shutdown.is_cancelled();
        line(
            !draining,
            "shutdown",
            if draining { "in progress" } else { "no" },
        );
        ReadinessReport {
            ready,
            text: format!("{}\n{text}", if ready { "ready" } else { "not ready" }),
        }
    }

    /// Runs `probe` now and then every `interval` until `stop`, recording each result. A
    /// failure is logged when the state changes, not at every check.
    pub fn spawn_storage_checks(
        self: &Arc<Self>,
        probe: StorageProbe,
        interval: Duration,
        stop: CancellationToken,
        background: &Background,
    ) -> JoinHandle<()> {
        let readiness = self.clone();
        background.spawn(async move {
            let mut was_ok = None;
            loop {
                let result = tokio::select! {
                    r = tokio::time::timeout(STORAGE_CHECK_TIMEOUT, probe()) => match r {
                        Ok(r) => r,
                        Err(_) => Err(format!(
                            "no answer within {} s",
                            STORAGE_CHECK_TIMEOUT.as_secs()
                        )),
                    },
                    _ = stop.cancelled() => return,
                };
                match (&result, was_ok) {
                    (Ok(()), Some(false)) => info!("storage check: reachable again"),
                    (Err(e), None | Some(true)) => warn!(error = %e, "storage check failed"),
                    _ => {}
                }
                was_ok = Some(result.is_ok());
                readiness.record_storage(result);
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.cancelled() => return,
                }
            }
        })
    }
}

/// The admin listener, bound and not yet serving.
pub struct AdminServer {
    listener: TcpListener,
}

impl AdminServer {
    pub async fn bind(addr: SocketAddr) -> io::Result<AdminServer> {
        Ok(AdminServer {
            listener: TcpListener::bind(addr).await?,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop`, then lets requests in progress finish (briefly).
    pub async fn serve(self, readiness: Arc<Readiness>, stop: CancellationToken) {
        if let Some(addr) = self.local_addr() {
            info!(%addr, "admin listener (/healthz, /readyz, /metrics)");
        }
        let connections = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = stop.cancelled() => break,
            };
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = stop.cancelled() => break,
            };
            let tcp = match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let readiness = readiness.clone();
            let stop = stop.clone();
            connections.spawn(async move {
                let _permit = permit;
                let service = service_fn(move |req| {
                    let readiness = readiness.clone();
                    async move { Ok::<_, Infallible>(respond(&req, &readiness)) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(tcp), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        match tokio::time::timeout(Duration::from_secs(1), conn.as_mut()).await {
                            Ok(r) => r,
                            Err(_) => Ok(()),
                        }
                    }
                };
                if let Err(e) = result {
                    debug!(error = %e, "admin connection ended");
                }
            });
        }
        connections.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), connections.wait()).await;
    }
}

type Response = hyper::Response<Full<Bytes>>;

fn respond(req: &Request<Incoming>, readiness: &Readiness) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(405, "method not allowed\n".to_string());
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/healthz" => text(200, "ok\n".to_string()),
        "/readyz" => {
            let report = readiness.report();
            text(if report.ready { 200 } else { 503 }, report.text)
        }
        "/metrics" => {
            let mut r = text(200, metrics::render());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(metrics::PROMETHEUS_CONTENT_TYPE),
            );
            r
        }
        _ => text(
            404,
            "not found: try /healthz, /readyz or /metrics\n".to_string(),
        ),
    }
}

fn text(status: u16, body: String) -> Response {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let shutdown = CancellationToken::new();
        let r = Readiness::new(shutdown.clone());
        assert!(!r.report().ready);
        r.set_listeners_bound(true);
        r.set_certificate_loaded(true);
        let report = r.report();
        assert!(report.ready, "{}", report.text);
        assert!(
            report.text.contains("storage: not checked yet"),
            "{}",
            report.text
        );
        r.record_storage(Ok(()));
        let report = r.report();
        assert!(report.ready, "{}", report.text);
        assert!(report.text.starts_with("ready\n"), "{}", report.text);
        // Storage is reported, and does not gate readiness by default.
        r.record_storage(Err("NoSuchBucket".into()));
        r.record_storage(Err("NoSuchBucket".into()));
        let report = r.report();
        assert!(report.ready, "{}", report.text);
        assert!(
            report
                .text
                .contains("2 failed check(s) in a row, not gating")
                && report.text.contains("NoSuchBucket"),
            "{}",
            report.text
        );
        r.record_storage(Ok(()));
        // A failed certificate reload is reported but does not make the server unready.
        r.record_certificate_reload(Err("tls.key_file: no usable PEM private key".into()));
        let report = r.report();
        assert!(report.ready, "{}", report.text);
        assert!(
            report
                .text
                .contains("certificate: ok (changed files did not load")
                && report.text.contains("tls.key_file"),
            "{}",
            report.text
        );
        r.record_certificate_reload(Ok(()));
        assert!(r.report().text.contains("certificate: ok\n"));
        shutdown.cancel();
        let report = r.report();
        assert!(!report.ready);
        assert!(
            report.text.contains("shutdown: in progress"),
            "{}",
            report.text
        );
    }

    #[test]
    fn storage_gates_readiness_only_after_n_failures_in_a_row_when_opted_in() {
        let r = Readiness::new(CancellationToken::new());
        r.set_listeners_bound(true);
        r.set_certificate_loaded(true);
        r.set_storage_gate(3);
        for _ in 0..2 {
            r.record_storage(Err("timeout".into()));
            assert!(r.report().ready, "{}", r.report().text);
        }
        r.record_storage(Err("timeout".into()));
        let report = r.report();
        assert!(!report.ready, "{}", report.text);
        assert!(
            report
                .text
                .contains("3 failed check(s) in a row, unready after 3"),
            "{}",
            report.text
        );
        // One success resets the count.
        r.record_storage(Ok(()));
        r.record_storage(Err("timeout".into()));
        assert!(r.report().ready, "{}", r.report().text);
    }

    #[tokio::test]
    async fn storage_checks_repeat_and_stop() {
        let r = Readiness::new(CancellationToken::new());
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = calls.clone();
        let probe: StorageProbe = Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    Ok(())
                } else {
                    Err("down".to_string())
                }
            })
        });
        let stop = CancellationToken::new();
        let task = r.spawn_storage_checks(
            probe,
            Duration::from_millis(20),
            stop.clone(),
            &Background::new(),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.cancel();
        task.await.expect("check task");
        assert!(calls.load(Ordering::SeqCst) >= 2);
        assert!(r.report().text.contains("storage: unreachable"));
        let text = metrics::render();
        assert!(text.contains("ftps_storage_up"), "{text}");
    }
}
