//! Outlier ejection: a pure state machine per cluster, time passed in.
//!
//! `consecutive_failures` failed attempts in a row, or a dead peer connection, eject
//! the cluster for `base_time * 2^(n-1)` (capped at `max_time`) where `n` counts
//! ejections since the cluster last served successfully. The load balancer never
//! ejects every candidate: when all are ejected it ignores ejection.

use std::time::{Duration, Instant};

use crate::config::Ejection;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlierState {
    consecutive: u32,
    ejections: u32,
    until: Option<Instant>,
}

impl OutlierState {
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }

    /// A stream got status ok: the cluster is healthy again.
    pub fn success(&mut self, now: Instant) {
        self.consecutive = 0;
        if !self.is_ejected(now) {
            // Forget past ejections once it has served again after its ejection ended.
            self.ejections = 0;
            self.until = None;
        }
    }

    /// A failed attempt; returns true when this failure ejected the cluster.
    pub fn failure(&mut self, now: Instant, cfg: &Ejection) -> bool {
        if self.is_ejected(now) {
            return false;
        }
        self.consecutive += 1;
        if self.consecutive < cfg.consecutive_failures {
            return false;
        }
        self.eject(now, cfg);
        true
    }

    /// The connection to the cluster died: eject at once (unless already ejected).
    pub fn connection_lost(&mut self, now: Instant, cfg: &Ejection) -> bool {
        if self.is_ejected(now) {
            return false;
        }
        self.eject(now, cfg);
        true
    }

    fn eject(&mut self, now: Instant, cfg: &Ejection) {
        let factor = 1u32.checked_shl(self.ejections.min(20)).unwrap_or(u32::MAX);
        let time = cfg.base_time.saturating_mul(factor).min(cfg.max_time);
        self.ejections = self.ejections.saturating_add(1);
        self.consecutive = 0;
        self.until = Some(now + time);
    }

    /// Time left in the current ejection.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.until
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Ejection {
        Ejection {
            consecutive_failures: 3,
            base_time: Duration::from_secs(5),
            max_time: Duration::from_secs(12),
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_only() {
        let (c, t0) = (cfg(), Instant::now());
        let mut s = OutlierState::default();
        assert!(!s.failure(t0, &c));
        assert!(!s.failure(t0, &c));
        s.success(t0);
        assert!(!s.failure(t0, &c));
        assert!(!s.failure(t0, &c));
        assert!(s.failure(t0, &c));
        assert!(s.is_ejected(t0 + Duration::from_secs(4)));
        assert!(!s.is_ejected(t0 + Duration::from_secs(5)));
    }

    #[test]
    fn repeat_ejections_grow_up_to_max_and_reset_on_success() {
        let (c, mut t) = (cfg(), Instant::now());
        let mut s = OutlierState::default();
        let mut times = Vec::new();
        for _ in 0..4 {
            assert!(s.connection_lost(t, &c));
            times.push(s.remaining(t).as_secs());
            t += s.remaining(t);
        }
        assert_eq!(times, vec![5, 10, 12, 12]);
        s.success(t);
        assert!(s.connection_lost(t, &c));
        assert_eq!(s.remaining(t).as_secs(), 5);
    }

    #[test]
    fn success_while_ejected_keeps_the_ejection() {
        let (c, t) = (cfg(), Instant::now());
        let mut s = OutlierState::default();
        s.connection_lost(t, &c);
        s.success(t + Duration::from_secs(1));
        assert!(s.is_ejected(t + Duration::from_secs(2)));
        assert!(
            !s.connection_lost(t + Duration::from_secs(2), &c),
            "already ejected"
        );
    }
}
