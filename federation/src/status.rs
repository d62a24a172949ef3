//! What `/v1/peers` and `causeway status` show about each peer.

use std::time::Instant;

use causeway_catalog::{ClusterId, Freshness, LeaseConfig};
use serde::Serialize;

use crate::metrics::SessionState;
use crate::slot::PeerSlot;

/// One configured peer: its session, its lease and where its view is.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    pub name: ClusterId,
    pub addr: String,
    pub state: SessionState,
    /// None until the peer was heard from (or loaded from disk).
    pub freshness: Option<Freshness>,
    pub last_heard_ms_ago: Option<u64>,
    /// The resume point: the peer's epoch and version applied here.
    pub epoch: u64,
    pub version: u64,
    pub exports: usize,
    pub snapshots: u64,
    pub deltas: u64,
    pub heartbeats: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

pub fn status_of(slot: &PeerSlot, lease: &LeaseConfig, now: Instant) -> PeerStatus {
    let s = slot.status();
    let view = slot.view();
    let (epoch, version) = view.resume_point();
    PeerStatus {
        name: slot.trust.name.clone(),
        addr: slot.addr.clone(),
        state: s.state,
        freshness: view.freshness(lease, now),
        last_heard_ms_ago: view
            .silent_for(now)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        epoch,
        version,
        exports: view.exports().len(),
        snapshots: s.snapshots,
        deltas: s.deltas,
        heartbeats: s.heartbeats,
        reconnects: s.reconnects,
        last_error: s.last_error,
    }
}
