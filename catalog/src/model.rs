//! The catalog's data: what a cluster exports and what the clusterset imports.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::conflict::ConflictKind;
use crate::lease::Freshness;
use crate::names::{ClusterId, NameError, ServiceKey, check_label};
use crate::service::{HeadlessEndpoint, ServiceProps};

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
    /// Carried in the catalog and the MCS objects; the gateway carries TCP and UDP only.
    #[serde(alias = "sctp")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
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
    /// The Service port's `appProtocol`, carried as a hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
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
            app_protocol: None,
        }
    }

    /// Two ports clash when they share a name (no name counts as the empty
    /// name, as in KEP-1645) or a number+protocol but differ otherwise.
    pub(crate) fn clashes_with(&self, other: &Port) -> bool {
        let same_name = self.name == other.name;
        let same_slot = self.number == other.number && self.protocol == other.protocol;
        (same_name || same_slot) && self != other
    }

    pub fn label(&self) -> String {
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
    /// The endpoint's hostname (a DNS label; a StatefulSet pod's name), for
    /// the per-endpoint names of headless services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

impl Endpoint {
    /// Its label in `<hostname>.<cluster>.<svc>.<ns>.svc.<zone>`: the hostname,
    /// else the address with dashes (MCS DNS spec 2.1: "a unique, system-assigned identifier").
    pub fn dns_label(&self) -> String {
        match &self.hostname {
            Some(h) => h.clone(),
            None => crate::service::address_label(&self.addr.ip()),
        }
    }
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
    /// A headless service: clients reach each endpoint by name (MCS DNS 2.4).
    #[serde(default, skip_serializing_if = "is_false")]
    pub headless: bool,
    /// Session affinity, traffic policies and IP families of the Service.
    #[serde(default, skip_serializing_if = "ServiceProps::is_default")]
    pub props: ServiceProps,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Export {
    /// An export of `key` on `ports` with no endpoints, to every cluster.
    pub fn new(key: ServiceKey, ports: Vec<Port>) -> Self {
        Self {
            key,
            ports,
            endpoints: Vec::new(),
            export_to: ExportTo::All,
            created_at: UnixMillis(0),
            serve_stale: false,
            headless: false,
            props: ServiceProps::default(),
        }
    }

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
            if let Some(proto) = &p.app_protocol
                && (proto.is_empty() || proto.len() > 253)
            {
                return Err(ExportError::AppProtocol(self.key.clone(), proto.clone()));
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
        for h in self.endpoints.iter().filter_map(|e| e.hostname.as_ref()) {
            check_label("endpoint hostname", h, false).map_err(|source| ExportError::Hostname {
                key: self.key.clone(),
                source,
            })?;
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
    #[error("export {0}: appProtocol {1:?} must be 1-253 characters")]
    AppProtocol(ServiceKey, String),
    #[error("export {key}: {source}")]
    Hostname { key: ServiceKey, source: NameError },
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
    /// The ports its export has: connections to a port go only to clusters that have it.
    #[serde(default)]
    pub ports: Vec<Port>,
}

impl ServingCluster {
    /// Whether its export has this service port.
    pub fn serves(&self, port: u16, protocol: Protocol) -> bool {
        self.ports.is_empty()
            || self
                .ports
                .iter()
                .any(|p| p.number == port && p.protocol == protocol)
    }
}

/// Something wrong with an import that users should see (MCS conditions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum Condition {
    /// The exports disagree on a property; the oldest export's `value` is used
    /// (for ports: the union, the oldest export winning where ports clash).
    Conflict {
        kind: ConflictKind,
        winner: ClusterId,
        value: String,
        /// Clusters whose export says otherwise.
        disagreeing: Vec<ClusterId>,
        /// How many clusters export the service.
        clusters: usize,
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
    /// Headless (MCS type `Headless`): no ClusterSetIP; clients reach `endpoints` by name.
    #[serde(default)]
    pub headless: bool,
    #[serde(default)]
    pub props: ServiceProps,
    /// A headless import's ready endpoints, by cluster then hostname.
    #[serde(default)]
    pub endpoints: Vec<HeadlessEndpoint>,
}

impl Import {
    /// An import of `key` with nothing in it yet.
    pub fn new(key: ServiceKey) -> Self {
        Self {
            key,
            ports: Vec::new(),
            clusters: Vec::new(),
            vips: Vec::new(),
            serve_stale: false,
            conditions: Vec::new(),
            headless: false,
            props: ServiceProps::default(),
            endpoints: Vec::new(),
        }
    }
}

/// What federation publishes (on a `watch` channel) for the gateway and DNS:
/// the imports this cluster sees and every cluster it knows, itself included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    pub imports: std::collections::BTreeMap<ServiceKey, Import>,
    pub clusters: std::collections::BTreeMap<ClusterId, ClusterInfo>,
}
