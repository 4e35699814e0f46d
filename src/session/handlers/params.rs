//! Transfer parameters: TYPE, PASV, EPSV, PORT, EPRT (RFC 959, RFC 2428), REST (RFC 3659 §5),
//! and ABOR outside a transfer.

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use tracing::warn;

use crate::datachan::{active_target, DataPlan, EagerPassive};
use crate::session::command::{EpsvArg, TransferType};
use crate::session::reply::Reply;
use crate::session::state::DataProtection;
use crate::session::{Outcome, Session};

/// The longest a PASV/EPSV waits for a port to be freed before answering 425.
const MAX_PORT_WAIT: Duration = Duration::from_secs(5);

impl Session {
    /// TYPE A and I are accepted. Under TYPE A transfers convert line endings
    /// (`datachan/ascii.rs`: LF→CRLF on RETR, CRLF→LF on STOR); TYPE I moves bytes unchanged.
    pub(in crate::session) fn set_type(&mut self, t: TransferType) -> Outcome {
        self.state.transfer_type = t;
        match t {
            TransferType::Ascii => Reply::ok("Switching to ASCII mode"),
            TransferType::Image => Reply::ok("Switching to Binary mode"),
        }
        .into()
    }

    /// RFC 959 PASV: IPv4 only. The address is `passive.advertise_address` or the local address
    /// the client reached us on.
    pub(in crate::session) async fn pasv(&mut self) -> Outcome {
        if self.state.epsv_all {
            return Reply::bad_sequence("EPSV ALL is in effect: use EPSV").into();
        }
        let ip = match self
            .env
            .policy
            .passive_address
            .unwrap_or(self.state.local.ip())
            .to_canonical()
        {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => return Reply::new(425, "PASV is IPv4 only: use EPSV").into(),
        };
        let port = match self.open_passive().await {
            Ok(p) => p,
            Err(r) => return r.into(),
        };
        let [a, b, c, d] = ip.octets();
        Reply::new(
            227,
            format!(
                "Entering Passive Mode ({a},{b},{c},{d},{},{})",
                port >> 8,
                port & 0xff
            ),
        )
        .into()
    }

    /// RFC 2428 §3: EPSV answers with the port only; the client reuses the control address.
    pub(in crate::session) async fn epsv(&mut self, arg: EpsvArg) -> Outcome {
        let family = match self.state.local.ip().to_canonical() {
            IpAddr::V4(_) => 1,
            IpAddr::V6(_) => 2,
        };
        match arg {
            EpsvArg::All => {
                self.state.epsv_all = true;
                return Reply::ok("EPSV ALL ok").into();
            }
            EpsvArg::Protocol(p) if p != family => {
                return Reply::new(
                    522,
                    format!("Network protocol not supported, use ({family})"),
                )
                .into()
            }
            _ => {}
        }
        match self.open_passive().await {
            Ok(port) => {
                Reply::new(229, format!("Entering Extended Passive Mode (|||{port}|)")).into()
            }
            Err(r) => r.into(),
        }
    }

    /// Takes a passive port for the next transfer (replacing any earlier plan). When every
    /// port already has a session of this client's address waiting on it, waits a moment for
    /// one (a port is held only from PASV until the client connects) before refusing.
    async fn open_passive(&mut self) -> Result<u16, Reply> {
        self.state.data = None;
        let local = self.state.local.ip();
        let client = self.state.client.ip();
        let wait = self.env.policy.data_connect_timeout.min(MAX_PORT_WAIT);
        match self.env.passive_ports.acquire(local, client, wait).await {
            Ok(l) => {
                // Accept, and under PROT P start the TLS handshake, as soon as the client
                // connects: some clients finish the handshake before sending the command.
                let tls = (self.state.protection == DataProtection::Private)
                    .then(|| self.tls.data.clone());
                let timeout = self.env.policy.data_connect_timeout;
                let eager = EagerPassive::start(l, tls, timeout);
                let port = eager.port();
                self.state.data = Some(DataPlan::Passive(eager));
                Ok(port)
            }
            Err(e) => {
                crate::metrics::passive_refused();
                warn!(error = %e, "passive port refused: none free for this client address");
                Err(Reply::new(
                    425,
                    "No passive port available, try again later",
                ))
            }
        }
    }

    /// RFC 3659 §5: the next RETR starts at byte `n`, and the next STOR resumes an upload at
    /// `n` (REST + STOR); listings neither use nor reset it.
    pub(in crate::session) fn rest(&mut self, n: u64) -> Outcome {
        self.state.rest = n;
        Reply::pending(format!("Restarting at {n}, send the transfer command")).into()
    }

    /// PORT and EPRT: the next data connection goes to the client, if the target is the
    /// client's own address on an unprivileged port (no FTP bounce, RFC 2577).
    pub(in crate::session) fn active(&mut self, target: SocketAddr) -> Outcome {
        if self.state.epsv_all {
            return Reply::bad_sequence("EPSV ALL is in effect: use EPSV").into();
        }
        let enabled = self.env.policy.active_enabled;
        match active_target(target, self.state.client, enabled) {
            Ok(target) => {
                self.state.data = Some(DataPlan::Active(target));
                Reply::ok("Active data connection target accepted").into()
            }
            Err(refusal) => {
                warn!(target = %target, reason = %refusal, "active mode target refused");
                Reply::parameter_not_supported(format!("Refused: {refusal}")).into()
            }
        }
    }

    /// ABOR with no transfer running (RFC 959 §4.1.3: 225, and the data connection is closed).
    pub(in crate::session) fn abor_idle(&mut self) -> Outcome {
        self.state.data = None;
        Reply::new(225, "No transfer to abort").into()
    }
}
