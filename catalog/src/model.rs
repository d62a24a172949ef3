//! The catalog's data: what a cluster exports and what the clusterset imports.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::lease::Freshness;
use crate::names::{ClusterId, NameError, ServiceKey, check_label};

/// Wall-clock time in milliseconds since the Unix epoch; compared across
/// clusters (oldest export wins), so it is wall time, not a monotonic instant.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMillis(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    #[serde(alias = "tcp")]
    Tcp,
    #[serde(alias = "udp")]
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// A service port. Named ports get SRV records; a service with one port may leave it unnamed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "port")]
    pub number: u16,
    #[serde(default = "tcp")]
    pub protocol: Protocol,
}

fn tcp() -> Protocol {
    Protocol::Tcp
}

impl Port {
    pub fn tcp(name: &str, number: u16) -> Self {
        Self {
            name: Some(name.to_owned()),
            number,
            protocol: Protocol::Tcp,
        }
    }

    /// Two ports clash when they share a name or a number+protocol but differ otherwise.
    pub(crate) fn clashes_with(&self, other: &Port) -> bool {
        let same_name = self.name.is_some() && self.name == other.name;
        let same_slot = self.number == other.number && self.protocol == other.protocol;
        (same_name || same_slot) && self != other
    }

    pub(crate) fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({}/{})", self.number, self.protocol.as_str()),
            None => format!("{}/{}", self.number, self.protocol.as_str()),
        }
    }
}

/// One local backend of an exported service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub addr: SocketAddr,
    #[serde(default = "yes")]
    pub ready: bool,
}

fn yes() -> bool {
    true
}

/// Which peer clusters may import an export.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExportTo {
    /// Every cluster in the clusterset (written `all`, or left out).
    #[default]
    #[serde(with = "all_keyword")]
    All,
    /// Only the named clusters.
    Only(BTreeSet<ClusterId>),
}

mod all_keyword {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("all")
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        match String::deserialize(d)?.as_str() {
            "all" | "*" => Ok(()),
            other => Err(D::Error::custom(format!(
                "export_to must be `all` or a list of cluster names, not {other:?}"
            ))),
        }
    }
}

impl ExportTo {
    pub fn allows(&self, cluster: &ClusterId) -> bool {
        match self {
            ExportTo::All => true,
            ExportTo::Only(set) => set.contains(cluster),
        }
    }
}

/// A local service offered to peer clusters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    #[serde(rename = "service")]
    pub key: ServiceKey,
    pub ports: Vec<Port>,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub export_to: ExportTo,
    /// When the export was first created; the oldest export wins MCS conflicts.
    #[serde(default)]
    pub created_at: UnixMillis,
    /// Keep serving this export from a silent peer after its lease expires.
    #[serde(default)]
    pub serve_stale: bool,
}

impl Export {
    pub fn ready_endpoints(&self) -> usize {
        self.endpoints.iter().filter(|e| e.ready).count()
    }

    /// Checks what serde cannot: port names are DNS labels, ports are distinct.
    pub fn validate(&self) -> Result<(), ExportError> {
        if self.ports.is_empty() {
            return Err(ExportError::NoPorts(self.key.clone()));
        }
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(name) = &p.name {
                check_label("port name", name, false).map_err(|source| ExportError::PortName {
                    key: self.key.clone(),
                    source,
                })?;
            }
            if p.number == 0 {
                return Err(ExportError::PortZero(self.key.clone()));
            }
            if let Some(q) = self.ports[..i]
                .iter()
                .find(|q| q.clashes_with(p) || *q == p)
            {
                return Err(ExportError::DuplicatePort {
                    key: self.key.clone(),
                    first: q.label(),
                    second: p.label(),
                });
            }
        }
        if self.ports.len() > 1 && self.ports.iter().any(|p| p.name.is_none()) {
            return Err(ExportError::UnnamedPort(self.key.clone()));
        }
        Ok(())
    }
}

/// An export that cannot be offered as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("export {0}: no ports; list at least one port")]
    NoPorts(ServiceKey),
    #[error("export {0}: port 0 is not a valid port number (use 1-65535)")]
    PortZero(ServiceKey),
    #[error("export {key}: {source}")]
    PortName { key: ServiceKey, source: NameError },
    #[error("export {key}: ports {first} and {second} use the same name or number")]
    DuplicatePort {
        key: ServiceKey,
        first: String,
        second: String,
    },
    #[error("export {0}: a service with several ports must name every port")]
    UnnamedPort(ServiceKey),
}

/// What a cluster says about itself: where it is and how to reach its gateways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub name: ClusterId,
    pub region: String,
    pub zone: String,
    pub trust_domain: String,
    /// UDP addresses of the cluster's gateway replicas.
    pub gateways: Vec<SocketAddr>,
}

/// One cluster serving an import, as seen from here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServingCluster {
    pub cluster: ClusterId,
    pub region: String,
    pub zone: String,
    pub ready_endpoints: usize,
    pub freshness: Freshness,
}

/// Something wrong with an import that users should see (MCS conditions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Condition {
    /// Clusters disagree on a port; the oldest export's definition is used.
    PortConflict {
        port: String,
        kept_from: ClusterId,
        ignored_from: ClusterId,
    },
}

/// The merged view of one service across the clusterset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Import {
    pub key: ServiceKey,
    pub ports: Vec<Port>,
    /// Clusters serving it, sorted by name.
    pub clusters: Vec<ServingCluster>,
    /// This cluster's ClusterSetIPs for the service (at most one per IP family).
    pub vips: Vec<IpAddr>,
    pub serve_stale: bool,
    pub conditions: Vec<Condition>,
}

/// What federation publishes (on a `watch` channel) for the gateway and DNS:
/// the imports this cluster sees and every cluster it knows, itself included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    pub imports: std::collections::BTreeMap<ServiceKey, Import>,
    pub clusters: std::collections::BTreeMap<ClusterId, ClusterInfo>,
}
