//! Peers linked and unlinked while running (`causeway token redeem`,
//! `causeway unlink`): each gets a slot, a session and a place in the
//! listener's trust, or loses them, without a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use causeway_catalog::ClusterId;
use causeway_identity::{PeerSet, PeerSetError};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::federation::{Federation, PeerEndpoint};
use crate::session::{self, SessionCtx};
use crate::slot::PeerSlot;
use crate::view::PeerView;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every peer's slot, shared by the hub, the status API and the linker.
#[derive(Debug, Clone, Default)]
pub(crate) struct Slots(Arc<Mutex<Vec<Arc<PeerSlot>>>>);

impl Slots {
    pub(crate) fn new(slots: Vec<Arc<PeerSlot>>) -> Self {
        Self(Arc::new(Mutex::new(slots)))
    }

    /// The slots now (a copy: holding it never blocks a change).
    pub(crate) fn all(&self) -> Vec<Arc<PeerSlot>> {
        lock(&self.0).clone()
    }
}

/// What adding and removing a peer touches.
pub(crate) struct Linked {
    pub(crate) slots: Slots,
    /// The federation listener's trust (shared with its TLS verifier).
    pub(crate) peer_set: Arc<PeerSet>,
    pub(crate) ctx: Arc<SessionCtx>,
    /// Each peer's session, stopped on unlink.
    pub(crate) sessions: Mutex<HashMap<ClusterId, CancellationToken>>,
    pub(crate) dirty: Arc<Notify>,
    pub(crate) tasks: TaskTracker,
    pub(crate) shutdown: CancellationToken,
}

impl Linked {
    /// Starts the session of a slot (at start, or when a peer is linked).
    pub(crate) fn spawn_session(&self, slot: Arc<PeerSlot>) {
        let stop = self.shutdown.child_token();
        lock(&self.sessions).insert(slot.trust.name.clone(), stop.clone());
        self.tasks.spawn(session::run(slot, self.ctx.clone(), stop));
    }
}

impl Federation {
    /// Trusts, subscribes to and serves a newly linked peer. Refused when
    /// its name or trust domain is already a peer's.
    pub fn add_peer(&self, p: PeerEndpoint) -> Result<(), PeerSetError> {
        let l = &self.linked;
        l.peer_set.add(p.trust.clone())?;
        let name = p.trust.name.clone();
        let view = PeerView::new(name.clone()).with_policy(Arc::new(p.policy));
        let slot = Arc::new(PeerSlot::new(p.trust, p.addr, view));
        lock(&l.slots.0).push(slot.clone());
        l.spawn_session(slot);
        l.dirty.notify_one();
        tracing::info!(peer = %name, "peer linked");
        Ok(())
    }

    /// Stops trusting and following a peer; its catalog entries go at once.
    /// Returns whether it was a peer.
    pub fn remove_peer(&self, name: &ClusterId) -> bool {
        let l = &self.linked;
        let trusted = l.peer_set.remove(name);
        if let Some(stop) = lock(&l.sessions).remove(name) {
            stop.cancel();
        }
        let mut slots = lock(&l.slots.0);
        let before = slots.len();
        slots.retain(|s| s.trust.name != *name);
        let removed = slots.len() != before;
        drop(slots);
        l.dirty.notify_one();
        if removed {
            tracing::info!(peer = %name, "peer unlinked");
        }
        removed || trusted
    }
}
