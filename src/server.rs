//! Listeners, accept loops and shutdown.
//!
//! [`Server::bind`] loads everything a session needs into one [`SessionEnv`] (TLS, users,
//! stores, passive ports, limits, the typed [`SessionPolicy`]) and binds the listeners, so a bad
//! certificate or a busy port stops the start before anything is accepted. The other parts get
//! only their handles: the reloader its [`ReloadTargets`], the admin listener a [`Readiness`]
//! and a storage probe ([`Stores::probe`]). [`Server::spawn`] runs the accept loops; each
//! connection becomes a `session::run` task. Shutdown is one `CancellationToken`: accept loops
//! stop, idle sessions answer `421`, transfers in flight get `shutdown.grace_seconds` to finish.
//! When the grace period is over a second token, `end_transfers`, cancels the transfers still
//! running, so each upload ends through its own `suspend`/`abort` (kept for resume or aborted)
//! while the runtime is still there to send those S3 requests; dropping the tasks instead would
//! leave their multipart uploads open.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{net::TcpListener, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{info, warn};

use crate::admin::{AdminServer, Readiness, StorageProbe};
use crate::auth::{Authenticator, UserStore};
use crate::background::Background;
use crate::config::Config;
use crate::datachan::{relay::Relay, PassivePortPool};
use crate::events::Delivery;
use crate::limits::SessionLimits;
use crate::net::{ListenerKind, ProxyPolicy};
use crate::quota::Quotas;
use crate::reload::ReloadTargets;
use crate::session::{self, SessionEnv, SessionPolicy};
use crate::tls::TlsAcceptors;
use crate::vfs::Stores;

/// After the grace period: how long ended transfers get to abort (or keep) their multipart
/// uploads, and then background work (aborts of dropped uploads, abort retries, listing
/// prefetches) gets what is left of it; when the sessions ended within the grace period, the
/// background work gets all of it. An abort is one S3 request; suspending waits for parts
/// already read. Within the 15 s the Helm chart adds to the grace period before Kubernetes
/// sends SIGKILL.
const CLEANUP_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Users(#[from] crate::auth::UsersError),
    #[error("storage: {0}")]
    Storage(std::io::Error),
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A server with its listeners bound, not yet accepting.
pub struct Server {
    config: Config,
    /// What each session gets (one `Arc` per session).
    env: Arc<SessionEnv>,
    /// What `/readyz` reports (draining as soon as `shutdown` is cancelled).
    readiness: Arc<Readiness>,
    /// Work outliving what started it (aborts, retries, reload polls, storage checks, events,
    /// lingers): stopped after the sessions, waited for within the cleanup wait.
    background: Background,
    explicit: Option<TcpListener>,
    implicit: Option<TcpListener>,
    admin: Option<AdminServer>,
    /// The cluster mode's relay listeners (`[cluster]`).
    relay: Option<Relay>,
    /// The event sender, started by `run` and stopped after the sessions.
    events: Option<Delivery>,
}

/// A running server: its addresses and the handle to stop it.
pub struct RunningServer {
    pub explicit_addr: Option<SocketAddr>,
    pub implicit_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Loads the certificate, users file and storage named by `config`, then binds.
    pub async fn bind(config: Config) -> Result<Server, StartError> {
        let tls = TlsAcceptors::load(&config.tls)?;
        let users = UserStore::load(&config.auth.users_file)?;
        let stores = Stores::from_config(&config)
            .await
            .map_err(StartError::Storage)?;
        Self::bind_with(config, tls, users, stores).await
    }

    /// Binds with parts built by the caller (the development default, tests).
    pub async fn bind_with(
        config: Config,
        tls: TlsAcceptors,
        users: UserStore,
        stores: Stores,
    ) -> Result<Server, StartError> {
        let tls = tls.sized_for(config.limits.max_sessions);
        let explicit = bind_opt("listeners.explicit", config.listeners.explicit).await?;
        let implicit = bind_opt("listeners.implicit", config.listeners.implicit).await?;
        let limits = SessionLimits::new(
            config.limits.max_sessions,
            config.limits.max_sessions_per_ip,
            config.limits.max_sessions_per_user,
        );
        crate::reload::warn_unusable_certificate_users(&users, config.tls.client_auth);
        crate::reload::warn_ignored_settings(&users);
        let auth = Authenticator::new(
            users,
            config.auth.max_failures,
            Duration::from_secs(config.auth.ban_seconds),
            config.auth.lockout,
        )
        .with_http(crate::auth::HttpIdentity::from_config(&config.auth)?);
        let admin = bind_admin(config.admin.listen).await?;
        let shutdown = CancellationToken::new();
        let readiness = Readiness::new(shutdown.clone());
        // Loaded by the caller: a bad certificate would have stopped the start.
        readiness.set_certificate_loaded(true);
        let proxy = ProxyPolicy::from_config(&config.listeners).map(Arc::new);
        let range = config.passive_ports()?;
        let cluster = config.cluster_slice()?;
        // In the cluster mode PASV hands out only this replica's slice of the range.
        let owned = cluster.map_or(range, |(_, _, slice)| slice);
        let passive_ports = PassivePortPool::new(owned, proxy.clone());
        let relay = match cluster {
            Some((_, n, _)) => Relay::bind(&config, range, owned, n)
                .map_err(|(key, addr, source)| StartError::Bind { key, addr, source })?,
            None => None,
        };
        let (events, delivery) = crate::events::from_config(&config.events)?;
        let background = Background::new();
        let stores = stores.with_background(background.clone());
        let quotas = Quotas::new(Duration::from_secs(config.limits.quota_recount_secs));
        let env = Arc::new(SessionEnv {
            policy: SessionPolicy::from_config(&config),
            limits,
            proxy,
            auth: Arc::new(auth),
            tls: Arc::new(tls),
            stores,
            passive_ports,
            shutdown,
            end_transfers: CancellationToken::new(),
            events,
            background: background.clone(),
            quotas,
        });
        Ok(Server {
            config,
            env,
            readiness,
            background,
            explicit,
            implicit,
            admin,
            relay,
            events: delivery,
        })
    }

    pub fn explicit_addr(&self) -> Option<SocketAddr> {
        self.explicit.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn implicit_addr(&self) -> Option<SocketAddr> {
        self.implicit.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(AdminServer::local_addr)
    }

    /// What each session gets: for driving a session in-process over any stream with
    /// [`session::serve`] (tests), with this server's users, stores and policy.
    pub fn session_env(&self) -> Arc<SessionEnv> {
        self.env.clone()
    }

    /// The tracker shutdown waits on (bounded), for work started next to the server.
    pub fn background(&self) -> &Background {
        &self.background
    }

    /// Starts accepting in the background.
    pub fn spawn(self) -> RunningServer {
        let explicit_addr = self.explicit_addr();
        let implicit_addr = self.implicit_addr();
        let admin_addr = self.admin_addr();
        let shutdown = self.env.shutdown.clone();
        let done = tokio::spawn(self.run());
        RunningServer {
            explicit_addr,
            implicit_addr,
            admin_addr,
            shutdown,
            done,
        }
    }

    /// Accepts until shutdown, then waits (up to the grace period) for sessions to end.
    pub async fn run(self) {
        // The admin listener outlives the accept loops: /readyz reports the drain, /metrics
        // stays up until the sessions are gone.
        let admin_stop = CancellationToken::new();
        let admin = self.admin.map(|admin| {
            self.readiness
                .set_storage_gate(self.config.admin.readiness_storage_failures);
            self.readiness.spawn_storage_checks(
                storage_probe(&self.env),
                Duration::from_secs(self.config.admin.storage_check_interval_secs),
                self.env.shutdown.clone(),
                &self.background,
            );
            tokio::spawn(admin.serve(self.readiness.clone(), admin_stop.clone()))
        });
        crate::reload::spawn(
            ReloadTargets {
                tls: self.env.tls.clone(),
                auth: self.env.auth.clone(),
                readiness: self.readiness.clone(),
            },
            &self.config,
            &self.env.shutdown,
            &self.background,
        );
        // Relays serve transfers in flight on other replicas too: they stop with the process.
        let relay_stop = CancellationToken::new();
        if let Some(relay) = self.relay {
            relay.spawn(
                self.env.passive_ports.clone(),
                self.env.proxy.clone(),
                self.config.listeners.tcp_keepalive_secs,
                relay_stop.clone(),
            );
        }
        let events = self.events.map(|d| d.spawn(&self.background));
        let sessions = TaskTracker::new();
        let ids = Arc::new(AtomicU64::new(1));
        let mut loops = Vec::new();
        for (listener, kind) in [
            (self.explicit, ListenerKind::Explicit),
            (self.implicit, ListenerKind::Implicit),
        ] {
            if let Some(listener) = listener {
                if let Ok(addr) = listener.local_addr() {
                    info!(listener = kind.name(), %addr, "listening");
                }
                loops.push(tokio::spawn(accept_loop(
                    listener,
                    kind,
                    self.env.clone(),
                    self.config.listeners.tcp_keepalive_secs,
                    sessions.clone(),
                    ids.clone(),
                )));
            }
        }
        self.readiness.set_listeners_bound(true);
        for l in loops {
            let _ = l.await;
        }
        let grace = Duration::from_secs(self.config.shutdown.grace_seconds);
        let cleanup_by = drain_sessions(&sessions, grace, &self.env.end_transfers).await;
        // After the sessions: their last events are queued; they get one bounded last attempt.
        if let Some(events) = events {
            events.stop().await;
        }
        // Then the background work (the event sender's task is over): what is left of the
        // cleanup wait, so the aborts sessions left behind are sent before the process exits.
        stop_background(&self.background, cleanup_by).await;
        admin_stop.cancel();
        relay_stop.cancel();
        if let Some(admin) = admin {
            let _ = admin.await;
        }
    }
}

impl RunningServer {
    /// Stops accepting and waits for sessions to end (bounded by the grace period).
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.done.await;
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}

/// Closes `sessions` and waits for them: the grace period, then `end_transfers` and the cleanup
/// wait. Returns when the cleanup wait ends (counted from now when the sessions ended in time).
async fn drain_sessions(
    sessions: &TaskTracker,
    grace: Duration,
    end_transfers: &CancellationToken,
) -> Instant {
    sessions.close();
    if tokio::time::timeout(grace, sessions.wait()).await.is_ok() {
        return Instant::now() + CLEANUP_WAIT;
    }
    warn!(
        sessions = sessions.len(),
        "grace period over; ending the transfers still running"
    );
    end_transfers.cancel();
    let by = Instant::now() + CLEANUP_WAIT;
    if tokio::time::timeout_at(by, sessions.wait()).await.is_err() {
        warn!(
            sessions = sessions.len(),
            "sessions still running after the cleanup wait; their open multipart \
             uploads are left to the bucket lifecycle rule"
        );
    }
    by
}

/// Stops the background work and waits for it until `by`.
async fn stop_background(background: &Background, by: Instant) {
    if !background
        .stop(by.saturating_duration_since(Instant::now()))
        .await
    {
        warn!(
            tasks = background.len(),
            "background work still running after the cleanup wait; multipart uploads it \
             was aborting are left to the bucket lifecycle rule"
        );
    }
}

/// The admin listener's storage check: the stores' own probe.
fn storage_probe(env: &Arc<SessionEnv>) -> StorageProbe {
    let env = env.clone();
    Arc::new(move || {
        let env = env.clone();
        Box::pin(async move { env.stores.probe().await })
    })
}

async fn bind_opt(
    key: &'static str,
    addr: Option<SocketAddr>,
) -> Result<Option<TcpListener>, StartError> {
    match addr {
        None => Ok(None),
        Some(addr) => TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|source| StartError::Bind { key, addr, source }),
    }
}

async fn bind_admin(addr: Option<SocketAddr>) -> Result<Option<AdminServer>, StartError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    AdminServer::bind(addr)
        .await
        .map(Some)
        .map_err(|source| StartError::Bind {
            key: "admin.listen",
            addr,
            source,
        })
}

async fn accept_loop(
    listener: TcpListener,
    kind: ListenerKind,
    env: Arc<SessionEnv>,
    keepalive_secs: u64,
    sessions: TaskTracker,
    ids: Arc<AtomicU64>,
) {
    loop {
        let accepted = tokio::select! {
            // Shutdown first: once it has started, no connection queued meanwhile is served.
            biased;
            _ = env.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((tcp, _)) => {
                crate::keepalive::apply(&tcp, keepalive_secs);
                let id = ids.fetch_add(1, Ordering::Relaxed);
                sessions.spawn(session::run(env.clone(), tcp, kind, id));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
