//! Per-peer counts of what a peer cluster holds open on this gateway
//! (inbound connections, inbound streams), keyed by its verified identity.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use causeway_catalog::ClusterId;

use crate::pool::lock;

/// Keyed by peer cluster, or by source address on the fallback port.
pub struct PeerCounts<K = ClusterId>(Mutex<HashMap<K, Arc<AtomicUsize>>>);

impl<K> Default for PeerCounts<K> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

/// One unit of a peer's count, held while the connection or stream lives.
pub struct Held(Arc<AtomicUsize>);

impl<K: Hash + Eq + Clone> PeerCounts<K> {
    /// Counts one more for `peer`; `None` (and nothing counted) past `limit`.
    pub fn enter(&self, peer: &K, limit: usize) -> Option<Held> {
        let count = lock(&self.0).entry(peer.clone()).or_default().clone();
        // Increment first, then check: concurrent entries cannot overrun.
        if count.fetch_add(1, Ordering::AcqRel) >= limit {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Held(count))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_at_most_its_limit_and_others_are_unaffected() {
        let counts = PeerCounts::default();
        let (a, b) = (ClusterId::new("a").unwrap(), ClusterId::new("b").unwrap());
        let held: Vec<_> = (0..3).map(|_| counts.enter(&a, 3)).collect();
        assert!(held.iter().all(Option::is_some));
        assert!(counts.enter(&a, 3).is_none(), "a is at its limit");
        assert!(counts.enter(&b, 3).is_some(), "b has its own count");
        drop(held);
        assert!(counts.enter(&a, 3).is_some(), "released on drop");
    }
}
