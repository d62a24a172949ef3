//! Whether a peer connection still works both ways: pure, fed the
//! connection's counters and the time.
//!
//! Two signs of trouble, either of which makes the connection suspect once it
//! lasts past the threshold: nothing received at all (the peer or the path is
//! dead), or a probe of ours unanswered (our packets are lost: a path cut one
//! way, e.g. a firewall dropping only our direction, while the peer's
//! keep-alives still arrive). A probe is a control datagram the peer answers
//! with another (`udp::probe`, docs/protocol.md); QUIC's own ACK frames cannot
//! tell, as the peer repeats old acknowledgements in every packet it sends.
//! Probes count only once the peer has answered one: an older peer never does.

use std::time::{Duration, Instant};

/// The counters liveness reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heard {
    /// UDP datagrams received (`quinn::ConnectionStats`).
    pub received: u64,
    /// Probe answers received.
    pub answered: u64,
}

#[derive(Debug)]
pub struct Liveness {
    limit: Duration,
    keep_alive: Duration,
    last: Heard,
    heard: Instant,
    /// When a probe was last answered; `None` before the first answer.
    answered: Option<Instant>,
    /// Since when a probe waits for its answer.
    waiting: Option<Instant>,
    /// When the last probe went out.
    probed: Option<Instant>,
    rtt: Duration,
    /// Replacement dials so far in this silence (each waits twice as long).
    replacements: u32,
}

impl Liveness {
    pub fn new(limit: Duration, keep_alive: Duration, now: Instant) -> Self {
        Self {
            limit,
            keep_alive,
            last: Heard::default(),
            heard: now,
            answered: None,
            waiting: None,
            probed: None,
            rtt: Duration::ZERO,
            replacements: 0,
        }
    }

    /// Quiet longer than this is suspect: the configured time, stretched on
    /// long links so a keep-alive and its acknowledgement always fit.
    fn threshold(&self) -> Duration {
        self.limit.max(self.keep_alive + self.rtt * 3)
    }

    /// How long the connection has been quiet: nothing received, or a probe
    /// unanswered (once the peer answers probes), whichever is longer.
    pub fn quiet(&self, now: Instant) -> Duration {
        let silent = now.saturating_duration_since(self.heard);
        let unanswered = match (self.answered, self.waiting) {
            (Some(_), Some(w)) => now.saturating_duration_since(w),
            _ => Duration::ZERO,
        };
        silent.max(unanswered)
    }

    /// Time left before quiet makes the connection suspect (zero once it is).
    pub fn until_suspect(&self, now: Instant) -> Duration {
        self.threshold().saturating_sub(self.quiet(now))
    }

    /// Takes the counters and RTT now; true while the connection is suspect.
    pub fn observe(&mut self, h: Heard, rtt: Duration, now: Instant) -> bool {
        if h.received != self.last.received {
            self.heard = now;
            self.rtt = rtt;
        }
        if h.answered != self.last.answered {
            self.answered = Some(now);
            self.waiting = None;
        }
        self.last = h;
        if self.quiet(now).is_zero() {
            self.replacements = 0;
        }
        self.quiet(now) > self.threshold()
    }

    /// True when neither a probe went out nor an answer came for a
    /// keep-alive interval: time to send one (probes are datagrams, and a
    /// lost one is simply sent again).
    pub fn wants_probe(&self, now: Instant) -> bool {
        let since = |t: Option<Instant>| {
            t.is_none_or(|t| now.saturating_duration_since(t) >= self.keep_alive)
        };
        since(self.probed) && since(self.answered)
    }

    /// A probe went out now.
    pub fn probed(&mut self, now: Instant) {
        self.probed = Some(now);
        self.waiting.get_or_insert(now);
    }

    /// True once per doubling of the quiet past twice the threshold: time to
    /// dial a replacement (the peer may have restarted and forgotten us, or
    /// the path changed under us).
    pub fn wants_replacement(&mut self, now: Instant) -> bool {
        let due = self.threshold() * 2u32.saturating_pow(self.replacements + 1);
        if self.quiet(now) >= due {
            self.replacements += 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
#[path = "liveness_tests.rs"]
mod tests;
