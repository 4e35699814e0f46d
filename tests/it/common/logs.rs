//! Captures the server's log lines in a test, as JSON objects (one per line).
//!
//! One global subscriber for the whole test binary writes each event to the buffer of the
//! thread that emitted it, if that thread is capturing. Tests run on tokio's current-thread
//! runtime, so the server's tasks run on the test's own thread: a test sees its own server's
//! lines and no other test's. (Per-thread `set_default` subscribers would be simpler, but
//! tracing caches which callsites are enabled across threads, and events were missed when
//! tests started and ended their subscribers concurrently.)

use std::{
    cell::RefCell,
    io::Write,
    sync::{Arc, Mutex, Once},
    time::Duration,
};

type Buffer = Arc<Mutex<Vec<u8>>>;

thread_local! {
    static CAPTURE: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

/// Writes to the current thread's capture buffer, or nowhere.
struct ThreadWriter;

impl Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(b) = &*c.borrow() {
                b.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Default)]
pub struct Logs(Buffer);

/// Stops the capture on drop.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| c.borrow_mut().take());
    }
}

impl Logs {
    /// Captures the server's info-and-up events (audit lines included) emitted on this thread
    /// until the guard is dropped.
    pub fn capture() -> (Logs, CaptureGuard) {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            let _ = tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "ftps_s3=info,audit=info",
                ))
                .with_writer(|| ThreadWriter)
                .try_init();
        });
        let logs = Logs::default();
        CAPTURE.with(|c| *c.borrow_mut() = Some(logs.0.clone()));
        (logs, CaptureGuard(()))
    }

    /// The captured lines, parsed.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Lines whose fields include every `(name, value)` of `fields` (string values).
    pub fn matching(&self, fields: &[(&str, &str)]) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .filter(|l| {
                fields
                    .iter()
                    .all(|(k, v)| l.get(*k).and_then(|x| x.as_str()) == Some(*v))
            })
            .collect()
    }

    /// Waits (up to `timeout`) for a line matching `fields`; panics naming them otherwise.
    pub async fn wait_for(&self, fields: &[(&str, &str)], timeout: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(l) = self.matching(fields).pop() {
                return l;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no log line with {fields:?} within {timeout:?}; captured: {:#?}",
                    self.lines()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
