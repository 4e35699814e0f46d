//! `SessionPolicy`: the configuration a session obeys, typed and built once from [`Config`].
//!
//! Handlers read these fields, never raw config keys: durations are `Duration`s already, flags
//! that combine keys (MFMT advertised) are decided here, so a rule about a key lives in one place
//! and a session can be built in tests without a whole `Config`.

use std::{net::IpAddr, time::Duration};

use crate::config::{Backend, Config};
use crate::limits::LimitHit;

/// What a session's rules depend on, from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// `listeners.require_tls`: nothing but AUTH (and FEAT, QUIT, HOST) in the clear, PROT P only.
    pub require_tls: bool,
    /// `tls.allow_ccc`: CCC may end the control connection's TLS after login.
    pub allow_ccc: bool,
    /// `tls.require_session_reuse`: a data connection must resume its control session's TLS.
    pub require_session_reuse: bool,
    /// MFMT is offered only where listings report the times it sets (local storage, or S3 with
    /// `s3.listing_times`): a client that sets times and then sees other ones uploads again.
    pub mfmt: bool,
    /// `limits.max_line_length`: a longer command line is answered `500`.
    pub max_line_length: usize,
    /// `limits.control_idle_timeout_secs`.
    pub control_idle_timeout: Duration,
    /// `limits.tls_handshake_timeout_secs` (AUTH, implicit TLS, CCC's close).
    pub tls_handshake_timeout: Duration,
    /// `limits.data_connect_timeout_secs`.
    pub data_connect_timeout: Duration,
    /// `limits.data_idle_timeout_secs`.
    pub data_idle_timeout: Duration,
    /// `listeners.tcp_keepalive_secs` for data connections (0: off).
    pub tcp_keepalive_secs: u64,
    /// `auth.failure_delay_ms`: the wait before `530` on a failed login.
    pub login_failure_delay: Duration,
    /// `passive.advertise_address`: the address PASV names instead of the local one.
    pub passive_address: Option<IpAddr>,
    /// `active.enabled`: PORT/EPRT accepted at all.
    pub active_enabled: bool,
    /// `active.implicit_source_port`: the source port of active data connections on the
    /// implicit listener.
    pub implicit_source_port: Option<u16>,
    /// `s3.max_rename_objects`: the most objects a directory rename may move.
    pub max_rename_objects: usize,
    /// The session limits (`limits.max_sessions*`), named in the refusal's text.
    pub max_sessions: SessionCaps,
}

/// `limits.max_sessions`, `limits.max_sessions_per_ip`, `limits.max_sessions_per_user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionCaps {
    pub total: usize,
    pub per_address: usize,
    pub per_user: usize,
}

impl SessionCaps {
    /// The configured maximum that `hit` reached.
    pub fn of(&self, hit: LimitHit) -> usize {
        match hit {
            LimitHit::Total => self.total,
            LimitHit::PerAddress => self.per_address,
            LimitHit::PerUser => self.per_user,
        }
    }
}

impl SessionPolicy {
    pub fn from_config(config: &Config) -> SessionPolicy {
        let limits = &config.limits;
        SessionPolicy {
            require_tls: config.listeners.require_tls,
            allow_ccc: config.tls.allow_ccc,
            require_session_reuse: config.tls.require_session_reuse,
            mfmt: config.storage.backend == Backend::Local || config.s3.listing_times,
            max_line_length: limits.max_line_length,
            control_idle_timeout: Duration::from_secs(limits.control_idle_timeout_secs),
            tls_handshake_timeout: Duration::from_secs(limits.tls_handshake_timeout_secs),
            data_connect_timeout: Duration::from_secs(limits.data_connect_timeout_secs),
            data_idle_timeout: Duration::from_secs(limits.data_idle_timeout_secs),
            tcp_keepalive_secs: config.listeners.tcp_keepalive_secs,
            login_failure_delay: Duration::from_millis(config.auth.failure_delay_ms),
            passive_address: config.passive.advertise_address,
            active_enabled: config.active.enabled,
            implicit_source_port: config.active.implicit_source_port,
            max_rename_objects: config.s3.max_rename_objects,
            max_sessions: SessionCaps {
                total: limits.max_sessions,
                per_address: limits.max_sessions_per_ip,
                per_user: limits.max_sessions_per_user,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_from_the_config_keys_it_names() {
        let mut c = Config::default();
        c.listeners.require_tls = true;
        c.tls.allow_ccc = true;
        c.limits.control_idle_timeout_secs = 300;
        c.limits.data_connect_timeout_secs = 7;
        c.limits.tls_handshake_timeout_secs = 3;
        c.auth.failure_delay_ms = 1500;
        c.passive.advertise_address = Some("203.0.113.9".parse().expect("ip"));
        c.active.enabled = false;
        c.active.implicit_source_port = Some(989);
        c.limits.max_sessions = 10;
        c.limits.max_sessions_per_ip = 4;
        c.limits.max_sessions_per_user = 2;
        let p = SessionPolicy::from_config(&c);
        assert!(p.require_tls && p.allow_ccc && !p.active_enabled);
        assert_eq!(p.control_idle_timeout, Duration::from_secs(300));
        assert_eq!(p.data_connect_timeout, Duration::from_secs(7));
        assert_eq!(p.tls_handshake_timeout, Duration::from_secs(3));
        assert_eq!(p.login_failure_delay, Duration::from_millis(1500));
        assert_eq!(p.passive_address, Some("203.0.113.9".parse().expect("ip")));
        assert_eq!(p.implicit_source_port, Some(989));
        assert_eq!(p.max_sessions.of(LimitHit::Total), 10);
        assert_eq!(p.max_sessions.of(LimitHit::PerAddress), 4);
        assert_eq!(p.max_sessions.of(LimitHit::PerUser), 2);
    }

    #[test]
    fn mfmt_only_where_listings_show_the_times_it_sets() {
        // (backend, s3.listing_times) → MFMT offered
        for (backend, listing_times, mfmt) in [
            (Backend::Local, false, true),
            (Backend::Local, true, true),
            (Backend::S3, false, false),
            (Backend::S3, true, true),
        ] {
            let mut c = Config::default();
            c.storage.backend = backend;
            c.s3.listing_times = listing_times;
            assert_eq!(
                SessionPolicy::from_config(&c).mfmt,
                mfmt,
                "{backend:?}, listing_times {listing_times}"
            );
        }
    }

    #[test]
    fn defaults_follow_the_default_config() {
        let c = Config::default();
        let p = SessionPolicy::from_config(&c);
        assert_eq!(p.require_tls, c.listeners.require_tls);
        assert_eq!(p.max_line_length, c.limits.max_line_length);
        assert_eq!(
            p.data_idle_timeout,
            Duration::from_secs(c.limits.data_idle_timeout_secs)
        );
        assert_eq!(p.tcp_keepalive_secs, c.listeners.tcp_keepalive_secs);
        assert_eq!(p.max_rename_objects, c.s3.max_rename_objects);
        assert_eq!(p.require_session_reuse, c.tls.require_session_reuse);
    }
}
