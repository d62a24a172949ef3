//! Building the catalog this cluster publishes, pure: the MCS merge of the
//! local exports and every peer's view at its current freshness, with
//! ClusterSetIPs filled in.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use causeway_catalog::{
    CatalogSnapshot, ClusterId, ClusterInfo, Export, Freshness, Import, LeaseConfig, PeerView,
    ServiceKey, VipAllocator, VipClaims, VipError, VipKey, merge,
};

/// One peer as the merge sees it.
#[derive(Debug, Clone)]
pub struct PeerInput {
    pub info: ClusterInfo,
    pub freshness: Freshness,
    pub exports: Arc<Vec<Export>>,
}

/// The catalog for `local`, and any ClusterSetIP that could not be allocated.
/// `claims` (Kubernetes mode) are the addresses the cluster already holds.
pub fn build_catalog(
    local: &ClusterInfo,
    local_exports: &[Export],
    peers: &[PeerInput],
    vips: &mut VipAllocator,
    claims: &VipClaims,
) -> (CatalogSnapshot, Vec<VipError>) {
    let mut views = vec![PeerView {
        info: local,
        freshness: Freshness::Fresh,
        exports: local_exports,
    }];
    views.extend(peers.iter().map(|p| PeerView {
        info: &p.info,
        freshness: p.freshness,
        exports: &p.exports,
    }));
    let mut imports = merge(&local.name, &views);
    vips.claim(claims);
    let keys: Vec<VipKey> = imports
        .values()
        .flat_map(|i| vip_keys(&local.name, i))
        .collect();
    let errors = vips.sync(&keys);
    for import in imports.values_mut() {
        fill_addresses(&local.name, import, vips);
    }
    let mut clusters = BTreeMap::new();
    clusters.insert(local.name.clone(), local.clone());
    for p in peers {
        clusters.insert(p.info.name.clone(), p.info.clone());
    }
    (CatalogSnapshot { imports, clusters }, errors)
}

/// What needs a local address: a ClusterSetIP import, or each endpoint of a
/// headless import in another cluster (this cluster's are reached directly).
fn vip_keys(local: &ClusterId, import: &Import) -> Vec<VipKey> {
    if !import.headless {
        return vec![VipKey::Service(import.key.clone())];
    }
    import
        .endpoints
        .iter()
        .filter(|e| e.cluster != *local)
        .map(|e| endpoint_key(&import.key, &e.cluster, &e.hostname))
        .collect()
}

fn endpoint_key(service: &ServiceKey, cluster: &ClusterId, hostname: &str) -> VipKey {
    VipKey::Endpoint {
        service: service.clone(),
        cluster: cluster.clone(),
        hostname: hostname.to_owned(),
    }
}

fn fill_addresses(local: &ClusterId, import: &mut Import, vips: &VipAllocator) {
    if !import.headless {
        import.vips = vips.get(&VipKey::Service(import.key.clone())).to_vec();
        return;
    }
    let key = import.key.clone();
    for e in &mut import.endpoints {
        e.local = if e.cluster == *local {
            e.addresses.clone()
        } else {
            vips.get(&endpoint_key(&key, &e.cluster, &e.hostname))
                .to_vec()
        };
    }
}

/// The earliest moment any of these peers changes freshness.
pub fn next_lease_change(
    lease: &LeaseConfig,
    last_heard: impl IntoIterator<Item = Instant>,
    now: Instant,
) -> Option<Instant> {
    last_heard
        .into_iter()
        .filter_map(|t| lease.next_change(t, now))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_catalog::{ClusterId, ExportTo, Port};
    use std::time::Duration;

    fn info(n: &str) -> ClusterInfo {
        ClusterInfo {
            name: ClusterId::new(n).unwrap(),
            region: "r".into(),
            zone: "z".into(),
            trust_domain: format!("{n}.test"),
            gateways: vec![],
        }
    }

    fn export(key: &str, serve_stale: bool) -> Export {
        Export {
            key: key.parse().unwrap(),
            ports: vec![Port::tcp("http", 80)],
            endpoints: vec![],
            export_to: ExportTo::All,
            created_at: Default::default(),
            serve_stale,
            headless: false,
            props: Default::default(),
        }
    }

    #[test]
    fn expired_peers_keep_only_serve_stale_exports_and_vips_are_filled() {
        let mut vips = VipAllocator::new(vec!["127.77.0.0/24".parse().unwrap()]).unwrap();
        let peer = |f| PeerInput {
            info: info("b"),
            freshness: f,
            exports: Arc::new(vec![export("ns/plain", false), export("ns/sticky", true)]),
        };
        let (cat, errs) = build_catalog(
            &info("a"),
            &[],
            &[peer(Freshness::Stale)],
            &mut vips,
            &VipClaims::default(),
        );
        assert!(errs.is_empty());
        assert_eq!(cat.imports.len(), 2);
        let vip = cat.imports.values().next().unwrap().vips.clone();
        assert_eq!(vip.len(), 1);
        assert_eq!(cat.clusters.len(), 2);
        let (cat, _) = build_catalog(
            &info("a"),
            &[],
            &[peer(Freshness::Expired)],
            &mut vips,
            &VipClaims::default(),
        );
        let keys: Vec<_> = cat.imports.keys().map(ToString::to_string).collect();
        assert_eq!(keys, ["ns/sticky"]);
        // Coming back, the service gets an address again.
        let (cat, _) = build_catalog(
            &info("a"),
            &[],
            &[peer(Freshness::Fresh)],
            &mut vips,
            &VipClaims::default(),
        );
        assert_eq!(cat.imports.len(), 2);
    }

    #[test]
    fn next_change_is_the_earliest() {
        let lease = LeaseConfig::new(Duration::from_secs(2), Duration::from_secs(5)).unwrap();
        let now = Instant::now();
        let a = now - Duration::from_secs(1);
        let b = now - Duration::from_secs(4);
        let next = next_lease_change(&lease, [a, b], now);
        assert_eq!(next, Some(b + Duration::from_secs(5)));
        assert_eq!(next_lease_change(&lease, [], now), None);
    }
}
