//! Failed-login throttling (`auth.max_failures`, `auth.ban_seconds`, `auth.lockout`).
//!
//! Failures are counted per client address and, depending on the [`Lockout`] policy, per user
//! name. A budget with `max_failures` failures within `ban_seconds` is spent: logins it covers
//! are refused for `ban_seconds` after the last one, without checking the password. The
//! refusal is the same `530` as a wrong password, so the ban reveals nothing.
//!
//! The limit is exact under bursts: a password check first *reserves* a failure against every
//! budget it falls under, and only `max_failures − failures − in flight` checks may hold a
//! reservation at once. Logins beyond that wait for a check in flight to end: a success gives
//! the reservation back (so a client opening ten sessions at once with the right password gets
//! all ten), a failure keeps it. However many passwords arrive at once, at most `max_failures`
//! of them are ever checked per budget and window.
//!
//! A success forgives only the failures the same user made from the same address (a typo
//! before the right password): other users' failures from that address stay counted, so one
//! valid account does not give its holder unlimited guesses at the others.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::Notify;

/// Entries kept per map before expired ones are swept (bounds memory under a flood).
const SWEEP_AT: usize = 10_000;
/// Addresses remembered per user for [`Lockout::UserAtNewAddresses`].
const KNOWN_ADDRESSES_PER_USER: usize = 16;
/// The longest a login waits for checks in flight to free its budget before it is refused.
const MAX_WAIT: Duration = Duration::from_secs(30);

// Defined with the config key it is read from (`auth.lockout`), so config needs nothing of auth.
pub use crate::config::Lockout;

pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    lockout: Lockout,
    state: Mutex<State>,
    /// Woken whenever a reservation ends, for logins waiting for budget.
    released: Notify,
}

#[derive(Default)]
struct State {
    by_ip: HashMap<IpAddr, Record>,
    by_user: HashMap<String, Record>,
    /// Failures per (user, address): what a success of that user from there forgives.
    by_user_ip: HashMap<(String, IpAddr), Record>,
    /// Addresses each user logged in from, most recent last.
    known: HashMap<String, VecDeque<IpAddr>>,
}

/// Failures in the current burst and checks in flight; a burst ends (and a ban lifts) `window`
/// after its last failure.
#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    in_flight: u32,
    last: Instant,
}

/// Whether a login may check its password now.
enum Admission {
    Go {
        user_counted: bool,
    },
    Banned,
    /// Checks in flight hold the rest of the budget: wait for one to end.
    Busy,
}

/// A password check counted in advance as a failure; [`Reservation::succeeded`] gives it back.
/// Dropped otherwise (a failure, or a session gone mid-check), it stays a failure.
pub struct Reservation<'a> {
    throttle: &'a LoginThrottle,
    ip: IpAddr,
    user: String,
    user_counted: bool,
    done: bool,
}

impl Reservation<'_> {
    /// The login succeeded: the reservation is returned, and the failures this user made from
    /// this address are forgiven.
    pub fn succeeded(mut self) {
        self.done = true;
        self.throttle
            .release(self.ip, &self.user, self.user_counted, true);
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.throttle
                .release(self.ip, &self.user, self.user_counted, false);
        }
    }
}

impl LoginThrottle {
    pub fn new(max_failures: u32, ban: Duration, lockout: Lockout) -> Self {
        LoginThrottle {
            max_failures,
            window: ban,
            lockout,
            state: Mutex::new(State::default()),
            released: Notify::new(),
        }
    }

    /// Reserves a password check for `user` from `ip`, waiting (at most [`MAX_WAIT`]) while
    /// checks in flight hold the rest of the budget. `None`: refused, check nothing.
    pub async fn reserve(&self, ip: IpAddr, user: &str) -> Option<Reservation<'_>> {
        let ip = ip.to_canonical();
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            // Registered before looking, so a release between the look and the wait wakes us.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.admit(ip, user, Instant::now()) {
                Admission::Go { user_counted } => {
                    return Some(Reservation {
                        throttle: self,
                        ip,
                        user: user.to_string(),
                        user_counted,
                        done: false,
                    })
                }
                Admission::Banned => return None,
                Admission::Busy => {
                    if tokio::time::timeout_at(deadline, released).await.is_err() {
                        return None;
                    }
                }
            }
        }
    }

    /// Whether a login from `ip` for `user` is refused right now (a login that checks no
    /// password: by client certificate).
    pub fn is_banned(&self, ip: IpAddr, user: &str) -> bool {
        let ip = ip.to_canonical();
        let now = Instant::now();
        let mut s = lock(&self.state);
        let user_counted = self.counts_user(&s, ip, user);
        let window = self.window;
        let max = self.max_failures;
        let banned = |r: Option<&mut Record>| {
            r.is_some_and(|r| {
                refresh(r, now, window);
                r.failures >= max
            })
        };
        banned(s.by_ip.get_mut(&ip)) || (user_counted && banned(s.by_user.get_mut(user)))
    }

    /// A login that checked no password succeeded (by client certificate): as a reservation's
    /// success, without the reservation.
    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        let ip = ip.to_canonical();
        let mut s = lock(&self.state);
        self.forgive(&mut s, ip, user);
    }

    /// Whether `user`'s own budget applies to a login from `ip`.
    fn counts_user(&self, s: &State, ip: IpAddr, user: &str) -> bool {
        match self.lockout {
            Lockout::Address => false,
            Lockout::UserAndAddress => true,
            Lockout::UserAtNewAddresses => !s.known.get(user).is_some_and(|k| k.contains(&ip)),
        }
    }

    fn admit(&self, ip: IpAddr, user: &str, now: Instant) -> Admission {
        let mut s = lock(&self.state);
        let user_counted = self.counts_user(&s, ip, user);
        let (window, max) = (self.window, self.max_failures);
        sweep(&mut s.by_ip, now, window);
        sweep(&mut s.by_user, now, window);
        sweep(&mut s.by_user_ip, now, window);
        let fresh = Record {
            failures: 0,
            in_flight: 0,
            last: now,
        };
        let mut verdict = Verdict::Free;
        let ip_rec = s.by_ip.entry(ip).or_insert(fresh);
        verdict = verdict.and(check(ip_rec, now, window, max));
        if user_counted {
            let user_rec = s.by_user.entry(user.to_string()).or_insert(fresh);
            verdict = verdict.and(check(user_rec, now, window, max));
        }
        match verdict {
            Verdict::Spent => Admission::Banned,
            Verdict::Held => Admission::Busy,
            Verdict::Free => {
                if let Some(r) = s.by_ip.get_mut(&ip) {
                    r.in_flight += 1;
                }
                if user_counted {
                    if let Some(r) = s.by_user.get_mut(user) {
                        r.in_flight += 1;
                    }
                }
                Admission::Go { user_counted }
            }
        }
    }

    fn release(&self, ip: IpAddr, user: &str, user_counted: bool, ok: bool) {
        let now = Instant::now();
        {
            let mut s = lock(&self.state);
            let end = |r: &mut Record| {
                r.in_flight = r.in_flight.saturating_sub(1);
                if !ok {
                    r.failures = r.failures.saturating_add(1);
                    r.last = now;
                }
            };
            if let Some(r) = s.by_ip.get_mut(&ip) {
                end(r);
            }
            if user_counted {
                if let Some(r) = s.by_user.get_mut(user) {
                    end(r);
                }
            }
            if ok {
                self.forgive(&mut s, ip, user);
            } else {
                let window = self.window;
                let r = s
                    .by_user_ip
                    .entry((user.to_string(), ip))
                    .or_insert(Record {
                        failures: 0,
                        in_flight: 0,
                        last: now,
                    });
                refresh(r, now, window);
                r.failures = r.failures.saturating_add(1);
                r.last = now;
            }
        }
        self.released.notify_waiters();
    }

    /// `user` logged in from `ip`: forgive the failures they made from there, and remember
    /// the address as theirs.
    fn forgive(&self, s: &mut State, ip: IpAddr, user: &str) {
        let own = s
            .by_user_ip
            .remove(&(user.to_string(), ip))
            .map_or(0, |r| r.failures);
        if let Some(r) = s.by_ip.get_mut(&ip) {
            r.failures = r.failures.saturating_sub(own);
        }
        if let Some(r) = s.by_user.get_mut(user) {
            r.failures = r.failures.saturating_sub(own);
        }
        if self.lockout == Lockout::UserAtNewAddresses {
            let known = s.known.entry(user.to_string()).or_default();
            known.retain(|a| *a != ip);
            if known.len() >= KNOWN_ADDRESSES_PER_USER {
                known.pop_front();
            }
            known.push_back(ip);
        }
    }
}

/// What one budget says about one more check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Free,
    /// Failures and checks in flight fill it: wait.
    Held,
    /// Failures alone fill it: banned.
    Spent,
}

impl Verdict {
    fn and(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Spent, _) | (_, Verdict::Spent) => Verdict::Spent,
            (Verdict::Held, _) | (_, Verdict::Held) => Verdict::Held,
            _ => Verdict::Free,
        }
    }
}

fn check(r: &mut Record, now: Instant, window: Duration, max: u32) -> Verdict {
    refresh(r, now, window);
    if r.failures >= max {
        Verdict::Spent
    } else if r.failures.saturating_add(r.in_flight) >= max {
        Verdict::Held
    } else {
        Verdict::Free
    }
}

/// The previous burst is over (`window` since its last failure): start counting again.
fn refresh(r: &mut Record, now: Instant, window: Duration) {
    if r.failures > 0 && now.duration_since(r.last) >= window {
        r.failures = 0;
    }
}

fn sweep<K>(map: &mut HashMap<K, Record>, now: Instant, window: Duration) {
    if map.len() >= SWEEP_AT {
        map.retain(|_, r| r.in_flight > 0 || now.duration_since(r.last) < window);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// One failed check of `user` from `a`; `false` if it was refused unchecked.
    async fn fail(t: &LoginThrottle, a: IpAddr, user: &str) -> bool {
        t.reserve(a, user).await.is_some()
    }

    #[tokio::test]
    async fn user_and_address_bans_both_everywhere() {
        let t = LoginThrottle::new(3, Duration::from_secs(60), Lockout::UserAndAddress);
        let (a, b) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..3 {
            assert!(fail(&t, a, "acme").await);
        }
        assert!(t.is_banned(a, "acme"));
        assert!(t.is_banned(a, "other"), "the address is banned for all");
        assert!(t.is_banned(b, "acme"), "the user is banned everywhere");
        assert!(!t.is_banned(b, "other"));
    }

    #[tokio::test]
    async fn address_policy_never_bans_a_user_elsewhere() {
        let t = LoginThrottle::new(2, Duration::from_secs(60), Lockout::Address);
        for n in 1..=5 {
            let a = ip(&format!("192.0.2.{n}"));
            assert!(fail(&t, a, "acme").await);
            assert!(fail(&t, a, "acme").await);
            assert!(!fail(&t, a, "acme").await);
        }
        assert!(!t.is_banned(ip("192.0.2.99"), "acme"));
    }

    #[tokio::test]
    async fn user_at_new_addresses_spares_known_addresses() {
        let t = LoginThrottle::new(2, Duration::from_secs(60), Lockout::UserAtNewAddresses);
        let home = ip("198.51.100.1");
        t.reserve(home, "acme").await.expect("free").succeeded();
        assert!(fail(&t, ip("203.0.113.1"), "acme").await);
        assert!(fail(&t, ip("203.0.113.2"), "acme").await);
        // The user's budget is spent: new addresses are refused, the known one is not.
        assert!(t.is_banned(ip("203.0.113.3"), "acme"));
        assert!(!t.is_banned(home, "acme"));
        assert!(t.reserve(home, "acme").await.is_some());
    }

    #[tokio::test]
    async fn reservations_make_the_limit_exact_and_successes_give_them_back() {
        let t = LoginThrottle::new(2, Duration::from_secs(60), Lockout::Address);
        let a = ip("192.0.2.1");
        let r1 = t.reserve(a, "acme").await.expect("first");
        let r2 = t.reserve(a, "acme").await.expect("second");
        // A third waits while two are in flight; a success frees its place.
        let third = t.reserve(a, "acme");
        tokio::pin!(third);
        assert!(futures::poll!(third.as_mut()).is_pending());
        r1.succeeded();
        let r3 = third.await.expect("freed by the success");
        drop(r2);
        drop(r3);
        // Two failures: spent, refused without waiting.
        assert!(t.reserve(a, "acme").await.is_none());
    }

    #[tokio::test]
    async fn a_success_forgives_only_its_own_failures() {
        let t = LoginThrottle::new(3, Duration::from_secs(60), Lockout::Address);
        let a = ip("192.0.2.1");
        assert!(fail(&t, a, "ghost").await);
        assert!(fail(&t, a, "acme").await);
        t.reserve(a, "acme").await.expect("free").succeeded();
        // acme's typo is forgiven, ghost's failure is not: two more fill the budget.
        assert!(fail(&t, a, "ghost").await);
        assert!(fail(&t, a, "ghost").await);
        assert!(t.is_banned(a, "acme"));
    }

    #[tokio::test]
    async fn bans_expire() {
        let t = LoginThrottle::new(1, Duration::from_millis(30), Lockout::UserAndAddress);
        let a = ip("192.0.2.1");
        assert!(fail(&t, a, "acme").await);
        assert!(t.is_banned(a, "acme"));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(!t.is_banned(a, "acme"));
    }
}
