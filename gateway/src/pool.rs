//! Peer connections: one pooled QUIC connection per peer gateway address.
//!
//! Each address has a dialler task that connects, waits for the connection to
//! close, and re-dials with jittered exponential backoff. Outbound streams pick
//! the least-loaded live connection of a cluster.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use causeway_catalog::{ClusterId, ClusterInfo};
use quinn::Connection;
use tokio_util::sync::CancellationToken;

use crate::eject::OutlierState;
use crate::gate::SetupGate;
use crate::metrics::ClusterLabel;
use crate::shared::Shared;

/// One peer gateway address and its current connection.
pub struct PeerConn {
    pub cluster: ClusterId,
    pub addr: SocketAddr,
    conn: Mutex<Option<Connection>>,
    /// Outbound streams open on this connection now.
    pub active: AtomicUsize,
    /// Setup writes ahead of bulk writes on this peer's connection.
    pub gate: SetupGate,
    cancel: CancellationToken,
}

impl PeerConn {
    pub fn connection(&self) -> Option<Connection> {
        lock(&self.conn).clone()
    }

    fn set(&self, c: Option<Connection>) {
        *lock(&self.conn) = c;
    }

    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }
}

/// Holds one outbound stream slot on a peer connection.
pub struct StreamSlot(Arc<PeerConn>);

impl StreamSlot {
    pub fn gate(&self) -> &SetupGate {
        &self.0.gate
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A poisoned lock only means another task panicked mid-update of plain data; keep going.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
pub struct Pool {
    peers: Mutex<HashMap<SocketAddr, Arc<PeerConn>>>,
    health: Mutex<HashMap<ClusterId, OutlierState>>,
    /// Woken whenever a peer connection comes up or goes down.
    changed: tokio::sync::Notify,
}

impl Pool {
    /// Publishes a peer's connection (or its loss) and wakes waiters.
    pub fn publish(&self, peer: &PeerConn, conn: Option<Connection>) {
        peer.set(conn);
        self.changed.notify_waiters();
    }

    /// Resolves at the next connection change; create it before checking state.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Re-exports whether `cluster` is ejected (ejections end by time, not by event).
    pub fn refresh_ejected(&self, shared: &Shared, cluster: &ClusterId) {
        set_ejected(shared, cluster, self.is_ejected(cluster, Instant::now()));
    }

    /// Starts diallers for new peer addresses and stops those no longer listed.
    pub fn reconcile(&self, shared: &Arc<Shared>, clusters: &[&ClusterInfo]) {
        let want: HashMap<SocketAddr, &ClusterInfo> = clusters
            .iter()
            .filter(|c| c.name != shared.local.name)
            // Without a CA bundle for the cluster every handshake would fail: skip it.
            .filter(|c| shared.id.peers.get(&c.name).is_some())
            .flat_map(|c| c.gateways.iter().map(move |a| (*a, *c)))
            .collect();
        let mut peers = lock(&self.peers);
        peers.retain(|addr, p| {
            let keep = want.get(addr).is_some_and(|c| c.name == p.cluster);
            if !keep {
                tracing::info!(cluster = %p.cluster, %addr, "peer gateway removed from catalog");
                p.cancel.cancel();
            }
            keep
        });
        for (addr, info) in want {
            if peers.contains_key(&addr) {
                continue;
            }
            let peer = Arc::new(PeerConn {
                cluster: info.name.clone(),
                addr,
                conn: Mutex::new(None),
                active: AtomicUsize::new(0),
                gate: SetupGate::default(),
                cancel: shared.hard.child_token(),
            });
            peers.insert(addr, peer.clone());
            let s = shared.clone();
            shared.tasks.spawn(crate::dial::run(s, peer));
        }
    }

    /// The least-loaded live connection to `cluster` with stream credit left.
    pub fn pick(
        &self,
        cluster: &ClusterId,
        max_streams: usize,
    ) -> Option<(StreamSlot, Connection)> {
        let peers = lock(&self.peers);
        let best = peers
            .values()
            .filter(|p| &p.cluster == cluster && p.active.load(Ordering::Relaxed) < max_streams)
            .filter_map(|p| Some((p, p.connection()?)))
            .min_by_key(|(p, _)| p.active.load(Ordering::Relaxed))?;
        best.0.active.fetch_add(1, Ordering::Relaxed);
        Some((StreamSlot(best.0.clone()), best.1))
    }

    /// Clusters with at least one live connection, and their open stream counts.
    pub fn reachable(&self) -> HashMap<ClusterId, usize> {
        let mut out = HashMap::new();
        for p in lock(&self.peers).values() {
            if lock(&p.conn).is_some() {
                *out.entry(p.cluster.clone()).or_default() += p.active.load(Ordering::Relaxed);
            }
        }
        out
    }

    /// Whether `cluster` still has a live connection (another replica).
    pub fn any_live(&self, cluster: &ClusterId) -> bool {
        lock(&self.peers)
            .values()
            .any(|p| &p.cluster == cluster && lock(&p.conn).is_some())
    }

    pub fn is_ejected(&self, cluster: &ClusterId, now: Instant) -> bool {
        lock(&self.health)
            .get(cluster)
            .is_some_and(|h| h.is_ejected(now))
    }

    pub fn success(&self, shared: &Shared, cluster: &ClusterId) {
        let mut health = lock(&self.health);
        let h = health.entry(cluster.clone()).or_default();
        h.success(Instant::now());
        set_ejected(shared, cluster, h.is_ejected(Instant::now()));
    }

    pub fn failure(&self, shared: &Shared, cluster: &ClusterId) {
        let mut health = lock(&self.health);
        let h = health.entry(cluster.clone()).or_default();
        if h.failure(Instant::now(), &shared.cfg.ejection) {
            tracing::warn!(%cluster, for_ = ?h.remaining(Instant::now()), "cluster ejected after consecutive failures");
            set_ejected(shared, cluster, true);
        }
    }

    pub fn connection_lost(&self, shared: &Shared, cluster: &ClusterId) {
        let mut health = lock(&self.health);
        let h = health.entry(cluster.clone()).or_default();
        if h.connection_lost(Instant::now(), &shared.cfg.ejection) {
            tracing::warn!(%cluster, for_ = ?h.remaining(Instant::now()), "cluster ejected: connection lost");
            set_ejected(shared, cluster, true);
        }
    }
}

fn set_ejected(shared: &Shared, cluster: &ClusterId, ejected: bool) {
    shared
        .metrics
        .cluster_ejected
        .get_or_create(&ClusterLabel {
            cluster: cluster.to_string(),
        })
        .set(i64::from(ejected));
}
