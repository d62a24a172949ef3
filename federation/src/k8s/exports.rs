//! From Kubernetes objects to causeway exports, pure: a ServiceExport, the
//! Service it names and that Service's EndpointSlices give one [`Export`], or
//! the reason the export is not valid (reported on the ServiceExport).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use causeway_catalog::{
    ClusterId, Endpoint, Export, ExportTo, IpFamily, Port, Protocol, ServiceKey, ServiceProps,
    SessionAffinity, UnixMillis,
};
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::crd::{ServiceExport, ServiceExportSpec};

/// Annotation on a ServiceExport: comma-separated clusters allowed to import it.
pub const EXPORT_TO: &str = "causeway.io/export-to";
/// Annotation on a ServiceExport: `"true"` keeps serving it from a silent cluster.
pub const SERVE_STALE: &str = "causeway.io/serve-stale";
/// The label an EndpointSlice carries naming its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why a ServiceExport is not exported: the `Valid=False` reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

fn invalid(reason: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        reason,
        message: message.into(),
    }
}

/// The export for `se`, given its Service (if any) and EndpointSlices.
pub fn build_export(
    se: &ServiceExport,
    svc: Option<&Service>,
    slices: &[&EndpointSlice],
) -> Result<Export, Invalid> {
    let (ns, name) = (
        se_namespace(se),
        se.metadata.name.as_deref().unwrap_or_default(),
    );
    let key = ServiceKey::new(ns, name).map_err(|e| invalid("InvalidName", e.to_string()))?;
    let svc = svc.ok_or_else(|| {
        invalid(
            "NoService",
            format!("no Service {key} to export; create it or delete this ServiceExport"),
        )
    })?;
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        return Err(invalid(
            "InvalidServiceType",
            format!("Service {key} is of type ExternalName, which cannot be exported"),
        ));
    }
    let svc_ports = spec.ports.clone().unwrap_or_default();
    let ports = svc_ports
        .iter()
        .map(to_port)
        .collect::<Result<Vec<Port>, Invalid>>()?;
    let export = Export {
        endpoints: endpoints(&svc_ports, slices),
        ports,
        export_to: export_to(se)?,
        created_at: created_at(se),
        serve_stale: annotation(se, SERVE_STALE) == Some("true"),
        headless: spec.cluster_ip.as_deref() == Some("None"),
        props: ServiceProps {
            labels: exported(se, |s| &s.exported_labels),
            annotations: exported(se, |s| &s.exported_annotations),
            ..props(&spec)
        },
        key,
    };
    export
        .validate()
        .map_err(|e| invalid("InvalidPorts", e.to_string()))?;
    Ok(export)
}

/// The labels or annotations the ServiceExport's spec says to export.
fn exported(
    se: &ServiceExport,
    field: impl Fn(&ServiceExportSpec) -> &Option<BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    se.spec
        .spec
        .as_ref()
        .and_then(|s| field(s).clone())
        .unwrap_or_default()
}

/// The MCS global properties, as the Service says.
fn props(spec: &ServiceSpec) -> ServiceProps {
    let affinity = match spec.session_affinity.as_deref() {
        Some("ClientIP") => SessionAffinity::ClientIp {
            timeout_seconds: spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref()?.timeout_seconds),
        },
        _ => SessionAffinity::None,
    };
    let families = spec
        .ip_families
        .iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            "IPv4" => Some(IpFamily::IPv4),
            "IPv6" => Some(IpFamily::IPv6),
            _ => None,
        });
    ServiceProps {
        session_affinity: affinity,
        internal_traffic_policy: spec.internal_traffic_policy.clone(),
        traffic_distribution: spec.traffic_distribution.clone(),
        ip_families: families.collect(),
        ..ServiceProps::default()
    }
}

pub fn se_namespace(se: &ServiceExport) -> &str {
    se.metadata.namespace.as_deref().unwrap_or("default")
}

fn annotation<'a>(se: &'a ServiceExport, key: &str) -> Option<&'a str> {
    se.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn to_port(p: &ServicePort) -> Result<Port, Invalid> {
    let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => {
            return Err(invalid(
                "InvalidPorts",
                format!(
                    "port {}: protocol {other:?} is not TCP, UDP or SCTP",
                    p.port
                ),
            ));
        }
    };
    let number = u16::try_from(p.port)
        .map_err(|_| invalid("InvalidPorts", format!("port {} is out of range", p.port)))?;
    Ok(Port {
        name: p.name.clone().filter(|n| !n.is_empty()),
        number,
        protocol,
        app_protocol: p.app_protocol.clone(),
    })
}

fn export_to(se: &ServiceExport) -> Result<ExportTo, Invalid> {
    let Some(list) = annotation(se, EXPORT_TO) else {
        return Ok(ExportTo::All);
    };
    if matches!(list.trim(), "all" | "*") {
        return Ok(ExportTo::All);
    }
    let names = list.split(',').map(str::trim).filter(|s| !s.is_empty());
    let set: Result<BTreeSet<ClusterId>, _> = names.map(ClusterId::new).collect();
    set.map(ExportTo::Only)
        .map_err(|e| invalid("InvalidAnnotation", format!("{EXPORT_TO}: {e}")))
}

fn created_at(se: &ServiceExport) -> UnixMillis {
    let ts = se.metadata.creation_timestamp.as_ref();
    let ms = ts.map(|t| t.0.as_millisecond()).unwrap_or(0);
    UnixMillis(u64::try_from(ms).unwrap_or(0))
}

/// Ready addresses (with their hostnames) and the endpoint port matched (by
/// name) to the Service's first port. The gateway connects to this address
/// for a single-port service, and to the address with the service port for a
/// multi-port one.
fn endpoints(svc_ports: &[ServicePort], slices: &[&EndpointSlice]) -> Vec<Endpoint> {
    let Some(first) = svc_ports.first() else {
        return Vec::new();
    };
    let want = first.name.clone().unwrap_or_default();
    let mut out: BTreeSet<(SocketAddr, Option<String>)> = BTreeSet::new();
    for slice in slices {
        let port = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.clone().unwrap_or_default() == want);
        let Some(number) = port
            .and_then(|p| p.port)
            .and_then(|n| u16::try_from(n).ok())
        else {
            continue;
        };
        for ep in &slice.endpoints {
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                out.insert((SocketAddr::new(ip, number), ep.hostname.clone()));
            }
        }
    }
    out.into_iter()
        .map(|(addr, hostname)| Endpoint {
            addr,
            ready: true,
            hostname,
        })
        .collect()
}

#[cfg(test)]
#[path = "exports_tests.rs"]
mod tests;
