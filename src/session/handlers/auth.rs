//! Login and security: USER, PASS, AUTH, PBSZ, PROT, CCC, REIN, HOST (RFC 959 §4.1.1, RFC 4217,
//! MS-FTPS §3.2.5, RFC 7151).

use std::sync::Arc;
use tracing::Instrument;

use crate::audit;
use crate::auth::User;
use crate::limits::LimitHit;
use crate::session::command::{AuthMechanism, ProtLevel};
use crate::session::reply::Reply;
use crate::session::state::{DataProtection, ListenerKind, LoggedIn, Login};
use crate::session::{ControlSecurity, Outcome, Session};

impl Session {
    /// RFC 959 USER. A certificate-only user whose client certificate matches is logged in here
    /// (RFC 2228 reply `232`); everyone else, matching or not, gets the same `331`.
    pub(in crate::session) async fn user(&mut self, name: String) -> Outcome {
        // Only the certificate of the control connection as it is now: after CCC it is plain
        // and proves nothing about who sends the next commands.
        let cn = self.conn.client_cert_cn();
        if let Some(user) =
            self.env
                .auth
                .login_by_certificate(self.state.client.ip(), &name, cn.as_deref())
        {
            return self
                .logged_in(
                    user,
                    cn.as_deref(),
                    Reply::new(232, "User logged in, authorized by client certificate"),
                )
                .await;
        }
        // The same reply whether or not the user exists.
        self.state.login = Login::UserGiven(name);
        Reply::new(331, "Password required").into()
    }

    pub(in crate::session) async fn pass(&mut self, password: String) -> Outcome {
        let name = match std::mem::replace(&mut self.state.login, Login::Fresh) {
            Login::UserGiven(name) => name,
            // RFC 959 §5.4 lists 202 for PASS: a client that sends a password after a login by
            // certificate (232) is told it was not needed, not that it erred.
            logged_in @ Login::LoggedIn(_) => {
                self.state.login = logged_in;
                return Reply::new(202, "Already logged in").into();
            }
            other => {
                self.state.login = other;
                return Reply::bad_sequence("Send USER first").into();
            }
        };
        let cn = self.conn.client_cert_cn();
        match self
            .env
            .auth
            .login(
                self.state.client,
                self.state.listener,
                &name,
                &password,
                cn.as_deref(),
            )
            .await
        {
            Ok(user) => {
                self.logged_in(user, cn.as_deref(), Reply::new(230, "Login successful"))
                    .await
            }
            Err(why) => {
                crate::metrics::login(why.metric_result());
                let actor = audit::Actor {
                    user: &name,
                    ..self.actor()
                };
                audit::login(actor, audit::Outcome::Failed(why.reason()), cn.as_deref());
                tokio::time::sleep(self.env.policy.login_failure_delay).await;
                Reply::new(530, "Login incorrect").into()
            }
        }
    }

    /// A login the authenticator accepted: take a per-user session slot, count the user's
    /// quota usage (once for all their sessions, see `quota`), record it, reply.
    async fn logged_in(&mut self, user: Arc<User>, cert_cn: Option<&str>, reply: Reply) -> Outcome {
        let permit = match self.env.limits.admit_user(&user.name) {
            Ok(p) => p,
            Err(hit) => {
                crate::metrics::login("refused");
                let actor = audit::Actor {
                    user: &user.name,
                    ..self.actor()
                };
                audit::login(actor, audit::Outcome::Failed(limit_reason(hit)), cert_cn);
                // Named with its key and value: curl and others show only this line.
                let max = self.env.policy.max_sessions.of(hit);
                let text = format!(
                    "{hit}: at most {max} at once (limits.{}), try again later",
                    limit_reason(hit)
                );
                return Outcome::Close(Reply::closing(text));
            }
        };
        let mounts = self.env.stores.mounts_for(&user);
        self.span.record("user", user.name.as_str());
        crate::metrics::login("ok");
        let actor = audit::Actor {
            user: &user.name,
            ..self.actor()
        };
        audit::login(actor, audit::Outcome::Ok, cert_cn);
        let account = self.env.quotas.account(&user.name, user.limits);
        let logged_in = LoggedIn {
            user,
            mounts,
            _permit: permit,
            account,
        };
        if let Some(account) = &logged_in.account {
            // Counted in the background: a large home takes one listing page per 1,000 keys,
            // and `230` must not wait for that (clients time logins out). An upload counts
            // before it starts, so it waits for this count (one at a time per user). A failed
            // count does not stop the login; uploads are refused while it keeps failing.
            let (account, roots) = (account.clone(), logged_in.quota_roots());
            self.env.background.spawn(
                async move {
                    if let Err(e) = account.count(&roots).await {
                        tracing::warn!(error = %e, "quota: cannot count the user's usage");
                    }
                }
                .in_current_span(),
            );
        }
        self.state.login = Login::LoggedIn(logged_in);
        self.state.cwd = crate::vfs::VirtualPath::root();
        reply.into()
    }

    pub(in crate::session) fn auth(&mut self, mech: AuthMechanism) -> Outcome {
        match (self.state.listener, mech) {
            // MS-FTPS §3.2.5.6: the implicit AUTH TLS was already processed.
            (ListenerKind::Implicit, _) => Reply::tls_required(
                "AUTH is not allowed on the implicit FTPS port: TLS is already active",
            )
            .into(),
            (ListenerKind::Explicit, _) if self.conn.is_tls() => {
                Reply::bad_sequence("TLS is already active").into()
            }
            // MS-FTPS §2.2.1: AUTH SSL is AUTH TLS.
            (ListenerKind::Explicit, AuthMechanism::Tls | AuthMechanism::Ssl) => {
                // RFC 4217 §4: a new TLS session resets data protection until PBSZ/PROT.
                self.state.protection = DataProtection::NoPbsz;
                Outcome::StartTls(Reply::new(234, "Proceed with TLS negotiation"))
            }
            (ListenerKind::Explicit, AuthMechanism::Other(m)) => {
                Reply::parameter_not_supported(format!("AUTH {m} not supported; use AUTH TLS"))
                    .into()
            }
        }
    }

    /// RFC 4217 §8: PBSZ only after TLS; for TLS the only size is 0.
    pub(in crate::session) fn pbsz(&mut self, arg: &str) -> Outcome {
        if !self.conn.is_tls() {
            return Reply::bad_sequence("PBSZ requires AUTH TLS first").into();
        }
        if arg.parse::<u64>().is_err() {
            return Reply::syntax_error("PBSZ needs a number").into();
        }
        if self.state.protection == DataProtection::NoPbsz {
            self.state.protection = DataProtection::Clear;
        }
        Reply::ok("PBSZ=0").into()
    }

    /// RFC 4217 §9: PROT after PBSZ; C and P only; policy may require P.
    pub(in crate::session) fn prot(&mut self, level: ProtLevel) -> Outcome {
        if !self.conn.is_tls() {
            return Reply::bad_sequence("PROT requires AUTH TLS first").into();
        }
        if self.state.protection == DataProtection::NoPbsz {
            return Reply::bad_sequence("PROT requires PBSZ first").into();
        }
        match level {
            ProtLevel::Private => {
                self.state.protection = DataProtection::Private;
                Reply::ok("Protection level set to P").into()
            }
            ProtLevel::Clear if self.env.policy.require_tls => {
                Reply::tls_required("Data connections must be protected: use PROT P").into()
            }
            ProtLevel::Clear => {
                self.state.protection = DataProtection::Clear;
                Reply::ok("Protection level set to C").into()
            }
            ProtLevel::Safe | ProtLevel::Confidential => {
                Reply::new(536, "Only PROT C and PROT P are supported").into()
            }
        }
    }

    /// RFC 4217 §6 / MS-FTPS §3.2.5.2.
    pub(in crate::session) fn ccc(&mut self) -> Outcome {
        if self.state.listener == ListenerKind::Implicit {
            return Reply::tls_required("CCC is not allowed on the implicit FTPS port").into();
        }
        if !self.conn.is_tls() {
            return Reply::new(533, "The control connection is not protected").into();
        }
        if !self.env.policy.allow_ccc {
            return Reply::tls_required("CCC is not allowed by server policy").into();
        }
        self.security = ControlSecurity::Cleared;
        Outcome::EndTls(Reply::ok("Control connection is now in the clear"))
    }

    /// RFC 959 REIN; RFC 4217 §11 (explicit: back to before AUTH); MS-FTPS §3.2.5.3 (implicit:
    /// end TLS, then the connection is as new: handshake, greeting).
    pub(in crate::session) fn rein(&mut self) -> Outcome {
        self.state.reset();
        let reply = Reply::new(220, "Session reinitialized, ready for a new user");
        match self.state.listener {
            ListenerKind::Implicit => Outcome::RestartImplicit(reply),
            ListenerKind::Explicit => {
                self.security = ControlSecurity::Plain;
                if self.conn.is_tls() {
                    Outcome::EndTls(reply)
                } else {
                    reply.into()
                }
            }
        }
    }

    /// RFC 7151: HOST before login. There is one virtual host; any name is accepted.
    pub(in crate::session) fn host(&mut self) -> Outcome {
        if self.state.logged_in().is_some() || matches!(self.state.login, Login::UserGiven(_)) {
            return Reply::bad_sequence("HOST must come before USER").into();
        }
        Reply::new(220, "Host accepted").into()
    }
}

fn limit_reason(hit: LimitHit) -> &'static str {
    match hit {
        LimitHit::Total => "max_sessions",
        LimitHit::PerAddress => "max_sessions_per_ip",
        LimitHit::PerUser => "max_sessions_per_user",
    }
}
