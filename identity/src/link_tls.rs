//! TLS for the link endpoint (`causeway token redeem`, `unlink`). Redeeming a token happens before the redeeming cluster is
//! trusted, so the endpoint accepts clients without a certificate; the
//! redeemer pins the server instead: it accepts the handshake (its
//! signatures checked as usual), then checks the server's chain against the
//! CA bundle whose fingerprint the token carries, before it sends anything
//! secret. A client that does present a certificate must be a peer's.
//! The federation and gateway listeners keep requiring mutual TLS.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, Error, ServerConfig, SignatureScheme};

use crate::names::{SpiffeId, Workload};
use crate::peers::{PeerSet, PeerTrust};
use crate::reload::ReloadingCert;
use crate::tls::TlsError;
use crate::verify::{PeerClientVerifier, PeerServerVerifier, VerifyError};

/// The link endpoint's server: client certificates are optional; one that
/// is presented must be some peer's `expect` workload.
pub fn link_server_config(
    cert: Arc<ReloadingCert>,
    peers: Arc<PeerSet>,
    expect: Workload,
) -> Result<ServerConfig, TlsError> {
    let provider = crate::provider();
    let verifier = PeerClientVerifier {
        hints: Vec::new(),
        peers,
        expect: vec![expect],
        algs: provider.signature_verification_algorithms,
        mandatory: false,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Protocol { source })?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(cert);
    Ok(config)
}

/// A client with no certificate that defers the server check to
/// [`verify_server_chain`] after the handshake (see the module docs).
/// Send nothing secret before that check passed.
pub fn pinning_client_config() -> Result<ClientConfig, TlsError> {
    let provider = crate::provider();
    let verifier = Deferred {
        algs: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Protocol { source })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// Checks a chain the server presented (`peer_certificates()`) against
/// `peer`'s bundle and trust domain, as the mutual-TLS client would.
pub fn verify_server_chain(
    peer: &PeerTrust,
    chain: &[CertificateDer<'static>],
    expect: Workload,
) -> Result<SpiffeId, VerifyError> {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err(VerifyError::UnknownCa {
            presented: "no certificate".into(),
        });
    };
    let verifier = PeerServerVerifier {
        peer: peer.clone(),
        expect,
        algs: crate::provider().signature_verification_algorithms,
    };
    verifier.verify(leaf, intermediates, UnixTime::now())
}

/// Accepts any chain at handshake time; the handshake signatures are still
/// checked, so the server holds the key of the chain it presented.
struct Deferred {
    algs: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deferred")
    }
}

impl ServerCertVerifier for Deferred {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
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
