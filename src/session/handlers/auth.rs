//! Login and security: USER, PASS, AUTH, PBSZ, PROT, CCC, REIN, HOST (RFC 959 §4.1.1, RFC 4217,
//! MS-FTPS §3.2.5, RFC 7151).

use std::time::Duration;

use crate::audit;
use crate::limits::LimitHit;
use crate::session::command::{AuthMechanism, ProtLevel};
use crate::session::reply::Reply;
use crate::session::state::{DataProtection, ListenerKind, LoggedIn, Login};
use crate::session::{ControlSecurity, Outcome, Session};

impl Session {
    pub(in crate::session) async fn user(&mut self, name: String) -> Outcome {
        // The same reply whether or not the user exists.
        self.state.login = Login::UserGiven(name);
        Reply::new(331, "Password required").into()
    }

    pub(in crate::session) async fn pass(&mut self, password: String) -> Outcome {
        let name = match std::mem::replace(&mut self.state.login, Login::Fresh) {
            Login::UserGiven(name) => name,
            other => {
                self.state.login = other;
                return Reply::bad_sequence("Send USER first").into();
            }
        };
        match self
            .ctx
            .auth
            .login(self.state.client, &name, &password)
            .await
        {
            Ok(user) => {
                let permit = match self.ctx.limits.admit_user(&user.name) {
                    Ok(p) => p,
                    Err(hit) => {
                        crate::metrics::login("refused");
                        let actor = audit::Actor {
                            user: &user.name,
                            ..self.actor()
                        };
                        audit::login(actor, audit::Outcome::Failed(limit_reason(hit)));
                        return Outcome::Close(Reply::new(421, hit.to_string()));
                    }
                };
                let home = self.ctx.stores.home_for(&user);
                tracing::Span::current().record("user", user.name.as_str());
                crate::metrics::login("ok");
                let actor = audit::Actor {
                    user: &user.name,
                    ..self.actor()
                };
                audit::login(actor, audit::Outcome::Ok);
                self.state.login = Login::LoggedIn(LoggedIn {
                    user,
                    home,
                    _permit: permit,
                });
                self.state.cwd = crate::vfs::VirtualPath::root();
                Reply::new(230, "Login successful").into()
            }
            Err(why) => {
                crate::metrics::login("failed");
                let actor = audit::Actor {
                    user: &name,
                    ..self.actor()
                };
                audit::login(actor, audit::Outcome::Failed(why.reason()));
                let delay = Duration::from_millis(self.ctx.config.auth.failure_delay_ms);
                tokio::time::sleep(delay).await;
                Reply::new(530, "Login incorrect").into()
            }
        }
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
                Reply::new(504, format!("AUTH {m} not supported; use AUTH TLS")).into()
            }
        }
    }

    /// RFC 4217 §8: PBSZ only after TLS; for TLS the only size is 0.
    pub(in crate::session) fn pbsz(&mut self, arg: &str) -> Outcome {
        if !self.conn.is_tls() {
            return Reply::bad_sequence("PBSZ requires AUTH TLS first").into();
        }
        if arg.parse::<u64>().is_err() {
            return Reply::new(501, "PBSZ needs a number").into();
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
            ProtLevel::Clear if self.ctx.config.listeners.require_tls => {
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
        if !self.ctx.config.tls.allow_ccc {
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
