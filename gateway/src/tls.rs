//! TLS for peer links: causeway_identity's scoped mutual TLS 1.3, wrapped for QUIC.

use std::sync::Arc;

use causeway_catalog::ClusterId;
use causeway_identity::{PeerSet, ReloadingCert, SpiffeId, Workload};
use quinn::crypto::rustls::{NoInitialCipherSuite, QuicClientConfig, QuicServerConfig};
use rustls::pki_types::CertificateDer;

use crate::protocol::ALPN;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error(
        "building TLS for gateway peers failed (check the gateway certificate and peer CA bundles): {0}"
    )]
    Identity(#[from] causeway_identity::TlsError),
    #[error(
        "cluster {0} is not in the peers list, so there is no CA bundle to verify it with; add it to peers"
    )]
    UnknownPeer(ClusterId),
    #[error("the TLS config cannot be used for QUIC (TLS 1.3 with an AEAD suite is required): {0}")]
    Quic(#[from] NoInitialCipherSuite),
}

/// Our certificate and the trust we have in each peer cluster.
#[derive(Clone)]
pub struct Identity {
    pub cert: Arc<ReloadingCert>,
    pub peers: Arc<PeerSet>,
}

impl Identity {
    pub fn server(&self) -> Result<QuicServerConfig, TlsError> {
        let mut rc = causeway_identity::server_config(
            self.cert.clone(),
            self.peers.clone(),
            Workload::Gateway,
        )?;
        rc.alpn_protocols = vec![ALPN.to_vec()];
        Ok(QuicServerConfig::try_from(rc)?)
    }

    pub fn client(&self, peer: &ClusterId) -> Result<QuicClientConfig, TlsError> {
        let trust = self
            .peers
            .get(peer)
            .ok_or_else(|| TlsError::UnknownPeer(peer.clone()))?;
        let mut rc =
            causeway_identity::client_config(self.cert.clone(), &trust, Workload::Gateway)?;
        rc.alpn_protocols = vec![ALPN.to_vec()];
        Ok(QuicClientConfig::try_from(rc)?)
    }

    /// The trust domain to pass as server name when dialling `peer`.
    pub fn server_name(&self, peer: &ClusterId) -> Option<String> {
        self.peers.get(peer).map(|p| p.trust_domain.to_string())
    }

    /// The peer cluster and SPIFFE ID of an authenticated connection.
    pub fn identify(&self, conn: &quinn::Connection) -> Option<(ClusterId, SpiffeId)> {
        let any = conn.peer_identity()?;
        let certs = any.downcast::<Vec<CertificateDer<'static>>>().ok()?;
        self.peers.identify(certs.first()?)
    }
}
