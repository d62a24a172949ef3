//! What this cluster accepts from one peer, pure: the import allow lists,
//! the per-peer quotas, the peer's place (region and zone) as configured
//! here, and `created_at` clamped to when this cluster first saw an export.
//!
//! A peer over a quota loses only what is over it: the rest of its catalog
//! keeps working. What was refused is reported (see [`Refused`]) so the
//! session can log it and set `causeway_federation_peer_refused`.

use std::collections::BTreeMap;

use causeway_catalog::{ClusterInfo, Export, ServiceKey, UnixMillis, check_range};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::wire::export_to_proto;

/// How far this cluster trusts one peer: the `peers[]` entry's `import`,
/// `limits`, `region` and `zone`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerPolicy {
    pub import: ImportPolicy,
    pub limits: PeerLimits,
    /// The peer's region as this cluster sees it; the peer's own claim is
    /// ignored (unset: no region, so never "same region").
    pub region: Option<String>,
    pub zone: Option<String>,
}

/// `peers[].import`: which of a peer's exports this cluster imports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportPolicy {
    /// Namespaces the peer may import into; empty: any namespace except the
    /// protected ones (`kube-*`), which must be listed to be allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Services (`namespace/name`) the peer may import; empty: any service
    /// in an allowed namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceKey>,
}

/// `peers[].limits`: quotas on what one peer may put in this cluster's catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeerLimits {
    /// Services imported from the peer (each takes a ClusterSetIP).
    pub max_exports: usize,
    /// Ports of one service (each takes a listener on the gateway).
    pub max_ports_per_export: usize,
    /// Ports over all of the peer's services (gateway ports are shared by every import).
    pub max_ports: usize,
    /// Ready endpoints counted per service; only the count is kept.
    pub max_endpoints_per_export: usize,
    /// Gateway addresses the peer may advertise.
    pub max_gateways: usize,
    /// Encoded size of the peer's exports, in bytes.
    pub max_bytes: usize,
}

impl Default for PeerLimits {
    fn default() -> Self {
        Self {
            max_exports: 1000,
            max_ports_per_export: 64,
            max_ports: 2000,
            max_endpoints_per_export: 1000,
            max_gateways: 16,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// A `peers[]` policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("peers.{peer}.limits.{key}: 0 would refuse everything; use at least 1")]
    ZeroLimit { peer: String, key: &'static str },
    #[error(
        "peers.{peer}.import.namespaces: {value:?} is not a namespace name (a lowercase DNS label)"
    )]
    Namespace { peer: String, value: String },
}

impl PeerPolicy {
    /// Checks the limits and the allow list; `peer` names the entry in errors.
    pub fn validate(&self, peer: &str) -> Result<(), PolicyError> {
        let l = &self.limits;
        let limits = [
            ("max_exports", l.max_exports),
            ("max_ports_per_export", l.max_ports_per_export),
            ("max_ports", l.max_ports),
            ("max_endpoints_per_export", l.max_endpoints_per_export),
            ("max_gateways", l.max_gateways),
            ("max_bytes", l.max_bytes),
        ];
        check_range(limits, 1..).map_err(|e| PolicyError::ZeroLimit {
            peer: peer.to_owned(),
            key: e.key,
        })?;
        let bad = self.import.namespaces.iter().find(|n| !is_label(n));
        match bad {
            Some(value) => Err(PolicyError::Namespace {
                peer: peer.to_owned(),
                value: value.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn is_label(s: &str) -> bool {
    let ok = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    (1..=63).contains(&s.len()) && s.bytes().all(ok) && !s.starts_with('-') && !s.ends_with('-')
}

/// Namespaces a peer may import into only when its allow list names them.
pub fn is_protected(namespace: &str) -> bool {
    namespace.starts_with("kube-")
}

/// Why part of a peer's catalog was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The service's namespace is not allowed for this peer.
    Namespace,
    /// The service is not in the peer's `import.services` list.
    Service,
    /// Over `max_exports`.
    Exports,
    /// Over `max_ports_per_export`.
    PortsPerExport,
    /// Over `max_ports`.
    Ports,
    /// Over `max_bytes`.
    Bytes,
    /// Over `max_endpoints_per_export` (the export stays; its count is capped).
    Endpoints,
    /// Over `max_gateways` (the first addresses stay).
    Gateways,
    /// A gateway address another cluster already owns.
    GatewayOwned,
}

impl Reason {
    pub const ALL: [Reason; 9] = [
        Reason::Namespace,
        Reason::Service,
        Reason::Exports,
        Reason::PortsPerExport,
        Reason::Ports,
        Reason::Bytes,
        Reason::Endpoints,
        Reason::Gateways,
        Reason::GatewayOwned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Namespace => "namespace",
            Reason::Service => "service",
            Reason::Exports => "exports",
            Reason::PortsPerExport => "ports_per_export",
            Reason::Ports => "ports",
            Reason::Bytes => "bytes",
            Reason::Endpoints => "endpoints",
            Reason::Gateways => "gateways",
            Reason::GatewayOwned => "gateway_owned",
        }
    }
}

/// How many items each reason left out (services, or addresses for the gateway reasons).
pub type Refused = BTreeMap<Reason, usize>;

/// The peer's own description with its place taken from this cluster's
/// config and its gateway list cut to `max_gateways`.
pub fn admit_info(
    policy: &PeerPolicy,
    mut info: ClusterInfo,
    refused: &mut Refused,
) -> ClusterInfo {
    info.region = policy.region.clone().unwrap_or_default();
    info.zone = policy.zone.clone().unwrap_or_default();
    let max = policy.limits.max_gateways;
    if info.gateways.len() > max {
        *refused.entry(Reason::Gateways).or_default() += info.gateways.len() - max;
        info.gateways.truncate(max);
    }
    info
}

/// How much older than "first seen here" a new export's `created_at` may be:
/// propagation and clock skew between honest clusters, so that clusters agree
/// on the oldest export (MCS conflict resolution) when both were made around
/// the same time. A back-dating peer gains at most this much.
pub const CREATED_AT_TOLERANCE_MS: u64 = 60_000;

/// An export as it is stored on arrival: `created_at` no older than the
/// first time this cluster saw the service, less [`CREATED_AT_TOLERANCE_MS`]
/// (`now` for a new service); for a service already stored, no older than the
/// stored time (`first_seen`), so repeating a claim never moves it back. One
/// more endpoint than `max_endpoints_per_export`
/// at most, so admission can tell the peer went over. A service with a
/// ClusterSetIP keeps only its ready endpoints (only their count is used); a
/// headless one keeps them all (each gets a name and an address here).
pub fn intake(
    policy: &PeerPolicy,
    mut e: Export,
    first_seen: Option<UnixMillis>,
    now: UnixMillis,
) -> Export {
    let floor = first_seen.unwrap_or(UnixMillis(now.0.saturating_sub(CREATED_AT_TOLERANCE_MS)));
    e.created_at = e.created_at.max(floor);
    if !e.headless {
        e.endpoints.retain(|ep| ep.ready);
    }
    e.endpoints
        .truncate(policy.limits.max_endpoints_per_export.saturating_add(1));
    e
}

/// The exports (sorted by key) that fit the policy; what did not is counted in `refused`.
pub fn admit_exports<'a>(
    policy: &PeerPolicy,
    exports: impl IntoIterator<Item = &'a Export>,
    refused: &mut Refused,
) -> Vec<Export> {
    let l = &policy.limits;
    let (mut out, mut ports, mut bytes) = (Vec::new(), 0usize, 0usize);
    for e in exports {
        let size = export_to_proto(e).encoded_len();
        let reason = if let Some(r) = not_allowed(&policy.import, &e.key) {
            Some(r)
        } else if e.ports.len() > l.max_ports_per_export {
            Some(Reason::PortsPerExport)
        } else if out.len() >= l.max_exports {
            Some(Reason::Exports)
        } else if ports + e.ports.len() > l.max_ports {
            Some(Reason::Ports)
        } else if bytes + size > l.max_bytes {
            Some(Reason::Bytes)
        } else {
            None
        };
        if let Some(r) = reason {
            *refused.entry(r).or_default() += 1;
            continue;
        }
        let mut e = e.clone();
        if e.endpoints.len() > l.max_endpoints_per_export {
            *refused.entry(Reason::Endpoints).or_default() += 1;
            e.endpoints.truncate(l.max_endpoints_per_export);
        }
        (ports, bytes) = (ports + e.ports.len(), bytes + size);
        out.push(e);
    }
    out
}

fn not_allowed(import: &ImportPolicy, key: &ServiceKey) -> Option<Reason> {
    let ns = key.namespace();
    let listed = import.namespaces.iter().any(|n| n == ns);
    if !listed && (is_protected(ns) || !import.namespaces.is_empty()) {
        return Some(Reason::Namespace);
    }
    if !import.services.is_empty() && !import.services.contains(key) {
        return Some(Reason::Service);
    }
    None
}

#[cfg(test)]
#[path = "admit_tests.rs"]
mod tests;
