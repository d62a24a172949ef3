//! The addresses the cluster's Services already hold, pure: causeway's own
//! derived Services keep theirs across leader changes and restarts, and no
//! other Service's ClusterIP is ever handed out as a ClusterSetIP.

use std::net::IpAddr;

use causeway_catalog::{ClusterId, ServiceKey, VipClaims, VipKey};
use k8s_openapi::api::core::v1::Service;

use super::crd::{LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER};
use super::desired::{ENDPOINT_HOSTNAME, MANAGED_BY, MANAGED_BY_VALUE};

/// What `services` hold.
pub fn claims<'a>(services: impl IntoIterator<Item = &'a Service>) -> VipClaims {
    let mut out = VipClaims::default();
    for svc in services {
        let ips = cluster_ips(svc);
        match derived_key(svc) {
            Some(key) => {
                out.held.entry(key).or_default().extend(ips);
            }
            None => out.foreign.extend(ips),
        }
    }
    out
}

fn cluster_ips(svc: &Service) -> Vec<IpAddr> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let mut all: Vec<&String> = spec.cluster_ips.iter().flatten().collect();
    all.extend(spec.cluster_ip.as_ref());
    let mut ips: Vec<IpAddr> = all.iter().filter_map(|s| s.parse().ok()).collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The key of a Service causeway derived, from its labels.
fn derived_key(svc: &Service) -> Option<VipKey> {
    let labels = svc.metadata.labels.as_ref()?;
    if labels.get(MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        return None;
    }
    let ns = svc.metadata.namespace.as_deref()?;
    let service = ServiceKey::new(ns, labels.get(LABEL_SERVICE_NAME)?.as_str()).ok()?;
    match (
        labels.get(LABEL_SOURCE_CLUSTER),
        labels.get(ENDPOINT_HOSTNAME),
    ) {
        (Some(cluster), Some(hostname)) => Some(VipKey::Endpoint {
            service,
            cluster: ClusterId::new(cluster.as_str()).ok()?,
            hostname: hostname.clone(),
        }),
        _ => Some(VipKey::Service(service)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn derived_services_keep_their_addresses_and_others_are_foreign() {
        let services = [
            svc(
                json!({"metadata": {"name": "web-clusterset", "namespace": "demo",
                "labels": {MANAGED_BY: MANAGED_BY_VALUE, LABEL_SERVICE_NAME: "web"}},
                "spec": {"clusterIP": "10.96.0.130", "clusterIPs": ["10.96.0.130"]}}),
            ),
            svc(
                json!({"metadata": {"name": "db-west-db-0", "namespace": "demo",
                "labels": {MANAGED_BY: MANAGED_BY_VALUE, LABEL_SERVICE_NAME: "db",
                    LABEL_SOURCE_CLUSTER: "west", ENDPOINT_HOSTNAME: "db-0"}},
                "spec": {"clusterIP": "10.96.0.140"}}),
            ),
            svc(
                json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {"clusterIP": "10.96.0.10"}}),
            ),
            svc(json!({"metadata": {"name": "hl", "namespace": "demo"},
                "spec": {"clusterIP": "None"}})),
        ];
        let c = claims(&services);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            c.held[&"demo/web".parse::<VipKey>().unwrap()],
            [ip("10.96.0.130")]
        );
        assert_eq!(
            c.held[&"demo/db/west/db-0".parse::<VipKey>().unwrap()],
            [ip("10.96.0.140")]
        );
        assert_eq!(c.foreign, [ip("10.96.0.10")].into());
    }
}
