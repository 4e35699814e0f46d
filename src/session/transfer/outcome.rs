//! How a transfer ended, and the replies that ending gets: a pure function of the job's result
//! and what interrupted it, so every ending is in one table (and one test).

use std::io;

use crate::datachan::OpenError;
use crate::quota::Exceeded;
use crate::session::reply::Reply;
use crate::vfs::{StorageError, VirtualPath};

/// How a job ended.
pub(super) enum JobResult {
    /// Bytes moved over the data connection; for an upload, the SHA-256 of the stored content
    /// when the store computed it.
    Done {
        bytes: u64,
        sha256: Option<String>,
    },
    /// Stopped by the session (see [`Interruption`] for why).
    Aborted,
    /// No data connection (timeout, handshake failure, no TLS resumption).
    NoDataConnection(OpenError),
    /// The data connection failed: reset, TLS error, timeout.
    Client(io::Error),
    Storage(StorageError),
    /// An upload that crossed the user's quota: aborted, nothing stored (`552`).
    QuotaExceeded(Exceeded),
}

/// Why the session stopped a running job. A failing data connection is not one of these: it
/// ends the job by itself ([`JobResult::Client`], [`JobResult::NoDataConnection`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Interruption {
    /// The client sent ABOR.
    Abor,
    /// The shutdown grace period ended.
    Shutdown,
    /// The control connection closed or failed: nobody is left to answer.
    ControlLost,
}

impl Interruption {
    /// Which interruption a transfer is reported as when a second one comes: a lost control
    /// connection ends everything, and an ABOR is answered as such even during shutdown.
    pub(super) fn then(current: Option<Self>, next: Self) -> Option<Self> {
        let rank = |i: Self| match i {
            Interruption::Shutdown => 0,
            Interruption::Abor => 1,
            Interruption::ControlLost => 2,
        };
        match current {
            Some(c) if rank(c) >= rank(next) => Some(c),
            _ => Some(next),
        }
    }

    /// The audit `reason` of a transfer this stopped.
    pub(super) fn reason(interruption: Option<Self>) -> &'static str {
        match interruption {
            Some(Interruption::Abor) => "abor",
            Some(Interruption::Shutdown) => "shutdown",
            Some(Interruption::ControlLost) => "control_connection_lost",
            None => "cancelled",
        }
    }
}

/// The replies that end a transfer, after its `150`. None when the control connection is gone.
pub(super) fn final_replies(
    result: JobResult,
    interruption: Option<Interruption>,
    path: &VirtualPath,
) -> Vec<Reply> {
    match (result, interruption) {
        (_, Some(Interruption::ControlLost)) => vec![],
        (JobResult::Done { .. }, _) => vec![Reply::transfer_complete()],
        (_, Some(Interruption::Abor)) => vec![
            Reply::transfer_aborted("ABOR received"),
            Reply::new(226, "ABOR successful"),
        ],
        (JobResult::Aborted, Some(Interruption::Shutdown)) => {
            vec![Reply::transfer_aborted("server shutting down")]
        }
        (JobResult::Aborted, None) => vec![Reply::transfer_aborted("cancelled")],
        // RFC 4217 §10: 522 when the data connection's TLS is not acceptable.
        (JobResult::NoDataConnection(e @ OpenError::NotResumed), _) => vec![Reply::new(
            522,
            format!("{e}: enable TLS session reuse in the client"),
        )],
        (JobResult::NoDataConnection(e), _) => {
            vec![Reply::new(425, format!("Cannot open data connection: {e}"))]
        }
        (JobResult::Client(e), _) => vec![Reply::transfer_aborted(&e.to_string())],
        (JobResult::Storage(e), _) => vec![Reply::storage_error(&e, path.as_str())],
        (JobResult::QuotaExceeded(e), _) => vec![Reply::quota_exceeded(&e, path.as_str())],
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn done() -> JobResult {
        JobResult::Done {
            bytes: 3,
            sha256: None,
        }
    }
    fn reset() -> JobResult {
        JobResult::Client(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
    }
    fn timeout() -> JobResult {
        JobResult::NoDataConnection(OpenError::Timeout(Duration::from_secs(5)))
    }

    /// Every ending: (result, interruption) → the replies' wire text.
    #[test]
    fn final_replies_table() {
        use Interruption::*;
        let abor =
            "426 Connection closed; transfer aborted: ABOR received\r\n226 ABOR successful\r\n";
        let cases: Vec<(JobResult, Option<Interruption>, &str)> = vec![
            (done(), None, "226 Transfer complete\r\n"),
            (done(), Some(Abor), "226 Transfer complete\r\n"),
            (done(), Some(Shutdown), "226 Transfer complete\r\n"),
            (done(), Some(ControlLost), ""),
            (JobResult::Aborted, Some(Abor), abor),
            (reset(), Some(Abor), abor),
            (timeout(), Some(Abor), abor),
            (
                JobResult::Aborted,
                Some(Shutdown),
                "426 Connection closed; transfer aborted: server shutting down\r\n",
            ),
            (
                JobResult::Aborted,
                None,
                "426 Connection closed; transfer aborted: cancelled\r\n",
            ),
            (JobResult::Aborted, Some(ControlLost), ""),
            (reset(), Some(ControlLost), ""),
            (
                reset(),
                None,
                "426 Connection closed; transfer aborted: reset\r\n",
            ),
            (
                reset(),
                Some(Shutdown),
                "426 Connection closed; transfer aborted: reset\r\n",
            ),
            (
                timeout(),
                None,
                "425 Cannot open data connection: no data connection (or TLS handshake) within 5s\r\n",
            ),
            (
                JobResult::NoDataConnection(OpenError::NotResumed),
                None,
                "522 the data connection did not resume the control connection's TLS session: \
                 enable TLS session reuse in the client\r\n",
            ),
            (
                JobResult::QuotaExceeded(Exceeded {
                    kind: crate::quota::QuotaKind::Bytes,
                    limit: 10,
                    used: 4,
                    in_flight: 0,
                }),
                None,
                "552 /: Exceeded storage allocation: quota exceeded: 10 bytes allowed \
                 (quota_bytes), 4 used\r\n",
            ),
        ];
        let path = VirtualPath::root();
        for (i, (result, interruption, want)) in cases.into_iter().enumerate() {
            let got: Vec<u8> = final_replies(result, interruption, &path)
                .iter()
                .flat_map(Reply::to_wire)
                .collect();
            assert_eq!(String::from_utf8_lossy(&got), want, "case {i}");
        }
    }

    #[test]
    fn interruptions_rank() {
        use Interruption::*;
        assert_eq!(Interruption::then(None, Shutdown), Some(Shutdown));
        assert_eq!(Interruption::then(Some(Shutdown), Abor), Some(Abor));
        assert_eq!(Interruption::then(Some(Abor), Shutdown), Some(Abor));
        assert_eq!(
            Interruption::then(Some(Abor), ControlLost),
            Some(ControlLost)
        );
        assert_eq!(
            Interruption::then(Some(ControlLost), Abor),
            Some(ControlLost)
        );
    }

    #[test]
    fn audit_reasons() {
        assert_eq!(Interruption::reason(Some(Interruption::Abor)), "abor");
        assert_eq!(
            Interruption::reason(Some(Interruption::Shutdown)),
            "shutdown"
        );
        assert_eq!(
            Interruption::reason(Some(Interruption::ControlLost)),
            "control_connection_lost"
        );
    }
}
