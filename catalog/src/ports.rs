//! Gateway ports for imported service ports in Kubernetes mode, pure and
//! deterministic: every federation replica (which records them on the
//! ServiceImport and targets them from the derived Service) and every gateway
//! replica (which listens on them) compute the same map from the same catalog. Each port hashes (FNV-1a) to a preferred slot in the
//! range and probes upward, services taken in sorted order.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{CatalogSnapshot, Import, Protocol};
use crate::names::{ClusterId, ServiceKey};
use crate::service::HeadlessEndpoint;

/// One imported service port, or one port of one remote endpoint of a headless import.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub service: ServiceKey,
    pub port: u16,
    pub protocol: Protocol,
    /// `(cluster, hostname)` for a headless import's endpoint.
    pub endpoint: Option<(ClusterId, String)>,
}

impl PortKey {
    fn text(&self) -> String {
        let base = format!("{}/{}/{}", self.service, self.port, self.protocol.as_str());
        match &self.endpoint {
            None => base,
            Some((cluster, host)) => format!("{base}/{cluster}/{host}"),
        }
    }
}

impl HeadlessEndpoint {
    /// Reached through the local gateway: it has local addresses of its own
    /// (a remote endpoint), not its own addresses (this cluster's).
    pub fn tunnelled(&self) -> bool {
        !self.local.is_empty() && self.local != self.addresses
    }
}

/// The ports the gateway listens on for `i`: the service's ports of a
/// ClusterSetIP import, each remote endpoint's of a headless one.
pub fn port_keys(i: &Import) -> Vec<PortKey> {
    let key = |port: &crate::model::Port, endpoint: Option<(ClusterId, String)>| PortKey {
        service: i.key.clone(),
        port: port.number,
        protocol: port.protocol,
        endpoint,
    };
    if !i.headless {
        return i.ports.iter().map(|p| key(p, None)).collect();
    }
    let remote = i.endpoints.iter().filter(|e| e.tunnelled());
    remote
        .flat_map(|e| {
            let ep = (e.cluster.clone(), e.hostname.clone());
            i.ports.iter().map(move |p| key(p, Some(ep.clone())))
        })
        .collect()
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The gateway port of every imported service port; ports that do not fit
/// in `base..base+count` are left out (callers compare counts and warn).
pub fn gateway_ports(catalog: &CatalogSnapshot, base: u16, count: u16) -> BTreeMap<PortKey, u16> {
    let mut out = BTreeMap::new();
    let mut used = BTreeSet::new();
    let keys = catalog.imports.values().flat_map(port_keys);
    for key in keys.collect::<BTreeSet<_>>() {
        let text = key.text();
        let first = fnv1a(&text) % u64::from(count.max(1));
        let slot = (0..u64::from(count))
            .map(|i| (first + i) % u64::from(count))
            .find(|s| !used.contains(s));
        if let Some((s, port)) =
            slot.and_then(|s| u16::try_from(u64::from(base) + s).ok().map(|p| (s, p)))
        {
            used.insert(s);
            out.insert(key, port);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Import, Port};

    fn catalog(services: &[(&str, &[u16])]) -> CatalogSnapshot {
        let mut c = CatalogSnapshot::default();
        for (key, ports) in services {
            let key: ServiceKey = key.parse().unwrap();
            let ports = ports
                .iter()
                .map(|n| Port::tcp(&format!("p{n}"), *n))
                .collect();
            let import = Import {
                key: key.clone(),
                ports,
                clusters: vec![],
                vips: vec![],
                serve_stale: false,
                conditions: vec![],
                headless: false,
                props: Default::default(),
                endpoints: vec![],
            };
            c.imports.insert(key, import);
        }
        c
    }

    #[test]
    fn deterministic_distinct_and_in_range() {
        let c = catalog(&[
            ("a/web", &[80, 443]),
            ("b/db", &[5432]),
            ("c/x", &[1, 2, 3]),
        ]);
        let m = gateway_ports(&c, 20000, 8);
        assert_eq!(m.len(), 6);
        let ports: BTreeSet<u16> = m.values().copied().collect();
        assert_eq!(ports.len(), 6, "each port gets its own gateway port");
        assert!(ports.iter().all(|p| (20000..20008).contains(p)));
        assert_eq!(gateway_ports(&c, 20000, 8), m, "same catalog, same ports");
    }

    #[test]
    fn a_full_range_leaves_the_rest_out() {
        let c = catalog(&[("a/web", &[80, 443]), ("b/db", &[5432])]);
        assert_eq!(gateway_ports(&c, 20000, 2).len(), 2);
        assert_eq!(gateway_ports(&c, 65535, 1).len(), 1);
    }

    #[test]
    fn adding_a_service_keeps_unclashed_ports() {
        let small = gateway_ports(&catalog(&[("a/web", &[80])]), 20000, 10000);
        assert_eq!(
            small.keys().next().unwrap().text(),
            "a/web/80/tcp",
            "hash input unchanged"
        );
        let big = gateway_ports(
            &catalog(&[("a/web", &[80]), ("z/late", &[80])]),
            20000,
            10000,
        );
        let key = small.keys().next().unwrap();
        assert_eq!(small[key], big[key]);
    }
}

#[cfg(test)]
mod headless_tests {
    use super::*;
    use crate::model::{Import, Port};

    #[test]
    fn remote_endpoints_of_a_headless_import_get_a_port_each_and_local_ones_none() {
        let key: ServiceKey = "ns/db".parse().unwrap();
        let ep = |cluster: &str, host: &str, addr: &str, local: &str| HeadlessEndpoint {
            cluster: ClusterId::new(cluster).unwrap(),
            hostname: host.into(),
            addresses: vec![addr.parse().unwrap()],
            local: vec![local.parse().unwrap()],
        };
        let mut i = Import::new(key.clone());
        i.headless = true;
        i.ports = vec![Port::tcp("pg", 5432), Port::tcp("metrics", 9187)];
        i.endpoints = vec![
            ep("a", "db-0", "10.1.0.1", "10.1.0.1"),
            ep("b", "db-0", "10.2.0.1", "10.96.0.140"),
            ep("b", "db-1", "10.2.0.2", "10.96.0.141"),
        ];
        let mut c = CatalogSnapshot::default();
        c.imports.insert(key, i);
        let m = gateway_ports(&c, 20000, 100);
        assert_eq!(m.len(), 4, "two ports of each of b's endpoints: {m:?}");
        assert!(
            m.keys()
                .all(|k| k.endpoint.as_ref().is_some_and(|e| e.0.as_str() == "b"))
        );
    }
}
