//! CA rotations announced over the federation channel: an exporter tells
//! its subscribers the bundle it moves to and when the overlap ends; each
//! subscriber keeps what its peers announced for whoever keeps their trust
//! (linked peers: `causeway`'s link module). A peer can only announce its
//! own rotation: the stream is authenticated as that peer.

use std::sync::Arc;

use causeway_catalog::ClusterId;

use crate::federation::Federation;
use crate::proto;

/// Largest bundle taken: a few CA certificates, with room to spare.
pub const MAX_BUNDLE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// PEM: the CA bundle trusted alone once the overlap ends.
    pub next_ca_bundle: String,
    /// Unix seconds.
    pub overlap_until: u64,
}

impl Rotation {
    pub(crate) fn to_proto(&self) -> proto::TrustBundle {
        proto::TrustBundle {
            next_ca_bundle: self.next_ca_bundle.clone(),
            overlap_until: self.overlap_until,
        }
    }

    /// None for a withdrawn (empty) or oversized announcement.
    pub(crate) fn from_proto(b: proto::TrustBundle) -> Option<Self> {
        if b.next_ca_bundle.is_empty() || b.next_ca_bundle.len() > MAX_BUNDLE {
            return None;
        }
        Some(Self {
            next_ca_bundle: b.next_ca_bundle,
            overlap_until: b.overlap_until,
        })
    }
}

impl Federation {
    /// Tells every subscriber this cluster's CA rotation (None withdraws it).
    pub fn announce_rotation(&self, r: Option<Rotation>) {
        self.rotation.send_if_modified(|now| {
            let changed = now.as_deref() != r.as_ref();
            if changed {
                *now = r.map(Arc::new);
            }
            changed
        });
    }

    /// The CA rotation each peer announced, for peers that announced one.
    pub fn announced_rotations(&self) -> Vec<(ClusterId, Rotation)> {
        self.linked
            .slots
            .all()
            .iter()
            .filter_map(|s| Some((s.trust.name.clone(), s.rotation()?)))
            .collect()
    }
}
