//! The client's check of a server: `peer`'s bundle, `peer`'s trust domain.

use std::fmt;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error, SignatureScheme};

use super::{VerifyError, check_identity, not_signed};
use crate::names::{SpiffeId, Workload};
use crate::peers::PeerTrust;
use crate::san;

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
    pub(crate) fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<SpiffeId, VerifyError> {
        let chain = ParsedCertificate::try_from(end_entity).and_then(|cert| {
            let roots = self.peer.roots.store();
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                &roots,
                intermediates,
                now,
                self.algs.all,
            )
        });
        match chain {
            Ok(()) => check_identity(&self.peer, end_entity, &[self.expect]),
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
