//! Hot reload of the certificate (with its key and the client CA bundle) and of the users file,
//! by polling their contents (`tls.reload_interval_secs`, `auth.reload_interval_secs`).
//!
//! Each poll reads the files and compares them byte for byte with what is in use. Contents,
//! not change events or mtimes: Kubernetes updates a mounted secret by pointing the `..data`
//! symlink at a new directory (`tls.crt -> ..data/tls.crt` keeps its own inode and mtime, and
//! inotify on it sees nothing), cert-manager renewals arrive the same way, and other tools write
//! in place or rename over; reading a few kilobytes every few seconds sees all of them alike.
//!
//! Contents that load are put in use at once: new handshakes get the new certificate, new
//! logins the new users, and sessions in progress keep what they started with. Contents that
//! do not load leave the old ones in use; the error is logged (and counted in
//! `ftps_reloads_total{result="failed"}`) once they have been read unchanged on two polls in a
//! row, because files replaced one at a time (a certificate, then its key) are briefly a
//! mismatched pair, which is not worth an alarm.

use std::{fmt::Debug, sync::Arc, time::Duration};

use tracing::{debug, error, info, warn};

use tokio_util::sync::CancellationToken;

use crate::admin::Readiness;
use crate::auth::{Authenticator, UserStore};
use crate::background::Background;
use crate::config::{ClientAuth, Config};
use crate::tls::{TlsAcceptors, TlsFiles};

/// What the reloader swaps, and where it reports: the handles the sessions share, nothing else.
pub struct ReloadTargets {
    /// New handshakes get the new certificate, key and client CA bundle.
    pub tls: Arc<TlsAcceptors>,
    /// New logins get the new users file.
    pub auth: Arc<Authenticator>,
    /// `/readyz` shows a certificate that did not load.
    pub readiness: Arc<Readiness>,
}

/// Starts the polling tasks for what was loaded from files and has a non-zero interval
/// (`tls.reload_interval_secs`, `auth.reload_interval_secs`). They end when `shutdown` is
/// cancelled.
pub fn spawn(
    targets: ReloadTargets,
    config: &Config,
    shutdown: &CancellationToken,
    background: &Background,
) {
    let ReloadTargets {
        tls,
        auth,
        readiness,
    } = targets;
    let tls_every = config.tls.reload_interval_secs;
    if let (Some((settings, files)), true) = (tls.source(), tls_every > 0) {
        let settings = Arc::new(settings.clone());
        let read = {
            let settings = settings.clone();
            move || TlsFiles::read(&settings).map_err(|e| e.to_string())
        };
        let watch = Watch::new("certificate", files.clone());
        let tls = tls.clone();
        let apply =
            move |files: &TlsFiles| tls.replace(&settings, files).map_err(|e| e.to_string());
        let reported = move |r| readiness.record_certificate_reload(r);
        spawn_polls(
            shutdown, background, tls_every, watch, read, apply, reported,
        );
    }
    let users_every = config.auth.reload_interval_secs;
    if let (Some((path, text)), true) = (auth.users().source(), users_every > 0) {
        let path = Arc::new(path.clone());
        let read = {
            let path = path.clone();
            move || {
                std::fs::read_to_string(&*path)
                    .map_err(|e| format!("auth.users_file: cannot read {}: {e}", path.display()))
            }
        };
        let client_auth = config.tls.client_auth;
        let apply = move |text: &String| {
            let users = UserStore::parse_file(&path, text.clone()).map_err(|e| e.to_string())?;
            warn_unusable_certificate_users(&users, client_auth);
            warn_ignored_settings(&users);
            auth.replace_users(users);
            Ok(())
        };
        let watch = Watch::new("users", text.clone());
        spawn_polls(
            shutdown,
            background,
            users_every,
            watch,
            read,
            apply,
            |_| {},
        );
    }
}

/// Every `secs` seconds until shutdown: `read` the files (on the blocking pool: a mounted volume
/// may be slow) and hand what was read to `watch`, which calls `apply` when it is new; a reload
/// done or a failure reported is passed on to `reported`. Logging stays on the task, inside the
/// server's tracing context.
fn spawn_polls<C>(
    shutdown: &CancellationToken,
    background: &Background,
    secs: u64,
    mut watch: Watch<C>,
    read: impl Fn() -> Result<C, String> + Clone + Send + 'static,
    mut apply: impl FnMut(&C) -> Result<(), String> + Send + 'static,
    mut reported: impl FnMut(Result<(), String>) + Send + 'static,
) where
    C: PartialEq + Debug + Send + 'static,
{
    let shutdown = shutdown.clone();
    background.spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(secs));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate, and the files were just loaded.
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = shutdown.cancelled() => return,
            }
            let seen = tokio::task::spawn_blocking(read.clone())
                .await
                .unwrap_or_else(|e| Err(format!("reading the files failed: {e}")));
            if let Some(result) = watch.observe(seen, &mut apply) {
                reported(result);
            }
        }
    });
}

/// Logs users with a `certificate_cn` when no client certificate is ever asked for: they cannot
/// log in (certificate-only) or not at all (certificate and password).
pub fn warn_unusable_certificate_users(users: &UserStore, client_auth: ClientAuth) {
    if client_auth != ClientAuth::None {
        return;
    }
    for name in users.certificate_users() {
        warn!(
            user = name,
            "user has a certificate_cn but tls.client_auth = \"none\": it cannot log in"
        );
    }
}

/// Logs what the users file sets but does not use (`home` beside folders).
pub fn warn_ignored_settings(users: &UserStore) {
    for w in users.warnings() {
        warn!("auth.users_file: {w}");
    }
}

/// One watched set of files: the contents in use, and new contents that did not load.
struct Watch<C> {
    /// `"certificate"` or `"users"`, in logs and metrics.
    file: &'static str,
    in_use: C,
    /// What the last poll read that did not load, and whether its error was logged.
    failing: Option<(Result<C, String>, bool)>,
}

impl<C: PartialEq + Debug> Watch<C> {
    fn new(file: &'static str, in_use: C) -> Self {
        Watch {
            file,
            in_use,
            failing: None,
        }
    }

    /// One poll's reading (`Err`: the files could not be read). New contents are handed to
    /// `apply`, which puts them in use or says why not. Returns `Err` when a failure is reported
    /// (once per bad contents), `Ok` when that is over (new contents put in use, or the files
    /// back to those in use), else `None`.
    fn observe(
        &mut self,
        seen: Result<C, String>,
        apply: impl FnOnce(&C) -> Result<(), String>,
    ) -> Option<Result<(), String>> {
        let outcome = match &seen {
            Ok(c) if *c == self.in_use => {
                // Back to the contents in use after a reported failure: nothing is wrong now.
                let was_reported = matches!(self.failing.take(), Some((_, true)));
                return was_reported.then_some(Ok(()));
            }
            Ok(c) => apply(c),
            Err(e) => Err(e.clone()),
        };
        match (outcome, seen) {
            (Ok(()), Ok(c)) => {
                info!(file = self.file, "reloaded: new sessions use the new file");
                crate::metrics::reload(self.file, "ok");
                self.in_use = c;
                self.failing = None;
                Some(Ok(()))
            }
            (Err(e), seen) => match &mut self.failing {
                Some((before, reported)) if *before == seen => {
                    if *reported {
                        return None;
                    }
                    *reported = true;
                    error!(
                        file = self.file,
                        error = %e,
                        "reload failed: keeping the one in use"
                    );
                    crate::metrics::reload(self.file, "failed");
                    Some(Err(e))
                }
                _ => {
                    debug!(file = self.file, error = %e, "changed file does not load yet; next poll retries");
                    self.failing = Some((seen, false));
                    None
                }
            },
            // `apply` is only called with contents that were read.
            (Ok(()), Err(_)) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_contents_are_retried_then_reported_once_and_good_ones_applied() {
        let mut w = Watch::new("users", "a".to_string());
        let applied = std::cell::RefCell::new(Vec::new());
        let apply = |c: &String| {
            applied.borrow_mut().push(c.clone());
            if c.starts_with("bad") {
                Err("bad".to_string())
            } else {
                Ok(())
            }
        };
        assert_eq!(w.observe(Ok("a".into()), apply), None);
        assert!(applied.borrow().is_empty(), "unchanged: nothing to apply");
        assert_eq!(w.observe(Ok("bad1".into()), apply), None, "first sight");
        assert_eq!(
            w.observe(Ok("bad1".into()), apply),
            Some(Err("bad".into())),
            "seen twice: reported"
        );
        assert_eq!(w.observe(Ok("bad1".into()), apply), None, "reported once");
        assert_eq!(w.observe(Err("gone".into()), apply), None);
        assert!(matches!(w.failing, Some((Err(_), false))));
        assert_eq!(w.observe(Ok("bad2".into()), apply), None);
        assert_eq!(w.observe(Ok("bad2".into()), apply), Some(Err("bad".into())));
        assert_eq!(
            w.observe(Ok("a".into()), apply),
            Some(Ok(())),
            "back to the contents in use: the failure is over"
        );
        assert_eq!(w.observe(Ok("a".into()), apply), None);
        assert_eq!(w.observe(Ok("b".into()), apply), Some(Ok(())));
        assert_eq!(w.in_use, "b");
        assert!(w.failing.is_none());
        assert_eq!(
            *applied.borrow(),
            ["bad1", "bad1", "bad1", "bad2", "bad2", "b"]
        );
    }
}
