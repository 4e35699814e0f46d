//! [`Background`]: the one tracker for work that outlives what started it, so shutdown can wait
//! for it.
//!
//! Aborting a dropped upload's multipart upload, retrying a failed abort, aborting the uploads a
//! new file replaced, prefetching a listing's next page, lingering on a closed data connection,
//! polling files for reload, checking storage for `/readyz`, delivering events: none of these
//! belongs to a session's task, and a bare `tokio::spawn` would be dropped silently when the
//! process exits (an abort never sent leaves a multipart upload billed until a lifecycle rule
//! runs). They are spawned here instead; the server [`stop`](Background::stop)s it after the
//! sessions: long waits end early ([`stopping`](Background::stopping)), and the work in flight
//! gets a bounded time to finish.
//!
//! Passed explicitly (the server makes one and hands clones to the stores, the sessions, the
//! reloader); no global. A `Background` nobody stops (the [`Default`], e.g. storage built in
//! tests) behaves like `tokio::spawn`.

use std::{future::Future, time::Duration};

use tokio::{runtime::Handle, task::JoinHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// A handle on the server's background work. Cheap to clone; clones share the tracker.
#[derive(Clone, Debug, Default)]
pub struct Background {
    tracker: TaskTracker,
    stopping: CancellationToken,
}

impl Background {
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `work` on the current runtime, tracked.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(work)
    }

    /// Runs `work` on `runtime`, tracked: for `Drop` implementations, which are not in async
    /// code and must find the runtime themselves.
    pub fn spawn_on<F>(&self, work: F, runtime: &Handle) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn_on(work, runtime)
    }

    /// Cancelled when the server stops: work that waits (a retry's delay, a poll's interval)
    /// stops waiting and does its last bounded step now.
    pub fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    /// Tasks still running.
    pub fn len(&self) -> usize {
        self.tracker.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tracker.is_empty()
    }

    /// Tells the work to stop waiting and waits up to `within` for it to end. `false` when some
    /// is still running then (it is dropped with the runtime). Work spawned meanwhile (a last
    /// abort from a dropped upload) is waited for too.
    pub async fn stop(&self, within: Duration) -> bool {
        self.stopping.cancel();
        self.tracker.close();
        tokio::time::timeout(within, self.tracker.wait())
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    };

    #[tokio::test]
    async fn stop_waits_for_work_in_flight_and_ends_waits() {
        let bg = Background::new();
        let finished = Arc::new(AtomicBool::new(false));
        let f = finished.clone();
        bg.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            f.store(true, Ordering::SeqCst);
        });
        // A long wait that gives up at stop.
        let stopping = bg.stopping().clone();
        bg.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
                _ = stopping.cancelled() => {}
            }
        });
        assert_eq!(bg.len(), 2);
        assert!(bg.stop(Duration::from_secs(10)).await);
        assert!(
            finished.load(Ordering::SeqCst),
            "stop returned before the work ended"
        );
        assert!(bg.is_empty());
    }

    #[tokio::test]
    async fn stop_is_bounded() {
        let bg = Background::new();
        bg.spawn(tokio::time::sleep(Duration::from_secs(3600)));
        let started = std::time::Instant::now();
        assert!(!bg.stop(Duration::from_millis(100)).await);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(bg.len(), 1);
    }
}
