//! One configured peer's shared state: its view (changed by its session,
//! read by the hub) and its session status.

use std::sync::{Mutex, MutexGuard};

use causeway_identity::PeerTrust;
use serde::Serialize;

use crate::metrics::{Metrics, SessionState};
use crate::rotation::Rotation;
use crate::view::PeerView;

/// What the session is doing, for status and the admin API.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub state: SessionState,
    pub snapshots: u64,
    pub deltas: u64,
    pub heartbeats: u64,
    pub reconnects: u64,
    pub last_error: Option<String>,
}

/// One configured peer: where to reach it, its view and its session status.
#[derive(Debug)]
pub struct PeerSlot {
    pub trust: PeerTrust,
    pub addr: String,
    view: Mutex<PeerView>,
    status: Mutex<SessionStatus>,
    /// The CA rotation the peer last announced, if any.
    rotation: Mutex<Option<Rotation>>,
}

/// A poisoned lock only means another task panicked mid-update; the data is
/// still a whole view (updates are applied in one assignment), so carry on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl PeerSlot {
    pub fn new(trust: PeerTrust, addr: String, view: PeerView) -> Self {
        Self {
            trust,
            addr,
            view: Mutex::new(view),
            status: Mutex::new(SessionStatus {
                state: SessionState::Connecting,
                snapshots: 0,
                deltas: 0,
                heartbeats: 0,
                reconnects: 0,
                last_error: None,
            }),
            rotation: Mutex::new(None),
        }
    }

    pub fn rotation(&self) -> Option<Rotation> {
        lock(&self.rotation).clone()
    }

    pub fn set_rotation(&self, r: Option<Rotation>) {
        *lock(&self.rotation) = r;
    }

    pub fn view(&self) -> MutexGuard<'_, PeerView> {
        lock(&self.view)
    }

    pub fn status_mut(&self) -> MutexGuard<'_, SessionStatus> {
        lock(&self.status)
    }

    pub fn status(&self) -> SessionStatus {
        lock(&self.status).clone()
    }

    pub fn set_state(&self, state: SessionState, metrics: &Metrics) {
        lock(&self.status).state = state;
        metrics.set_state(self.trust.name.as_str(), state);
    }
}
