//! Checks beyond the config's own validity, run by `check-config` and once at `serve` start, so
//! a mistake is found by the operator before a partner finds it:
//! - [`s3`]: every configured bucket answers with these credentials, every home can be listed;
//! - [`ports`]: every listener can be bound (free, and below 1024 only with the capability);
//! - [`summary`]: the one startup line saying what the server is about to serve.

pub mod ports;
pub mod s3;

use rustls::pki_types::{pem::PemObject, CertificateDer};

use crate::{
    auth::UserStore,
    config::{Backend, Config},
};

/// The startup summary: listeners, passive range and advertised address, storage, users,
/// certificate. One line, so it reads the same in pretty and JSON logs.
pub fn summary(config: &Config, users: &UserStore) -> String {
    let addr = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    let storage = match config.storage.backend {
        Backend::Local => format!("local directory {}", config.storage.local_root.display()),
        Backend::S3 => {
            let mut buckets: Vec<&str> = users
                .iter()
                .filter_map(|u| u.bucket.as_deref())
                .chain([config.s3.bucket.as_str()])
                .collect();
            buckets.sort();
            buckets.dedup();
            format!(
                "S3 bucket(s) {} at {} ({}-style addressing)",
                buckets.join(", "),
                config
                    .s3
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| format!("AWS region {}", config.s3.region)),
                if config.s3.force_path_style {
                    "path"
                } else {
                    "virtual-hosted"
                }
            )
        }
    };
    format!(
        "explicit FTPS {}, implicit FTPS {}, passive ports {} advertised as {}, admin {}; \
         storage: {storage}; users: {}; certificate: {}",
        addr(config.listeners.explicit),
        addr(config.listeners.implicit),
        config.passive.ports,
        config
            .passive
            .advertise_address
            .map_or("the address each client connected to".to_string(), |a| a
                .to_string()),
        addr(config.admin.listen),
        users.len(),
        certificate_summary(&config.tls.cert_file)
    )
}

/// "subject …, expires …" of the leaf certificate in `path`.
pub fn certificate_summary(path: &std::path::Path) -> String {
    let Ok(pem) = std::fs::read(path) else {
        return format!("{} unreadable", path.display());
    };
    let Some(Ok(der)) = CertificateDer::pem_slice_iter(&pem).next() else {
        return format!("{}: no certificate", path.display());
    };
    match x509_parser::parse_x509_certificate(der.as_ref()) {
        Ok((_, cert)) => {
            let not_after = cert.validity().not_after;
            let left = not_after.timestamp() - chrono::Utc::now().timestamp();
            let note = if left < 0 {
                " (EXPIRED)"
            } else if left < 14 * 86_400 {
                " (expires within 14 days)"
            } else {
                ""
            };
            format!("subject {}, expires {not_after}{note}", cert.subject())
        }
        Err(e) => format!("{}: {e}", path.display()),
    }
}
