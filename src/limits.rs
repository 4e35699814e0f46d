//! Session limits: in all, per client address, per user (`limits.max_sessions*`).
//!
//! A permit is taken when a connection is accepted (total and per address) and when a user logs
//! in (per user); dropping it gives the slot back, so a session that ends in any way — QUIT, a
//! reset, a panic in its task — cannot leak a slot.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use crate::net::ClientAddr;

/// Which limit was hit; each gets its own `421` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    #[error("too many sessions on this server, try again later")]
    Total,
    #[error("too many sessions from your address")]
    PerAddress,
    #[error("too many sessions for this user")]
    PerUser,
}

pub struct SessionLimits {
    max_total: usize,
    max_per_ip: usize,
    max_per_user: usize,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    per_user: HashMap<String, usize>,
}

/// A connection's slot (total and per address), released on drop.
pub struct ConnectionPermit {
    limits: Arc<SessionLimits>,
    ip: IpAddr,
}

/// A logged-in user's slot, released on drop.
pub struct UserPermit {
    limits: Arc<SessionLimits>,
    user: String,
}

impl SessionLimits {
    pub fn new(max_total: usize, max_per_ip: usize, max_per_user: usize) -> Arc<Self> {
        Arc::new(SessionLimits {
            max_total,
            max_per_ip,
            max_per_user,
            counts: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent even if a holder panicked: every update is one statement.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a new connection from `client`.
    pub fn admit(self: &Arc<Self>, client: ClientAddr) -> Result<ConnectionPermit, LimitHit> {
        let ip = client.ip();
        let mut c = self.counts();
        if c.total >= self.max_total {
            return Err(LimitHit::Total);
        }
        let n = c.per_ip.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return Err(LimitHit::PerAddress);
        }
        *n += 1;
        c.total += 1;
        Ok(ConnectionPermit {
            limits: self.clone(),
            ip,
        })
    }

    /// A slot for a login of `user`.
    pub fn admit_user(self: &Arc<Self>, user: &str) -> Result<UserPermit, LimitHit> {
        let mut c = self.counts();
        let n = c.per_user.entry(user.to_string()).or_insert(0);
        if *n >= self.max_per_user {
            return Err(LimitHit::PerUser);
        }
        *n += 1;
        Ok(UserPermit {
            limits: self.clone(),
            user: user.to_string(),
        })
    }
}

/// Decrements `key`'s count, forgetting keys that reach zero (the maps stay small).
fn release<K: Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut c = self.limits.counts();
        c.total = c.total.saturating_sub(1);
        release(&mut c.per_ip, &self.ip);
    }
}

impl Drop for UserPermit {
    fn drop(&mut self) {
        release(&mut self.limits.counts().per_user, &self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(s: &str) -> ClientAddr {
        ClientAddr::direct(s.parse().expect("addr"))
    }

    #[test]
    fn limits_are_enforced_and_released() {
        let l = SessionLimits::new(3, 2, 1);
        let a = client("192.0.2.1:1000");
        let b = client("192.0.2.2:1000");
        let p1 = l.admit(a).expect("1");
        let _p2 = l.admit(a).expect("2");
        assert_eq!(l.admit(a).err(), Some(LimitHit::PerAddress));
        let _p3 = l.admit(b).expect("3");
        assert_eq!(l.admit(b).err(), Some(LimitHit::Total));
        drop(p1);
        assert!(l.admit(b).is_ok());
        let u = l.admit_user("acme").expect("user");
        assert_eq!(l.admit_user("acme").err(), Some(LimitHit::PerUser));
        drop(u);
        assert!(l.admit_user("acme").is_ok());
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let l = SessionLimits::new(10, 1, 1);
        let _p = l.admit(client("192.0.2.1:1000")).expect("1");
        assert_eq!(
            l.admit(client("[::ffff:192.0.2.1]:1001")).err(),
            Some(LimitHit::PerAddress)
        );
    }
}
