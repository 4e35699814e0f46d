//! Per-user quotas and bandwidth limits: the users file's (or identity endpoint's)
//! `quota_bytes`, `quota_files`, `max_upload_kib_s` and `max_download_kib_s`.
//!
//! **The quota rule lives in [`ledger`]**, in one place: an upload reserves what it needs before
//! its first byte (refused when the user is at or over `quota_bytes`, when a new file would pass
//! `quota_files`, or when a resume's offset or an ALLO size would pass `quota_bytes`), then
//! reserves each byte as it arrives ([`inbound::Inbound`]), so concurrent uploads of one user
//! together never pass the quota by more than one read; past it the upload is aborted and the
//! client gets `552`. A commit counts the new object minus the one it replaced; DELE and a
//! rename onto a file free what they removed; a rename otherwise changes nothing.
//!
//! **Counting.** A user's usage is counted from the store ([`crate::vfs::Storage::usage`]: S3
//! lists every key under the user's roots, in pages) at login, once per user in this replica
//! however many sessions log in at once ([`UserAccount::count`]), and kept with the account,
//! shared by the user's sessions. It is counted again at a login or an upload once it is older
//! than `limits.quota_recount_secs` and none of the user's uploads is running here. Between
//! counts it drifts by what others write: objects written to the prefix directly (S3 clients,
//! lifecycle rules) and by other replicas' sessions of the same user are not seen until the
//! next count, so several replicas together may let a user pass the quota by what the others
//! stored since their last count.
//!
//! **Bandwidth.** [`rate::RateLimiter`]: one token bucket per user and direction, shared by the
//! user's sessions in this replica, paced in the data connection's copy loops.

mod inbound;
pub mod ledger;
pub mod rate;

use std::{
    collections::HashMap,
    fmt, io,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

pub use crate::auth::UserLimits;
pub use crate::vfs::Usage;
use crate::vfs::{ObjectKey, Storage, StorageError};
pub use inbound::Inbound;
use ledger::{Hold, Ledger, Quota, UploadPlan};
use rate::RateLimiter;

/// Accounts kept at most; beyond it those of users with no session here are forgotten.
const ACCOUNTS_MAX: usize = 10_000;

/// The byte and file quota of `limits`.
fn quota_of(limits: UserLimits) -> Quota {
    Quota {
        bytes: limits.quota_bytes,
        files: limits.quota_files,
    }
}

/// Which quota an upload would pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaKind {
    Bytes,
    Files,
}

impl QuotaKind {
    /// The users file's key, also the metric label.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Bytes => "quota_bytes",
            QuotaKind::Files => "quota_files",
        }
    }
}

/// An upload refused by a quota (`552`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Exceeded {
    pub kind: QuotaKind,
    pub limit: u64,
    /// Counted usage when refused (uploads in flight not included).
    pub used: u64,
    /// Held by the user's uploads in progress in this replica (the refused one included).
    pub in_flight: u64,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.kind {
            QuotaKind::Bytes => "bytes",
            QuotaKind::Files => "files",
        };
        write!(
            f,
            "quota exceeded: {} {unit} allowed ({}), {} used",
            self.limit,
            self.kind.key(),
            self.used
        )?;
        match self.in_flight {
            0 => Ok(()),
            n => write!(f, ", {n} in uploads in progress"),
        }
    }
}

impl Exceeded {
    fn new(kind: QuotaKind, limit: u64, used: u64, in_flight: u64) -> Self {
        Exceeded {
            kind,
            limit,
            used,
            in_flight,
        }
    }

    /// As the error of a read, so it passes through the store's copy loop unchanged.
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// The quota refusal inside a read error made by [`Exceeded::into_io`], if that is what it is.
pub fn exceeded_in(e: &io::Error) -> Option<Exceeded> {
    e.get_ref()?.downcast_ref::<Exceeded>().copied()
}

/// A place a user's files live: a store and the key under which everything counts.
pub type Root = (Arc<dyn Storage>, ObjectKey);

/// Usage under all of `roots` (the same root given twice counts once).
pub async fn count_usage(roots: &[Root]) -> Result<Usage, StorageError> {
    let mut total = Usage::default();
    for (i, (storage, key)) in roots.iter().enumerate() {
        let seen = roots[..i]
            .iter()
            .any(|(s, k)| Arc::ptr_eq(s, storage) && k == key);
        if !seen {
            let u = storage.usage(key).await?;
            total.bytes += u.bytes;
            total.files += u.files;
        }
    }
    Ok(total)
}

/// Every user's account in this replica, made at their first login.
pub struct Quotas {
    accounts: Mutex<HashMap<String, Arc<UserAccount>>>,
    recount_after: Duration,
}

impl Quotas {
    /// `recount_after`: `limits.quota_recount_secs`.
    pub fn new(recount_after: Duration) -> Self {
        Quotas {
            accounts: Mutex::default(),
            recount_after,
        }
    }

    /// The account of user `name` with these limits (updated if the users file changed them);
    /// `None` for a user without limits.
    pub fn account(&self, name: &str, limits: UserLimits) -> Option<Arc<UserAccount>> {
        if limits.is_unlimited() {
            return None;
        }
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        if accounts.len() >= ACCOUNTS_MAX && !accounts.contains_key(name) {
            accounts.retain(|_, a| Arc::strong_count(a) > 1);
        }
        let account = accounts
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(UserAccount::new(name, self.recount_after)));
        account.apply(limits);
        Some(account.clone())
    }
}

/// One user's usage, reservations and rates in this replica, shared by their sessions.
pub struct UserAccount {
    name: String,
    state: Mutex<State>,
    /// Held while counting: one count per user at a time.
    counting: tokio::sync::Mutex<()>,
    recount_after: Duration,
}

struct State {
    ledger: Ledger,
    counted_at: Option<Instant>,
    upload: Option<Arc<RateLimiter>>,
    download: Option<Arc<RateLimiter>>,
}

impl UserAccount {
    fn new(name: &str, recount_after: Duration) -> Self {
        UserAccount {
            name: name.to_string(),
            state: Mutex::new(State {
                ledger: Ledger::default(),
                counted_at: None,
                upload: None,
                download: None,
            }),
            counting: tokio::sync::Mutex::new(()),
            recount_after,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, limits: UserLimits) {
        let mut s = self.state();
        s.ledger.quota = quota_of(limits);
        let set = |slot: &mut Option<Arc<RateLimiter>>, kib: Option<u64>| match (slot.as_ref(), kib)
        {
            (_, None) => *slot = None,
            (Some(r), Some(k)) => r.set_rate(k),
            (None, Some(k)) => *slot = Some(Arc::new(RateLimiter::new(k))),
        };
        set(&mut s.upload, limits.max_upload_kib_s);
        set(&mut s.download, limits.max_download_kib_s);
    }

    /// Whether a byte or file quota applies (else nothing needs counting).
    pub fn has_quota(&self) -> bool {
        self.state().ledger.quota != Quota::default()
    }

    /// Counts the user's usage under `roots` unless a count is fresh (younger than
    /// `limits.quota_recount_secs`) or, with a count at all, one of the user's uploads runs
    /// here (its commit would be counted twice). Sessions calling at once wait for one count.
    pub async fn count(&self, roots: &[Root]) -> Result<(), StorageError> {
        if !self.has_quota() {
            return Ok(());
        }
        let _one_at_a_time = self.counting.lock().await;
        let changes = {
            let s = self.state();
            let fresh = s
                .counted_at
                .is_some_and(|t| t.elapsed() < self.recount_after);
            let busy = s.ledger.used.is_some() && s.ledger.in_flight > 0;
            if fresh || busy {
                return Ok(());
            }
            s.ledger.changes
        };
        // No upload can start meanwhile (each counts first, so waits for this one), but a DELE
        // or rename can: then the listing may or may not show it, so a figure we have is kept
        // (the next login or upload counts again).
        let started = Instant::now();
        let usage = count_usage(roots).await?;
        let mut s = self.state();
        if s.ledger.used.is_some() && s.ledger.changes != changes {
            return Ok(());
        }
        tracing::debug!(user = %self.name, bytes = usage.bytes, files = usage.files, took_ms = started.elapsed().as_millis() as u64, "quota: usage counted");
        s.ledger.used = Some(usage);
        s.counted_at = Some(started);
        Ok(())
    }

    /// Checks and reserves what an upload needs before it starts (see [`ledger::Ledger::start`]).
    pub fn start_upload(self: &Arc<Self>, plan: UploadPlan) -> Result<UploadHold, Exceeded> {
        let hold = self.state().ledger.start(plan);
        match hold {
            Ok(hold) => Ok(UploadHold {
                account: self.clone(),
                hold: Some(hold),
            }),
            Err(e) => {
                crate::metrics::quota_refused(e.kind.key(), "start");
                Err(e)
            }
        }
    }

    /// A file of `size` bytes was deleted or replaced by a rename.
    pub fn removed(&self, size: u64) {
        self.state().ledger.removed(size);
    }

    /// (usage, bytes reserved by uploads in flight, new files they will make).
    pub fn usage(&self) -> (Usage, u64, u64) {
        self.state().ledger.snapshot()
    }

    /// What a transfer in this direction is limited by; `hold` only for uploads.
    pub fn data_limits(&self, upload: bool, hold: Option<UploadHold>) -> DataLimits {
        let s = self.state();
        DataLimits {
            hold,
            rate: match upload {
                true => s.upload.clone(),
                false => s.download.clone(),
            },
        }
    }
}

/// An upload's share of its user's quota: reserved as bytes arrive, counted at commit, given
/// back if dropped without one.
pub struct UploadHold {
    account: Arc<UserAccount>,
    hold: Option<Hold>,
}

impl UploadHold {
    /// `n` more bytes arrived.
    pub fn reserve(&mut self, n: u64) -> Result<(), Exceeded> {
        let Some(hold) = self.hold.as_mut() else {
            return Ok(());
        };
        let mut s = self.account.state();
        let r = s.ledger.reserve(hold, n);
        if let Err(e) = &r {
            // The upload ends here: what it held is free for the user's other uploads at once,
            // not only after its abort.
            if let Some(hold) = self.hold.take() {
                s.ledger.release(hold);
            }
            crate::metrics::quota_refused(e.kind.key(), "transfer");
        }
        r
    }

    /// The upload was committed; `stored`: the bytes it received in all.
    pub fn commit(mut self, stored: u64) {
        if let Some(hold) = self.hold.take() {
            self.account.state().ledger.commit(hold, stored);
        }
    }
}

impl fmt::Debug for UploadHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadHold")
            .field("user", &self.account.name)
            .field("hold", &self.hold)
            .finish()
    }
}

impl Drop for UploadHold {
    fn drop(&mut self) {
        if let Some(hold) = self.hold.take() {
            self.account.state().ledger.release(hold);
        }
    }
}

/// What a transfer's data connection is limited by: the upload's quota share and the user's
/// rate in the transfer's direction. Default: nothing.
#[derive(Default)]
pub struct DataLimits {
    pub hold: Option<UploadHold>,
    pub rate: Option<Arc<RateLimiter>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::memory::MemoryStorage;

    async fn put(store: &MemoryStorage, key: &str, mut body: &[u8]) {
        let spec = crate::vfs::UploadSpec {
            mode: crate::vfs::UploadMode::Replace,
            uploader: "t".into(),
            client_addr: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let mut up = store
            .begin_upload(&ObjectKey::from_trusted(key), spec)
            .await
            .expect("begin");
        up.copy_from(&mut body).await.expect("copy");
        up.commit().await.expect("commit");
    }

    fn limits(bytes: u64) -> UserLimits {
        UserLimits {
            quota_bytes: Some(bytes),
            ..UserLimits::default()
        }
    }

    #[tokio::test]
    async fn one_count_for_many_logins_and_holds_are_shared() {
        let store = Arc::new(MemoryStorage::new());
        for (key, body) in [
            ("u/a", &b"12345"[..]),
            ("u/d/b", b"123"),
            ("other/c", b"1234567"),
        ] {
            put(&store, key, body).await;
        }
        let roots: Vec<Root> = vec![(store.clone(), ObjectKey::from_trusted("u"))];
        let quotas = Quotas::new(Duration::from_secs(300));
        assert!(quotas.account("free", UserLimits::default()).is_none());
        let accounts: Vec<_> = (0..10)
            .map(|_| quotas.account("u", limits(10)).expect("limited"))
            .collect();
        let counts = futures::future::join_all(accounts.iter().map(|a| a.count(&roots))).await;
        assert!(counts.iter().all(Result::is_ok));
        assert_eq!(store.usage_counts(), 1, "ten logins at once, one count");
        assert_eq!(accounts[0].usage().0, Usage { bytes: 8, files: 2 });
        // A reservation made through one session is seen by the others.
        let mut hold = accounts[1]
            .start_upload(UploadPlan {
                new_file: true,
                ..UploadPlan::default()
            })
            .expect("room");
        hold.reserve(2).expect("fits");
        assert_eq!(accounts[2].usage().1, 2);
        let e = accounts[3]
            .start_upload(UploadPlan {
                new_file: true,
                hint: Some(1),
                ..UploadPlan::default()
            })
            .expect_err("10 of 10 used or held");
        assert_eq!(
            e.to_string(),
            "quota exceeded: 10 bytes allowed (quota_bytes), 8 used, 2 in uploads in progress"
        );
        drop(hold);
        assert_eq!(accounts[2].usage(), (Usage { bytes: 8, files: 2 }, 0, 0));
    }

    #[tokio::test]
    async fn a_stale_count_is_made_again_unless_an_upload_runs() {
        let store = Arc::new(MemoryStorage::new());
        put(&store, "u/a", b"12345").await;
        let roots: Vec<Root> = vec![(store.clone(), ObjectKey::from_trusted("u"))];
        // quota_recount_secs = 0: every login or upload counts again.
        let account = Quotas::new(Duration::ZERO)
            .account("u", limits(100))
            .expect("limited");
        account.count(&roots).await.expect("count");
        assert_eq!(account.usage().0, Usage { bytes: 5, files: 1 });
        // Someone writes to the prefix directly: seen at the next count.
        put(&store, "u/b", b"123").await;
        account.count(&roots).await.expect("count");
        assert_eq!(account.usage().0, Usage { bytes: 8, files: 2 });
        // While an upload of the user runs here, the figure is kept (its commit adds itself).
        let hold = account
            .start_upload(UploadPlan {
                new_file: true,
                ..UploadPlan::default()
            })
            .expect("room");
        put(&store, "u/c", b"1").await;
        account.count(&roots).await.expect("count");
        assert_eq!(account.usage().0, Usage { bytes: 8, files: 2 });
        hold.commit(0);
        assert_eq!(account.usage().0, Usage { bytes: 8, files: 3 });
        assert_eq!(store.usage_counts(), 2);
    }

    #[tokio::test]
    async fn a_refused_upload_frees_its_share_at_once() {
        let account = Quotas::new(Duration::from_secs(300))
            .account("u", limits(10))
            .expect("limited");
        let empty: Vec<Root> = vec![(Arc::new(MemoryStorage::new()), ObjectKey::from_trusted(""))];
        account.count(&empty).await.expect("count");
        let plan = UploadPlan {
            new_file: true,
            ..UploadPlan::default()
        };
        let mut a = account.start_upload(plan).expect("a");
        let mut b = account.start_upload(plan).expect("b");
        a.reserve(6).expect("fits");
        b.reserve(4).expect("fits");
        b.reserve(1).expect_err("11 of 10");
        assert_eq!(
            account.usage().1,
            6,
            "b's 4 bytes are free before b is dropped"
        );
        a.reserve(4).expect("a may use them");
        b.reserve(1)
            .expect("a refused hold reserves nothing more and refuses nothing");
        a.commit(10);
        drop(b);
        assert_eq!(
            account.usage(),
            (
                Usage {
                    bytes: 10,
                    files: 1
                },
                0,
                0
            )
        );
    }

    #[test]
    fn exceeded_survives_an_io_error() {
        let e = Exceeded::new(QuotaKind::Files, 3, 3, 0);
        assert_eq!(exceeded_in(&e.into_io()), Some(e));
        assert_eq!(exceeded_in(&io::Error::other("x")), None);
        assert!(UserLimits {
            max_upload_kib_s: Some(0),
            ..UserLimits::default()
        }
        .check()
        .is_err());
    }
}
