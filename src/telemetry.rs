//! Logs and traces: a `tracing` subscriber with a log layer (pretty for people, JSON lines for
//! pipelines: `log.format`; colours only on a terminal), filtered by `RUST_LOG` or else
//! `log.level` (this crate's level; dependencies stay at `info`), and, when OTLP is
//! configured, a `tracing-opentelemetry` layer that exports spans (session, command, S3 call)
//! as OpenTelemetry traces. The same switch sends [`crate::metrics`] over OTLP.
//!
//! OTLP is on when `telemetry.otlp_endpoint` is set, or else when the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or a per-signal `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT`)
//! is; the other `OTEL_*` variables (headers, timeout, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`) apply as usual, and `OTEL_SDK_DISABLED=true`
//! turns it off.
//!
//! Transport: OTLP/HTTP with protobuf (port 4318), through the SDK's blocking HTTP client on
//! the SDK's own export threads. It never runs on (or needs) the server's tokio runtime, nothing
//! connects at startup, and an unreachable collector only costs dropped spans and a warning
//! from the exporter thread: it never blocks the start or a session.
//!
//! Audit events (target `audit`, see [`crate::audit`]) stay on at `info` whatever the level,
//! unless the filter names `audit` itself (`audit=off`).

use std::{io::IsTerminal, time::Duration};

use opentelemetry::{trace::TracerProvider as _, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::{
    metrics::{PeriodicReader, SdkMeterProvider},
    trace::SdkTracerProvider,
    Resource,
};
use tracing_subscriber::{
    filter::filter_fn, fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer,
};

use crate::config::{Log, LogFormat, Telemetry};

/// The OpenTelemetry `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
const SERVICE_NAME: &str = "ftps-s3";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter refused its configuration (`key` is the config key or variable).
    #[error("{key}: {message}")]
    Otlp { key: &'static str, message: String },
}

/// Flushes and stops the OTLP exporters when dropped (or at [`TelemetryGuard::shutdown`]).
/// Drop it after the server has stopped, outside the async runtime if possible: the flush
/// waits (a few seconds at most) for the last export.
#[must_use = "dropping the guard stops the OTLP export"]
#[derive(Default)]
pub struct TelemetryGuard {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported over OTLP.
    pub fn exports_traces(&self) -> bool {
        self.tracer.is_some()
    }

    /// Whether metrics are exported over OTLP.
    pub fn exports_metrics(&self) -> bool {
        self.meter.is_some()
    }

    /// Exports what is pending and stops the exporters.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            if let Err(e) = tracer.shutdown() {
                eprintln!("OpenTelemetry traces: the last export failed: {e}");
            }
        }
        if let Some(meter) = self.meter.take() {
            if let Err(e) = meter.shutdown() {
                eprintln!("OpenTelemetry metrics: the last export failed: {e}");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where one OTLP signal goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum OtlpTarget {
    /// `telemetry.otlp_endpoint` + the signal's path.
    Url(String),
    /// The `OTEL_EXPORTER_OTLP_*` variables, read by the exporter.
    Environment,
}

/// Which signals go over OTLP, and where: the config key wins over the environment.
fn otlp_targets(
    cfg: &Telemetry,
    env: impl Fn(&str) -> Option<String>,
) -> (Option<OtlpTarget>, Option<OtlpTarget>) {
    let set = |name: &str| env(name).is_some_and(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return (None, None);
    }
    if let Some(base) = &cfg.otlp_endpoint {
        let base = base.trim_end_matches('/');
        return (
            Some(OtlpTarget::Url(format!("{base}/v1/traces"))),
            Some(OtlpTarget::Url(format!("{base}/v1/metrics"))),
        );
    }
    let any = set("OTEL_EXPORTER_OTLP_ENDPOINT");
    let traces =
        (any || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")).then_some(OtlpTarget::Environment);
    let metrics =
        (any || set("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")).then_some(OtlpTarget::Environment);
    (traces, metrics)
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The config key (or variable) an OTLP error is about.
fn otlp_key(target: &OtlpTarget) -> &'static str {
    match target {
        OtlpTarget::Url(_) => "telemetry.otlp_endpoint",
        OtlpTarget::Environment => "OTEL_EXPORTER_OTLP_ENDPOINT",
    }
}

fn resource() -> Resource {
    let mut builder = Resource::builder();
    if env_var("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name(SERVICE_NAME);
    }
    builder
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The filter directive for `log.level`. A bare level (`debug`, `trace`, …) applies to this
/// crate; dependencies (AWS SDK, hyper, rustls, …) stay at `info`, or quieter when the level is
/// quieter, so `debug` shows the server's own lines rather than the SDK's internals. rustls is at
/// `error`: its warnings are about clients (lftp sends an IP address as SNI, which RFC 6066
/// forbids, on every handshake) and name no session. A directive with `=` or `,` is taken as
/// written (`info,aws_smithy_runtime=debug`).
fn level_directive(level: &str) -> String {
    let level = level.trim();
    const QUIETER_THAN_INFO: [&str; 3] = ["warn", "error", "off"];
    if level.contains(['=', ',']) {
        return level.to_string();
    }
    let lower = level.to_ascii_lowercase();
    let deps = if QUIETER_THAN_INFO.contains(&lower.as_str()) {
        lower.as_str()
    } else {
        "info"
    };
    let rustls = if lower == "off" { "off" } else { "error" };
    format!("{deps},rustls={rustls},ftps_s3={lower}")
}

/// The log filter: `RUST_LOG` if set and valid (as written), else `log.level` (see
/// [`level_directive`]), plus `audit=info` unless the directive already says something about
/// `audit`.
fn env_filter(log: &Log) -> EnvFilter {
    let with_audit = |spec: &str| {
        let spec = spec.trim();
        if spec.contains("audit") {
            spec.to_string()
        } else if spec.is_empty() {
            "info,audit=info".to_string()
        } else {
            format!("{spec},audit=info")
        }
    };
    env_var("RUST_LOG")
        .filter(|s| !s.trim().is_empty())
        .and_then(|s| EnvFilter::try_new(with_audit(&s)).ok())
        .or_else(|| EnvFilter::try_new(with_audit(&level_directive(&log.level))).ok())
        .unwrap_or_else(|| EnvFilter::new("info,audit=info"))
}

/// Installs the global subscriber and, when configured, the OTLP exporters. Call once, early
/// in `main`, from inside the tokio runtime or outside it; keep the guard until the end.
///
/// A second call leaves the first subscriber in place (tests may call it more than once).
pub fn init(log: &Log, telemetry: &Telemetry) -> Result<TelemetryGuard, TelemetryError> {
    let (traces, metrics_target) = otlp_targets(telemetry, env_var);
    if (traces.is_some() || metrics_target.is_some())
        && env_var("OTEL_EXPORTER_OTLP_PROTOCOL").is_some_and(|p| p.trim() == "grpc")
    {
        eprintln!(
            "warning: OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported; exporting with \
             OTLP/HTTP (protobuf): point the endpoint at the collector's OTLP/HTTP port (4318)"
        );
    }
    let resource = resource();
    let mut guard = TelemetryGuard::default();

    if let Some(target) = traces {
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary);
        if let OtlpTarget::Url(url) = &target {
            builder = builder.with_endpoint(url.clone());
        }
        let exporter = builder.build().map_err(|e| TelemetryError::Otlp {
            key: otlp_key(&target),
            message: e.to_string(),
        })?;
        guard.tracer = Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.clone())
                .build(),
        );
    }

    if let Some(target) = metrics_target {
        let mut builder = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary);
        if let OtlpTarget::Url(url) = &target {
            builder = builder.with_endpoint(url.clone());
        }
        let exporter = builder.build().map_err(|e| TelemetryError::Otlp {
            key: otlp_key(&target),
            message: e.to_string(),
        })?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(Duration::from_secs(telemetry.metrics_interval_secs))
            .build();
        match crate::metrics::install(|b| b.with_resource(resource.clone()).with_reader(reader)) {
            Ok(provider) => guard.meter = Some(provider),
            Err(e) => eprintln!("warning: {e}"),
        }
    }

    let fmt_layer = match log.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            // The whole tree (session → command), so a line inside a transfer still names
            // the session's user and client address.
            .with_span_list(true)
            .with_writer(std::io::stderr)
            .boxed(),
        // Colours only for a person at a terminal, not in files, pipes or journald.
        LogFormat::Pretty => fmt::layer()
            .with_ansi(std::io::stderr().is_terminal() && env_var("NO_COLOR").is_none())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // The exporter's own HTTP client logs through tracing too; exporting those events as spans
    // of their own would feed the exporter with its own work.
    let otel_layer = guard.tracer.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("ftps-s3"))
            .with_filter(filter_fn(|meta| {
                let target = meta.target();
                !(target.starts_with("opentelemetry") || target.starts_with("reqwest"))
            }))
    });
    let _ = tracing_subscriber::registry()
        .with(env_filter(log))
        .with(fmt_layer)
        .with(otel_layer)
        .try_init();
    if guard.exports_traces() || guard.exports_metrics() {
        tracing::info!(
            traces = guard.exports_traces(),
            metrics = guard.exports_metrics(),
            "OpenTelemetry export over OTLP/HTTP"
        );
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn telemetry(endpoint: Option<&str>) -> Telemetry {
        Telemetry {
            otlp_endpoint: endpoint.map(str::to_string),
            metrics_interval_secs: 60,
        }
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn log_level_applies_to_this_crate() {
        assert_eq!(level_directive("debug"), "info,rustls=error,ftps_s3=debug");
        assert_eq!(level_directive("warn"), "warn,rustls=error,ftps_s3=warn");
        assert_eq!(
            level_directive("info,aws_smithy_runtime=debug"),
            "info,aws_smithy_runtime=debug"
        );
        let filter = EnvFilter::try_new(level_directive("debug")).expect("filter");
        assert_eq!(
            filter.max_level_hint(),
            Some(tracing::level_filters::LevelFilter::DEBUG)
        );
    }

    #[test]
    fn otlp_is_off_unless_configured() {
        assert_eq!(otlp_targets(&telemetry(None), env(&[])), (None, None));
    }

    #[test]
    fn config_endpoint_gets_the_signal_paths() {
        let (t, m) = otlp_targets(&telemetry(Some("http://collector:4318/")), env(&[]));
        assert_eq!(
            t,
            Some(OtlpTarget::Url("http://collector:4318/v1/traces".into()))
        );
        assert_eq!(
            m,
            Some(OtlpTarget::Url("http://collector:4318/v1/metrics".into()))
        );
    }

    #[test]
    fn standard_variables_turn_signals_on() {
        let all = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")];
        assert_eq!(
            otlp_targets(&telemetry(None), env(&all)),
            (Some(OtlpTarget::Environment), Some(OtlpTarget::Environment))
        );
        let traces_only = [(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        )];
        assert_eq!(
            otlp_targets(&telemetry(None), env(&traces_only)),
            (Some(OtlpTarget::Environment), None)
        );
        let disabled = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        assert_eq!(
            otlp_targets(&telemetry(Some("http://x:4318")), env(&disabled)),
            (None, None)
        );
    }
}
