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
    #[error(
        "identity.dns: a DNS server run apart follows the catalog feed with its own certificate; issue one with `causeway ca issue --workload dns` and set identity.dns"
    )]
    NoDnsCert,
    #[error(
        "identity.ca: a component run apart checks the federation against this cluster's CA; set identity.ca to the CA certificate (ca.pem, no key)"
    )]
    NoOwnCa,
    #[error("identity.ca: {0}")]
    OwnCa(LoadError),
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
    /// When `identity.dns` is set.
    pub dns: Option<Arc<ReloadingCert>>,
    /// This cluster's own CA, when `identity.ca` is set.
    pub own: Option<PeerTrust>,
    pub peers: Vec<PeerTrust>,
    pub peer_set: Arc<PeerSet>,
}

impl Identities {
    pub fn load(cfg: &Config) -> Result<Self, IdentityError> {
        let (peers, peer_set) = load_peers(cfg)?;
        let dns = match cfg.identity.dns {
            Some(_) => Some(load_cert(cfg, Workload::Dns)?),
            None => None,
        };
        Ok(Self {
            gateway: load_cert(cfg, Workload::Gateway)?,
            federation: load_cert(cfg, Workload::Federation)?,
            dns,
            own: load_own(cfg)?,
            peers,
            peer_set,
        })
    }
}

/// This cluster's certificate for `workload`, checked to carry the right SPIFFE ID.
pub fn load_cert(cfg: &Config, workload: Workload) -> Result<Arc<ReloadingCert>, IdentityError> {
    let paths = match workload {
        Workload::Gateway => cfg.identity.gateway.clone(),
        Workload::Federation => cfg.identity.federation.clone(),
        Workload::Dns => cfg.identity.dns.clone().ok_or(IdentityError::NoDnsCert)?,
    };
    let cert =
        ReloadingCert::load(paths).map_err(|source| IdentityError::Cert { workload, source })?;
    let expected = SpiffeId::new(cfg.cluster.trust_domain()?, workload);
    let found = cert.spiffe_id();
    if found != expected {
        return Err(IdentityError::WrongId {
            workload,
            found,
            expected,
        });
    }
    Ok(cert)
}

/// Every peer's trust, loaded from its CA bundle.
pub fn load_peers(cfg: &Config) -> Result<(Vec<PeerTrust>, Arc<PeerSet>), IdentityError> {
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
    let set = Arc::new(PeerSet::new(peers.clone())?);
    Ok((peers, set))
}

/// This cluster's own CA and trust domain, for the links between its own
/// components (the catalog feed); `None` when `identity.ca` is unset.
pub fn load_own(cfg: &Config) -> Result<Option<PeerTrust>, IdentityError> {
    let Some(ca) = &cfg.identity.ca else {
        return Ok(None);
    };
    let td = cfg.cluster.trust_domain()?;
    PeerTrust::load(cfg.cluster.name.clone(), td, ca)
        .map(Some)
        .map_err(IdentityError::OwnCa)
}

/// How `workload` (gateway or DNS) run apart follows the federation's catalog
/// feed, and the certificate it presents there.
pub fn watch_target(
    cfg: &Config,
    workload: Workload,
    addr: String,
) -> Result<(causeway_federation::WatchTarget, Arc<ReloadingCert>), anyhow::Error> {
    let own = load_own(cfg)?.ok_or(IdentityError::NoOwnCa)?;
    let cert = load_cert(cfg, workload)?;
    let tls = causeway_identity::client_config(cert.clone(), &own, Workload::Federation)?;
    let target = causeway_federation::WatchTarget {
        addr,
        tls,
        trust_domain: own.trust_domain.to_string(),
    };
    Ok((target, cert))
}
