//! Typed configuration.
//!
//! figment layers, later wins: built-in defaults < TOML file (`--config`) < environment
//! `FTPS_S3_*`, with `__` for nesting (`FTPS_S3_S3__BUCKET=x` sets `s3.bucket`). Every key has a
//! doc comment here; README's configuration reference is written from them.
//!
//! Loading checks types (figment names the bad key), then [`Config::validate`] checks meaning
//! (ranges, sizes) and names the key again. Files the config points at (certificate, users) are
//! read by their own modules at startup, which name the key too.

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// Everything the server needs to start.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listeners: Listeners,
    pub tls: Tls,
    pub passive: Passive,
    pub active: Active,
    pub storage: StorageConfig,
    pub s3: S3,
    pub auth: Auth,
    pub limits: Limits,
    pub shutdown: Shutdown,
    pub log: Log,
    pub admin: Admin,
    pub telemetry: Telemetry,
    pub cluster: Cluster,
    pub events: Events,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// On SIGTERM: seconds transfers in flight may take to finish; then they end with `426`,
    /// their uploads kept for resume (`s3.resume_window_secs`) or aborted.
    pub grace_seconds: u64,
}

/// Linux refuses a TCP keepalive idle time above this (`TCP_KEEPIDLE`, seconds).
const MAX_KEEPALIVE_SECS: u64 = 32_767;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    /// Explicit FTPS (RFC 4217: plain greeting, then `AUTH TLS`). `"off"` disables it.
    #[serde(with = "listener_addr")]
    pub explicit: Option<SocketAddr>,
    /// Implicit FTPS (MS-FTPS §3.2.5: TLS from the first byte). `"off"` disables it.
    #[serde(with = "listener_addr")]
    pub implicit: Option<SocketAddr>,
    /// Explicit listener: refuse USER/PASS (and everything but AUTH, FEAT, HOST, QUIT…) before
    /// `AUTH TLS`/`AUTH SSL`, and refuse `PROT C` data connections.
    pub require_tls: bool,
    /// Expect a PROXY protocol header (v2 or v1, as a TCP load balancer sends it) at the start
    /// of every control and passive data connection, and take the client's address from it.
    pub proxy_protocol: bool,
    /// With `proxy_protocol`: the only sources (CIDRs, IPv4 and IPv6) allowed to connect, i.e.
    /// the load balancer's addresses. Connections from anywhere else are closed unread.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Seconds a control or data connection may be idle before TCP keepalive probes start (and
    /// between probes); `0` turns keepalive off. Keeps idle flows alive in load balancers and
    /// NAT tables that forget them (AWS NLB: 350 s) while a long transfer runs.
    pub tcp_keepalive_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain (leaf first), e.g. a mounted Kubernetes TLS secret's `tls.crt`.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Allow `CCC` (RFC 4217 §6: clear the control channel after login) on explicit sessions.
    /// Implicit sessions always refuse it (MS-FTPS §3.2.5.2).
    pub allow_ccc: bool,
    /// A PROT P data connection must resume the control connection's TLS session (proof that
    /// it comes from the same client; RFC 4217 §10). Clients that do not resume (plain Python
    /// ftplib, some old tools) need this off.
    pub require_session_reuse: bool,
    /// Client certificates: `"none"` (never asked for), `"optional"` (asked for; a client
    /// without one can still log in with a password) or `"required"` (every TLS handshake must
    /// present one issued by `client_ca_file`). Users with a `certificate_cn` need one.
    pub client_auth: ClientAuth,
    /// PEM bundle of the CAs that issue client certificates (e.g. a mounted secret's `ca.crt`).
    /// Required unless `client_auth = "none"`.
    pub client_ca_file: Option<PathBuf>,
    /// Seconds between checks of `cert_file`, `key_file` and `client_ca_file` for new contents
    /// (a renewed certificate, a swapped Kubernetes secret). New handshakes use the new files;
    /// sessions in progress keep theirs; files that do not load are logged and the old ones
    /// kept. `0`: load once at start.
    pub reload_interval_secs: u64,
}

/// Whether TLS handshakes ask for a client certificate (`tls.client_auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// Asked for and verified when given; a handshake without one goes ahead.
    Optional,
    /// Every handshake must present a certificate issued by `tls.client_ca_file`.
    Required,
}

impl ClientAuth {
    pub fn name(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Required => "required",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Active {
    /// Allow active mode (PORT, EPRT). The address must be the client's own and the port at
    /// least 1024 either way (no FTP bounce).
    pub enabled: bool,
    /// Source port for active data connections of implicit sessions (MS-FTPS §1.9 assigns 989).
    /// Unset: an ephemeral port. Binding 989 needs CAP_NET_BIND_SERVICE.
    pub implicit_source_port: Option<u16>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passive {
    /// Port range for PASV/EPSV data listeners, `"first-last"` inclusive.
    pub ports: String,
    /// Address announced in PASV replies when the server sits behind NAT or a load balancer.
    /// By default, the local address of the control connection.
    pub advertise_address: Option<IpAddr>,
}

/// Which kind of store users' homes live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// S3 or an S3-compatible store (`[s3]`).
    S3,
    /// A local directory (`storage.local_root`): for development and tests, not production.
    Local,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// `"s3"` (default) or `"local"`.
    pub backend: Backend,
    /// Root directory of the local backend; each key is a path under it.
    pub local_root: PathBuf,
}

/// How the S3 client computes request checksums.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumMode {
    /// The SDK default: a checksum on every request that supports one.
    WhenSupported,
    /// Only where the API requires one (some S3-compatible stores, e.g. Garage, need this).
    WhenRequired,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3 {
    /// Bucket for users without a `bucket` of their own.
    pub bucket: String,
    /// AWS region (S3-compatible stores usually accept any).
    pub region: String,
    /// Endpoint URL for S3-compatible stores, e.g. `http://127.0.0.1:8333`.
    pub endpoint: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible stores.
    pub force_path_style: bool,
    /// Multipart part size in MiB (5–5120). Files smaller than one part use a single PutObject.
    pub part_size_mib: u64,
    /// Parts of one upload in flight at once (1–64). Memory per upload is bounded by
    /// `part_size_mib × (upload_concurrency + 1)`.
    pub upload_concurrency: usize,
    /// Request checksums: `"when_supported"` (default) or `"when_required"`.
    pub checksums: ChecksumMode,
    /// Attempts per S3 request, including the first (the SDK's standard retry mode).
    pub max_attempts: u32,
    /// Seconds an interrupted upload stays resumable (REST + STOR): its multipart upload is kept
    /// open, with the parts already stored, for this long after its last part. `0`: never keep,
    /// abort at once. Otherwise at least 600, because an upload whose parts arrive further
    /// apart than this could be taken for an abandoned one and aborted. Kept uploads are found
    /// with ListMultipartUploads, so they survive restarts and work across replicas. A bucket
    /// lifecycle rule (AbortIncompleteMultipartUpload) must still clean up what nobody resumes.
    pub resume_window_secs: u64,
    /// Show names whose interrupted upload is kept for resume in listings (LIST, NLST, MLSD,
    /// STAT), with the bytes the upload holds, as a partial file on a disk would be: clients
    /// that decide to resume from the listing's size (FileZilla, `lftp mirror --continue`)
    /// then send only the rest. Costs a `ListMultipartUploads` per listing, plus a
    /// `ListMultipartUploads` and `ListParts` per kept upload in the directory (at most 32).
    pub list_kept_uploads: bool,
    /// The most objects (files and directory markers, at any depth) a directory rename may copy;
    /// larger directories are refused before anything is copied. S3 has no rename: each object
    /// is copied, then the originals are deleted.
    pub max_rename_objects: usize,
    /// Whether LIST and MLSD report the time a client set with MFMT: ListObjectsV2 returns no
    /// metadata, so this costs one HeadObject per file listed (a few at a time). Off: listings
    /// show S3's LastModified (MDTM and MLST report the client's time either way) and FEAT
    /// does not offer MFMT, so sync clients (rclone) compare sizes only rather than upload
    /// again every file whose listed time differs from the one they set.
    pub listing_times: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// TOML users file (`[[user]]` tables with argon2 password hashes), e.g. a mounted secret.
    pub users_file: PathBuf,
    /// Delay before answering a failed login, in milliseconds (slows password guessing).
    pub failure_delay_ms: u64,
    /// Failed logins from one address, or for one user name, before logins from it (or for it)
    /// are refused for `ban_seconds`.
    pub max_failures: u32,
    /// How long a throttled address or user name stays refused, from its last failure.
    pub ban_seconds: u64,
    /// Which budgets failures count against: `"address"`, `"user_at_new_addresses"` (default)
    /// or `"user_and_address"` (README "Login throttling").
    pub lockout: Lockout,
    /// Seconds between checks of `users_file` for new contents. New logins use the new file;
    /// logged-in sessions keep the user as it was at login; a file that does not load is logged
    /// and the old users kept. `0`: load once at start.
    pub reload_interval_secs: u64,
    /// External identity (README "External identity"): URL (`http://` or `https://`) asked,
    /// by a JSON POST, about users the users file does not know. Unset or `""` (the default):
    /// only the users file.
    pub http_url: Option<String>,
    /// Milliseconds the identity endpoint may take to answer; a later answer refuses the login
    /// (fail closed).
    pub http_timeout_ms: u64,
    /// Seconds a successful answer is reused for the same user, password, certificate, client
    /// address and listener; refusals are never cached. `0`: ask every time.
    pub http_cache_secs: u64,
    /// File holding a token sent to the identity endpoint as `Authorization: Bearer <token>`;
    /// surrounding whitespace is ignored. Unset: no `Authorization` header.
    pub http_secret_file: Option<PathBuf>,
}

/// Which budgets a failed login is counted against (`auth.lockout`). README "Login
/// throttling" weighs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lockout {
    /// Per client address only. Nobody can lock a user out from another address; a guesser
    /// with many addresses gets `max_failures` guesses per address and window.
    Address,
    /// Per address, and per user name at addresses the user has not logged in from since the
    /// server started (the default). Guessing one account from many addresses stops after
    /// `max_failures`, and the user still gets in from addresses it used before.
    UserAtNewAddresses,
    /// Per address and per user name everywhere. Anyone who knows a user name can lock that
    /// user out of every address for `ban_seconds`.
    UserAndAddress,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Longest control line accepted, in bytes, CRLF included. Longer lines get `500`.
    pub max_line_length: usize,
    /// Seconds a control connection may stay silent (outside transfers) before `421`.
    pub control_idle_timeout_secs: u64,
    /// Seconds to wait for the client to open a data connection (and finish its TLS handshake).
    pub data_connect_timeout_secs: u64,
    /// Seconds a data connection may make no progress before the transfer fails.
    pub data_idle_timeout_secs: u64,
    /// Seconds a new connection has to finish its TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Sessions open at once, in all. New connections beyond it get `421` and are closed.
    pub max_sessions: usize,
    /// Sessions open at once from one client address.
    pub max_sessions_per_ip: usize,
    /// Sessions logged in at once as one user.
    pub max_sessions_per_user: usize,
    /// MiB the part buffers of all uploads together may use (S3 backend). An upload that needs
    /// a buffer when the budget is spent waits for one, first come first served, and reads
    /// nothing from its data connection meanwhile (its client is slowed by TCP flow control).
    /// At least one part (`s3.part_size_mib`); `0`: no global budget, only the per-upload
    /// bound `part_size_mib × (upload_concurrency + 1)`.
    pub upload_memory_mib: u64,
    /// Seconds a user's counted storage usage (for `quota_bytes` / `quota_files`) is trusted:
    /// an older count is made again at the next login or upload while none of the user's
    /// uploads runs in this replica. Between counts, writes by others drift it (README "Quotas and bandwidth limits").
    pub quota_recount_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `"pretty"` (default) or `"json"`.
    pub format: LogFormat,
    /// When `RUST_LOG` is unset: a level (`"debug"`) for this server's own lines, with
    /// dependencies (AWS SDK, hyper) at `info`; or a directive with `=` or `,`, used as written
    /// (`"info,aws_smithy_runtime=debug"`). Audit events (target `audit`) are logged whatever the level unless it names `audit`.
    pub level: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Admin HTTP listener (`/healthz`, `/readyz`, `/metrics`), e.g. `"0.0.0.0:9090"`; `"off"`
    /// (the default) disables it. Plain HTTP without authentication: keep it off public networks.
    #[serde(with = "listener_addr")]
    pub listen: Option<SocketAddr>,
    /// Seconds between storage reachability checks for `/readyz` (S3: a one-key
    /// `ListObjectsV2` of `s3.bucket`; local: the root directory exists). Probes read the last result.
    pub storage_check_interval_secs: u64,
    /// `/readyz` fails after this many storage checks failed in a row; 0 (the default) never:
    /// readiness is about this process (listeners, certificate, shutdown), since a storage
    /// outage hits every replica at once and unready pods would refuse even the sessions that
    /// do not need it. Storage health is always in `/readyz`'s text and in `ftps_storage_up`.
    pub readiness_storage_failures: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    /// OpenTelemetry: base URL of an OTLP/HTTP (protobuf) receiver, e.g.
    /// `"http://otel-collector:4318"`; traces go to `/v1/traces`, metrics to `/v1/metrics`.
    /// Unset: the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (and the other `OTEL_EXPORTER_OTLP_*`
    /// variables) if set, else no export.
    pub otlp_endpoint: Option<String>,
    /// Seconds between OTLP metric exports (Prometheus `/metrics` is always current).
    pub metrics_interval_secs: u64,
}

/// Several replicas behind one address with no affinity (ARCHITECTURE.md, "Several replicas"):
/// each replica owns a slice of `passive.ports` and relays data connections for ports it does
/// not own to their owner. Off while `peers` is empty.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Every replica's relay listener (`"host:port"`, e.g. the pod's name in a headless
    /// Service), in ordinal order, this replica's included. Only these hosts may connect to
    /// the relay listener.
    pub peers: Vec<String>,
    /// This replica's relay listener: data connections relayed by the other replicas arrive
    /// here, each with a PROXY v2 header naming the client and the passive port.
    #[serde(with = "listener_addr")]
    pub listen: Option<SocketAddr>,
    /// This replica's index in `peers`. Unset: the number after the last `-` of `$HOSTNAME`
    /// (a StatefulSet pod's ordinal).
    pub ordinal: Option<usize>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Events {
    /// Upload events: URL (`http://` or `https://`) that gets a signed JSON POST when an upload
    /// is committed, a file deleted or renamed (README "Upload events"). Unset or `""` (the
    /// default): no events.
    pub webhook_url: Option<String>,
    /// File holding the HMAC-SHA256 key the events are signed with (header
    /// `X-Ftps-S3-Signature`); surrounding whitespace is ignored. Required with `webhook_url`.
    pub webhook_secret_file: Option<PathBuf>,
    /// Attempts per event (the first included) before it is given up on.
    pub max_attempts: u32,
    /// Milliseconds before the first retry; doubled after each failure, at most 60 s.
    pub retry_initial_ms: u64,
    /// Seconds each attempt may take (connect, send, answer).
    pub timeout_secs: u64,
    /// Events held in memory waiting to be sent; when full, new events are dropped
    /// (`ftps_events_dropped_total`).
    pub queue_size: usize,
    /// `"json"` (default): the event as the body; `"cloudevents"`: a CloudEvents 1.0 envelope
    /// (structured content mode) with the event as `data`.
    pub format: EventFormat,
}

/// The body of an event request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventFormat {
    /// The event object itself (`application/json`).
    Json,
    /// A CloudEvents 1.0 envelope in structured content mode (`application/cloudevents+json`),
    /// the event object as its `data`.
    CloudEvents,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: Listeners {
                explicit: Some(SocketAddr::from(([0, 0, 0, 0], 21))),
                implicit: Some(SocketAddr::from(([0, 0, 0, 0], 990))),
                require_tls: true,
                proxy_protocol: false,
                trusted_proxies: Vec::new(),
                tcp_keepalive_secs: 60,
            },
            tls: Tls {
                cert_file: PathBuf::from("/etc/ftps-s3/tls/tls.crt"),
                key_file: PathBuf::from("/etc/ftps-s3/tls/tls.key"),
                allow_ccc: false,
                require_session_reuse: true,
                client_auth: ClientAuth::None,
                client_ca_file: None,
                reload_interval_secs: 10,
            },
            passive: Passive {
                ports: "30000-30019".to_string(),
                advertise_address: None,
            },
            active: Active {
                enabled: true,
                implicit_source_port: None,
            },
            storage: StorageConfig {
                backend: Backend::S3,
                local_root: PathBuf::from("./data/files"),
            },
            s3: S3 {
                bucket: String::new(),
                region: "us-east-1".to_string(),
                endpoint: None,
                force_path_style: false,
                part_size_mib: 8,
                upload_concurrency: 4,
                checksums: ChecksumMode::WhenSupported,
                max_attempts: 3,
                resume_window_secs: 86_400,
                list_kept_uploads: false,
                max_rename_objects: 1000,
                listing_times: true,
            },
            auth: Auth {
                users_file: PathBuf::from("/etc/ftps-s3/users/users.toml"),
                failure_delay_ms: 1000,
                max_failures: 5,
                ban_seconds: 900,
                lockout: Lockout::UserAtNewAddresses,
                reload_interval_secs: 10,
                http_url: None,
                http_timeout_ms: 5000,
                http_cache_secs: 60,
                http_secret_file: None,
            },
            limits: Limits {
                max_line_length: 4096,
                control_idle_timeout_secs: 300,
                data_connect_timeout_secs: 30,
                data_idle_timeout_secs: 300,
                tls_handshake_timeout_secs: 10,
                max_sessions: 1000,
                max_sessions_per_ip: 50,
                max_sessions_per_user: 20,
                upload_memory_mib: 256,
                quota_recount_secs: 300,
            },
            shutdown: Shutdown { grace_seconds: 30 },
            log: Log {
                format: LogFormat::Pretty,
                level: "info".to_string(),
            },
            admin: Admin {
                listen: None,
                storage_check_interval_secs: 10,
                readiness_storage_failures: 0,
            },
            telemetry: Telemetry {
                otlp_endpoint: None,
                metrics_interval_secs: 60,
            },
            cluster: Cluster {
                peers: Vec::new(),
                listen: None,
                ordinal: None,
            },
            events: Events {
                webhook_url: None,
                webhook_secret_file: None,
                max_attempts: 8,
                retry_initial_ms: 1000,
                timeout_secs: 10,
                queue_size: 10_000,
                format: EventFormat::Json,
            },
        }
    }
}

/// A listener address, or `"off"` (also `""`): a layer can only override a default with a value,
/// and TOML has no null, so switching a listener off needs a word for it.
mod listener_addr {
    use std::net::SocketAddr;

    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        match addr {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_str("off"),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        match text.trim() {
            "" | "off" => Ok(None),
            a => a
                .parse()
                .map(Some)
                .map_err(|_| D::Error::custom(format!("{a:?} is not \"ip:port\" or \"off\""))),
        }
    }
}

/// A config that could not be loaded or makes no sense. The message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// figment's errors, reworded to lead with the key (`s3.part_size_mib: invalid type …`).
    #[error("{0}")]
    Load(String),
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// One line per figment error: `key: what is wrong (where the value came from)`.
fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let origin = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (in {} {src})", m.name),
                    None => format!(" (in {})", m.name),
                })
                .unwrap_or_default();
            match key.is_empty() {
                true => format!("{}{origin}", e.kind),
                false => format!("{key}: {}{origin}", e.kind),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

/// An inclusive port range, parsed from `"first-last"` (or a single port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let first: u16 = a
            .trim()
            .parse()
            .map_err(|_| format!("{a:?} is not a port"))?;
        let last: u16 = b
            .trim()
            .parse()
            .map_err(|_| format!("{b:?} is not a port"))?;
        if first == 0 || first > last {
            return Err(format!(
                "{s:?} is not a range \"first-last\" with 0 < first <= last"
            ));
        }
        Ok(PortRange { first, last })
    }

    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `i`-th of `n` contiguous, disjoint slices covering the range (sizes differ by at
    /// most one); `None` if the range has fewer than `n` ports.
    pub fn slice(&self, i: usize, n: usize) -> Option<PortRange> {
        let len = self.len();
        if n == 0 || i >= n || len < n {
            return None;
        }
        // In range: i * len / n < len <= 65535.
        let start = |k: usize| self.first + (k * len / n) as u16;
        Some(PortRange {
            first: start(i),
            last: start(i + 1) - 1,
        })
    }

    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }
}

impl Config {
    /// Defaults < `file` (if given) < `FTPS_S3_*` environment, then [`Config::validate`].
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            // figment treats a missing file as empty; a missing config file is a mistake.
            if !file.is_file() {
                return Err(invalid(
                    "--config",
                    format!("{} does not exist or is not a file", file.display()),
                ));
            }
            fig = fig.merge(Toml::file(file));
        }
        let (config, ignored) = Self::extract_ignoring_unknown_env(fig)?;
        for var in &ignored {
            // Logging starts after the config is read (its format is configured): stderr.
            eprintln!("warning: ignoring environment variable {var}: not a configuration key");
        }
        Ok(config)
    }

    /// Layers the `FTPS_S3_*` environment over `fig` and extracts. An environment variable that
    /// names no configuration key is dropped and returned (by name) instead of stopping the
    /// server: unrelated tools share the prefix (the lint's `FTPS_S3_LINT_HOME`), while an
    /// unknown key in the file stays an error. One retry per unknown variable, so bounded.
    pub fn extract_ignoring_unknown_env(
        fig: Figment,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        const PREFIX: &str = "FTPS_S3_";
        let env_origin = figment::Provider::metadata(&Env::prefixed(PREFIX)).name;
        let mut ignored: Vec<String> = Vec::new();
        loop {
            let skip = ignored.clone();
            let env = Env::prefixed(PREFIX)
                .split("__")
                .filter(move |k| !skip.iter().any(|s| k == s.as_str()));
            let errors = match fig.clone().merge(env).extract::<Config>() {
                Err(errors) => errors,
                Ok(config) => {
                    config.validate()?;
                    let names = ignored
                        .iter()
                        .map(|k| format!("{PREFIX}{}", k.replace('.', "__").to_uppercase()))
                        .collect();
                    return Ok((config, names));
                }
            };
            let unknown = errors.clone().into_iter().find_map(|e| match &e.kind {
                figment::error::Kind::UnknownField(field, _)
                    if e.metadata.as_ref().map(|m| &m.name) == Some(&env_origin) =>
                {
                    let mut key = e.path.clone();
                    if key.last() != Some(field) {
                        key.push(field.clone());
                    }
                    Some(key.join(".").to_lowercase())
                }
                _ => None,
            });
            match unknown {
                Some(key) if !ignored.contains(&key) => ignored.push(key),
                _ => return Err(ConfigError::Load(describe(errors))),
            }
        }
    }

    /// `log` with the `FTPS_S3_LOG__*` variables applied: the development default takes its log
    /// settings from the environment and nothing else.
    pub fn log_from_env(log: Log) -> Result<Log, ConfigError> {
        Figment::from(Serialized::defaults(log))
            .merge(Env::prefixed("FTPS_S3_LOG__"))
            .extract()
            .map_err(|e| ConfigError::Load(describe(e)))
    }

    /// Extracts and validates a config from any figment (tests build their own).
    pub fn extract(fig: Figment) -> Result<Config, ConfigError> {
        let config: Config = fig.extract().map_err(|e| ConfigError::Load(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.listeners.explicit.is_none() && self.listeners.implicit.is_none() {
            return Err(invalid(
                "listeners",
                "neither listeners.explicit nor listeners.implicit is set",
            ));
        }
        if self.listeners.proxy_protocol && self.listeners.trusted_proxies.is_empty() {
            return Err(invalid(
                "listeners.trusted_proxies",
                "must name the load balancer's addresses when listeners.proxy_protocol = true",
            ));
        }
        let passive = self.passive_ports()?;
        for (key, addr) in [
            ("listeners.explicit", self.listeners.explicit),
            ("listeners.implicit", self.listeners.implicit),
            ("admin.listen", self.admin.listen),
        ] {
            if let Some(addr) = addr.filter(|a| (passive.first..=passive.last).contains(&a.port()))
            {
                return Err(invalid(
                    "passive.ports",
                    format!(
                        "{:?} includes port {} of {key}: a PASV client would be sent to the listener; \
                         move the range or the listener",
                        self.passive.ports,
                        addr.port()
                    ),
                ));
            }
        }
        self.cluster_slice()?;
        if self.listeners.tcp_keepalive_secs > MAX_KEEPALIVE_SECS {
            return Err(invalid(
                "listeners.tcp_keepalive_secs",
                format!("at most {MAX_KEEPALIVE_SECS} (Linux's limit); 0 turns keepalive off"),
            ));
        }
        self.validate_observability()?;
        self.validate_events()?;
        if self.tls.client_auth != ClientAuth::None && self.tls.client_ca_file.is_none() {
            return Err(invalid(
                "tls.client_ca_file",
                format!(
                    "must be set when tls.client_auth = \"{}\" (the CAs that issue client certificates)",
                    self.tls.client_auth.name()
                ),
            ));
        }
        if self.storage.backend == Backend::S3 && self.s3.bucket.is_empty() {
            return Err(invalid(
                "s3.bucket",
                "must be set when storage.backend = \"s3\"",
            ));
        }
        if !(5..=5120).contains(&self.s3.part_size_mib) {
            return Err(invalid(
                "s3.part_size_mib",
                format!(
                    "{} is outside 5..=5120 (S3's part size limits)",
                    self.s3.part_size_mib
                ),
            ));
        }
        if !(1..=64).contains(&self.s3.upload_concurrency) {
            return Err(invalid(
                "s3.upload_concurrency",
                format!("{} is outside 1..=64", self.s3.upload_concurrency),
            ));
        }
        if self.limits.upload_memory_mib != 0
            && self.limits.upload_memory_mib < self.s3.part_size_mib
        {
            return Err(invalid(
                "limits.upload_memory_mib",
                format!(
                    "{} MiB is smaller than one part (s3.part_size_mib = {}): no upload could \
                     ever get a buffer; raise it, or set 0 for no global budget",
                    self.limits.upload_memory_mib, self.s3.part_size_mib
                ),
            ));
        }
        if self.auth.max_failures == 0 {
            return Err(invalid("auth.max_failures", "must be at least 1"));
        }
        if let Some(url) = self.auth.http_url.as_deref().filter(|u| !u.is_empty()) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "auth.http_url",
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            if self.auth.http_timeout_ms == 0 {
                return Err(invalid("auth.http_timeout_ms", "must be at least 1"));
            }
        }
        if self.s3.max_attempts == 0 {
            return Err(invalid("s3.max_attempts", "must be at least 1"));
        }
        if (1..600).contains(&self.s3.resume_window_secs) {
            return Err(invalid(
                "s3.resume_window_secs",
                format!(
                    "{} is too short: use 0 (never keep interrupted uploads) or at least 600",
                    self.s3.resume_window_secs
                ),
            ));
        }
        if self.s3.max_rename_objects == 0 {
            return Err(invalid("s3.max_rename_objects", "must be at least 1"));
        }
        if self.limits.max_line_length < 512 {
            return Err(invalid(
                "limits.max_line_length",
                "must be at least 512 (RFC 959 paths and replies need room)",
            ));
        }
        for (key, v) in [
            (
                "limits.control_idle_timeout_secs",
                self.limits.control_idle_timeout_secs,
            ),
            (
                "limits.data_connect_timeout_secs",
                self.limits.data_connect_timeout_secs,
            ),
            (
                "limits.data_idle_timeout_secs",
                self.limits.data_idle_timeout_secs,
            ),
            (
                "limits.tls_handshake_timeout_secs",
                self.limits.tls_handshake_timeout_secs,
            ),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// `[admin]`, `[telemetry]` and `log.level`.
    fn validate_observability(&self) -> Result<(), ConfigError> {
        if self.admin.storage_check_interval_secs == 0 {
            return Err(invalid(
                "admin.storage_check_interval_secs",
                "must be at least 1 second",
            ));
        }
        if self.telemetry.metrics_interval_secs == 0 {
            return Err(invalid(
                "telemetry.metrics_interval_secs",
                "must be at least 1 second",
            ));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(invalid(
                    "telemetry.otlp_endpoint",
                    format!("{endpoint:?} is not an http:// or https:// URL"),
                ));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", format!("{:?}: {e}", self.log.level)));
        }
        Ok(())
    }

    /// With `cluster.peers`: this replica's ordinal, the number of replicas and the slice of
    /// `passive.ports` it owns; `None` when the cluster mode is off.
    pub fn cluster_slice(&self) -> Result<Option<(usize, usize, PortRange)>, ConfigError> {
        let c = &self.cluster;
        if c.peers.is_empty() {
            return Ok(None);
        }
        if c.listen.is_none() {
            return Err(invalid(
                "cluster.listen",
                "must be set when cluster.peers is (the relay listener)",
            ));
        }
        let ordinal = match c.ordinal {
            Some(o) => o,
            None => std::env::var("HOSTNAME")
                .ok()
                .and_then(|h| h.rsplit('-').next().and_then(|n| n.parse().ok()))
                .ok_or_else(|| {
                    invalid(
                        "cluster.ordinal",
                        "unset, and $HOSTNAME does not end in -<ordinal> (a StatefulSet pod's name)",
                    )
                })?,
        };
        let n = c.peers.len();
        if ordinal >= n {
            return Err(invalid(
                "cluster.ordinal",
                format!("{ordinal} is not an index of cluster.peers ({n} replicas)"),
            ));
        }
        let range = self.passive_ports()?;
        match range.slice(ordinal, n) {
            Some(slice) => Ok(Some((ordinal, n, slice))),
            None => Err(invalid(
                "passive.ports",
                format!("{} ports cannot give each of {n} replicas one", range.len()),
            )),
        }
    }

    /// `[events]`. The secret file is read at startup (`events::from_config`).
    fn validate_events(&self) -> Result<(), ConfigError> {
        let e = &self.events;
        if let Some(url) = e.webhook_url.as_deref().filter(|u| !u.is_empty()) {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(
                    "events.webhook_url",
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            if e.webhook_secret_file.is_none() {
                return Err(invalid(
                    "events.webhook_secret_file",
                    "must be set when events.webhook_url is set (events are always signed)",
                ));
            }
        }
        for (key, v) in [
            ("events.max_attempts", u64::from(e.max_attempts)),
            ("events.timeout_secs", e.timeout_secs),
            ("events.queue_size", e.queue_size as u64),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// `passive.ports`, parsed.
    pub fn passive_ports(&self) -> Result<PortRange, ConfigError> {
        PortRange::parse(&self.passive.ports).map_err(|e| invalid("passive.ports", e))
    }
}

impl crate::net::ProxyPolicy {
    /// `None` when `listeners.proxy_protocol` is off: clients connect directly. (Here rather than
    /// in `net/`, so that `net` does not depend on the config.)
    pub fn from_config(listeners: &Listeners) -> Option<Self> {
        listeners.proxy_protocol.then(|| {
            crate::net::ProxyPolicy::with_timeout(
                listeners.trusted_proxies.clone(),
                crate::net::proxy_protocol::HEADER_TIMEOUT,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(s: &str) -> Result<Config, ConfigError> {
        Config::extract(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(s)),
        )
    }

    #[test]
    fn toml_overrides_defaults() {
        let c = from_toml("[s3]\nbucket = \"b\"\npart_size_mib = 16\n").expect("config");
        assert_eq!(c.s3.bucket, "b");
        assert_eq!(c.s3.part_size_mib, 16);
        assert_eq!(c.s3.upload_concurrency, 4);
    }

    #[test]
    fn auth_http_url_must_be_http() {
        let c = from_toml("[s3]\nbucket = \"b\"\n").expect("config");
        assert!(c.auth.http_url.is_none());
        assert_eq!(c.auth.http_cache_secs, 60);
        for (toml, key) in [
            ("http_url = \"ldap://h/x\"", "auth.http_url"),
            (
                "http_url = \"https://h/x\"\nhttp_timeout_ms = 0",
                "auth.http_timeout_ms",
            ),
        ] {
            let e = from_toml(&format!("[s3]\nbucket = \"b\"\n[auth]\n{toml}\n"))
                .expect_err(toml)
                .to_string();
            assert!(e.starts_with(key), "{toml}: {e}");
        }
        from_toml("[s3]\nbucket = \"b\"\n[auth]\nhttp_url = \"\"\n").expect("off");
        from_toml("[s3]\nbucket = \"b\"\n[auth]\nhttp_url = \"http://idp:8080/login\"\n")
            .expect("on");
    }

    #[test]
    fn events_need_a_secret_and_an_http_url() {
        let c = from_toml("[s3]\nbucket = \"b\"\n").expect("config");
        assert_eq!(c.events.max_attempts, 8);
        assert!(c.events.webhook_url.is_none());
        for (toml, key) in [
            (
                "webhook_url = \"https://h/x\"",
                "events.webhook_secret_file",
            ),
            (
                "webhook_url = \"ftp://h/x\"\nwebhook_secret_file = \"/s\"",
                "events.webhook_url",
            ),
            ("max_attempts = 0", "events.max_attempts"),
            ("queue_size = 0", "events.queue_size"),
        ] {
            let e = from_toml(&format!("[s3]\nbucket = \"b\"\n[events]\n{toml}\n"))
                .expect_err(toml)
                .to_string();
            assert!(e.starts_with(key), "{toml}: {e}");
        }
        // "" is off, as for an unset URL (TOML has no null).
        from_toml("[s3]\nbucket = \"b\"\n[events]\nwebhook_url = \"\"\n").expect("off");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = from_toml("[s3]\nbucket = \"b\"\npart_size_mib = \"big\"\n")
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("part_size_mib"), "{e}");
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = from_toml("[s3]\nbucket = \"b\"\nbukket = \"c\"\n")
            .expect_err("must fail")
            .to_string();
        assert!(e.contains("bukket"), "{e}");
    }

    #[test]
    // The closure's error type is figment's, not ours.
    #[allow(clippy::result_large_err)]
    fn env_nests_with_double_underscore() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FTPS_S3_S3__BUCKET", "from-env");
            jail.set_env("FTPS_S3_S3__UPLOAD_CONCURRENCY", "2");
            let c = Config::load(None).expect("config");
            assert_eq!(c.s3.bucket, "from-env");
            assert_eq!(c.s3.upload_concurrency, 2);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn unknown_env_variables_warn_unknown_file_keys_fail() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("FTPS_S3_S3__BUCKET", "from-env");
            // Not configuration: another tool's variable sharing the prefix, and a typo.
            jail.set_env("FTPS_S3_LINT_HOME", "/tmp/lint");
            jail.set_env("FTPS_S3_S3__BUKKET", "typo");
            let fig = Figment::from(Serialized::defaults(Config::default()));
            let (c, ignored) = Config::extract_ignoring_unknown_env(fig).expect("config");
            assert_eq!(c.s3.bucket, "from-env");
            let mut ignored = ignored;
            ignored.sort();
            assert_eq!(ignored, ["FTPS_S3_LINT_HOME", "FTPS_S3_S3__BUKKET"]);
            // The same unknown key in the file is still an error.
            jail.create_file("c.toml", "[s3]\nbucket = \"b\"\nbukket = \"c\"\n")?;
            let e = Config::load(Some(Path::new("c.toml"))).expect_err("file typo must fail");
            assert!(e.to_string().contains("bukket"), "{e}");
            // A known key with a bad value from the environment is still an error.
            jail.set_env("FTPS_S3_S3__PART_SIZE_MIB", "big");
            let e = Config::load(None).expect_err("bad env value must fail");
            assert!(e.to_string().contains("part_size_mib"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn semantic_checks_name_the_key() {
        let e = from_toml("[s3]\nbucket = \"b\"\npart_size_mib = 1\n").expect_err("fail");
        assert!(e.to_string().starts_with("s3.part_size_mib:"), "{e}");
        let e = from_toml("[s3]\nbucket = \"b\"\n[passive]\nports = \"9-3\"\n").expect_err("fail");
        assert!(e.to_string().starts_with("passive.ports:"), "{e}");
        let e = from_toml("").expect_err("fail");
        assert!(e.to_string().starts_with("s3.bucket:"), "{e}");
        let e = from_toml("[listeners]\ntcp_keepalive_secs = 40000\n[s3]\nbucket = \"b\"\n")
            .expect_err("fail");
        assert!(
            e.to_string().starts_with("listeners.tcp_keepalive_secs:"),
            "{e}"
        );
        let c = from_toml("[listeners]\ntcp_keepalive_secs = 0\n[s3]\nbucket = \"b\"\n")
            .expect("0 turns keepalive off");
        assert_eq!(c.listeners.tcp_keepalive_secs, 0);
    }

    #[test]
    fn cluster_slices_are_disjoint_and_cover_the_range() {
        let r = PortRange::parse("30000-30009").expect("range");
        let slices: Vec<PortRange> = (0..3).map(|i| r.slice(i, 3).expect("slice")).collect();
        assert_eq!(slices[0].first, 30000);
        assert_eq!(slices[2].last, 30009);
        for w in slices.windows(2) {
            assert_eq!(w[0].last + 1, w[1].first);
        }
        assert!(slices.iter().all(|s| (3..=4).contains(&s.len())));
        assert!(r.slice(0, 11).is_none());
        let c = from_toml(
            "[s3]\nbucket = \"b\"\n[cluster]\npeers = [\"a:1\", \"b:1\"]\nlisten = \"127.0.0.1:2100\"\nordinal = 1\n",
        )
        .expect("config");
        let (o, n, slice) = c.cluster_slice().expect("ok").expect("on");
        assert_eq!((o, n), (1, 2));
        assert_eq!(slice.first, 30010);
        let e = from_toml("[s3]\nbucket = \"b\"\n[cluster]\npeers = [\"a:1\"]\nordinal = 0\n")
            .expect_err("no listen");
        assert!(e.to_string().starts_with("cluster.listen:"), "{e}");
        let e = from_toml(
            "[s3]\nbucket = \"b\"\n[cluster]\npeers = [\"a:1\"]\nlisten = \"127.0.0.1:1\"\nordinal = 1\n",
        )
        .expect_err("bad ordinal");
        assert!(e.to_string().starts_with("cluster.ordinal:"), "{e}");
    }

    #[test]
    fn the_upload_memory_budget_holds_at_least_one_part() {
        let e = from_toml(
            "[s3]\nbucket = \"b\"\npart_size_mib = 16\n[limits]\nupload_memory_mib = 15\n",
        )
        .expect_err("a budget below one part");
        assert!(
            e.to_string().starts_with("limits.upload_memory_mib:"),
            "{e}"
        );
        let c = from_toml(
            "[s3]\nbucket = \"b\"\npart_size_mib = 16\n[limits]\nupload_memory_mib = 16\n",
        )
        .expect("one part fits");
        assert_eq!(c.limits.upload_memory_mib, 16);
        let c = from_toml("[s3]\nbucket = \"b\"\n[limits]\nupload_memory_mib = 0\n").expect("off");
        assert_eq!(c.limits.upload_memory_mib, 0);
        assert_eq!(Config::default().limits.upload_memory_mib, 256);
    }

    #[test]
    fn a_listener_can_be_switched_off() {
        let c =
            from_toml("[listeners]\nimplicit = \"off\"\n[s3]\nbucket = \"b\"\n").expect("config");
        assert_eq!(c.listeners.implicit, None);
        assert!(c.listeners.explicit.is_some());
        let e = from_toml("[listeners]\nexplicit = \"nowhere\"\n[s3]\nbucket = \"b\"\n")
            .expect_err("fail")
            .to_string();
        assert!(e.contains("listeners.explicit"), "{e}");
    }

    #[test]
    fn observability_keys_are_checked() {
        let c = from_toml(
            "[s3]\nbucket = \"b\"\n[admin]\nlisten = \"127.0.0.1:9090\"\n[telemetry]\notlp_endpoint = \"http://collector:4318\"\n",
        )
        .expect("config");
        assert_eq!(
            c.admin.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9090)))
        );
        assert_eq!(c.admin.storage_check_interval_secs, 10);
        assert_eq!(
            c.telemetry.otlp_endpoint.as_deref(),
            Some("http://collector:4318")
        );
        let c = from_toml("[s3]\nbucket = \"b\"\n[admin]\nlisten = \"off\"\n").expect("config");
        assert_eq!(c.admin.listen, None);
        let e =
            from_toml("[s3]\nbucket = \"b\"\n[admin]\nlisten = \"nowhere\"\n").expect_err("fail");
        assert!(e.to_string().starts_with("admin.listen:"), "{e}");
        let e =
            from_toml("[s3]\nbucket = \"b\"\n[telemetry]\notlp_endpoint = \"collector:4317\"\n")
                .expect_err("fail");
        assert!(e.to_string().starts_with("telemetry.otlp_endpoint:"), "{e}");
        let e = from_toml("[s3]\nbucket = \"b\"\n[admin]\nstorage_check_interval_secs = 0\n")
            .expect_err("fail");
        assert!(
            e.to_string()
                .starts_with("admin.storage_check_interval_secs:"),
            "{e}"
        );
        let e =
            from_toml("[s3]\nbucket = \"b\"\n[log]\nlevel = \"ftps_s3=loud\"\n").expect_err("fail");
        assert!(e.to_string().starts_with("log.level:"), "{e}");
    }

    #[test]
    fn client_auth_needs_a_ca_bundle() {
        let c = from_toml("[s3]\nbucket = \"b\"\n").expect("config");
        assert_eq!(c.tls.client_auth, ClientAuth::None);
        assert_eq!(c.tls.reload_interval_secs, 10);
        let e = from_toml("[s3]\nbucket = \"b\"\n[tls]\nclient_auth = \"required\"\n")
            .expect_err("fail")
            .to_string();
        assert!(e.starts_with("tls.client_ca_file: must be set"), "{e}");
        let c = from_toml(
            "[s3]\nbucket = \"b\"\n[tls]\nclient_auth = \"optional\"\nclient_ca_file = \"/ca.pem\"\n",
        )
        .expect("config");
        assert_eq!(c.tls.client_auth, ClientAuth::Optional);
        let e = from_toml("[s3]\nbucket = \"b\"\n[tls]\nclient_auth = \"sometimes\"\n")
            .expect_err("fail")
            .to_string();
        assert!(e.contains("client_auth"), "{e}");
    }

    #[test]
    fn proxy_protocol_needs_trusted_sources() {
        let e = from_toml("[listeners]\nproxy_protocol = true\n[s3]\nbucket = \"b\"\n")
            .expect_err("fail");
        assert!(
            e.to_string().starts_with("listeners.trusted_proxies:"),
            "{e}"
        );
        let c = from_toml(
            "[listeners]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"]\n[s3]\nbucket = \"b\"\n",
        )
        .expect("config");
        assert_eq!(c.listeners.trusted_proxies.len(), 2);
        let e = from_toml(
            "[listeners]\nproxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/33\"]\n[s3]\nbucket = \"b\"\n",
        )
        .expect_err("fail");
        assert!(e.to_string().contains("trusted_proxies"), "{e}");
    }

    #[test]
    fn passive_range_must_not_include_a_listener() {
        let e = from_toml(
            "[listeners]\nexplicit = \"0.0.0.0:30005\"\n[passive]\nports = \"30000-30019\"\n[s3]\nbucket = \"b\"\n",
        )
        .expect_err("fail")
        .to_string();
        assert!(
            e.starts_with("passive.ports:")
                && e.contains("30005")
                && e.contains("listeners.explicit"),
            "{e}"
        );
        let e = from_toml(
            "[admin]\nlisten = \"127.0.0.1:30019\"\n[passive]\nports = \"30000-30019\"\n[s3]\nbucket = \"b\"\n",
        )
        .expect_err("fail")
        .to_string();
        assert!(e.contains("admin.listen"), "{e}");
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(PortRange::parse("30000-30099").map(|r| r.len()), Ok(100));
        assert_eq!(PortRange::parse("5000").map(|r| r.len()), Ok(1));
        assert!(PortRange::parse("a-b").is_err());
    }
}
