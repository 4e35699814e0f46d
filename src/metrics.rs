//! Metrics: one OpenTelemetry `SdkMeterProvider` is the single source of truth, read by the
//! Prometheus exporter behind the admin listener's `/metrics` ([`render`]) and, when an OTLP
//! endpoint is configured, by a periodic OTLP reader ([`crate::telemetry::init`] installs it).
//!
//! The rest of the server calls the small typed API below (`session_started`, `login`,
//! `transfer_finished`, …); nothing outside this file names an instrument. Label values are
//! `&'static str` wherever they come from the server's own vocabulary (commands, results,
//! listeners), so a client can never create new time series.
//!
//! Instrument names are chosen so that both paths give the same Prometheus names: the
//! Prometheus exporter and Prometheus' own OTLP receiver both turn `ftps.transfer.duration`
//! with unit `s` into `ftps_transfer_duration_seconds` and counter `ftps.logins` into
//! `ftps_logins_total`. README "Observability" lists every metric.
//!
//! [`s3_interceptor`] measures every S3 operation (duration, errors) and gives it a child
//! tracing span; `vfs::s3` attaches it to the SDK client.

use std::{
    borrow::Cow,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use aws_sdk_s3::config::{
    interceptors::{BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef},
    ConfigBag, Intercept, RuntimeComponents,
};
use aws_smithy_runtime_api::{box_error::BoxError, client::orchestrator::Metadata};
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use opentelemetry::{
    metrics::{Counter, Gauge, Histogram, MeterProvider as _, UpDownCounter},
    KeyValue,
};
use opentelemetry_sdk::metrics::{MeterProviderBuilder, SdkMeterProvider};
use prometheus::{Encoder, TextEncoder};

/// Content type of [`render`]'s output (Prometheus text exposition format 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Transfer durations: 10 ms to an hour.
const TRANSFER_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
    3600.0,
];
/// S3 request durations: 5 ms to a minute (an `UploadPart` of a large part takes seconds).
const S3_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

struct Metrics {
    /// Kept so the provider (and its readers) live as long as the process; `install` hands a
    /// clone to the telemetry guard for the final flush.
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    sessions_active: UpDownCounter<i64>,
    sessions: Counter<u64>,
    logins: Counter<u64>,
    transfers: Counter<u64>,
    transfer_bytes: Counter<u64>,
    transfer_duration: Histogram<f64>,
    s3_duration: Histogram<f64>,
    s3_errors: Counter<u64>,
    passive_ports: UpDownCounter<i64>,
    passive_refused: Counter<u64>,
    passive_relayed: Counter<u64>,
    reloads: Counter<u64>,
    storage_up: Gauge<u64>,
    storage_failures: Gauge<u64>,
    storage_checks: Counter<u64>,
    upload_memory_limit: Gauge<u64>,
    upload_memory_in_use: UpDownCounter<i64>,
    upload_memory_waits: Counter<u64>,
    quota_refusals: Counter<u64>,
    events_queued: UpDownCounter<i64>,
    events_delivered: Counter<u64>,
    events_failed: Counter<u64>,
    events_dropped: Counter<u64>,
    events_retries: Counter<u64>,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The metrics were already in use when [`install`] was called: the extra readers (OTLP) are
/// not attached.
#[derive(Debug, thiserror::Error)]
#[error("metrics were already initialised; the OTLP metric reader could not be attached")]
pub struct AlreadyInstalled;

/// Builds the meter provider with the Prometheus reader plus whatever `configure` adds (the
/// OTLP periodic reader, a resource), and makes it the one every function here records to.
/// Call once, before the first metric is recorded; returns a handle for shutdown (flush).
pub(crate) fn install(
    configure: impl FnOnce(MeterProviderBuilder) -> MeterProviderBuilder,
) -> Result<SdkMeterProvider, AlreadyInstalled> {
    let mut installed = None;
    METRICS.get_or_init(|| {
        let m = Metrics::new(configure);
        installed = Some(m.provider.clone());
        m
    });
    installed.ok_or(AlreadyInstalled)
}

/// The metrics, with a Prometheus-only provider if [`install`] was never called (tests, tools).
fn get() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics::new(|b| b))
}

impl Metrics {
    fn new(configure: impl FnOnce(MeterProviderBuilder) -> MeterProviderBuilder) -> Metrics {
        let registry = prometheus::Registry::new();
        let prometheus = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .without_target_info()
            .scope_info_enabled(false)
            .build();
        let mut builder = SdkMeterProvider::builder();
        match prometheus {
            Ok(reader) => builder = builder.with_reader(reader),
            // Only fails when the registry refuses the collector, which a fresh one never does.
            Err(e) => tracing::error!(error = %e, "Prometheus metrics exporter unavailable"),
        }
        let provider = configure(builder).build();
        let meter = provider.meter("ftps-s3");
        let m = Metrics {
            sessions_active: meter
                .i64_up_down_counter("ftps.sessions.active")
                .with_description("Control connections open now")
                .with_unit("{session}")
                .build(),
            sessions: meter
                .u64_counter("ftps.sessions")
                .with_description("Control connections accepted")
                .with_unit("{session}")
                .build(),
            logins: meter
                .u64_counter("ftps.logins")
                .with_description("Login attempts (PASS), by result")
                .with_unit("{login}")
                .build(),
            transfers: meter
                .u64_counter("ftps.transfers")
                .with_description("Data transfers (RETR, STOR, listings), by command and result")
                .with_unit("{transfer}")
                .build(),
            transfer_bytes: meter
                .u64_counter("ftps.transfer")
                .with_description("Bytes moved over data connections, by direction")
                .with_unit("By")
                .build(),
            transfer_duration: meter
                .f64_histogram("ftps.transfer.duration")
                .with_description("Data transfer duration, from 150 to the final reply")
                .with_unit("s")
                .with_boundaries(TRANSFER_BUCKETS.to_vec())
                .build(),
            s3_duration: meter
                .f64_histogram("ftps.s3.request.duration")
                .with_description("S3 operation duration, retries included, by operation")
                .with_unit("s")
                .with_boundaries(S3_BUCKETS.to_vec())
                .build(),
            s3_errors: meter
                .u64_counter("ftps.s3.errors")
                .with_description(
                    "S3 operations that failed, by operation and status \
                     (HTTP status code, or timeout / connect / other)",
                )
                .with_unit("{error}")
                .build(),
            passive_ports: meter
                .i64_up_down_counter("ftps.passive_ports.in_use")
                .with_description("Passive data ports held by sessions now")
                .with_unit("{port}")
                .build(),
            passive_refused: meter
                .u64_counter("ftps.passive.refused")
                .with_description("PASV/EPSV answered 425: no port free for the client's address")
                .with_unit("{command}")
                .build(),
            passive_relayed: meter
                .u64_counter("ftps.passive.relayed")
                .with_description(
                    "Data connections relayed between replicas (cluster mode), by direction: \
                     out (to the port's owner), in (from another replica)",
                )
                .with_unit("{connection}")
                .build(),
            reloads: meter
                .u64_counter("ftps.reloads")
                .with_description(
                    "Reloads of changed files (certificate, users), by file and result",
                )
                .with_unit("{reload}")
                .build(),
            storage_up: meter
                .u64_gauge("ftps.storage.up")
                .with_description(
                    "1 when the last background storage check (S3: list the bucket) succeeded, \
                     else 0",
                )
                .build(),
            storage_failures: meter
                .u64_gauge("ftps.storage.consecutive_failures")
                .with_description("Storage checks failed in a row (0 after a success)")
                .with_unit("{check}")
                .build(),
            storage_checks: meter
                .u64_counter("ftps.storage.checks")
                .with_description("Background storage checks, by result")
                .with_unit("{check}")
                .build(),
            upload_memory_limit: meter
                .u64_gauge("ftps.upload_memory.limit")
                .with_description("The upload memory budget (limits.upload_memory_mib)")
                .with_unit("By")
                .build(),
            upload_memory_in_use: meter
                .i64_up_down_counter("ftps.upload_memory.in_use")
                .with_description("Part buffers reserved by uploads now, of the budget")
                .with_unit("By")
                .build(),
            upload_memory_waits: meter
                .u64_counter("ftps.upload_memory.waits")
                .with_description(
                    "Times an upload stopped reading its data connection to wait for a part \
                     buffer (the upload memory budget was exhausted)",
                )
                .with_unit("{wait}")
                .build(),
            quota_refusals: meter
                .u64_counter("ftps.quota.refusals")
                .with_description(
                    "Uploads refused (552) by a user's quota_bytes or quota_files, before they started or during the transfer",
                )
                .with_unit("{upload}")
                .build(),
            events_queued: meter
                .i64_up_down_counter("ftps.events.queued")
                .with_description("Upload events waiting in memory to be sent to the webhook")
                .with_unit("{event}")
                .build(),
            events_delivered: meter
                .u64_counter("ftps.events.delivered")
                .with_description("Upload events the webhook accepted (2xx)")
                .with_unit("{event}")
                .build(),
            events_failed: meter
                .u64_counter("ftps.events.failed")
                .with_description("Upload events given up on after events.max_attempts")
                .with_unit("{event}")
                .build(),
            events_dropped: meter
                .u64_counter("ftps.events.dropped")
                .with_description(
                    "Upload events never sent: the queue was full, or still queued at shutdown",
                )
                .with_unit("{event}")
                .build(),
            events_retries: meter
                .u64_counter("ftps.events.retries")
                .with_description("Failed webhook attempts that were retried")
                .with_unit("{attempt}")
                .build(),
            provider,
            registry,
        };
        // Series that exist from the start (0 rather than absent), for alerts and dashboards.
        for listener in ["explicit", "implicit"] {
            m.sessions_active
                .add(0, &[KeyValue::new("listener", listener)]);
            m.sessions.add(0, &[KeyValue::new("listener", listener)]);
        }
        for result in ["ok", "failed", "refused"] {
            m.logins.add(0, &[KeyValue::new("result", result)]);
        }
        for direction in [Direction::Upload, Direction::Download] {
            m.transfer_bytes.add(0, &[direction.label()]);
        }
        m.passive_ports.add(0, &[]);
        m.passive_refused.add(0, &[]);
        for direction in ["in", "out"] {
            m.passive_relayed
                .add(0, &[KeyValue::new("direction", direction)]);
        }
        m.upload_memory_in_use.add(0, &[]);
        m.upload_memory_waits.add(0, &[]);
        for quota in ["quota_bytes", "quota_files"] {
            for when in ["start", "transfer"] {
                m.quota_refusals.add(
                    0,
                    &[KeyValue::new("quota", quota), KeyValue::new("when", when)],
                );
            }
        }
        for file in ["certificate", "users"] {
            for result in ["ok", "failed"] {
                m.reloads.add(
                    0,
                    &[KeyValue::new("file", file), KeyValue::new("result", result)],
                );
            }
        }
        for result in ["ok", "failed"] {
            m.storage_checks.add(0, &[KeyValue::new("result", result)]);
        }
        m.events_queued.add(0, &[]);
        for c in [
            &m.events_delivered,
            &m.events_failed,
            &m.events_dropped,
            &m.events_retries,
        ] {
            c.add(0, &[]);
        }
        m
    }
}

/// Every metric in the Prometheus text format, for `/metrics`.
pub fn render() -> String {
    let families = get().registry.gather();
    let mut out = Vec::new();
    match TextEncoder::new().encode(&families, &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(e) => format!("# error encoding metrics: {e}\n"),
    }
}

// --- Sessions and logins. ---

/// A control connection counted in `ftps_sessions_active`; dropping it counts it out.
#[must_use = "the session stops being counted when the guard is dropped"]
#[derive(Debug)]
pub struct SessionGuard {
    listener: &'static str,
}

/// A control connection was accepted on `listener` (`"explicit"` or `"implicit"`). Keep the
/// guard for the session's lifetime.
pub fn session_started(listener: &'static str) -> SessionGuard {
    let m = get();
    let attrs = [KeyValue::new("listener", listener)];
    m.sessions.add(1, &attrs);
    m.sessions_active.add(1, &attrs);
    SessionGuard { listener }
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        get()
            .sessions_active
            .add(-1, &[KeyValue::new("listener", self.listener)]);
    }
}

/// A login attempt (PASS) ended: `result` is `"ok"`, `"failed"` (wrong password, unknown
/// user) or `"refused"` (turned away whatever the password: throttled, address not allowed,
/// over a session limit).
pub fn login(result: &'static str) {
    get().logins.add(1, &[KeyValue::new("result", result)]);
}

// --- Transfers. ---

/// Which way bytes went over a data connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (STOR, APPE).
    Upload,
    /// Server to client (RETR, and listings: LIST, NLST, MLSD).
    Download,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }

    /// The direction of a transfer command's bytes.
    pub fn of_command(command: &str) -> Direction {
        match command {
            "STOR" | "APPE" | "STOU" => Direction::Upload,
            _ => Direction::Download,
        }
    }

    fn label(self) -> KeyValue {
        KeyValue::new("direction", self.as_str())
    }
}

/// A transfer ended (after its final reply was chosen). `command` is the verb (`"RETR"`,
/// `"STOR"`, `"LIST"`, …), `result` `"ok"`, `"aborted"` or `"failed"`, `bytes` what moved over
/// the data connection (the session passes 0 for transfers that did not complete). Counts the
/// transfer, observes its duration and adds `bytes` to `ftps_transfer_bytes_total` in the
/// command's [`Direction`].
pub fn transfer_finished(
    command: &'static str,
    result: &'static str,
    bytes: u64,
    duration: Duration,
) {
    let m = get();
    let command_label = KeyValue::new("command", command);
    m.transfers
        .add(1, &[command_label.clone(), KeyValue::new("result", result)]);
    m.transfer_duration
        .record(duration.as_secs_f64(), &[command_label]);
    if bytes > 0 {
        m.transfer_bytes
            .add(bytes, &[Direction::of_command(command).label()]);
    }
}

// --- Passive ports. ---

/// A PASV/EPSV was refused (`ftps_passive_refused_total`).
pub fn passive_refused() {
    get().passive_refused.add(1, &[]);
}

/// A data connection relayed to its owner (`"out"`) or from another replica (`"in"`).
pub fn passive_relayed(direction: &'static str) {
    get()
        .passive_relayed
        .add(1, &[KeyValue::new("direction", direction)]);
}

/// A passive data port bound, counted in `ftps_passive_ports_in_use` until dropped.
#[must_use = "the port stops being counted when the guard is dropped"]
#[derive(Debug)]
pub struct PassivePortGuard(());

/// A passive port was taken from the pool; keep the guard as long as the port is held.
pub fn passive_port_acquired() -> PassivePortGuard {
    get().passive_ports.add(1, &[]);
    PassivePortGuard(())
}

impl Drop for PassivePortGuard {
    fn drop(&mut self) {
        get().passive_ports.add(-1, &[]);
    }
}

// --- The upload memory budget (`vfs::budget`). ---

/// The budget's size (`ftps_upload_memory_limit_bytes`).
pub fn upload_memory_limit(bytes: u64) {
    get().upload_memory_limit.record(bytes, &[]);
}

/// Part buffers reserved (positive) or given back (`ftps_upload_memory_in_use_bytes`).
pub fn upload_memory_changed(delta: i64) {
    get().upload_memory_in_use.add(delta, &[]);
}

/// An upload waits for a part buffer (`ftps_upload_memory_waits_total`).
pub fn upload_memory_wait() {
    get().upload_memory_waits.add(1, &[]);
}

/// An upload refused by `quota` (`quota_bytes`, `quota_files`) before it started or during
/// the transfer (`when`: `start`, `transfer`): `ftps_quota_refusals_total`.
pub fn quota_refused(quota: &'static str, when: &'static str) {
    get().quota_refusals.add(
        1,
        &[KeyValue::new("quota", quota), KeyValue::new("when", when)],
    );
}

// --- Reloads. ---

/// A changed `file` (`"certificate"`: certificate, key and client CA bundle; `"users"`) was
/// put in use (`"ok"`) or refused, keeping the old one (`"failed"`).
pub fn reload(file: &'static str, result: &'static str) {
    get().reloads.add(
        1,
        &[KeyValue::new("file", file), KeyValue::new("result", result)],
    );
}

// --- Storage health. ---

/// A background storage check ended; `consecutive_failures` is 0 after a success.
pub fn storage_check(ok: bool, consecutive_failures: u64) {
    let m = get();
    m.storage_up.record(u64::from(ok), &[]);
    m.storage_failures.record(consecutive_failures, &[]);
    m.storage_checks.add(
        1,
        &[KeyValue::new("result", if ok { "ok" } else { "failed" })],
    );
}

// --- Upload events (`events`). ---

/// An event entered the queue.
pub fn event_queued() {
    get().events_queued.add(1, &[]);
}

/// The sender took an event off the queue.
pub fn event_dequeued() {
    get().events_queued.add(-1, &[]);
}

/// The webhook accepted an event.
pub fn event_delivered() {
    get().events_delivered.add(1, &[]);
}

/// An event was given up on after its last attempt.
pub fn event_failed() {
    get().events_failed.add(1, &[]);
}

/// An event was never sent (queue full, or still queued at shutdown).
pub fn event_dropped() {
    get().events_dropped.add(1, &[]);
}

/// An attempt failed and will be retried.
pub fn event_retried() {
    get().events_retries.add(1, &[]);
}

// --- S3. ---

/// One S3 operation ended (retries included). `status` says why it failed (see
/// [`S3Interceptor`]); `None` for success.
pub fn s3_request(operation: &str, duration: Duration, status: Option<&str>) {
    let m = get();
    let op = KeyValue::new("operation", operation.to_string());
    m.s3_duration
        .record(duration.as_secs_f64(), std::slice::from_ref(&op));
    if let Some(status) = status {
        m.s3_errors
            .add(1, &[op, KeyValue::new("status", status.to_string())]);
    }
}

/// The interceptor to attach to the S3 client:
/// `aws_sdk_s3::config::Builder::interceptor(crate::metrics::s3_interceptor())`.
pub fn s3_interceptor() -> S3Interceptor {
    S3Interceptor
}

/// Measures every S3 operation of the client it is attached to: `ftps_s3_request_duration_seconds`
/// and `ftps_s3_errors_total`, and an `s3` tracing span (an OpenTelemetry client span named
/// `S3.<Operation>`) that is a child of the caller's span (session, command).
///
/// Error `status`: the HTTP status code when S3 answered (`"404"` includes HeadObject on a
/// missing key, which is how a `stat` learns that a file does not exist), else `"timeout"`,
/// `"connect"` or `"other"`.
#[derive(Clone, Copy, Debug, Default)]
pub struct S3Interceptor;

/// What `read_before_execution` leaves for `read_after_execution`.
#[derive(Debug)]
struct S3Call {
    operation: Cow<'static, str>,
    started: Instant,
    /// Taken (and so closed) when the operation ends.
    span: Mutex<Option<tracing::Span>>,
}

impl Storable for S3Call {
    type Storer = StoreReplace<Self>;
}

impl Intercept for S3Interceptor {
    fn name(&self) -> &'static str {
        "ftps_s3_metrics"
    }

    // Not `read_before_execution`: client interceptors run that before the operation's own
    // configuration (which names the operation) is applied. Serialization comes right after,
    // once per operation (retries repeat only the attempts).
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation: Cow<'static, str> = match cfg.load::<Metadata>() {
            Some(m) => Cow::Owned(m.name().to_string()),
            None => Cow::Borrowed("unknown"),
        };
        let span = tracing::info_span!(
            "s3",
            otel.name = %format_args!("S3.{operation}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "aws-api",
            rpc.service = "S3",
            rpc.method = %operation,
            http.response.status_code = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
        );
        cfg.interceptor_state().store_put(S3Call {
            operation,
            started: Instant::now(),
            span: Mutex::new(Some(span)),
        });
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(call) = cfg.load::<S3Call>() else {
            return Ok(());
        };
        let http_status = context.response().map(|r| r.status().as_u16());
        let status: Option<Cow<'static, str>> = match context.output_or_error() {
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(match http_status {
                Some(code) => Cow::Owned(code.to_string()),
                None if e.is_timeout_error() => Cow::Borrowed("timeout"),
                None if e.is_connector_error() => Cow::Borrowed("connect"),
                None => Cow::Borrowed("other"),
            }),
            None => Some(Cow::Borrowed("other")),
        };
        s3_request(&call.operation, call.started.elapsed(), status.as_deref());
        let span = call.span.lock().ok().and_then(|mut s| s.take());
        if let Some(span) = span {
            if let Some(code) = http_status {
                span.record("http.response.status_code", code);
            }
            if let Some(status) = &status {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", status.as_ref());
            }
            // Dropping the last handle closes the span: its end time is now.
            drop(span);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `name{labels}` (labels as rendered, in the exporter's order).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn recorded_values_reach_the_prometheus_text() {
        let before = render();
        let logins_ok = value(&before, "ftps_logins_total{result=\"ok\"}").unwrap_or(0.0);
        let uploaded = value(&before, "ftps_transfer_bytes_total{direction=\"upload\"}")
            .expect("zero series exist from the start");

        let reloads = value(
            &before,
            "ftps_reloads_total{file=\"users\",result=\"failed\"}",
        )
        .expect("zero series exist from the start");
        login("ok");
        reload("users", "failed");
        let session = session_started("explicit");
        transfer_finished("STOR", "ok", 1234, Duration::from_millis(30));
        s3_request("HeadObject", Duration::from_millis(3), Some("404"));
        let port = passive_port_acquired();

        let text = render();
        assert!(
            value(&text, "ftps_logins_total{result=\"ok\"}").expect("logins") >= logins_ok + 1.0,
            "{text}"
        );
        assert!(
            value(&text, "ftps_transfer_bytes_total{direction=\"upload\"}").expect("bytes")
                >= uploaded + 1234.0
        );
        assert!(
            value(
                &text,
                "ftps_reloads_total{file=\"users\",result=\"failed\"}"
            )
            .expect("reloads")
                >= reloads + 1.0,
            "{text}"
        );
        assert!(
            value(
                &text,
                "ftps_transfers_total{command=\"STOR\",result=\"ok\"}"
            )
            .expect("transfers")
                >= 1.0
        );
        assert!(
            text.contains("ftps_transfer_duration_seconds_bucket{command=\"STOR\",le=\"0.05\"}")
        );
        assert!(text.contains("ftps_s3_request_duration_seconds_count{operation=\"HeadObject\"}"));
        assert!(
            value(
                &text,
                "ftps_s3_errors_total{operation=\"HeadObject\",status=\"404\"}"
            )
            .expect("s3 errors")
                >= 1.0
        );
        assert!(
            value(&text, "ftps_sessions_active{listener=\"explicit\"}").expect("active") >= 1.0
        );
        assert!(value(&text, "ftps_passive_ports_in_use").expect("ports") >= 1.0);
        assert!(
            value(&text, "ftps_passive_refused_total").is_some(),
            "{text}"
        );
        for name in [
            "# TYPE ftps_sessions_active gauge",
            "# TYPE ftps_logins_total counter",
            "# TYPE ftps_transfer_duration_seconds histogram",
            "# TYPE ftps_passive_ports_in_use gauge",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        drop(session);
        drop(port);
    }

    #[test]
    fn directions_follow_the_command() {
        assert_eq!(Direction::of_command("STOR"), Direction::Upload);
        assert_eq!(Direction::of_command("APPE"), Direction::Upload);
        assert_eq!(Direction::of_command("RETR"), Direction::Download);
        assert_eq!(Direction::of_command("MLSD"), Direction::Download);
    }
}
