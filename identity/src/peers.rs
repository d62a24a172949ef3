//! Trust in peer clusters: each peer has its own CA bundle and trust domain.
//!
//! A certificate is a peer's only if it chains to that peer's bundle AND
//! names that peer's trust domain, so a compromised peer CA cannot mint
//! certificates that pass for another peer.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use causeway_catalog::ClusterId;
use rustls::pki_types::CertificateDer;

use crate::names::{SpiffeId, TrustDomain};
use crate::pem::LoadError;
use crate::roots::Roots;
use crate::san;

/// What we trust for one peer cluster.
#[derive(Debug, Clone)]
pub struct PeerTrust {
    pub name: ClusterId,
    pub trust_domain: TrustDomain,
    /// The peer's CA bundle, shared by every clone and reloaded in place
    /// ([`PeerSet::spawn_watch`]).
    pub roots: Arc<Roots>,
}

impl PeerTrust {
    /// Loads the peer's CA bundle (one or more PEM certificates).
    ///
    /// A CA that names a trust domain (`spiffe://<td>` URI SAN, as causeway
    /// CAs do) must name this peer's: that catches swapped bundles at start.
    pub fn load(
        name: ClusterId,
        trust_domain: TrustDomain,
        ca_bundle: &Path,
    ) -> Result<Self, LoadError> {
        let roots = Roots::load(name.clone(), trust_domain.clone(), ca_bundle)?;
        Ok(PeerTrust {
            name,
            trust_domain,
            roots: Arc::new(roots),
        })
    }
}

/// A peer set that would make identities ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PeerSetError {
    #[error("peer {name} is configured twice; peer names must be unique")]
    DuplicateName { name: ClusterId },
    #[error(
        "peers {first} and {second} both use trust domain {trust_domain}; each cluster needs its own trust domain"
    )]
    DuplicateTrustDomain {
        first: ClusterId,
        second: ClusterId,
        trust_domain: TrustDomain,
    },
}

/// All peer clusters we accept connections from. Peers linked or unlinked
/// while running (`causeway token redeem`, `causeway unlink`) are added and
/// removed in place: every TLS config built over the set sees the change at
/// the next handshake.
#[derive(Debug, Default)]
pub struct PeerSet {
    peers: ArcSwap<Vec<PeerTrust>>,
    /// Serialises changes, so two racing adds cannot both pass the checks.
    change: Mutex<()>,
}

impl Clone for PeerSet {
    fn clone(&self) -> Self {
        Self::from_checked(self.snapshot().to_vec())
    }
}

fn check(peers: &[PeerTrust]) -> Result<(), PeerSetError> {
    let mut names = HashSet::new();
    for peer in peers {
        if !names.insert(&peer.name) {
            return Err(PeerSetError::DuplicateName {
                name: peer.name.clone(),
            });
        }
    }
    for (i, peer) in peers.iter().enumerate() {
        let twin = peers[..i]
            .iter()
            .find(|p| p.trust_domain == peer.trust_domain);
        if let Some(first) = twin {
            return Err(PeerSetError::DuplicateTrustDomain {
                first: first.name.clone(),
                second: peer.name.clone(),
                trust_domain: peer.trust_domain.clone(),
            });
        }
    }
    Ok(())
}

impl PeerSet {
    /// Rejects duplicate names and duplicate trust domains.
    pub fn new(peers: Vec<PeerTrust>) -> Result<Self, PeerSetError> {
        check(&peers)?;
        Ok(Self::from_checked(peers))
    }

    fn from_checked(peers: Vec<PeerTrust>) -> Self {
        PeerSet {
            peers: ArcSwap::from_pointee(peers),
            change: Mutex::new(()),
        }
    }

    /// A set of one (e.g. this cluster's own trust, for its local links).
    pub fn one(trust: PeerTrust) -> Self {
        Self::from_checked(vec![trust])
    }

    /// Adds a peer while running; refused like [`new`](Self::new) if its
    /// name or trust domain is already taken.
    pub fn add(&self, trust: PeerTrust) -> Result<(), PeerSetError> {
        let _guard = self.change.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = self.snapshot().to_vec();
        next.push(trust);
        check(&next)?;
        self.peers.store(Arc::new(next));
        Ok(())
    }

    /// Removes a peer while running; returns whether it was there.
    pub fn remove(&self, name: &ClusterId) -> bool {
        let _guard = self.change.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = self.snapshot().to_vec();
        let before = next.len();
        next.retain(|p| p.name != *name);
        let removed = next.len() != before;
        self.peers.store(Arc::new(next));
        removed
    }

    /// The peers in force now.
    pub fn snapshot(&self) -> Arc<Vec<PeerTrust>> {
        self.peers.load_full()
    }

    /// Re-reads every peer's CA bundle every `every` and puts a changed one
    /// in force for new handshakes. Ends when the handle is aborted or the
    /// set is dropped. Read errors (a file briefly missing while a Secret is
    /// updated) are logged and retried on the next tick.
    pub fn spawn_watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(set) = weak.upgrade() else {
                    return;
                };
                set.reload_all();
            }
        })
    }

    /// One pass of [`spawn_watch`](Self::spawn_watch); returns how many bundles changed.
    pub fn reload_all(&self) -> usize {
        let mut changed = 0;
        for peer in self.snapshot().iter() {
            match peer.roots.reload_if_changed() {
                Ok(true) => changed += 1,
                Ok(false) => {}
                // parse errors are logged by reload_if_changed itself.
                Err(e @ LoadError::Read { .. }) => {
                    tracing::warn!(peer = %peer.name, error = %e, "cannot re-read the CA bundle")
                }
                Err(_) => {}
            }
        }
        changed
    }

    pub fn len(&self) -> usize {
        self.peers.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.load().is_empty()
    }

    /// Whether `name` is a peer now (no clone: for per-stream checks).
    pub fn contains(&self, name: &ClusterId) -> bool {
        self.peers.load().iter().any(|p| p.name == *name)
    }

    pub fn get(&self, name: &ClusterId) -> Option<PeerTrust> {
        self.peers.load().iter().find(|p| p.name == *name).cloned()
    }

    pub fn by_trust_domain(&self, td: &TrustDomain) -> Option<PeerTrust> {
        let peers = self.peers.load();
        peers.iter().find(|p| p.trust_domain == *td).cloned()
    }

    /// The cluster and SPIFFE ID of a peer certificate that the TLS verifier
    /// has already accepted (e.g. from `peer_certificates()`), by its SAN.
    ///
    /// This does not verify anything itself: only call it on verified certs.
    pub fn identify(&self, end_entity: &CertificateDer<'_>) -> Option<(ClusterId, SpiffeId)> {
        let id = san::spiffe_id_of(end_entity).ok()?;
        let peer = self.by_trust_domain(id.trust_domain())?;
        Some((peer.name.clone(), id))
    }
}
