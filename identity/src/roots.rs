//! A peer's CA bundle, re-read when its file changes, so removing a
//! compromised CA (or adding the next one during a rotation) takes effect
//! for new handshakes without a restart. Every clone of a [`PeerTrust`]
//! shares one [`Roots`], so the gateway, the federation and every TLS
//! config built from it see the change at once.
//!
//! A bad new file never replaces a good bundle: it is logged, the old one
//! stays in force until the file is fixed.
//!
//! [`PeerTrust`]: crate::PeerTrust

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use causeway_catalog::ClusterId;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use crate::names::TrustDomain;
use crate::pem::{self, LoadError};
use crate::san;

/// One bundle as parsed: the anchors and the webpki client verifier over them.
pub(crate) struct Anchors {
    pub(crate) store: Arc<RootCertStore>,
    pub(crate) client: Arc<dyn ClientCertVerifier>,
    /// The earliest expiry among the bundle's CAs.
    pub(crate) not_after: Option<SystemTime>,
}

/// A peer's CA bundle in force, and where it is read from.
pub struct Roots {
    peer: ClusterId,
    trust_domain: TrustDomain,
    path: PathBuf,
    current: ArcSwap<Anchors>,
    /// File contents in force, and contents last rejected (not to log them twice).
    seen: Mutex<(Vec<u8>, Option<Vec<u8>>)>,
}

impl fmt::Debug for Roots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Roots")
            .field("peer", &self.peer)
            .field("path", &self.path)
            .field("anchors", &self.len())
            .finish()
    }
}

impl Roots {
    /// Reads and checks the bundle at `path` for `peer`.
    pub(crate) fn load(peer: ClusterId, td: TrustDomain, path: &Path) -> Result<Self, LoadError> {
        let bytes = pem::read("CA bundle", path)?;
        let anchors = parse(&peer, &td, path, &bytes)?;
        Ok(Self {
            peer,
            trust_domain: td,
            path: path.to_owned(),
            current: ArcSwap::from_pointee(anchors),
            seen: Mutex::new((bytes, None)),
        })
    }

    pub(crate) fn anchors(&self) -> Arc<Anchors> {
        self.current.load_full()
    }

    /// The trust anchors in force.
    pub fn store(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.current.load().store)
    }

    /// How many CAs the bundle in force holds.
    pub fn len(&self) -> usize {
        self.current.load().store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the first CA of the bundle in force expires (for the expiry metric).
    pub fn not_after(&self) -> Option<SystemTime> {
        self.current.load().not_after
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file; returns whether a new bundle is now in force. A bad
    /// file keeps the old bundle and is reported once.
    pub fn reload_if_changed(&self) -> Result<bool, LoadError> {
        let bytes = pem::read("CA bundle", &self.path)?;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if bytes == seen.0 || seen.1.as_ref() == Some(&bytes) {
            return Ok(false);
        }
        match parse(&self.peer, &self.trust_domain, &self.path, &bytes) {
            Ok(anchors) => {
                tracing::info!(peer = %self.peer, path = %self.path.display(), anchors = anchors.store.len(), "reloaded peer CA bundle");
                self.current.store(Arc::new(anchors));
                *seen = (bytes, None);
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "keeping the current CA bundle: the new file is not usable");
                seen.1 = Some(bytes);
                Err(e)
            }
        }
    }
}

fn parse(
    peer: &ClusterId,
    td: &TrustDomain,
    path: &Path,
    bytes: &[u8],
) -> Result<Anchors, LoadError> {
    let certs = pem::certs("CA bundle", path, bytes)?;
    let mut store = RootCertStore::empty();
    let mut not_after: Option<SystemTime> = None;
    for cert in certs {
        check_bundle_domain(peer, td, path, &cert)?;
        if let Some(t) = san::not_after(&cert) {
            not_after = Some(not_after.map_or(t, |n| n.min(t)));
        }
        store.add(cert).map_err(|source| LoadError::BadAnchor {
            path: path.to_owned(),
            source,
        })?;
    }
    let store = Arc::new(store);
    let client = WebPkiClientVerifier::builder_with_provider(store.clone(), crate::provider())
        .build()
        .map_err(|e| LoadError::BadAnchor {
            path: path.to_owned(),
            source: rustls::Error::General(e.to_string()),
        })?;
    Ok(Anchors {
        store,
        client,
        not_after,
    })
}

/// A CA that names a trust domain (`spiffe://<td>` URI SAN, as causeway CAs
/// do) must name this peer's: that catches swapped bundles.
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
