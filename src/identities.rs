//! Loading this cluster's certificates and its peers' trust from the config.

use std::sync::Arc;

use causeway_identity::{
    LoadError, PeerSet, PeerSetError, PeerTrust, ReloadingCert, SpiffeId, Workload,
};

use crate::config::{Config, ConfigError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    #[error("identity.{workload}: {source}")]
    Cert {
        workload: Workload,
        source: LoadError,
    },
    #[error(
        "identity.{workload}: the certificate is for {found}; expected {expected} (issue it with `causeway ca issue --workload {workload}` from this cluster's CA)"
    )]
    WrongId {
        workload: Workload,
        found: SpiffeId,
        expected: SpiffeId,
    },
    #[error("peers.{name}.ca: {source}")]
    PeerCa { name: String, source: LoadError },
    #[error("peers: {0}")]
    PeerSet(#[from] PeerSetError),
    #[error("{0}")]
    Config(#[from] ConfigError),
}

/// Our certificates and every peer's trust, loaded and cross-checked.
pub struct Identities {
    pub gateway: Arc<ReloadingCert>,
    pub federation: Arc<ReloadingCert>,
    pub peers: Vec<PeerTrust>,
    pub peer_set: Arc<PeerSet>,
}

impl Identities {
    pub fn load(cfg: &Config) -> Result<Self, IdentityError> {
        let td = cfg.cluster.trust_domain()?;
        let load = |workload: Workload, paths| {
            let cert = ReloadingCert::load(paths)
                .map_err(|source| IdentityError::Cert { workload, source })?;
            let expected = SpiffeId::new(td.clone(), workload);
            let found = cert.spiffe_id();
            if found != expected {
                return Err(IdentityError::WrongId {
                    workload,
                    found,
                    expected,
                });
            }
            Ok(cert)
        };
        let gateway = load(Workload::Gateway, cfg.identity.gateway.clone())?;
        let federation = load(Workload::Federation, cfg.identity.federation.clone())?;
        let peers = cfg
            .peers
            .iter()
            .map(|p| {
                let td = cfg.peer_trust_domain(p)?;
                PeerTrust::load(p.name.clone(), td, &p.ca).map_err(|source| IdentityError::PeerCa {
                    name: p.name.to_string(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let peer_set = Arc::new(PeerSet::new(peers.clone())?);
        Ok(Self {
            gateway,
            federation,
            peers,
            peer_set,
        })
    }
}
