//! What the sink wants in the cluster, pure: per import a ServiceImport and
//! derived selector-less ClusterIP Services (one per ClusterSetIP import,
//! whose ClusterIP is the ClusterSetIP; one per remote endpoint of a
//! headless import, whose ClusterIP is that endpoint's local address), each
//! with an EndpointSlice sending its ports to the gateway pods' ports for
//! it. The MCS EndpointSlices per exporting cluster are in [`super::mcs_slices`].
//! Everything carries the managed-by label.

use std::collections::BTreeMap;
use std::net::IpAddr;

use causeway_catalog::{
    CatalogSnapshot, HeadlessEndpoint, Import, IpFamily, Port, PortKey, SessionAffinity, port_keys,
};
use k8s_openapi::api::core::v1::{Service, ServicePort as CoreServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::crd::{
    ClientIpConfig, ClusterStatus, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, ServiceImport,
    ServiceImportBody, ServiceImportSpec, ServiceImportStatus, ServiceImportType, ServicePort,
    SessionAffinityConfig,
};
use super::exports::SERVICE_NAME_LABEL;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "causeway";
/// Annotation on a ServiceImport: `port/protocol=gatewayPort,...`.
pub const GATEWAY_PORTS: &str = "causeway.io/gateway-ports";
/// Label on the derived Service of one remote endpoint of a headless import.
pub const ENDPOINT_HOSTNAME: &str = "causeway.io/endpoint-hostname";
pub const SLICE_MANAGER: &str = "causeway.io/federation";
const SLICE_MANAGER_LABEL: &str = "endpointslice.kubernetes.io/managed-by";

/// Gateway ports by what they carry.
pub type GatewayPorts = BTreeMap<PortKey, u16>;

pub fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned())]);
    l.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    l
}

/// `base`, or a hashed shortening of it, as a valid object name (at most 63).
pub fn short_name(base: &str) -> String {
    if base.len() <= 63 {
        return base.to_owned();
    }
    let hash = base
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    let head = base[..40].trim_end_matches('-');
    format!("{head}-{hash:08x}")
}

/// The derived Service's name: `<service>-clusterset`, shortened if too long.
pub fn derived_name(name: &str) -> String {
    short_name(&format!("{name}-clusterset"))
}

/// The derived Service of one remote endpoint: `<service>-<cluster>-<hostname>`.
pub fn endpoint_service_name(name: &str, e: &HeadlessEndpoint) -> String {
    short_name(&format!("{name}-{}-{}", e.cluster, e.hostname))
}

/// The ServiceImport for each import, keyed by namespace/name.
pub fn service_imports(catalog: &CatalogSnapshot, gw: &GatewayPorts) -> Vec<ServiceImport> {
    catalog
        .imports
        .values()
        .map(|i| service_import(i, gw))
        .collect()
}

fn mcs_port(p: &Port) -> ServicePort {
    ServicePort {
        name: p.name.clone(),
        protocol: Some(p.protocol.as_str().to_uppercase()),
        app_protocol: p.app_protocol.clone(),
        port: i32::from(p.number),
    }
}

/// The import's addresses' families, in order (a headless import's are its endpoints').
fn families(i: &Import) -> Vec<String> {
    let ips: Vec<&IpAddr> = if i.headless {
        i.endpoints.iter().flat_map(|e| &e.local).collect()
    } else {
        i.vips.iter().collect()
    };
    let mut seen: Vec<IpFamily> = Vec::new();
    for f in ips.into_iter().map(IpFamily::of) {
        if !seen.contains(&f) {
            seen.push(f);
        }
    }
    if seen.is_empty() {
        seen = i.props.ip_families.clone();
    }
    seen.iter().map(|f| f.as_str().to_owned()).collect()
}

fn spec_of(i: &Import) -> ServiceImportSpec {
    let affinity = i.props.session_affinity;
    let config = match affinity {
        SessionAffinity::ClientIp { timeout_seconds } => Some(SessionAffinityConfig {
            client_ip: Some(ClientIpConfig { timeout_seconds }),
        }),
        SessionAffinity::None => None,
    };
    ServiceImportSpec {
        ports: i.ports.iter().map(mcs_port).collect(),
        ips: if i.headless {
            Vec::new()
        } else {
            i.vips.iter().map(IpAddr::to_string).collect()
        },
        type_: if i.headless {
            ServiceImportType::Headless
        } else {
            ServiceImportType::ClusterSetIP
        },
        session_affinity: Some(affinity.kube_name().into()),
        session_affinity_config: config,
        ip_families: families(i),
        internal_traffic_policy: i.props.internal_traffic_policy.clone(),
        traffic_distribution: i.props.traffic_distribution.clone(),
    }
}

fn service_import(i: &Import, gw: &GatewayPorts) -> ServiceImport {
    let recorded: Vec<String> = gateway_ports_of(i, gw)
        .filter(|(k, _)| k.endpoint.is_none())
        .map(|(k, g)| format!("{}/{}={g}", k.port, k.protocol.as_str()))
        .collect();
    let mut si = ServiceImport::new(
        i.key.name(),
        ServiceImportBody {
            spec: Some(spec_of(i)),
        },
    );
    si.metadata.namespace = Some(i.key.namespace().to_owned());
    // The exported labels and annotations (KEP-1645), then causeway's own.
    let mut l = i.props.labels.clone();
    l.extend(labels(&[]));
    si.metadata.labels = Some(l);
    let mut a = i.props.annotations.clone();
    a.insert(GATEWAY_PORTS.to_owned(), recorded.join(","));
    si.metadata.annotations = Some(a);
    let clusters = i
        .clusters
        .iter()
        .map(|c| ClusterStatus {
            cluster: c.cluster.to_string(),
        })
        .collect();
    si.status = Some(ServiceImportStatus {
        clusters,
        conditions: Vec::new(),
    });
    si
}

/// The gateway ports of `i`, in key order.
pub fn gateway_ports_of<'a>(
    i: &'a Import,
    gw: &'a GatewayPorts,
) -> impl Iterator<Item = (&'a PortKey, u16)> + 'a {
    port_keys(i)
        .into_iter()
        .filter_map(move |k| gw.get_key_value(&k).map(|(k, g)| (k, *g)))
}

/// A Service port: the import's port, sent to gateway port `g`. With several
/// ports, an unnamed one is named `<protocol>-<number>`, as the API server
/// requires a name on each port of a multi-port Service.
fn core_port(p: &Port, g: u16, several: bool) -> CoreServicePort {
    let name = p
        .name
        .clone()
        .or_else(|| several.then(|| format!("{}-{}", p.protocol.as_str(), p.number)));
    CoreServicePort {
        name,
        port: i32::from(p.number),
        protocol: Some(p.protocol.as_str().to_uppercase()),
        app_protocol: p.app_protocol.clone(),
        target_port: Some(IntOrString::Int(i32::from(g))),
        ..CoreServicePort::default()
    }
}

/// The import's ports with their gateway ports, for the service (`None`) or one endpoint.
pub fn routed_ports(
    i: &Import,
    gw: &GatewayPorts,
    endpoint: Option<&HeadlessEndpoint>,
) -> Vec<(Port, u16)> {
    let want = endpoint.map(|e| (e.cluster.clone(), e.hostname.clone()));
    i.ports
        .iter()
        .filter_map(|p| {
            let key = PortKey {
                service: i.key.clone(),
                port: p.number,
                protocol: p.protocol,
                endpoint: want.clone(),
            };
            gw.get(&key).map(|g| (p.clone(), *g))
        })
        .collect()
}

fn selectorless(
    name: String,
    ns: &str,
    labels: BTreeMap<String, String>,
    ips: &[IpAddr],
    ports: &[(Port, u16)],
    owner: &ServiceImport,
) -> Service {
    let several = ports.len() > 1;
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(ns.to_owned()),
            labels: Some(labels),
            owner_references: Some(vec![owner_ref(owner)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: ips.first().map(IpAddr::to_string),
            ports: Some(
                ports
                    .iter()
                    .map(|(p, g)| core_port(p, *g, several))
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The derived Services of an import, owned by its ServiceImport (`owner`).
pub fn derived_services(i: &Import, gw: &GatewayPorts, owner: &ServiceImport) -> Vec<Service> {
    let ns = i.key.namespace();
    let name = i.key.name();
    if !i.headless {
        let l = labels(&[(LABEL_SERVICE_NAME, name)]);
        let ports = routed_ports(i, gw, None);
        return vec![selectorless(
            derived_name(name),
            ns,
            l,
            &i.vips,
            &ports,
            owner,
        )];
    }
    i.endpoints
        .iter()
        .filter(|e| e.tunnelled())
        .map(|e| {
            let l = labels(&[
                (LABEL_SERVICE_NAME, name),
                (LABEL_SOURCE_CLUSTER, e.cluster.as_str()),
                (ENDPOINT_HOSTNAME, &e.hostname),
            ]);
            let ports = routed_ports(i, gw, Some(e));
            selectorless(
                endpoint_service_name(name, e),
                ns,
                l,
                &e.local,
                &ports,
                owner,
            )
        })
        .collect()
}

fn owner_ref(si: &ServiceImport) -> OwnerReference {
    OwnerReference {
        api_version: format!("{}/{}", super::crd::GROUP, super::crd::VERSION),
        kind: "ServiceImport".into(),
        name: si.metadata.name.clone().unwrap_or_default(),
        uid: si.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

pub fn slice_labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = labels(extra);
    l.insert(SLICE_MANAGER_LABEL.into(), SLICE_MANAGER.into());
    l
}

/// The EndpointSlice of a derived Service: the gateway pods on its target ports.
pub fn routing_slice(owner: &Service, gateways: &[IpAddr]) -> EndpointSlice {
    let svc_name = owner.metadata.name.clone().unwrap_or_default();
    let v4 = gateways.iter().filter(|ip| ip.is_ipv4());
    let endpoints = v4.map(|ip| Endpoint {
        addresses: vec![ip.to_string()],
        ..Endpoint::default()
    });
    let svc_ports = owner.spec.as_ref().and_then(|s| s.ports.clone());
    let ports = svc_ports.into_iter().flatten().map(|p| EndpointPort {
        name: p.name,
        port: match p.target_port {
            Some(IntOrString::Int(t)) => Some(t),
            _ => None,
        },
        protocol: p.protocol,
        app_protocol: p.app_protocol,
    });
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(svc_name.clone()),
            namespace: owner.metadata.namespace.clone(),
            labels: Some(slice_labels(&[(SERVICE_NAME_LABEL, &svc_name)])),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: svc_name,
                uid: owner.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: endpoints.collect(),
        ports: Some(ports.collect()),
    }
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
