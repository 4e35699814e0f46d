//! `SessionEnv`: what every session of the server shares, and nothing else.
//!
//! Built once by the server and handed to each session behind an `Arc`. It holds the handles a
//! session uses (authenticator, TLS acceptors, stores, passive ports, limits, the PROXY policy,
//! the shutdown signals, the events sink, the background tracker, the users' quota accounts) and
//! the typed [`SessionPolicy`]; the raw `Config` stays with the server, so no handler reads a
//! config key.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::policy::SessionPolicy;
use crate::auth::Authenticator;
use crate::background::Background;
use crate::datachan::PassivePortPool;
use crate::events::EventSink;
use crate::limits::SessionLimits;
use crate::net::ProxyPolicy;
use crate::quota::Quotas;
use crate::tls::TlsAcceptors;
use crate::vfs::Stores;

/// Everything sessions share.
pub struct SessionEnv {
    pub policy: SessionPolicy,
    /// Shared with the reloader, which swaps the users file behind it.
    pub auth: Arc<Authenticator>,
    /// Shared with the reloader, which swaps the certificate behind it.
    pub tls: Arc<TlsAcceptors>,
    pub stores: Stores,
    pub passive_ports: PassivePortPool,
    pub limits: Arc<SessionLimits>,
    /// `listeners.proxy_protocol`: whom to trust for PROXY headers; `None` when off.
    pub proxy: Option<Arc<ProxyPolicy>>,
    /// Cancelled when the server shuts down: idle sessions answer `421`.
    pub shutdown: CancellationToken,
    /// Cancelled when the grace period is over: transfers still running end (426) and clean up.
    pub end_transfers: CancellationToken,
    /// Upload events to the webhook (`[events]`); does nothing when none is configured.
    pub events: EventSink,
    /// Where work outliving a command runs (a data connection's linger), so shutdown waits.
    pub background: Background,
    /// Users' quota usage and bandwidth buckets in this replica (`quota_*`, `max_*_kib_s`).
    pub quotas: Quotas,
}
