//! Rate limits as pure state machines: time comes in as an argument.

use std::time::{Duration, Instant};

/// New connections: refills `rate` tokens a second up to `burst`; each
/// connection takes one or is refused.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// Starts full.
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token if one is there.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let since = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + since * self.rate).min(self.burst);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Bytes per second, shaped: each chunk reserves its share of the line and
/// the sender waits until its turn, so a transfer slows rather than fails.
/// Up to `slack` of sending time can be used at once after a quiet spell.
#[derive(Debug, Clone)]
pub struct Shaper {
    bytes_per_second: f64,
    slack: Duration,
    /// When the line is free again (GCRA's theoretical arrival time).
    free_at: Instant,
}

impl Shaper {
    pub fn new(bytes_per_second: u64, slack: Duration, now: Instant) -> Shaper {
        Shaper {
            bytes_per_second: bytes_per_second.max(1) as f64,
            slack,
            free_at: now.checked_sub(slack).unwrap_or(now),
        }
    }

    /// Reserves `bytes`; returns how long to wait before sending them.
    pub fn reserve(&mut self, bytes: usize, now: Instant) -> Duration {
        // A sender that overslept catches up, by at most `slack`.
        let start = self.free_at.max(now.checked_sub(self.slack).unwrap_or(now));
        let cost = Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
        self.free_at = start + cost;
        self.free_at.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_admits_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(200.0, 10, t0);
        let admitted = (0..50).filter(|_| b.try_take(t0)).count();
        assert_eq!(admitted, 10, "the burst");
        // Ten times the rate for ten seconds: 20,000 tries, 2,000 admitted.
        let mut n = 0;
        for i in 1..=20_000u64 {
            let now = t0 + Duration::from_micros(i * 500);
            n += usize::from(b.try_take(now));
        }
        assert!((1999..=2001).contains(&n), "{n}");
    }

    #[test]
    fn bucket_never_exceeds_its_burst_after_idling() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, 3, t0);
        while b.try_take(t0) {}
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| b.try_take(later)).count(), 3);
    }

    #[test]
    fn bucket_tolerates_time_going_backwards() {
        let t0 = Instant::now() + Duration::from_secs(10);
        let mut b = TokenBucket::new(1.0, 1, t0);
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0 - Duration::from_secs(5)));
    }

    #[test]
    fn shaper_paces_a_stream_at_the_rate() {
        let t0 = Instant::now();
        let slack = Duration::from_millis(50);
        let mut s = Shaper::new(1_000_000, slack, t0);
        // A sender that always sends as soon as allowed: 10 MB of 64 KiB chunks.
        let mut now = t0;
        let mut sent = 0usize;
        while sent < 10_000_000 {
            now += s.reserve(65_536, now);
            sent += 65_536;
        }
        let took = now.duration_since(t0).as_secs_f64();
        let rate = sent as f64 / took;
        assert!((950_000.0..=1_060_000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn shaper_makes_up_for_a_sender_that_overslept() {
        let t0 = Instant::now();
        let mut s = Shaper::new(1_000_000, Duration::from_millis(20), t0);
        let mut now = t0;
        let mut sent = 0usize;
        while sent < 10_000_000 {
            // Every wait overshoots by 1 ms, as a timer wheel's would.
            now += s.reserve(10_000, now) + Duration::from_millis(1);
            sent += 10_000;
        }
        let rate = sent as f64 / now.duration_since(t0).as_secs_f64();
        assert!((990_000.0..=1_010_000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn shaper_lets_a_quiet_sender_go_at_once_within_its_slack() {
        let t0 = Instant::now();
        let mut s = Shaper::new(1_000_000, Duration::from_millis(50), t0);
        assert_eq!(s.reserve(10_000, t0), Duration::ZERO);
        let wait = s.reserve(1_000_000, t0);
        assert!(wait > Duration::from_millis(900), "{wait:?}");
    }
}
