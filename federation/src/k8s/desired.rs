//! What the sink wants in the cluster, pure: per import a ServiceImport, a
//! derived selector-less ClusterIP Service (its ClusterIP is the import's
//! ClusterSetIP) and an EndpointSlice sending its ports to the gateway pods'
//! per-import ports. Everything carries the managed-by label.

use std::collections::BTreeMap;
use std::net::IpAddr;

use causeway_catalog::{CatalogSnapshot, Import};
use k8s_openapi::api::core::v1::{Service, ServicePort as CoreServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::crd::{
    ClusterStatus, ServiceImport, ServiceImportSpec, ServiceImportStatus, ServicePort,
};
use super::exports::SERVICE_NAME_LABEL;
use causeway_catalog::PortKey;

pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "causeway";
/// Annotation on a ServiceImport: `port/protocol=gatewayPort,...`.
pub const GATEWAY_PORTS: &str = "causeway.io/gateway-ports";
const SLICE_MANAGER: &str = "causeway.io/federation";

pub fn labels(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned())]);
    l.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    l
}

/// The derived Service's name: `<service>-clusterset`, shortened with a hash if too long.
pub fn derived_name(name: &str) -> String {
    let full = format!("{name}-clusterset");
    if full.len() <= 63 {
        return full;
    }
    let hash = full
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("{}-{hash:08x}", &name[..40])
}

fn port_name(i: &Import, n: u16) -> Option<String> {
    i.ports
        .iter()
        .find(|p| p.number == n)
        .and_then(|p| p.name.clone())
}

/// The ServiceImport for each import, keyed by namespace/name.
pub fn service_imports(
    catalog: &CatalogSnapshot,
    gw: &BTreeMap<PortKey, u16>,
) -> Vec<ServiceImport> {
    catalog
        .imports
        .values()
        .map(|i| service_import(i, gw))
        .collect()
}

fn service_import(i: &Import, gw: &BTreeMap<PortKey, u16>) -> ServiceImport {
    let ports = i.ports.iter().map(|p| ServicePort {
        name: p.name.clone(),
        protocol: p.protocol.as_str().to_uppercase(),
        port: i32::from(p.number),
    });
    let recorded: Vec<String> = gateway_ports_of(i, gw)
        .map(|(k, g)| format!("{}/{}={g}", k.port, k.protocol.as_str()))
        .collect();
    let meta = ObjectMeta {
        name: Some(i.key.name().to_owned()),
        namespace: Some(i.key.namespace().to_owned()),
        labels: Some(labels(&[])),
        annotations: Some(BTreeMap::from([(
            GATEWAY_PORTS.to_owned(),
            recorded.join(","),
        )])),
        ..ObjectMeta::default()
    };
    let spec = ServiceImportSpec {
        ports: ports.collect(),
        type_: "ClusterSetIP".into(),
        // The upstream CRD allows one IP (maxItems: 1).
        ips: i.vips.first().map(IpAddr::to_string).into_iter().collect(),
    };
    let clusters = i
        .clusters
        .iter()
        .map(|c| ClusterStatus {
            cluster: c.cluster.to_string(),
        })
        .collect();
    ServiceImport::new(meta, spec, ServiceImportStatus { clusters })
}

fn gateway_ports_of<'a>(
    i: &'a Import,
    gw: &'a BTreeMap<PortKey, u16>,
) -> impl Iterator<Item = (&'a PortKey, u16)> + 'a {
    gw.range(
        PortKey {
            service: i.key.clone(),
            port: 0,
            protocol: causeway_catalog::Protocol::Tcp,
        }..,
    )
    .take_while(move |(k, _)| k.service == i.key)
    .map(|(k, g)| (k, *g))
}

/// The derived Service of an import, owned by its ServiceImport (`owner`).
pub fn derived_service(i: &Import, gw: &BTreeMap<PortKey, u16>, owner: &ServiceImport) -> Service {
    let ports = gateway_ports_of(i, gw).map(|(k, g)| CoreServicePort {
        name: port_name(i, k.port),
        port: i32::from(k.port),
        protocol: Some(k.protocol.as_str().to_uppercase()),
        target_port: Some(IntOrString::Int(i32::from(g))),
        ..CoreServicePort::default()
    });
    let name = derived_name(i.key.name());
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(i.key.namespace().to_owned()),
            labels: Some(labels(&[(
                "multicluster.kubernetes.io/service-name",
                i.key.name(),
            )])),
            owner_references: Some(vec![owner_ref(owner)]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: i.vips.first().map(IpAddr::to_string),
            ports: Some(ports.collect()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn owner_ref(si: &ServiceImport) -> OwnerReference {
    OwnerReference {
        api_version: "multicluster.x-k8s.io/v1alpha1".into(),
        kind: "ServiceImport".into(),
        name: si.metadata.name.clone().unwrap_or_default(),
        uid: si.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// The EndpointSlice of a derived Service: the gateway pods on the import's gateway ports.
pub fn derived_slice(
    i: &Import,
    gw: &BTreeMap<PortKey, u16>,
    gateways: &[IpAddr],
    owner: &Service,
) -> EndpointSlice {
    let svc_name = owner.metadata.name.clone().unwrap_or_default();
    let v4 = gateways.iter().filter(|ip| ip.is_ipv4());
    let endpoints = v4.map(|ip| Endpoint {
        addresses: vec![ip.to_string()],
        ..Endpoint::default()
    });
    let ports = gateway_ports_of(i, gw).map(|(k, g)| EndpointPort {
        name: port_name(i, k.port),
        port: Some(i32::from(g)),
        protocol: Some(k.protocol.as_str().to_uppercase()),
        app_protocol: None,
    });
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(svc_name.clone()),
            namespace: owner.metadata.namespace.clone(),
            labels: Some(labels(&[
                (SERVICE_NAME_LABEL, &svc_name),
                ("endpointslice.kubernetes.io/managed-by", SLICE_MANAGER),
            ])),
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
