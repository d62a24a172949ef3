//! Gateway ports for imported service ports in Kubernetes mode, pure and
//! deterministic: every federation replica (which records them on the
//! ServiceImport and targets them from the derived Service) and every gateway
//! replica (which listens on them) compute the same map from the same catalog. Each port hashes (FNV-1a) to a preferred slot in the
//! range and probes upward, services taken in sorted order.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{CatalogSnapshot, Protocol};
use crate::names::ServiceKey;

/// One imported service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortKey {
    pub service: ServiceKey,
    pub port: u16,
    pub protocol: Protocol,
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
    let keys = catalog.imports.values().flat_map(|i| {
        i.ports.iter().map(|p| PortKey {
            service: i.key.clone(),
            port: p.number,
            protocol: p.protocol,
        })
    });
    for key in keys.collect::<BTreeSet<_>>() {
        let text = format!("{}/{}/{}", key.service, key.port, key.protocol.as_str());
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
        let big = gateway_ports(
            &catalog(&[("a/web", &[80]), ("z/late", &[80])]),
            20000,
            10000,
        );
        let key = small.keys().next().unwrap();
        assert_eq!(small[key], big[key]);
    }
}
