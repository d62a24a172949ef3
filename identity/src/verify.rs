//! Peer certificate verifiers: a webpki chain check against one peer's CA
//! bundle, then the SPIFFE ID check against that same peer's trust domain.
//!
//! rustls only sees a generic error; the detailed reason is logged here and
//! carried inside `CertificateError::Other` for callers that look.

use std::fmt;
use std::sync::Arc;

use causeway_catalog::ClusterId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError};
use rustls::{Error, SignatureScheme};

use crate::names::{SpiffeId, TrustDomain, Workload};
use crate::peers::PeerTrust;
use crate::san::{self, SanError};

/// Why a peer certificate was refused, with what was presented and expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("certificate is not signed by the CA of any configured peer (presented {presented})")]
    UnknownCa { presented: String },
    #[error(
        "peer {peer} presented a certificate not signed by its CA (presented {presented}; check the CA bundle configured for peer {peer})"
    )]
    NotSignedByPeer { peer: ClusterId, presented: String },
    #[error(
        "peer {peer} presented a certificate for trust domain {presented}; expected {expected} (check the CA bundle configured for peer {peer})"
    )]
    WrongTrustDomain {
        peer: ClusterId,
        presented: TrustDomain,
        expected: TrustDomain,
    },
    #[error("peer {peer} presented {presented}; expected {expected} (wrong workload certificate)")]
    WrongWorkload {
        peer: ClusterId,
        presented: SpiffeId,
        expected: SpiffeId,
    },
    #[error("peer {peer} presented a certificate without a usable SPIFFE ID: {source}")]
    NoSpiffeId { peer: ClusterId, source: SanError },
    #[error("certificate {presented} was rejected: {source}")]
    Rejected { presented: String, source: Error },
}

impl VerifyError {
    /// Logs the detail and turns it into the error rustls reports.
    fn into_rustls(self) -> Error {
        tracing::warn!(reason = %self, "rejected peer certificate");
        match self {
            // Keep webpki's own error (e.g. expired): it selects the right TLS alert.
            VerifyError::Rejected { source, .. } => source,
            other => CertificateError::Other(OtherError(Arc::new(other))).into(),
        }
    }
}

/// webpki's "this CA did not sign it": an unknown issuer, or one with our
/// issuer's name but another key (a regenerated CA).
fn not_signed(err: &Error) -> bool {
    matches!(
        err,
        Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)
    )
}

/// The SAN check, after the chain check succeeded against `peer`'s bundle.
fn check_identity(
    peer: &PeerTrust,
    cert: &CertificateDer<'_>,
    expect: Workload,
) -> Result<SpiffeId, VerifyError> {
    let id = san::spiffe_id_of(cert).map_err(|source| VerifyError::NoSpiffeId {
        peer: peer.name.clone(),
        source,
    })?;
    if *id.trust_domain() != peer.trust_domain {
        return Err(VerifyError::WrongTrustDomain {
            peer: peer.name.clone(),
            presented: id.trust_domain().clone(),
            expected: peer.trust_domain.clone(),
        });
    }
    let expected = SpiffeId::new(peer.trust_domain.clone(), expect);
    if id != expected {
        return Err(VerifyError::WrongWorkload {
            peer: peer.name.clone(),
            presented: id,
            expected,
        });
    }
    Ok(id)
}

/// Client side: the server must be `peer`'s `expect` workload.
pub(crate) struct PeerServerVerifier {
    pub(crate) peer: PeerTrust,
    pub(crate) expect: Workload,
    pub(crate) algs: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for PeerServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerServerVerifier")
            .field("peer", &self.peer.name)
            .field("trust_domain", &self.peer.trust_domain)
            .field("expect", &self.expect)
            .finish()
    }
}

impl PeerServerVerifier {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, VerifyError> {
        let chain = ParsedCertificate::try_from(end_entity).and_then(|cert| {
            let roots = &self.peer.roots;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.algs.all,
            )
        });
        match chain {
            Ok(()) => check_identity(&self.peer, end_entity, self.expect),
            Err(e) if not_signed(&e) => Err(VerifyError::NotSignedByPeer {
                peer: self.peer.name.clone(),
                presented: san::describe(end_entity),
            }),
            Err(source) => Err(VerifyError::Rejected {
                presented: san::describe(end_entity),
                source,
            }),
        }
    }
}

impl ServerCertVerifier for PeerServerVerifier {
    /// `server_name` is ignored: causeway certificates carry only a SPIFFE
    /// URI SAN, which is checked against the configured peer instead.
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        self.verify(end_entity, intermediates, now)
            .map(|_| ServerCertVerified::assertion())
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

/// Server side: the client must be some configured peer's `expect` workload.
pub(crate) struct PeerClientVerifier {
    /// Each peer with a webpki verifier over its bundle alone.
    pub(crate) peers: Vec<(PeerTrust, Arc<dyn ClientCertVerifier>)>,
    pub(crate) expect: Workload,
    pub(crate) algs: WebPkiSupportedAlgorithms,
    pub(crate) hints: Vec<DistinguishedName>,
}

impl fmt::Debug for PeerClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&ClusterId> = self.peers.iter().map(|(p, _)| &p.name).collect();
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
        for (peer, webpki) in &self.peers {
            match webpki.verify_client_cert(end_entity, intermediates, now) {
                Ok(_) => match check_identity(peer, end_entity, self.expect) {
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
