//! Peer connections: a few pooled QUIC connections per peer gateway address.
//!
//! Each (cluster, address, slot) has a dialler task on one worker that
//! connects, holds the connection, and re-dials with jittered exponential
//! backoff. Keys include the cluster, so a peer that advertises another's
//! address only gets a dialler of its own that fails its handshake; it cannot
//! replace the other's. New outbound streams take the least-loaded live
//! connection of a cluster, preferring one driven by the caller's worker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use causeway_catalog::{ClusterId, ClusterInfo};
use quinn::Connection;
use tokio_util::sync::CancellationToken;

use crate::eject::OutlierState;
use crate::fallback::Via;
use crate::gate::SetupGate;
use crate::metrics::{ClusterLabel, PeerLabels};
use crate::shared::Shared;

/// One pooled connection slot to a peer gateway address.
pub struct PeerConn {
    pub cluster: ClusterId,
    pub addr: SocketAddr,
    pub slot: u16,
    /// The worker whose runtime drives this connection.
    pub worker: usize,
    conn: Mutex<Option<Connection>>,
    /// Outbound streams open on this connection now.
    pub active: AtomicUsize,
    /// Bytes written to it since the last load sample, and the last rate (bytes/s).
    pub sent: AtomicU64,
    rate: AtomicU64,
    /// Nothing received for the liveness time: no new streams until it speaks.
    suspect: AtomicBool,
    /// The connection runs over the TCP fallback.
    tcp: AtomicBool,
    /// Setup writes ahead of bulk writes on this connection.
    pub gate: SetupGate,
    cancel: CancellationToken,
}

impl PeerConn {
    pub fn connection(&self) -> Option<Connection> {
        lock(&self.conn).clone()
    }

    fn set(&self, c: Option<Connection>) {
        self.suspect.store(false, Ordering::Relaxed);
        *lock(&self.conn) = c;
    }

    pub fn cancelled(&self) -> &CancellationToken {
        &self.cancel
    }

    fn live(&self) -> bool {
        lock(&self.conn).is_some()
    }

    /// Live and heard from recently: may take new streams.
    fn usable(&self) -> bool {
        !self.suspect.load(Ordering::Relaxed) && self.live()
    }

    pub fn labels(&self) -> PeerLabels {
        PeerLabels {
            cluster: self.cluster.to_string(),
            address: self.addr.to_string(),
            slot: self.slot.to_string(),
        }
    }

    pub fn is_suspect(&self) -> bool {
        self.suspect.load(Ordering::Relaxed)
    }

    /// Records the send rate since the last sample, `secs` ago.
    pub fn sample_rate(&self, secs: f64) {
        let bytes = self.sent.swap(0, Ordering::Relaxed);
        let rate = bytes as f64 / secs.max(1e-3);
        self.rate.store(rate as u64, Ordering::Relaxed);
    }

    /// Load for choosing among connections: open streams, plus one per
    /// 8 MiB/s being sent (a busy bulk stream weighs more than an idle one).
    fn load(&self) -> u64 {
        let streams = self.active.load(Ordering::Relaxed) as u64;
        streams + (self.rate.load(Ordering::Relaxed) >> 23)
    }
}

/// Holds one outbound stream slot on a peer connection.
pub struct StreamSlot(Arc<PeerConn>);

impl StreamSlot {
    pub fn gate(&self) -> &SetupGate {
        &self.0.gate
    }

    pub fn sent(&self) -> &AtomicU64 {
        &self.0.sent
    }

    pub fn labels(&self) -> PeerLabels {
        self.0.labels()
    }

    /// Resolves once this slot's connection turns silent (suspect).
    pub async fn silent(&self, pool: &Pool) {
        loop {
            let mut changed = std::pin::pin!(pool.changed());
            changed.as_mut().enable();
            if self.0.is_suspect() {
                return;
            }
            changed.await;
        }
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

type Key = (ClusterId, SocketAddr, u16);

#[derive(Default)]
pub struct Pool {
    peers: Mutex<HashMap<Key, Arc<PeerConn>>>,
    health: Mutex<HashMap<ClusterId, OutlierState>>,
    /// Woken whenever a peer connection comes up, goes down or changes liveness.
    changed: tokio::sync::Notify,
}

/// Limits on picking a connection for a new stream.
pub struct Caps {
    pub per_connection: usize,
    pub per_peer: usize,
}

impl Pool {
    /// Publishes a peer's connection (or its loss) and wakes waiters.
    pub fn publish(&self, peer: &PeerConn, conn: Option<Connection>) {
        self.publish_via(peer, conn, Via::Quic);
    }

    /// Publishes a connection running over `via`.
    pub fn publish_via(&self, peer: &PeerConn, conn: Option<Connection>, via: Via) {
        peer.tcp.store(via == Via::Tcp, Ordering::Relaxed);
        peer.set(conn);
        self.changed.notify_waiters();
    }

    /// The transport new streams to `cluster` take now: QUIC while any of its
    /// usable connections runs on it (`pick` prefers those), else TCP, else none.
    pub fn transport(&self, cluster: &ClusterId) -> Option<Via> {
        let peers = lock(&self.peers);
        let live = || {
            peers
                .values()
                .filter(|p| &p.cluster == cluster && p.usable())
        };
        let tcp = |p: &&Arc<PeerConn>| p.tcp.load(Ordering::Relaxed);
        match (live().any(|p| !tcp(&p)), live().any(|p| tcp(&p))) {
            (true, _) => Some(Via::Quic),
            (false, true) => Some(Via::Tcp),
            (false, false) => None,
        }
    }

    /// Marks a connection suspect (silent) or not; wakes waiters on a change.
    pub fn set_suspect(&self, peer: &PeerConn, suspect: bool) {
        if peer.suspect.swap(suspect, Ordering::Relaxed) != suspect {
            self.changed.notify_waiters();
        }
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
        let slots = shared.cfg.connections_per_peer() as u16;
        let want: Vec<Key> = clusters
            .iter()
            .filter(|c| c.name != shared.local.name)
            // Without a CA bundle for the cluster every handshake would fail: skip it.
            .filter(|c| shared.id.peers.get(&c.name).is_some())
            .flat_map(|c| c.gateways.iter().map(move |a| (c.name.clone(), *a)))
            .flat_map(|(c, a)| (0..slots).map(move |s| (c.clone(), a, s)))
            .collect();
        let mut peers = lock(&self.peers);
        peers.retain(|key, p| {
            let keep = want.contains(key);
            if !keep {
                tracing::info!(cluster = %p.cluster, addr = %p.addr, slot = p.slot, "peer gateway connection removed from catalog");
                p.cancel.cancel();
            }
            keep
        });
        for key in want {
            if peers.contains_key(&key) {
                continue;
            }
            let worker = worker_for(&key, shared.workers.len());
            let peer = Arc::new(PeerConn {
                cluster: key.0.clone(),
                addr: key.1,
                slot: key.2,
                worker,
                conn: Mutex::new(None),
                active: AtomicUsize::new(0),
                sent: AtomicU64::new(0),
                rate: AtomicU64::new(0),
                suspect: AtomicBool::new(false),
                tcp: AtomicBool::new(false),
                gate: SetupGate::default(),
                cancel: shared.hard.child_token(),
            });
            peers.insert(key, peer.clone());
            let task = crate::dial::run(shared.clone(), peer);
            shared.tasks.spawn_on(task, shared.workers.handle(worker));
        }
    }

    /// The least-loaded usable connection to `cluster` with stream credit left,
    /// preferring one driven by `worker` (the caller's) among equals.
    pub fn pick(
        &self,
        cluster: &ClusterId,
        worker: Option<usize>,
        caps: &Caps,
    ) -> Option<(StreamSlot, Connection)> {
        let peers = lock(&self.peers);
        let mine = || peers.values().filter(|p| &p.cluster == cluster);
        let open: usize = mine().map(|p| p.active.load(Ordering::Relaxed)).sum();
        if open >= caps.per_peer {
            return None;
        }
        let best = mine()
            .filter(|p| p.active.load(Ordering::Relaxed) < caps.per_connection && p.usable())
            .filter_map(|p| Some((p, p.connection()?)))
            .min_by_key(|(p, _)| {
                let tcp = p.tcp.load(Ordering::Relaxed);
                (tcp, p.load(), Some(p.worker) != worker)
            })?;
        best.0.active.fetch_add(1, Ordering::Relaxed);
        Some((StreamSlot(best.0.clone()), best.1))
    }

    /// Clusters with at least one usable connection, and their open stream counts.
    pub fn reachable(&self) -> HashMap<ClusterId, usize> {
        let mut out = HashMap::new();
        for p in lock(&self.peers).values().filter(|p| p.usable()) {
            *out.entry(p.cluster.clone()).or_default() += p.active.load(Ordering::Relaxed);
        }
        out
    }

    /// Whether `cluster` still has a live connection (another slot or replica).
    pub fn any_live(&self, cluster: &ClusterId) -> bool {
        lock(&self.peers)
            .values()
            .any(|p| &p.cluster == cluster && p.live())
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

/// Spreads a peer's slots over the workers, starting at a per-address offset
/// so that several peers do not all start on worker 0.
fn worker_for((_, addr, slot): &Key, workers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    addr.hash(&mut h);
    (h.finish() as usize).wrapping_add(usize::from(*slot)) % workers.max(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_of_one_address_go_to_different_workers() {
        let c = ClusterId::new("b").unwrap();
        let addr: SocketAddr = "10.0.0.1:15443".parse().unwrap();
        let workers: Vec<usize> = (0..4)
            .map(|s| worker_for(&(c.clone(), addr, s), 4))
            .collect();
        let mut sorted = workers.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2, 3], "{workers:?}");
    }
}
