//! causeway's identities: per-cluster CAs, SPIFFE IDs, workload certificates
//! that reload when their files change, per-peer trust, and the mutual
//! TLS 1.3 configurations every causeway link uses.
//!
//! All crypto goes through one rustls provider, aws-lc-rs ([`provider`]).

mod ca;
mod leaf;
mod names;
mod peers;
mod pem;
mod reload;
mod san;
mod tls;
mod verify;
mod write;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use ca::{CA_CERT_FILE, CA_KEY_FILE, Ca, CaError};
pub use leaf::{Leaf, Validity};
pub use names::{IdError, SpiffeId, TrustDomain, Workload};
pub use peers::{PeerSet, PeerSetError, PeerTrust};
pub use pem::LoadError;
pub use reload::{CertPaths, ReloadingCert};
pub use san::{SanError, spiffe_id_of};
pub use tls::{TlsError, client_config, server_config};
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
