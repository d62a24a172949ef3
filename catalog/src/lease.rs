//! Per-peer freshness: fresh while a peer is heard from, stale after
//! `stale_after` of silence, expired after `expire_after`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    /// Heard from recently.
    Fresh,
    /// Silent for a while, or loaded from disk and not yet confirmed: still
    /// served, but the data plane prefers fresh clusters.
    Stale,
    /// Silent past the lease: its exports are withdrawn unless serve-stale.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeaseError {
    #[error(
        "lease: stale_after ({stale:?}) must be shorter than expire_after ({expire:?}), and both above zero"
    )]
    Order { stale: Duration, expire: Duration },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseConfig {
    stale_after: Duration,
    expire_after: Duration,
}

impl LeaseConfig {
    pub fn new(stale_after: Duration, expire_after: Duration) -> Result<Self, LeaseError> {
        if stale_after.is_zero() || stale_after >= expire_after {
            return Err(LeaseError::Order {
                stale: stale_after,
                expire: expire_after,
            });
        }
        Ok(Self {
            stale_after,
            expire_after,
        })
    }

    pub fn stale_after(&self) -> Duration {
        self.stale_after
    }

    pub fn expire_after(&self) -> Duration {
        self.expire_after
    }

    pub fn freshness(&self, last_heard: Instant, now: Instant) -> Freshness {
        let silent = now.saturating_duration_since(last_heard);
        if silent >= self.expire_after {
            Freshness::Expired
        } else if silent >= self.stale_after {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// When the freshness of a peer last heard at `last_heard` next changes, if ever.
    pub fn next_change(&self, last_heard: Instant, now: Instant) -> Option<Instant> {
        [self.stale_after, self.expire_after]
            .into_iter()
            .map(|d| last_heard + d)
            .find(|t| *t > now)
    }
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            stale_after: Duration::from_secs(10),
            expire_after: Duration::from_secs(60),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_at_the_configured_times() {
        let l = LeaseConfig::new(Duration::from_secs(2), Duration::from_secs(5)).unwrap();
        let t0 = Instant::now();
        let at = |s: u64| l.freshness(t0, t0 + Duration::from_millis(s));
        assert_eq!(at(0), Freshness::Fresh);
        assert_eq!(at(1999), Freshness::Fresh);
        assert_eq!(at(2000), Freshness::Stale);
        assert_eq!(at(4999), Freshness::Stale);
        assert_eq!(at(5000), Freshness::Expired);
        // A clock that reads before last_heard counts as no silence at all.
        assert_eq!(
            l.freshness(t0 + Duration::from_secs(9), t0),
            Freshness::Fresh
        );
    }

    #[test]
    fn next_change() {
        let l = LeaseConfig::new(Duration::from_secs(2), Duration::from_secs(5)).unwrap();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(l.next_change(t0, t0), Some(t0 + s(2)));
        assert_eq!(l.next_change(t0, t0 + s(2)), Some(t0 + s(5)));
        assert_eq!(l.next_change(t0, t0 + s(5)), None);
    }

    #[test]
    fn rejects_bad_order() {
        let s = Duration::from_secs;
        assert!(LeaseConfig::new(s(5), s(5)).is_err());
        assert!(LeaseConfig::new(s(0), s(5)).is_err());
        let e = LeaseConfig::new(s(9), s(5)).unwrap_err().to_string();
        assert!(e.contains("stale_after (9s)"), "{e}");
    }
}
