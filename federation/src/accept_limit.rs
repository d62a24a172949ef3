//! Bounds on TLS handshakes in flight, so idle or slow connections cannot
//! keep real peers out: a cap over all sources and one per source address.
//! A connection over a cap is closed at once; the accept loop never waits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Handshakes in flight at once, over every source.
pub const MAX_HANDSHAKES: usize = 1024;
/// Handshakes in flight from one source address.
pub const MAX_HANDSHAKES_PER_SOURCE: usize = 16;

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// Shared counts of handshakes in flight.
#[derive(Debug, Clone)]
pub struct AcceptLimit {
    counts: Arc<Mutex<Counts>>,
    total: usize,
    per_source: usize,
}

/// Why a connection was closed unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    Source,
}

impl Default for AcceptLimit {
    fn default() -> Self {
        Self::new(MAX_HANDSHAKES, MAX_HANDSHAKES_PER_SOURCE)
    }
}

impl AcceptLimit {
    pub fn new(total: usize, per_source: usize) -> Self {
        Self {
            counts: Arc::default(),
            total,
            per_source,
        }
    }

    /// A slot for one handshake from `source`, held until the guard drops.
    pub fn try_admit(&self, source: IpAddr) -> Result<Slot, Full> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.total {
            return Err(Full::Total);
        }
        let n = c.by_source.entry(source).or_default();
        if *n >= self.per_source {
            return Err(Full::Source);
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            limit: self.clone(),
            source,
        })
    }

    fn release(&self, source: IpAddr) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&source);
            }
        }
    }

    /// Handshakes in flight now (for tests and status).
    pub fn in_flight(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One admitted handshake; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    limit: AcceptLimit,
    source: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.limit.release(self.source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_per_source_and_in_total_and_free_on_drop() {
        let limit = AcceptLimit::new(3, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
        );
        let a1 = limit.try_admit(a).unwrap();
        let _a2 = limit.try_admit(a).unwrap();
        assert_eq!(limit.try_admit(a).unwrap_err(), Full::Source);
        let _b1 = limit.try_admit(b).unwrap();
        assert_eq!(limit.try_admit(c).unwrap_err(), Full::Total);
        drop(a1);
        assert_eq!(limit.in_flight(), 2);
        let _c1 = limit.try_admit(c).unwrap();
        assert_eq!(limit.try_admit(a).unwrap_err(), Full::Total);
    }
}
