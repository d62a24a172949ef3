//! The server's check of a client: the bundle of some configured peer, and
//! then that same peer's trust domain.

use std::fmt;
use std::sync::Arc;

use causeway_catalog::ClusterId;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::{VerifyError, check_identity, not_signed};
use crate::names::{SpiffeId, Workload};
use crate::peers::PeerSet;
use crate::san;

/// Server side: the client must be some configured peer's `expect` workload.
pub(crate) struct PeerClientVerifier {
    /// The peers, read per handshake: a peer linked while running and each
    /// peer's reloaded bundle (its own webpki verifier) apply at once.
    pub(crate) peers: Arc<PeerSet>,
    pub(crate) expect: Vec<Workload>,
    pub(crate) algs: WebPkiSupportedAlgorithms,
    pub(crate) hints: Vec<DistinguishedName>,
    /// False on the link endpoint: a redeemer has no certificate yet.
    pub(crate) mandatory: bool,
}

impl fmt::Debug for PeerClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let peers = self.peers.snapshot();
        let names: Vec<&ClusterId> = peers.iter().map(|p| &p.name).collect();
        f.debug_struct("PeerClientVerifier")
            .field("peers", &names)
            .field("expect", &self.expect)
            .finish()
    }
}

impl PeerClientVerifier {
    /// Tries each peer's bundle; on a chain match, that peer's trust domain
    /// must match too. Several peers may share a CA, so a mismatch moves on.
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, VerifyError> {
        let mut mismatch = None;
        let mut chain_error = None;
        for peer in self.peers.snapshot().iter() {
            let webpki = peer.roots.anchors().client.clone();
            match webpki.verify_client_cert(end_entity, intermediates, now) {
                Ok(_) => match check_identity(peer, end_entity, &self.expect) {
                    Ok(id) => return Ok(id),
                    Err(e) => {
                        mismatch.get_or_insert(e);
                    }
                },
                Err(e) if not_signed(&e) => {}
                Err(e) => {
                    chain_error.get_or_insert(e);
                }
            }
        }
        let presented = san::describe(end_entity);
        Err(mismatch.unwrap_or_else(|| match chain_error {
            Some(source) => VerifyError::Rejected { presented, source },
            None => VerifyError::UnknownCa { presented },
        }))
    }
}

impl ClientCertVerifier for PeerClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify(end_entity, intermediates, now)
            .map(|_| ClientCertVerified::assertion())
            .map_err(VerifyError::into_rustls)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
