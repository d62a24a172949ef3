//! rustls configurations for causeway's links: mutual TLS 1.3 only, with
//! the aws-lc-rs provider and the peer verifiers of `verify`.
//!
//! ALPN is left to callers (the gateway and federation pick their own).

use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};

use crate::names::Workload;
use crate::peers::{PeerSet, PeerTrust};
use crate::reload::ReloadingCert;
use crate::verify::{PeerClientVerifier, PeerServerVerifier};

/// A TLS configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("the crypto provider does not support TLS 1.3: {source}")]
    Protocol { source: rustls::Error },
    #[error("cannot use the CA bundle of peer {peer}: {source}")]
    PeerRoots {
        peer: String,
        source: rustls::server::VerifierBuilderError,
    },
}

/// A server that requires a client certificate from some peer in `peers`,
/// naming that peer's trust domain and the `expect` workload.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    peers: Arc<PeerSet>,
    expect: Workload,
) -> Result<ServerConfig, TlsError> {
    server_config_for(cert, peers, vec![expect])
}

/// A server for this cluster's own components (the federation's catalog
/// feed): the client must chain to `own` (this cluster's CA and trust
/// domain) and be one of the `allow` workloads.
pub fn local_server_config(
    cert: Arc<ReloadingCert>,
    own: &PeerTrust,
    allow: &[Workload],
) -> Result<ServerConfig, TlsError> {
    server_config_for(cert, Arc::new(PeerSet::one(own.clone())), allow.to_vec())
}

pub(crate) fn server_config_for(
    cert: Arc<ReloadingCert>,
    peers: Arc<PeerSet>,
    expect: Vec<Workload>,
) -> Result<ServerConfig, TlsError> {
    let provider = crate::provider();
    let verifier = PeerClientVerifier {
        // Only hints: taken at build time, they may lag a reloaded bundle.
        hints: peers
            .snapshot()
            .iter()
            .flat_map(|p| p.roots.store().subjects())
            .collect(),
        peers,
        expect,
        algs: provider.signature_verification_algorithms,
        mandatory: true,
    };
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Protocol { source })?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(cert);
    Ok(config)
}

/// A client for `peer` that accepts only `peer`'s `expect` workload.
///
/// Server names are not checked against the certificate (it carries only a
/// SPIFFE URI SAN); pass the peer's trust domain as the server name.
pub fn client_config(
    cert: Arc<ReloadingCert>,
    peer: &PeerTrust,
    expect: Workload,
) -> Result<ClientConfig, TlsError> {
    let provider = crate::provider();
    let verifier = PeerServerVerifier {
        peer: peer.clone(),
        expect,
        algs: provider.signature_verification_algorithms,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Protocol { source })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(cert);
    Ok(config)
}
