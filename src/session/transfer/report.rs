//! A finished transfer's metrics, log line and audit line, chosen by its [`TransferKind`].

use std::time::Instant;

use tracing::{debug, info, warn};

use crate::audit;
use crate::session::Session;
use crate::vfs::{ObjectKey, VirtualPath};

use super::job::TransferKind;
use super::outcome::{Interruption, JobResult};

/// What a finished job is reported as.
pub(super) struct JobInfo {
    pub(super) kind: TransferKind,
    pub(super) path: VirtualPath,
    pub(super) key: ObjectKey,
    /// When the 150 was sent.
    pub(super) started: Instant,
}

impl Session {
    /// The transfer's metrics, and its audit line (uploads and downloads; listings only log).
    /// `moved`: the bytes the data connection carried, reported for a transfer that did not
    /// complete (a complete upload reports the bytes stored).
    pub(super) fn log_transfer(
        &self,
        job: &JobInfo,
        result: &JobResult,
        interruption: Option<Interruption>,
        moved: u64,
    ) {
        let duration = job.started.elapsed();
        let verb = job.kind.verb();
        let (outcome, bytes, detail) = match result {
            JobResult::Done { bytes, .. } => (audit::Outcome::Ok, *bytes, String::new()),
            JobResult::Aborted => (
                audit::Outcome::Aborted(Interruption::reason(interruption)),
                moved,
                String::new(),
            ),
            JobResult::NoDataConnection(e) => (
                audit::Outcome::Failed("no_data_connection"),
                moved,
                e.to_string(),
            ),
            JobResult::Client(e) => (audit::Outcome::Failed("client"), moved, e.to_string()),
            JobResult::Storage(e) => (audit::Outcome::Failed("storage"), moved, e.to_string()),
            JobResult::QuotaExceeded(e) => (
                audit::Outcome::Failed("quota_exceeded"),
                moved,
                e.to_string(),
            ),
        };
        crate::metrics::transfer_finished(verb, outcome.result(), bytes, duration);
        if matches!(result, JobResult::Storage(_)) {
            warn!(command = verb, path = %job.path, error = %detail, "transfer failed (storage)");
        } else if !detail.is_empty() {
            info!(command = verb, path = %job.path, error = %detail, "transfer failed");
        }
        let object = audit::Object {
            path: job.path.as_str(),
            key: job.key.as_str(),
        };
        let transfer = audit::Transfer {
            bytes,
            duration,
            sha256: match result {
                JobResult::Done { sha256, .. } => sha256.as_deref(),
                _ => None,
            },
        };
        match job.kind {
            TransferKind::Download => audit::download(self.actor(), object, transfer, outcome),
            TransferKind::Upload(_) => {
                audit::upload(self.actor(), object, transfer, outcome);
                let home = (self.state.logged_in()).and_then(|l| l.mounts.home_of(&job.path));
                if let (JobResult::Done { .. }, Some(home)) = (result, home) {
                    (self.env.events).upload_completed(self.actor(), home, object, transfer);
                }
            }
            TransferKind::Listing(_) => {
                debug!(command = verb, path = %job.path, bytes, result = outcome.result(), "listing sent")
            }
        }
    }
}
