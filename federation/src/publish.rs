//! Building the catalog this cluster publishes, pure: the MCS merge of the
//! local exports and every peer's view at its current freshness, with
//! ClusterSetIPs filled in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use causeway_catalog::{
    CatalogSnapshot, ClusterId, ClusterInfo, Export, Freshness, Import, LeaseConfig, PeerView,
    ServiceKey, VipAllocator, VipClaims, VipError, VipKey, merge,
};

/// Which cluster each gateway address belongs to; kept across merges so a
/// later claim never takes an address from its owner.
pub type GatewayOwners = BTreeMap<SocketAddr, ClusterId>;

/// One peer as the merge sees it.
#[derive(Debug, Clone)]
pub struct PeerInput {
    pub info: ClusterInfo,
    pub freshness: Freshness,
    pub exports: Arc<Vec<Export>>,
}

/// What one merge produced.
#[derive(Debug, Default)]
pub struct Built {
    pub catalog: CatalogSnapshot,
    /// ClusterSetIPs that could not be allocated.
    pub vip_errors: Vec<VipError>,
    /// Per peer, gateway addresses dropped because another cluster owns them.
    pub taken: BTreeMap<ClusterId, usize>,
}

/// The catalog for `local`: the merge, ClusterSetIPs, and each gateway address
/// under exactly one cluster (see [`own_gateways`]). `claims` (Kubernetes
/// mode) are the addresses the cluster already holds.
pub fn build_catalog(
    local: &ClusterInfo,
    local_exports: &[Export],
    peers: &[PeerInput],
    vips: &mut VipAllocator,
    claims: &VipClaims,
    owners: &mut GatewayOwners,
) -> Built {
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
    let mut infos: Vec<ClusterInfo> = peers.iter().map(|p| p.info.clone()).collect();
    let taken = own_gateways(local, &mut infos, owners);
    let mut clusters = BTreeMap::new();
    clusters.insert(local.name.clone(), local.clone());
    for info in infos {
        clusters.insert(info.name.clone(), info);
    }
    Built {
        catalog: CatalogSnapshot { imports, clusters },
        vip_errors: errors,
        taken,
    }
}

/// Leaves each gateway address to one cluster: this cluster's own addresses
/// are its own; an address keeps the owner it had while that owner still
/// claims it; a new address goes to the first claimant by name. Every other
/// claim is removed from the claimant's info; returns how many per peer.
pub fn own_gateways(
    local: &ClusterInfo,
    peers: &mut [ClusterInfo],
    owners: &mut GatewayOwners,
) -> BTreeMap<ClusterId, usize> {
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    let claims = |addr: &SocketAddr, c: &ClusterId| {
        peers
            .iter()
            .any(|p| p.name == *c && p.gateways.contains(addr))
    };
    owners.retain(|addr, owner| claims(addr, owner));
    for addr in &local.gateways {
        owners.insert(*addr, local.name.clone());
    }
    for p in peers.iter() {
        for addr in &p.gateways {
            owners.entry(*addr).or_insert_with(|| p.name.clone());
        }
    }
    let mut taken = BTreeMap::new();
    for p in peers.iter_mut() {
        let before = p.gateways.len();
        p.gateways.retain(|a| owners.get(a) == Some(&p.name));
        if p.gateways.len() < before {
            taken.insert(p.name.clone(), before - p.gateways.len());
        }
    }
    taken
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
        let mut owners = GatewayOwners::new();
        let mut build = |f| {
            let claims = VipClaims::default();
            build_catalog(&info("a"), &[], &[peer(f)], &mut vips, &claims, &mut owners)
        };
        let Built {
            catalog: cat,
            vip_errors: errs,
            ..
        } = build(Freshness::Stale);
        assert!(errs.is_empty());
        assert_eq!(cat.imports.len(), 2);
        let vip = cat.imports.values().next().unwrap().vips.clone();
        assert_eq!(vip.len(), 1);
        assert_eq!(cat.clusters.len(), 2);
        let cat = build(Freshness::Expired).catalog;
        let keys: Vec<_> = cat.imports.keys().map(ToString::to_string).collect();
        assert_eq!(keys, ["ns/sticky"]);
        // Coming back, the service gets an address again.
        let cat = build(Freshness::Fresh).catalog;
        assert_eq!(cat.imports.len(), 2);
    }

    fn with_gateways(n: &str, gws: &[&str]) -> ClusterInfo {
        let mut i = info(n);
        i.gateways = gws.iter().map(|g| g.parse().unwrap()).collect();
        i
    }

    /// The attack of finding 4: `zz` advertises `west`'s gateway address (and
    /// this cluster's), and neither is taken from its owner, before or after
    /// `zz` sorts first, and across later merges.
    #[test]
    fn a_peer_cannot_take_another_clusters_gateway_address() {
        let local = with_gateways("a", &["10.0.0.1:443"]);
        let west = with_gateways("west", &["10.0.0.2:443"]);
        let mut owners = GatewayOwners::new();
        let mut peers = vec![west.clone()];
        assert!(own_gateways(&local, &mut peers, &mut owners).is_empty());
        for attacker in ["zz", "aa"] {
            let evil = with_gateways(attacker, &["10.0.0.2:443", "10.0.0.1:443", "10.0.0.9:443"]);
            let mut peers = vec![evil, west.clone()];
            let taken = own_gateways(&local, &mut peers, &mut owners);
            assert_eq!(taken[&ClusterId::new(attacker).unwrap()], 2);
            let by_name: BTreeMap<_, _> = peers.iter().map(|p| (p.name.as_str(), p)).collect();
            assert_eq!(by_name["west"].gateways, west.gateways);
            let own: Vec<String> = by_name[attacker]
                .gateways
                .iter()
                .map(|g| g.to_string())
                .collect();
            assert_eq!(own, ["10.0.0.9:443"]);
        }
        // Once west stops claiming its old address, the address is free again.
        let mut peers = vec![with_gateways("zz", &["10.0.0.2:443"]), info("west")];
        assert!(own_gateways(&local, &mut peers, &mut owners).is_empty());
    }

    #[test]
    fn two_new_claimants_leave_the_address_to_one() {
        let local = info("a");
        let mut owners = GatewayOwners::new();
        let mut peers = vec![
            with_gateways("c", &["10.0.0.5:1"]),
            with_gateways("b", &["10.0.0.5:1"]),
        ];
        let taken = own_gateways(&local, &mut peers, &mut owners);
        assert_eq!(taken.len(), 1);
        let holders = peers.iter().filter(|p| !p.gateways.is_empty()).count();
        assert_eq!(holders, 1);
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
