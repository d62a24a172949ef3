//! causeway.yaml: one file per cluster. Each component owns and validates its
//! own section; this module assembles them and checks what spans sections.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use causeway_catalog::{ClusterId, VipAllocator, VipError};
use causeway_federation::{ImportPolicy, PeerLimits, PeerPolicy, PolicyError, SourceConfig};
use causeway_identity::{CertPaths, TrustDomain};
use serde::{Deserialize, Serialize};

/// The longest wait any timeout may name: 30 days.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub cluster: ClusterConfig,
    pub identity: IdentityConfig,
    #[serde(default)]
    pub gateway: causeway_gateway::Config,
    #[serde(default)]
    pub federation: causeway_federation::Config,
    #[serde(default)]
    pub dns: causeway_dns::Config,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub source: SourceConfig,
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Traffic policy per service; re-read while running (docs/policy.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<causeway_policy::PolicySpec>,
    /// The link endpoint for `causeway token` and `unlink` (docs/operations.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<crate::link::LinkConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    pub name: ClusterId,
    pub region: String,
    #[serde(default)]
    pub zone: String,
    /// The clusterset's name; trust domains default to `<cluster>.<clusterset>`.
    #[serde(default = "default_clusterset")]
    pub clusterset: String,
    #[serde(default)]
    pub trust_domain: Option<TrustDomain>,
}

fn default_clusterset() -> String {
    "causeway".into()
}

impl ClusterConfig {
    pub fn trust_domain(&self) -> Result<TrustDomain, ConfigError> {
        default_trust_domain("cluster", &self.trust_domain, &self.name, &self.clusterset)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// The gateway's certificate (SPIFFE ID `spiffe://<trust-domain>/gateway`).
    pub gateway: CertPaths,
    /// The federation's certificate (SPIFFE ID `spiffe://<trust-domain>/federation`).
    pub federation: CertPaths,
    /// The DNS server's certificate (`spiffe://<trust-domain>/dns`); needed by
    /// `causeway dns` run apart, to follow the federation's catalog feed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<CertPaths>,
    /// This cluster's own CA certificate (no key). Needed when components run
    /// apart: the catalog feed (`federation.watch_listen`) accepts only this
    /// cluster's gateway and DNS, and they accept only its federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Every admin route (config, catalog, peers, UI); keep it on loopback.
    #[serde(default = "default_admin")]
    pub listen: SocketAddr,
    /// Optional second listener with only `/healthz`, `/readyz` and
    /// `/metrics`, for probes and scraping from outside the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15000))
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: default_admin(),
            metrics_listen: None,
        }
    }
}

/// A peer cluster: who it is, which CA vouches for it, where its federation listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: ClusterId,
    /// The peer's CA bundle (PEM). Only certificates it signed are accepted for this peer.
    pub ca: PathBuf,
    /// Defaults to `<name>.<clusterset>`.
    #[serde(default)]
    pub trust_domain: Option<TrustDomain>,
    /// `host:port` of the peer's federation listener.
    pub federation: String,
    /// The peer's region and zone as this cluster sees them (locality tiers);
    /// what the peer says about itself is not trusted. Unset: no region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Which of the peer's services this cluster imports (namespaces, services).
    #[serde(default)]
    pub import: ImportPolicy,
    /// Quotas on what the peer may put in this cluster's catalog.
    #[serde(default)]
    pub limits: PeerLimits,
}

impl PeerConfig {
    /// What the federation accepts from this peer.
    pub fn policy(&self) -> PeerPolicy {
        PeerPolicy {
            import: self.import.clone(),
            limits: self.limits,
            region: self.region.clone(),
            zone: self.zone.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Gateway(#[from] causeway_gateway::ConfigError),
    #[error("{0}")]
    Federation(#[from] causeway_federation::ConfigError),
    #[error("{0}")]
    Dns(#[from] causeway_dns::ConfigError),
    #[error("gateway.vip_ranges: {0}")]
    Vip(#[from] VipError),
    #[error("{0}")]
    PeerPolicy(#[from] PolicyError),
    #[error("{0}")]
    Link(#[from] crate::link::LinkConfigError),
    #[error("{0}")]
    Policy(#[from] causeway_policy::PolicyError),
    #[error("peers: {0} is listed twice; list each peer cluster once")]
    DuplicatePeer(ClusterId),
    #[error("peers: {0} is this cluster's own name (cluster.name); list only other clusters")]
    PeerIsSelf(ClusterId),
    #[error("peers.{name}.federation: {value:?} is not host:port (e.g. west.example.com:15010)")]
    PeerAddress { name: ClusterId, value: String },
    #[error(
        "gateway.kubernetes ports {gateway} differ from federation.kubernetes ports {federation}; both must name the same port_base and port_count, or the derived Services point at ports the gateway does not listen on"
    )]
    KubernetesPorts { gateway: String, federation: String },
    #[error(
        "federation.watch_listen needs identity.ca (this cluster's CA certificate): the catalog feed accepts only this cluster's gateway and DNS certificates"
    )]
    WatchWithoutCa,
    #[error(
        "{key}: {value:?} is too long; use at most {max:?} (longer waits overflow the clock and never end in practice)"
    )]
    TooLong {
        key: &'static str,
        value: std::time::Duration,
        max: std::time::Duration,
    },
    #[error("federation.watch_connect: {0:?} is not host:port (e.g. causeway-federation:15011)")]
    WatchConnect(String),
    #[error("{a} and {b} both listen on {addr}/{proto}; give each its own port")]
    ListenConflict {
        a: &'static str,
        b: &'static str,
        addr: SocketAddr,
        proto: &'static str,
    },
    #[error(
        "{key}: {value:?} is not a valid trust domain (a lowercase DNS name such as east.demo.causeway)"
    )]
    TrustDomain { key: String, value: String },
}

impl Config {
    /// Reads, parses and validates a config file. Relative paths in it are
    /// resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        cfg.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        cfg.validate()?;
        cfg.fill_trust_domains()?;
        Ok(cfg)
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        serde_saphyr::from_str(text)
            .map_err(|e| e.to_string().trim_start_matches("error: ").to_owned())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let id = &mut self.identity;
        for p in [&mut id.gateway.cert, &mut id.gateway.key] {
            fix(p);
        }
        for p in [&mut id.federation.cert, &mut id.federation.key] {
            fix(p);
        }
        if let Some(dns) = &mut id.dns {
            fix(&mut dns.cert);
            fix(&mut dns.key);
        }
        if let Some(ca) = &mut id.ca {
            fix(ca);
        }
        self.peers.iter_mut().for_each(|p| fix(&mut p.ca));
        if let Some(dir) = &mut self.federation.state_dir {
            fix(dir);
        }
        if let SourceConfig::Static { file: Some(f), .. } = &mut self.source {
            fix(f);
        }
    }

    /// Writes the derived trust domains in, so the effective config shows them.
    fn fill_trust_domains(&mut self) -> Result<(), ConfigError> {
        self.cluster.trust_domain = Some(self.cluster.trust_domain()?);
        for i in 0..self.peers.len() {
            self.peers[i].trust_domain = Some(self.peer_trust_domain(&self.peers[i])?);
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.gateway.validate()?;
        self.federation.validate()?;
        self.source.validate()?;
        self.dns.validate()?;
        VipAllocator::new(self.gateway.vip_ranges.clone())?;
        self.cluster.trust_domain()?;
        self.validate_peers()?;
        self.validate_kubernetes_ports()?;
        self.validate_durations()?;
        if self.federation.watch_listen.is_some() && self.identity.ca.is_none() {
            return Err(ConfigError::WatchWithoutCa);
        }
        if let Some(w) = self
            .federation
            .watch_connect
            .as_ref()
            .filter(|w| !is_host_port(w))
        {
            return Err(ConfigError::WatchConnect(w.clone()));
        }
        self.policies()?;
        if let Some(link) = &self.link {
            link.validate()?;
        }
        self.validate_listeners()
    }

    /// The validated `policies:` section.
    pub fn policies(&self) -> Result<causeway_policy::Policies, causeway_policy::PolicyError> {
        causeway_policy::Policies::from_config(&self.policies)
    }

    fn validate_peers(&self) -> Result<(), ConfigError> {
        for (i, p) in self.peers.iter().enumerate() {
            if p.name == self.cluster.name {
                return Err(ConfigError::PeerIsSelf(p.name.clone()));
            }
            if self.peers[..i].iter().any(|q| q.name == p.name) {
                return Err(ConfigError::DuplicatePeer(p.name.clone()));
            }
            if !is_host_port(&p.federation) {
                return Err(ConfigError::PeerAddress {
                    name: p.name.clone(),
                    value: p.federation.clone(),
                });
            }
            self.peer_trust_domain(p)?;
            p.policy().validate(p.name.as_str())?;
        }
        Ok(())
    }

    /// The sink's derived Services and the gateway must agree on the per-import ports.
    fn validate_kubernetes_ports(&self) -> Result<(), ConfigError> {
        let (Some(g), Some(f)) = (&self.gateway.kubernetes, &self.federation.kubernetes) else {
            return Ok(());
        };
        if (g.port_base, g.port_count) == (f.port_base, f.port_count) {
            return Ok(());
        }
        let show = |base: u16, count: u16| format!("{base}+{count}");
        Err(ConfigError::KubernetesPorts {
            gateway: show(g.port_base, g.port_count),
            federation: show(f.port_base, f.port_count),
        })
    }

    pub fn peer_trust_domain(&self, p: &PeerConfig) -> Result<TrustDomain, ConfigError> {
        let key = format!("peers.{}", p.name);
        default_trust_domain(&key, &p.trust_domain, &p.name, &self.cluster.clusterset)
    }
}

fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
}

/// An explicit trust domain, or `<name>.<clusterset>`.
fn default_trust_domain(
    section: &str,
    explicit: &Option<TrustDomain>,
    name: &ClusterId,
    clusterset: &str,
) -> Result<TrustDomain, ConfigError> {
    if let Some(td) = explicit {
        return Ok(td.clone());
    }
    let value = format!("{name}.{clusterset}");
    TrustDomain::new(value.clone()).map_err(|_| ConfigError::TrustDomain {
        key: format!("{section}.trust_domain (from {name} and cluster.clusterset)"),
        value,
    })
}

#[path = "config_span.rs"]
mod span;

#[cfg(test)]
#[path = "config_tests.rs"]
pub(crate) mod tests;
