//! [`RateLimiter`]: a token bucket in bytes per second, shared by all of one user's sessions in
//! this replica (`max_upload_kib_s`, `max_download_kib_s`).
//!
//! Charged *after* the bytes moved ("debt"): a read or write of any size goes through, and the
//! next one waits until the bucket has paid for it. So the copy loops keep their buffers (no
//! splitting, no extra copies), a burst is at most one buffer plus [`BURST`] of the rate, and
//! over any longer span the user's sessions together move no more than the rate. Written by hand
//! rather than with `governor`: its cells are fixed-size permits checked *before* an action,
//! which fits request rates, not reads whose size is known only afterwards.

use std::{sync::Mutex, time::Duration};

use tokio::time::Instant;

/// The bucket holds this share of a second's worth of bytes: a transfer that was idle may send
/// that much at once.
const BURST: f64 = 0.5;

/// Bytes per second for every session of one user, in one direction.
pub struct RateLimiter {
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Bytes per second.
    rate: f64,
    /// Negative: owed (the next caller waits it off).
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// `kib_s` KiB per second (at least 1).
    pub fn new(kib_s: u64) -> Self {
        let rate = rate_of(kib_s);
        RateLimiter {
            bucket: Mutex::new(Bucket {
                rate,
                tokens: rate * BURST,
                last: Instant::now(),
            }),
        }
    }

    /// A new rate (the users file was reloaded); what is owed stays owed.
    pub fn set_rate(&self, kib_s: u64) {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        b.rate = rate_of(kib_s);
    }

    /// `n` bytes moved at `now`: how long the mover should wait before moving more.
    pub fn charge_at(&self, n: usize, now: Instant) -> Duration {
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now.max(b.last);
        b.tokens = (b.tokens + elapsed * b.rate).min(b.rate * BURST);
        b.tokens -= n as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / b.rate)
        }
    }

    /// The most a paced copy should move at once: the burst (half a second's worth, at least
    /// 512 bytes), so a slow user gets a steady trickle rather than a large buffer and a long
    /// silence their client may take for a stall.
    pub fn chunk(&self) -> usize {
        let b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        ((b.rate * BURST) as usize).max(512)
    }

    /// `n` bytes moved now.
    pub fn charge(&self, n: usize) -> Duration {
        self.charge_at(n, Instant::now())
    }

    /// `n` bytes moved: waits until the bucket has paid for them.
    pub async fn pace(&self, n: usize) {
        let wait = self.charge(n);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

fn rate_of(kib_s: u64) -> f64 {
    kib_s.max(1) as f64 * 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn a_burst_is_free_then_bytes_cost_time_at_the_rate() {
        let r = RateLimiter::new(100); // 102400 B/s, burst 51200 B
        let t0 = Instant::now();
        assert_eq!(r.charge_at(51_200, t0), Duration::ZERO);
        assert_eq!(ms(r.charge_at(10_240, t0)), 100);
        assert_eq!(ms(r.charge_at(10_240, t0)), 200, "debts add up");
        // After the debt is paid off and a further second idle, the bucket is full, not more.
        let later = t0 + Duration::from_millis(1_200);
        assert_eq!(r.charge_at(51_200, later), Duration::ZERO);
        assert_eq!(ms(r.charge_at(1_024, later)), 10);
    }

    #[test]
    fn sharers_split_the_rate() {
        // Two sessions, each moving 64 KiB per step and waiting what it is told: together they
        // move the rate, not twice it.
        let r = RateLimiter::new(64);
        let t0 = Instant::now();
        let mut at = [t0, t0];
        let mut moved = 0usize;
        while at.iter().all(|t| *t < t0 + Duration::from_secs(10)) {
            let i = if at[0] <= at[1] { 0 } else { 1 };
            at[i] += r.charge_at(65_536, at[i]);
            moved += 65_536;
        }
        let secs = 10.0;
        let rate = moved as f64 / secs;
        assert!(
            (rate - 65_536.0).abs() < 65_536.0 * 0.25,
            "{rate} B/s for 65536 B/s"
        );
    }

    #[test]
    fn chunks_are_the_burst() {
        assert_eq!(RateLimiter::new(256).chunk(), 128 * 1024);
        assert_eq!(RateLimiter::new(1).chunk(), 512);
    }

    #[test]
    fn a_new_rate_applies_to_the_next_charge() {
        let r = RateLimiter::new(1);
        let t0 = Instant::now();
        r.charge_at(512, t0);
        r.set_rate(1024);
        assert_eq!(ms(r.charge_at(1 << 20, t0)), 1000);
    }

    #[tokio::test]
    async fn pace_sleeps_off_the_debt() {
        let r = RateLimiter::new(100); // 102400 B/s, burst 51200 B
        let t0 = Instant::now();
        r.pace(51_200).await;
        assert!(
            t0.elapsed() < Duration::from_millis(50),
            "the burst is free"
        );
        r.pace(20_480).await;
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(195) && took < Duration::from_millis(600),
            "{took:?}"
        );
    }
}
