//! The MCS EndpointSlices, pure: per import and exporting cluster (and IP
//! family), labelled `multicluster.kubernetes.io/service-name` and
//! `multicluster.kubernetes.io/source-cluster` as KEP-1645 asks, so CoreDNS's
//! `multicluster` plugin and other MCS consumers can read them. Their
//! addresses are where this cluster reaches that cluster's endpoints: for a
//! headless import each endpoint's local address (with its hostname), for a
//! ClusterSetIP import the gateway pods. They carry no
//! `kubernetes.io/service-name` label, so kube-proxy does not route by them.

use std::net::IpAddr;

use causeway_catalog::{ClusterId, Import, IpFamily, Port, Protocol};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::crd::{LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, ServiceImport};
use super::desired::{short_name, slice_labels};

/// The MCS EndpointSlices of `i`, owned by its ServiceImport `owner`.
pub fn mcs_slices(i: &Import, gateways: &[IpAddr], owner: &ServiceImport) -> Vec<EndpointSlice> {
    let mut out = Vec::new();
    for c in &i.clusters {
        for family in [IpFamily::IPv4, IpFamily::IPv6] {
            let endpoints = endpoints_of(i, &c.cluster, gateways, family);
            if endpoints.is_empty() {
                continue;
            }
            let ports: Vec<EndpointPort> = i
                .ports
                .iter()
                .filter(|p| c.serves(p.number, p.protocol))
                .map(port)
                .collect();
            out.push(slice(i, &c.cluster, family, endpoints, ports, owner));
        }
    }
    out
}

fn endpoints_of(i: &Import, cluster: &ClusterId, gw: &[IpAddr], f: IpFamily) -> Vec<Endpoint> {
    let ready = Some(EndpointConditions {
        ready: Some(true),
        ..EndpointConditions::default()
    });
    let of_family = |ips: &[IpAddr]| -> Vec<String> {
        let mut v: Vec<String> = ips
            .iter()
            .filter(|ip| IpFamily::of(ip) == f)
            .map(IpAddr::to_string)
            .collect();
        v.sort();
        v
    };
    if !i.headless {
        return of_family(gw)
            .into_iter()
            .map(|a| Endpoint {
                addresses: vec![a],
                conditions: ready.clone(),
                ..Endpoint::default()
            })
            .collect();
    }
    i.endpoints
        .iter()
        .filter(|e| e.cluster == *cluster)
        .filter_map(|e| {
            let addresses = of_family(&e.local);
            (!addresses.is_empty()).then(|| Endpoint {
                addresses,
                hostname: Some(e.hostname.clone()),
                conditions: ready.clone(),
                ..Endpoint::default()
            })
        })
        .collect()
}

fn port(p: &Port) -> EndpointPort {
    let protocol = match p.protocol {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    };
    EndpointPort {
        name: p.name.clone(),
        port: Some(i32::from(p.number)),
        protocol: Some(protocol.into()),
        app_protocol: p.app_protocol.clone(),
    }
}

fn slice(
    i: &Import,
    cluster: &ClusterId,
    family: IpFamily,
    endpoints: Vec<Endpoint>,
    ports: Vec<EndpointPort>,
    owner: &ServiceImport,
) -> EndpointSlice {
    let suffix = match family {
        IpFamily::IPv4 => "",
        IpFamily::IPv6 => "-v6",
    };
    let name = short_name(&format!("{}-{cluster}-mcs{suffix}", i.key.name()));
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(i.key.namespace().to_owned()),
            labels: Some(slice_labels(&[
                (LABEL_SERVICE_NAME, i.key.name()),
                (LABEL_SOURCE_CLUSTER, cluster.as_str()),
            ])),
            owner_references: Some(vec![OwnerReference {
                api_version: format!("{}/{}", super::crd::GROUP, super::crd::VERSION),
                kind: "ServiceImport".into(),
                name: owner.metadata.name.clone().unwrap_or_default(),
                uid: owner.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        address_type: family.as_str().into(),
        endpoints,
        ports: Some(ports),
    }
}
