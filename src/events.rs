//! Upload events: a signed JSON POST to `events.webhook_url` when an upload is committed, a file
//! deleted or a file or directory renamed, so a partner's pipeline can pick the file up without
//! polling the bucket.
//!
//! Sessions hand an [`Event`] to the [`EventSink`] (a bounded in-memory queue; `try_send`, so the
//! FTP reply never waits for the webhook). One background task, [`Delivery`], sends them in order,
//! retrying with exponential backoff (`events.max_attempts`). A full queue drops the new event
//! (`ftps_events_dropped_total`); a replica that dies loses what it still holds. That is the
//! documented trade-off (README "Upload events"); S3 event notifications are the durable
//! alternative.
//!
//! Each request body is signed with HMAC-SHA256 under the secret read from
//! `events.webhook_secret_file`: header `X-Ftps-S3-Signature: sha256=<hex>`. The body is made
//! once, so every retry of an event carries the same bytes, `id` and signature.
//!
//! What the session does not know without asking the store (the size and SHA-256 of a resumed
//! or appended upload, the SHA-256 of a renamed file) the sender reads back before the first
//! attempt ([`Lookup`]), off the session's path.

use std::{path::Path, sync::Arc, time::Duration};

use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;
use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::audit;
use crate::background::Background;
use crate::config::{ConfigError, EventFormat, Events as EventsConfig};
use crate::outbound::{describe, post_client};
use crate::vfs::{EntryKind, Home, ObjectKey, Storage};

/// The signature header: `sha256=<lowercase hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Ftps-S3-Signature";
/// The event's `id`, also in a header so a receiver can deduplicate before parsing.
pub const ID_HEADER: &str = "X-Ftps-S3-Event-Id";
/// The event's `type`.
pub const TYPE_HEADER: &str = "X-Ftps-S3-Event-Type";

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// At shutdown: how long queued events get for one last attempt each.
const DRAIN_WAIT: Duration = Duration::from_secs(5);
/// Bound on the store lookups the sender makes before sending (a HeadObject and a tag read
/// take milliseconds; past this the fields stay `null` rather than hold the queue, or shutdown).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum EventType {
    #[serde(rename = "upload.completed")]
    UploadCompleted,
    #[serde(rename = "object.deleted")]
    ObjectDeleted,
    #[serde(rename = "object.renamed")]
    ObjectRenamed,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UploadCompleted => "upload.completed",
            EventType::ObjectDeleted => "object.deleted",
            EventType::ObjectRenamed => "object.renamed",
        }
    }
}

/// One event, exactly as it is sent (README "Upload events" documents the fields).
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Random UUID (v4), the same on every retry: receivers deduplicate on it.
    pub id: String,
    /// When the action completed, RFC 3339 UTC with milliseconds.
    pub time: String,
    pub user: String,
    /// The client's `ip:port` (from the PROXY header behind a load balancer).
    pub client_addr: String,
    /// The client's path (after a rename: the new one).
    pub path: String,
    /// The bucket; `null` on the local backend.
    pub bucket: Option<String>,
    pub key: String,
    /// `file`, or `directory` (a renamed directory).
    pub object: &'static str,
    /// The object's size in bytes; `null` where unknown (deletes, directories).
    pub size: Option<u64>,
    /// SHA-256 of the object's content, lowercase hex; `null` where unknown.
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_key: Option<String>,
}

impl Event {
    fn new(kind: EventType, actor: audit::Actor<'_>, home: &Home, obj: audit::Object<'_>) -> Self {
        Event {
            kind,
            id: uuid_v4(),
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            user: actor.user.to_string(),
            client_addr: actor.client_addr.to_string(),
            path: obj.path.to_string(),
            bucket: home.bucket().map(str::to_string),
            key: obj.key.to_string(),
            object: "file",
            size: None,
            sha256: None,
            from_path: None,
            from_key: None,
        }
    }
}

/// Facts the sender reads from the store before the first attempt, where the session did not
/// have them.
struct Lookup {
    storage: Arc<dyn Storage>,
    key: ObjectKey,
}

struct Queued {
    event: Event,
    lookup: Option<Lookup>,
}

/// A CloudEvents 1.0 envelope, structured content mode: the attributes and the event as `data`.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a str,
    source: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    time: &'a str,
    /// The client's path, so routers can filter without reading `data`.
    subject: &'a str,
    datacontenttype: &'static str,
    data: &'a Event,
}

impl<'a> CloudEvent<'a> {
    fn of(event: &'a Event) -> Self {
        CloudEvent {
            specversion: "1.0",
            id: &event.id,
            source: "ftps-s3",
            kind: event.kind.as_str(),
            time: &event.time,
            subject: &event.path,
            datacontenttype: "application/json",
            data: event,
        }
    }
}

/// Where sessions put events. Cheap to clone; a sink without a webhook does nothing.
#[derive(Clone, Default)]
pub struct EventSink {
    tx: Option<mpsc::Sender<Queued>>,
}

impl EventSink {
    /// A sink that sends nothing (no `events.webhook_url`).
    pub fn disabled() -> Self {
        EventSink { tx: None }
    }

    /// A STOR/APPE/STOU committed. `transfer.sha256` is known when every byte of the object
    /// passed through this upload; then its size is `transfer.bytes`. Otherwise (a resume, an
    /// append) both are read back from the store by the sender.
    pub fn upload_completed(
        &self,
        actor: audit::Actor<'_>,
        home: &Home,
        file: audit::Object<'_>,
        transfer: audit::Transfer<'_>,
    ) {
        if self.tx.is_none() {
            return;
        }
        let mut event = Event::new(EventType::UploadCompleted, actor, home, file);
        let lookup = match transfer.sha256 {
            Some(sha) => {
                event.size = Some(transfer.bytes);
                event.sha256 = Some(sha.to_string());
                None
            }
            None => Some(Lookup {
                storage: home.storage().clone(),
                key: ObjectKey::from_trusted(file.key),
            }),
        };
        self.push(Queued { event, lookup });
    }

    /// A DELE succeeded (size and SHA-256 are `null`: the object is gone).
    pub fn deleted(&self, actor: audit::Actor<'_>, home: &Home, file: audit::Object<'_>) {
        if self.tx.is_none() {
            return;
        }
        let event = Event::new(EventType::ObjectDeleted, actor, home, file);
        self.push(Queued {
            event,
            lookup: None,
        });
    }

    /// An RNFR + RNTO succeeded. `size`: the source's, from the stat before the rename.
    pub fn renamed(
        &self,
        actor: audit::Actor<'_>,
        home: &Home,
        from: audit::Object<'_>,
        to: audit::Object<'_>,
        kind: EntryKind,
        size: u64,
    ) {
        if self.tx.is_none() {
            return;
        }
        let mut event = Event::new(EventType::ObjectRenamed, actor, home, to);
        event.from_path = Some(from.path.to_string());
        event.from_key = Some(from.key.to_string());
        let lookup = match kind {
            EntryKind::File => {
                event.size = Some(size);
                Some(Lookup {
                    storage: home.storage().clone(),
                    key: ObjectKey::from_trusted(to.key),
                })
            }
            EntryKind::Dir => {
                event.object = "directory";
                None
            }
        };
        self.push(Queued { event, lookup });
    }

    /// Never waits: a full queue drops the event (counted and logged).
    fn push(&self, queued: Queued) {
        let Some(tx) = &self.tx else { return };
        let (id, kind) = (queued.event.id.clone(), queued.event.kind);
        match tx.try_send(queued) {
            Ok(()) => crate::metrics::event_queued(),
            Err(e) => {
                crate::metrics::event_dropped();
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "queue full",
                    mpsc::error::TrySendError::Closed(_) => "sender stopped",
                };
                warn!(event_id = %id, event_type = kind.as_str(), reason = why, "event dropped");
            }
        }
    }
}

/// The webhook's settings, as the sender uses them.
struct Webhook {
    client: reqwest::Client,
    url: String,
    format: EventFormat,
    secret: Vec<u8>,
    max_attempts: u32,
    retry_initial: Duration,
}

/// The background sender, built at startup and spawned by the server's run loop.
pub struct Delivery {
    rx: mpsc::Receiver<Queued>,
    webhook: Webhook,
}

/// A running [`Delivery`]; [`RunningDelivery::stop`] ends it at shutdown.
pub struct RunningDelivery {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Builds the sink and its sender from `[events]`. No `webhook_url`: a disabled sink and no
/// sender. The secret file is read here, so a missing secret stops the start.
pub fn from_config(config: &EventsConfig) -> Result<(EventSink, Option<Delivery>), ConfigError> {
    let Some(url) = config.webhook_url.clone().filter(|u| !u.is_empty()) else {
        return Ok((EventSink::disabled(), None));
    };
    let secret = match &config.webhook_secret_file {
        Some(path) => read_secret(path)?,
        None => return Err(invalid_secret("must be set when events.webhook_url is set")),
    };
    let client = post_client(
        "events.webhook_url",
        Duration::from_secs(config.timeout_secs),
    )?;
    let (tx, rx) = mpsc::channel(config.queue_size);
    let webhook = Webhook {
        client,
        url,
        format: config.format,
        secret,
        max_attempts: config.max_attempts,
        retry_initial: Duration::from_millis(config.retry_initial_ms),
    };
    Ok((EventSink { tx: Some(tx) }, Some(Delivery { rx, webhook })))
}

fn invalid_secret(reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: "events.webhook_secret_file",
        reason: reason.into(),
    }
}

/// The secret is the file's contents without surrounding whitespace (a trailing newline from
/// `echo` or an editor is not part of it).
fn read_secret(path: &Path) -> Result<Vec<u8>, ConfigError> {
    crate::outbound::read_secret_file("events.webhook_secret_file", path)
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex(&mac.finalize().into_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random (v4) UUID.
fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Delivery {
    /// Starts sending in the background.
    pub fn spawn(self, background: &Background) -> RunningDelivery {
        let stop = CancellationToken::new();
        let task = background.spawn(self.run(stop.clone()));
        RunningDelivery { stop, task }
    }

    async fn run(mut self, stop: CancellationToken) {
        let mut unsent = None;
        loop {
            let queued = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                q = self.rx.recv() => match q {
                    Some(q) => q,
                    None => return,
                },
            };
            crate::metrics::event_dequeued();
            let prepared = prepare(queued, self.webhook.format).await;
            if let Some(left) = self.webhook.deliver(prepared, &stop).await {
                unsent = Some(left);
                break;
            }
        }
        self.drain(unsent).await;
    }

    /// At shutdown: one attempt each for what is still queued, within [`DRAIN_WAIT`]; the rest
    /// is dropped (and counted).
    async fn drain(mut self, first: Option<Prepared>) {
        self.rx.close();
        let deadline = Instant::now() + DRAIN_WAIT;
        let mut dropped = 0u64;
        let mut next = first;
        loop {
            let prepared = match next.take() {
                Some(p) => p,
                None => match self.rx.try_recv() {
                    Ok(q) => {
                        crate::metrics::event_dequeued();
                        prepare_by(q, self.webhook.format, deadline).await
                    }
                    Err(_) => break,
                },
            };
            let sent = tokio::time::timeout_at(deadline, self.webhook.attempt(&prepared)).await;
            match sent {
                Ok(Ok(())) => crate::metrics::event_delivered(),
                Ok(Err(why)) => {
                    crate::metrics::event_failed();
                    warn!(event_id = %prepared.id, error = %why, "event not delivered at shutdown");
                }
                Err(_) => {
                    dropped += 1;
                    crate::metrics::event_dropped();
                }
            }
        }
        if dropped > 0 {
            warn!(
                dropped,
                "events still queued at shutdown were dropped (see README, Upload events)"
            );
        }
    }
}

impl RunningDelivery {
    /// Stops retrying, gives queued events one last attempt (bounded), and waits for the task.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// An event ready to send: its body made once, so retries repeat it byte for byte.
struct Prepared {
    id: String,
    kind: EventType,
    body: Vec<u8>,
}

async fn prepare(q: Queued, format: EventFormat) -> Prepared {
    prepare_by(q, format, Instant::now() + LOOKUP_TIMEOUT).await
}

async fn prepare_by(q: Queued, format: EventFormat, deadline: Instant) -> Prepared {
    let Queued { mut event, lookup } = q;
    if let Some(l) = lookup {
        if event.size.is_none() {
            if let Ok(Ok(e)) = tokio::time::timeout_at(deadline, l.storage.stat(&l.key)).await {
                event.size = Some(e.size);
            }
        }
        if event.sha256.is_none() {
            let digests = tokio::time::timeout_at(deadline, l.storage.recorded_digests(&l.key));
            if let Ok(Ok(d)) = digests.await {
                event.sha256 = d.sha256;
            }
        }
    }
    // Serialising plain strings and numbers cannot fail; an empty body would only fail to verify.
    let body = match format {
        EventFormat::Json => serde_json::to_vec(&event),
        EventFormat::CloudEvents => serde_json::to_vec(&CloudEvent::of(&event)),
    }
    .unwrap_or_default();
    Prepared {
        id: event.id,
        kind: event.kind,
        body,
    }
}

impl Webhook {
    /// Sends with retries. Returns the event when `stop` came before it was delivered or given
    /// up on (the drain gives it its last attempt).
    async fn deliver(&self, p: Prepared, stop: &CancellationToken) -> Option<Prepared> {
        let mut delay = self.retry_initial;
        for attempt in 1..=self.max_attempts {
            // Shutdown does not wait for a slow receiver: the drain makes the last attempt.
            let sent = tokio::select! {
                biased;
                _ = stop.cancelled() => return Some(p),
                r = self.attempt(&p) => r,
            };
            match sent {
                Ok(()) => {
                    crate::metrics::event_delivered();
                    debug!(event_id = %p.id, attempt, "event delivered");
                    return None;
                }
                Err(why) if attempt == self.max_attempts => {
                    crate::metrics::event_failed();
                    warn!(event_id = %p.id, event_type = p.kind.as_str(), attempts = attempt,
                        error = %why, "event not delivered; giving up");
                    return None;
                }
                Err(why) => {
                    crate::metrics::event_retried();
                    info!(event_id = %p.id, attempt, error = %why, retry_in_ms = delay.as_millis() as u64,
                        "event delivery failed; retrying");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Some(p),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(MAX_BACKOFF);
        }
        None
    }

    fn content_type(&self) -> &'static str {
        match self.format {
            EventFormat::Json => "application/json",
            EventFormat::CloudEvents => "application/cloudevents+json",
        }
    }

    /// One POST; `Ok` on a 2xx answer.
    async fn attempt(&self, p: &Prepared) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", self.content_type())
            .header(SIGNATURE_HEADER, signature(&self.secret, &p.body))
            .header(ID_HEADER, &p.id)
            .header(TYPE_HEADER, p.kind.as_str())
            .body(p.body.clone())
            .send()
            .await
            .map_err(|e| describe(&e))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            s => Err(format!("HTTP {}", s.as_u16())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn ids_are_v4_uuids_and_differ() {
        let (a, b) = (uuid_v4(), uuid_v4());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"), "{a}");
    }

    #[test]
    fn secret_file_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cret\n").expect("write");
        assert_eq!(read_secret(&path).expect("secret"), b"s3cret");
        std::fs::write(&path, "\n").expect("write");
        let e = read_secret(&path).expect_err("empty");
        assert!(
            e.to_string().starts_with("events.webhook_secret_file:"),
            "{e}"
        );
    }

    #[test]
    fn rename_fields_only_on_renames() {
        let actor = audit::Actor {
            session_id: 1,
            client_addr: crate::proxy::ClientAddr::direct("192.0.2.1:4000".parse().expect("a")),
            user: "acme",
        };
        let home = Home::new(
            Arc::new(crate::vfs::local::LocalStorage::new(std::env::temp_dir()).expect("local")),
            "partners/acme",
        );
        let obj = audit::Object {
            path: "/a",
            key: "partners/acme/a",
        };
        let v = serde_json::to_value(Event::new(EventType::ObjectDeleted, actor, &home, obj))
            .expect("json");
        assert_eq!(v["type"], "object.deleted");
        assert_eq!(v["client_addr"], "192.0.2.1:4000");
        assert!(v["bucket"].is_null() && v["size"].is_null(), "{v}");
        assert!(v.get("from_path").is_none(), "{v}");
    }
}
