//! Trust in peer clusters: each peer has its own CA bundle and trust domain.
//!
//! A certificate is a peer's only if it chains to that peer's bundle AND
//! names that peer's trust domain, so a compromised peer CA cannot mint
//! certificates that pass for another peer.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use causeway_catalog::ClusterId;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

use crate::names::{SpiffeId, TrustDomain};
use crate::pem::{self, LoadError};
use crate::san;

/// What we trust for one peer cluster.
#[derive(Debug, Clone)]
pub struct PeerTrust {
    pub name: ClusterId,
    pub trust_domain: TrustDomain,
    pub roots: Arc<RootCertStore>,
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
        let bytes = pem::read("CA bundle", ca_bundle)?;
        let certs = pem::certs("CA bundle", ca_bundle, &bytes)?;
        let mut roots = RootCertStore::empty();
        for cert in certs {
            check_bundle_domain(&name, &trust_domain, ca_bundle, &cert)?;
            roots.add(cert).map_err(|source| LoadError::BadAnchor {
                path: ca_bundle.to_owned(),
                source,
            })?;
        }
        Ok(PeerTrust {
            name,
            trust_domain,
            roots: Arc::new(roots),
        })
    }
}

fn check_bundle_domain(
    peer: &ClusterId,
    expected: &TrustDomain,
    path: &Path,
    cert: &CertificateDer<'_>,
) -> Result<(), LoadError> {
    // Unreadable SANs are left to webpki, which reports them when adding the anchor.
    match san::ca_trust_domain(cert) {
        Ok(Some(found)) if found != *expected => Err(LoadError::BundleTrustDomain {
            peer: peer.to_string(),
            path: path.to_owned(),
            found,
            expected: expected.clone(),
        }),
        _ => Ok(()),
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

/// All peer clusters we accept connections from.
#[derive(Debug, Clone, Default)]
pub struct PeerSet {
    peers: Vec<PeerTrust>,
}

impl PeerSet {
    /// Rejects duplicate names and duplicate trust domains.
    pub fn new(peers: Vec<PeerTrust>) -> Result<Self, PeerSetError> {
        let mut names = HashSet::new();
        for peer in &peers {
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
        Ok(PeerSet { peers })
    }

    /// A set of one (e.g. this cluster's own trust, for its local links).
    pub fn one(trust: PeerTrust) -> Self {
        PeerSet { peers: vec![trust] }
    }

    pub fn iter(&self) -> impl Iterator<Item = &PeerTrust> {
        self.peers.iter()
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    pub fn get(&self, name: &ClusterId) -> Option<&PeerTrust> {
        self.peers.iter().find(|p| p.name == *name)
    }

    pub fn by_trust_domain(&self, td: &TrustDomain) -> Option<&PeerTrust> {
        self.peers.iter().find(|p| p.trust_domain == *td)
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
