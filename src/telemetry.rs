//! Logging: a tracing subscriber, pretty for people or JSON for log pipelines (`log.format`),
//! filtered by `RUST_LOG` or else `log.level`.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{Log, LogFormat};

/// Installs the global subscriber. Call once, early in `main`.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
