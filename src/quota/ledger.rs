//! [`Ledger`]: one user's storage usage in this replica and the uploads holding a share of the
//! quota, with the quota rule itself ([`Ledger::start`], [`Ledger::reserve`]). Plain data, no
//! I/O and no clock: the caller ([`super::UserAccount`]) locks it and counts the bucket.

use super::{Exceeded, QuotaKind, Usage};

/// The quota of one user: `None` is no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    pub bytes: Option<u64>,
    pub files: Option<u64>,
}

/// What an upload will do to the user's usage, known before its first byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UploadPlan {
    /// Bytes the new object starts with that are not counted yet: a resume's offset (the kept
    /// parts are not objects, so the count never saw them). 0 for STOR and APPE.
    pub base: u64,
    /// Bytes the commit removes: the size of the object it replaces (STOR onto a file, a
    /// resume replacing the visible file). 0 for APPE and for a new file.
    pub credit: u64,
    /// The commit adds a file (nothing was at the key).
    pub new_file: bool,
    /// Bytes the client announced it will send (ALLO), checked at once.
    pub hint: Option<u64>,
}

/// An upload's share of the quota: what it reserved so far. Given back by [`Ledger::commit`]
/// or [`Ledger::release`], exactly once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Hold {
    plan: UploadPlan,
    /// Bytes received from the data connection so far.
    received: u64,
    /// Bytes of `reserved_bytes` that are this upload's.
    bytes: u64,
}

/// One user's usage and reservations.
#[derive(Debug, Default)]
pub struct Ledger {
    pub quota: Quota,
    /// From the last count plus this replica's writes since; `None` until counted.
    pub used: Option<Usage>,
    /// Bytes held by uploads in flight (received beyond what their commit removes).
    reserved_bytes: u64,
    /// New files uploads in flight will create.
    reserved_files: u64,
    /// Uploads in flight (their holds not yet given back).
    pub in_flight: u32,
    /// Commits and removals so far: a count that saw this change while it listed cannot tell
    /// whether the listing includes them.
    pub changes: u64,
}

impl Ledger {
    /// Checks and reserves what an upload needs before its first byte: refused when the user is
    /// already at or over the byte quota (and the upload frees nothing), when a new file would
    /// pass the file quota, or when what it announced (a resume's offset, ALLO) would pass the
    /// byte quota.
    pub fn start(&mut self, plan: UploadPlan) -> Result<Hold, Exceeded> {
        let used = self.used.unwrap_or_default();
        if let Some(max) = self.quota.files {
            let files = used.files + self.reserved_files + u64::from(plan.new_file);
            if plan.new_file && files > max {
                let held = self.reserved_files;
                return Err(Exceeded::new(QuotaKind::Files, max, used.files, held));
            }
        }
        let mut hold = Hold {
            plan,
            ..Hold::default()
        };
        if let Some(max) = self.quota.bytes {
            let now = used.bytes + self.reserved_bytes;
            let announced = plan.base + plan.hint.unwrap_or(0);
            let over = now + announced.saturating_sub(plan.credit) > max;
            let full = now >= max && plan.credit == 0;
            if over || full {
                let held = self.reserved_bytes;
                return Err(Exceeded::new(QuotaKind::Bytes, max, used.bytes, held));
            }
        }
        // The base is counted from the start; the hint only checked (it may be wrong).
        self.hold_bytes(&mut hold, plan.base.saturating_sub(plan.credit));
        self.reserved_files += u64::from(plan.new_file);
        self.in_flight += 1;
        Ok(hold)
    }

    /// `n` more bytes arrived for `hold`: reserved, or refused when they would take the user
    /// past the byte quota (then nothing is reserved for them).
    pub fn reserve(&mut self, hold: &mut Hold, n: u64) -> Result<(), Exceeded> {
        let received = hold.received + n;
        let needed = (hold.plan.base + received).saturating_sub(hold.plan.credit);
        let more = needed.saturating_sub(hold.bytes);
        if let Some(max) = self.quota.bytes {
            let used = self.used.unwrap_or_default().bytes;
            if used + self.reserved_bytes + more > max {
                let held = self.reserved_bytes;
                return Err(Exceeded::new(QuotaKind::Bytes, max, used, held));
            }
        }
        hold.received = received;
        self.hold_bytes(hold, more);
        Ok(())
    }

    fn hold_bytes(&mut self, hold: &mut Hold, n: u64) {
        hold.bytes += n;
        self.reserved_bytes += n;
    }

    /// The upload was committed with `stored` bytes received in all (what the store says): its
    /// object now counts, the one it replaced no longer.
    pub fn commit(&mut self, hold: Hold, stored: u64) {
        let plan = hold.plan;
        self.release(hold);
        self.changes += 1;
        if let Some(used) = &mut self.used {
            used.bytes = (used.bytes + plan.base + stored).saturating_sub(plan.credit);
            used.files += u64::from(plan.new_file);
        }
    }

    /// The upload ended without a commit: its reservation is given back.
    pub fn release(&mut self, hold: Hold) {
        self.reserved_bytes = self.reserved_bytes.saturating_sub(hold.bytes);
        self.reserved_files = self
            .reserved_files
            .saturating_sub(u64::from(hold.plan.new_file));
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// A file of `size` bytes was removed by this replica (DELE, or replaced by a rename).
    pub fn removed(&mut self, size: u64) {
        self.changes += 1;
        if let Some(used) = &mut self.used {
            used.bytes = used.bytes.saturating_sub(size);
            used.files = used.files.saturating_sub(1);
        }
    }

    /// Usage and reservations, for replies and tests: (used, reserved bytes, reserved files).
    pub fn snapshot(&self) -> (Usage, u64, u64) {
        (
            self.used.unwrap_or_default(),
            self.reserved_bytes,
            self.reserved_files,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn ledger(bytes: Option<u64>, files: Option<u64>, used: (u64, u64)) -> Ledger {
        Ledger {
            quota: Quota { bytes, files },
            used: Some(Usage {
                bytes: used.0,
                files: used.1,
            }),
            ..Ledger::default()
        }
    }

    fn new_file() -> UploadPlan {
        UploadPlan {
            new_file: true,
            ..UploadPlan::default()
        }
    }

    #[test]
    fn bytes_are_reserved_as_they_arrive_and_refused_past_the_quota() {
        let mut l = ledger(Some(3 * MIB), None, (2 * MIB, 1));
        let mut h = l.start(new_file()).expect("room left");
        l.reserve(&mut h, MIB / 2).expect("fits");
        l.reserve(&mut h, MIB / 2).expect("exactly at the quota");
        let e = l.reserve(&mut h, 1).expect_err("one byte too many");
        assert_eq!(
            (e.kind, e.limit, e.used),
            (QuotaKind::Bytes, 3 * MIB, 2 * MIB)
        );
        l.release(h);
        assert_eq!(
            l.snapshot(),
            (
                Usage {
                    bytes: 2 * MIB,
                    files: 1
                },
                0,
                0
            )
        );
        assert_eq!(l.in_flight, 0);
    }

    #[test]
    fn commit_counts_the_new_object_and_not_the_replaced_one() {
        let mut l = ledger(Some(10 * MIB), None, (5 * MIB, 2));
        // STOR over a 4 MiB file with 1 MiB: usage goes down.
        let plan = UploadPlan {
            credit: 4 * MIB,
            ..UploadPlan::default()
        };
        let mut h = l.start(plan).expect("start");
        l.reserve(&mut h, MIB).expect("within the credit");
        assert_eq!(
            l.snapshot().1,
            0,
            "nothing beyond the replaced file is held"
        );
        l.commit(h, MIB);
        assert_eq!(
            l.snapshot(),
            (
                Usage {
                    bytes: 2 * MIB,
                    files: 2
                },
                0,
                0
            )
        );
        // A new file: one more file.
        let mut h = l.start(new_file()).expect("start");
        l.reserve(&mut h, 3).expect("fits");
        l.commit(h, 3);
        assert_eq!(
            l.snapshot().0,
            Usage {
                bytes: 2 * MIB + 3,
                files: 3
            }
        );
    }

    #[test]
    fn at_the_quota_a_new_upload_is_refused_before_it_starts_but_a_replacement_is_not() {
        let mut l = ledger(Some(MIB), None, (MIB, 1));
        let e = l.start(new_file()).expect_err("full");
        assert_eq!(e.kind, QuotaKind::Bytes);
        let h = l
            .start(UploadPlan {
                credit: 10,
                ..UploadPlan::default()
            })
            .expect("a replacement may shrink the file");
        l.release(h);
    }

    #[test]
    fn hints_are_checked_at_the_start() {
        let mut l = ledger(Some(3 * MIB), None, (2 * MIB, 1));
        let e = l
            .start(UploadPlan {
                hint: Some(2 * MIB),
                ..new_file()
            })
            .expect_err("announced 2 MiB, 1 MiB left");
        assert_eq!(e.kind, QuotaKind::Bytes);
        // A resume at 2 MiB of a kept upload: those bytes are not counted yet.
        let e = l
            .start(UploadPlan {
                base: 2 * MIB,
                ..new_file()
            })
            .expect_err("the kept parts alone pass the quota");
        assert_eq!(e.kind, QuotaKind::Bytes);
        let mut h = l
            .start(UploadPlan {
                base: MIB / 2,
                ..new_file()
            })
            .expect("fits");
        assert_eq!(l.snapshot().1, MIB / 2, "the base is held at once");
        l.reserve(&mut h, MIB / 2).expect("exactly at the quota");
        l.commit(h, MIB / 2);
        assert_eq!(
            l.snapshot(),
            (
                Usage {
                    bytes: 3 * MIB,
                    files: 2
                },
                0,
                0
            )
        );
    }

    #[test]
    fn files_quota_counts_new_files_only_including_those_in_flight() {
        let mut l = ledger(None, Some(2), (0, 1));
        let a = l.start(new_file()).expect("second file");
        let e = l
            .start(new_file())
            .expect_err("a third file, one in flight");
        assert_eq!((e.kind, e.limit), (QuotaKind::Files, 2));
        let replace = l
            .start(UploadPlan::default())
            .expect("replacing adds no file");
        l.release(replace);
        l.commit(a, 0);
        assert_eq!(l.snapshot().0.files, 2);
        l.removed(0);
        l.start(new_file()).expect("a delete made room");
    }

    #[test]
    fn concurrent_uploads_together_stay_within_the_quota() {
        let mut l = ledger(Some(100), None, (0, 0));
        let mut a = l.start(new_file()).expect("a");
        let mut b = l.start(new_file()).expect("b");
        let (mut got_a, mut got_b) = (0, 0);
        // Interleaved 7-byte reads until both are refused.
        for _ in 0..20 {
            if l.reserve(&mut a, 7).is_ok() {
                got_a += 7;
            }
            if l.reserve(&mut b, 7).is_ok() {
                got_b += 7;
            }
        }
        assert!(got_a + got_b <= 100, "{got_a} + {got_b}");
        assert!(got_a + got_b > 100 - 7, "refused only what did not fit");
        l.commit(a, got_a);
        l.release(b);
        assert_eq!(
            l.snapshot(),
            (
                Usage {
                    bytes: got_a,
                    files: 1
                },
                0,
                0
            )
        );
    }

    #[test]
    fn no_quota_refuses_nothing() {
        let mut l = ledger(None, None, (u64::MAX / 2, 1_000_000));
        let mut h = l.start(new_file()).expect("start");
        l.reserve(&mut h, 1 << 40).expect("no limit");
        l.commit(h, 1 << 40);
    }
}
