//! causeway's identities: per-cluster CAs, SPIFFE IDs, workload certificates
//! that reload when their files change, per-peer trust, and the mutual
//! TLS 1.3 configurations every causeway link uses.
//!
//! All crypto goes through one rustls provider, aws-lc-rs ([`provider`]).
//!
//! Wiring a link (the gateway does this with ALPN `causeway/1` over QUIC):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{path::Path, sync::Arc, time::Duration};
//! use causeway_identity::*;
//!
//! let cert = ReloadingCert::load(CertPaths {
//!     cert: "certs/gateway.pem".into(),
//!     key: "certs/gateway-key.pem".into(),
//! })?;
//! let _watch = cert.spawn_watch(Duration::from_secs(5)); // inside a tokio runtime
//! let west = PeerTrust::load("west".parse()?, "west.demo.causeway".parse()?, Path::new("peers/west-ca.pem"))?;
//! let peers = Arc::new(PeerSet::new(vec![west.clone()])?);
//!
//! // Accept only west's gateway; dial west expecting its gateway.
//! let mut server = server_config(cert.clone(), peers.clone(), Workload::Gateway)?;
//! server.alpn_protocols = vec![b"causeway/1".to_vec()];
//! let client = client_config(cert, &west, Workload::Gateway)?;
//! // Server name for the client: the peer's trust domain.
//! // After a handshake, map the verified peer certificate to its cluster:
//! // let (cluster, spiffe_id) = peers.identify(&conn.peer_certificates()?[0])?;
//! # let _ = client; Ok(())
//! # }
//! ```

mod ca;
mod leaf;
mod link_tls;
mod names;
mod peers;
mod pem;
mod reload;
mod roots;
mod san;
mod tls;
mod verify;
mod write;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use ca::{CA_CERT_FILE, CA_KEY_FILE, Ca, CaError};
pub use leaf::{Leaf, Validity};
pub use link_tls::{link_server_config, pinning_client_config, verify_server_chain};
pub use names::{IdError, SpiffeId, TrustDomain, Workload};
pub use peers::{PeerSet, PeerSetError, PeerTrust};
pub use pem::LoadError;
pub use reload::{CertPaths, ReloadingCert};
pub use roots::Roots;
pub use san::{SanError, spiffe_id_of, validity_of};
pub use tls::{TlsError, client_config, local_server_config, server_config};
pub use verify::VerifyError;
pub use write::WriteError;

/// The rustls crypto provider for all of causeway: aws-lc-rs, with the
/// post-quantum hybrid key exchange (X25519MLKEM768) preferred.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())))
}

/// Installs [`provider`] as the process default, for libraries that build
/// their own rustls configs (kube, tonic). Safe to call more than once.
pub fn install_default_provider() {
    if CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: it is already set.
        let _ = CryptoProvider::install_default((*provider()).clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_is_aws_lc_rs_and_cached() {
        assert!(Arc::ptr_eq(&provider(), &provider()));
        let groups: Vec<_> = provider().kx_groups.iter().map(|g| g.name()).collect();
        // Post-quantum hybrid first: the `prefer-post-quantum` feature is on.
        assert_eq!(groups.first(), Some(&rustls::NamedGroup::X25519MLKEM768));
    }

    #[test]
    fn installing_the_default_provider_twice_is_harmless() {
        install_default_provider();
        install_default_provider();
        assert!(CryptoProvider::get_default().is_some());
    }
}
