//! The protocol state of one control connection, as types: each enum is one question the
//! protocol asks ("who is logged in?", "are data connections protected?"), with exactly the
//! answers it allows.

use std::{net::SocketAddr, sync::Arc};

use crate::auth::User;
use crate::datachan::DataPlan;
use crate::limits::UserPermit;
use crate::listing::MlstFacts;
use crate::net::ClientAddr;
use crate::quota::{Root, UserAccount};
use crate::session::command::TransferType;
use crate::vfs::{Mounts, VirtualPath};

/// Moved to `net::listener`; this path stays for existing imports.
pub use crate::net::ListenerKind;

/// RFC 959 §4.1.1 login sequence.
pub enum Login {
    Fresh,
    /// USER given; PASS expected next.
    UserGiven(String),
    LoggedIn(LoggedIn),
}

/// A logged-in user and where their paths lead (their home, or their folders).
pub struct LoggedIn {
    pub user: Arc<User>,
    pub mounts: Mounts,
    /// The user's session slot (`limits.max_sessions_per_user`), freed on logout.
    pub _permit: UserPermit,
    /// The user's quota and bandwidth account in this replica, shared by their sessions;
    /// `None` for a user without limits.
    pub account: Option<Arc<UserAccount>>,
}

impl LoggedIn {
    /// Where the user's quota usage is counted: their home, or each folder they may write into
    /// (what the company puts into a read-only folder is not the user's to pay for).
    pub fn quota_roots(&self) -> Vec<Root> {
        self.mounts
            .writable()
            .map(|m| (m.home.storage().clone(), m.home.key(&VirtualPath::root())))
            .collect()
    }
}

/// RFC 4217 §8–9: `PBSZ` must come before `PROT`; `PROT` sets whether data connections use TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataProtection {
    /// No PBSZ yet (or after REIN): PROT is refused with 503.
    NoPbsz,
    /// PBSZ 0 given, data in clear (PROT C, the RFC 4217 default).
    Clear,
    /// PBSZ 0 and PROT P: data connections are TLS.
    Private,
}

/// Everything a session remembers between commands.
pub struct SessionState {
    pub listener: ListenerKind,
    /// The client (from the PROXY header behind a load balancer): the address every rule uses.
    pub client: ClientAddr,
    /// Our end of the control connection (passive listeners bind here).
    pub local: SocketAddr,
    pub login: Login,
    pub protection: DataProtection,
    pub cwd: VirtualPath,
    pub transfer_type: TransferType,
    /// REST offset for the next RETR or STOR; reset by every file transfer (not by listings).
    pub rest: u64,
    /// The size the last ALLO announced, for the next upload's quota check.
    pub allo: Option<u64>,
    /// RNFR's source, consumed by the next command.
    pub rename_from: Option<VirtualPath>,
    /// How the next transfer's data connection is made (PASV/EPSV listener or PORT/EPRT
    /// target); consumed by the transfer.
    pub data: Option<DataPlan>,
    /// RFC 2428 §4: after `EPSV ALL`, PASV is refused.
    pub epsv_all: bool,
    /// RFC 3659 §7.9: facts chosen with `OPTS MLST`.
    pub mlst_facts: MlstFacts,
    /// draft-bryan-ftpext-hash §4: the algorithm chosen with `OPTS HASH`.
    pub hash_algorithm: HashAlgorithm,
}

/// Digests the HASH command offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    Sha256,
    Crc32,
}

impl HashAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "SHA-256",
            HashAlgorithm::Crc32 => "CRC32",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "SHA-256" => Some(HashAlgorithm::Sha256),
            "CRC32" => Some(HashAlgorithm::Crc32),
            _ => None,
        }
    }

    /// FEAT's line, `*` after the selected algorithm.
    pub fn feat_line(self) -> String {
        let mark = |a: HashAlgorithm| if a == self { "*" } else { "" };
        format!(
            "HASH SHA-256{};CRC32{};",
            mark(HashAlgorithm::Sha256),
            mark(HashAlgorithm::Crc32)
        )
    }
}

impl SessionState {
    pub fn new(listener: ListenerKind, client: ClientAddr, local: SocketAddr) -> Self {
        SessionState {
            listener,
            client,
            local,
            login: Login::Fresh,
            protection: DataProtection::NoPbsz,
            cwd: VirtualPath::root(),
            // RFC 959 says A, but a client that never sends TYPE is almost always moving binary
            // files; converting them would corrupt them. Explicit TYPE A converts.
            transfer_type: TransferType::Image,
            rest: 0,
            allo: None,
            rename_from: None,
            data: None,
            epsv_all: false,
            mlst_facts: MlstFacts::default(),
            hash_algorithm: HashAlgorithm::Sha256,
        }
    }

    /// Back to the just-connected state (REIN). On the implicit port that includes the implicit
    /// PBSZ 0 + PROT P, which the caller re-applies after the new TLS handshake.
    pub fn reset(&mut self) {
        *self = SessionState::new(self.listener, self.client, self.local);
    }

    /// MS-FTPS §3.2.5.1: after the implicit handshake the server behaves as if PBSZ 0 and PROT P
    /// had been received.
    pub fn apply_implicit_protection(&mut self) {
        self.protection = DataProtection::Private;
    }

    pub fn logged_in(&self) -> Option<&LoggedIn> {
        match &self.login {
            Login::LoggedIn(l) => Some(l),
            _ => None,
        }
    }

    pub fn user_name(&self) -> Option<&str> {
        match &self.login {
            Login::Fresh => None,
            Login::UserGiven(n) => Some(n),
            Login::LoggedIn(l) => Some(&l.user.name),
        }
    }
}
