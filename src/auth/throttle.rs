//! Failed-login throttling, per client address and per user name (`auth.max_failures`,
//! `auth.ban_seconds`).
//!
//! After `max_failures` failures within `ban_seconds`, further logins from that address, or for
//! that user name, are refused for `ban_seconds` without checking the password: a guesser learns
//! nothing more, and an argon2 verification is not spent on them. The refusal is the same `530`
//! as a wrong password, so the ban reveals nothing either. Counting per user stops a slow
//! distributed guess at one account; counting per address stops one host trying many accounts.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Entries kept per map before expired ones are swept (bounds memory under a flood).
const SWEEP_AT: usize = 10_000;

pub struct LoginThrottle {
    max_failures: u32,
    window: Duration,
    by_ip: Mutex<HashMap<IpAddr, Record>>,
    by_user: Mutex<HashMap<String, Record>>,
}

/// Failures in the current burst; a burst ends (and a ban lifts) `window` after its last one.
#[derive(Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, ban: Duration) -> Self {
        LoginThrottle {
            max_failures,
            window: ban,
            by_ip: Mutex::new(HashMap::new()),
            by_user: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a login from `ip` for `user` is refused right now.
    pub fn is_banned(&self, ip: IpAddr, user: &str) -> bool {
        let now = Instant::now();
        let ip = ip.to_canonical();
        self.banned(&self.by_ip, &ip, now) || self.banned(&self.by_user, user, now)
    }

    /// Counts a failed login.
    pub fn failed(&self, ip: IpAddr, user: &str) {
        let now = Instant::now();
        self.count(&self.by_ip, ip.to_canonical(), now);
        self.count(&self.by_user, user.to_string(), now);
    }

    /// A successful login clears the user's and the address's record.
    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        lock(&self.by_ip).remove(&ip.to_canonical());
        lock(&self.by_user).remove(user);
    }

    fn banned<K, Q>(&self, map: &Mutex<HashMap<K, Record>>, key: &Q, now: Instant) -> bool
    where
        K: std::borrow::Borrow<Q> + Hash + Eq,
        Q: Hash + Eq + ?Sized,
    {
        lock(map).get(key).is_some_and(|r| {
            r.failures >= self.max_failures && now.duration_since(r.last) < self.window
        })
    }

    fn count<K: Hash + Eq>(&self, map: &Mutex<HashMap<K, Record>>, key: K, now: Instant) {
        let mut map = lock(map);
        if map.len() >= SWEEP_AT {
            let window = self.window;
            map.retain(|_, r| now.duration_since(r.last) < window);
        }
        let r = map.entry(key).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.duration_since(r.last) >= self.window {
            // The previous burst is over: start counting again.
            r.failures = 0;
        }
        r.failures = r.failures.saturating_add(1);
        r.last = now;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_after_max_failures_per_address_and_per_user() {
        let t = LoginThrottle::new(3, Duration::from_secs(60));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        for _ in 0..3 {
            assert!(!t.is_banned(a, "acme"));
            t.failed(a, "acme");
        }
        assert!(t.is_banned(a, "acme"));
        assert!(
            t.is_banned(a, "other"),
            "the address is banned for every user"
        );
        assert!(
            t.is_banned(b, "acme"),
            "the user is banned from every address"
        );
        assert!(!t.is_banned(b, "other"));
    }

    #[test]
    fn bans_expire_and_success_clears() {
        let t = LoginThrottle::new(1, Duration::from_millis(30));
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        t.failed(a, "acme");
        assert!(t.is_banned(a, "acme"));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!t.is_banned(a, "acme"));
        t.failed(a, "acme");
        t.succeeded(a, "acme");
        assert!(!t.is_banned(a, "acme"));
    }
}
