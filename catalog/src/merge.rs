//! Merging every cluster's exports into this cluster's imports (MCS rules).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::lease::Freshness;
use crate::model::{ClusterInfo, Export, Import, Port, ServingCluster};
use crate::names::{ClusterId, ServiceKey};
use crate::service::HeadlessEndpoint;

/// One cluster's contribution to the merge: who it is, how fresh, what it exports.
#[derive(Debug, Clone, Copy)]
pub struct PeerView<'a> {
    pub info: &'a ClusterInfo,
    pub freshness: Freshness,
    pub exports: &'a [Export],
}

/// Merges the views (the local cluster's included) into the imports `local` sees.
///
/// Exports not exported to `local`, and exports of expired clusters that are not
/// serve-stale, are left out. Ports are the union over clusters; on a clash,
/// and for every service-wide property (type, session affinity, traffic
/// policies, IP families), the oldest export wins (ties broken by cluster
/// name), and each disagreement is recorded as a `Conflict` condition. The
/// result does not depend on the order of `views` or exports. ClusterSetIPs
/// and headless endpoints' local addresses are left empty: the
/// `VipAllocator` assigns them.
pub fn merge(local: &ClusterId, views: &[PeerView<'_>]) -> BTreeMap<ServiceKey, Import> {
    let mut by_key: BTreeMap<&ServiceKey, Vec<(&Export, &PeerView<'_>)>> = BTreeMap::new();
    for view in views {
        for export in view.exports.iter().filter(|e| visible(local, view, e)) {
            by_key.entry(&export.key).or_default().push((export, view));
        }
    }
    by_key
        .into_iter()
        .map(|(key, mut contributions)| {
            contributions.sort_by(|a, b| {
                (a.0.created_at, &a.1.info.name).cmp(&(b.0.created_at, &b.1.info.name))
            });
            (key.clone(), merge_one(key, &contributions))
        })
        .collect()
}

fn visible(local: &ClusterId, view: &PeerView<'_>, export: &Export) -> bool {
    let allowed = view.info.name == *local || export.export_to.allows(local);
    let alive = view.freshness != Freshness::Expired || export.serve_stale;
    allowed && alive
}

/// `contributions` are sorted oldest first.
fn merge_one(key: &ServiceKey, contributions: &[(&Export, &PeerView<'_>)]) -> Import {
    let named: Vec<(&Export, &ClusterId)> = contributions
        .iter()
        .map(|(e, v)| (*e, &v.info.name))
        .collect();
    let ports = union_of_ports(&named);
    let mut clusters: Vec<ServingCluster> = contributions
        .iter()
        .map(|(export, view)| ServingCluster {
            cluster: view.info.name.clone(),
            region: view.info.region.clone(),
            zone: view.info.zone.clone(),
            ready_endpoints: export.ready_endpoints(),
            freshness: view.freshness,
            ports: export.ports.clone(),
        })
        .collect();
    clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    let oldest = contributions.first().map(|(e, _)| *e);
    let headless = oldest.is_some_and(|e| e.headless);
    Import {
        key: key.clone(),
        ports,
        clusters,
        vips: Vec::new(),
        serve_stale: oldest.is_some_and(|e| e.serve_stale),
        conditions: crate::conflict::find(&named),
        headless,
        props: oldest.map(|e| e.props.clone()).unwrap_or_default(),
        endpoints: if headless {
            headless_endpoints(&named)
        } else {
            Vec::new()
        },
    }
}

/// KEP-1645 "Service Port": the union, merged by name first, then by
/// number and protocol; where two ports clash the older export's wins.
fn union_of_ports(exports: &[(&Export, &ClusterId)]) -> Vec<Port> {
    let mut ports: Vec<Port> = Vec::new();
    for (export, _) in exports {
        for port in &export.ports {
            if !ports.iter().any(|p| p == port || p.clashes_with(port)) {
                ports.push(port.clone());
            }
        }
    }
    ports
}

/// The ready endpoints of every constituent export, one entry per cluster
/// and hostname (a dual-stack pod has an address of each family).
/// `local` is left empty: the VIP allocation fills it.
fn headless_endpoints(exports: &[(&Export, &ClusterId)]) -> Vec<HeadlessEndpoint> {
    let mut by: BTreeMap<(&ClusterId, String), BTreeSet<IpAddr>> = BTreeMap::new();
    for (export, cluster) in exports {
        for ep in export.endpoints.iter().filter(|e| e.ready) {
            by.entry((*cluster, ep.dns_label()))
                .or_default()
                .insert(ep.addr.ip());
        }
    }
    by.into_iter()
        .map(|((cluster, hostname), addresses)| HeadlessEndpoint {
            cluster: cluster.clone(),
            hostname,
            addresses: addresses.into_iter().collect(),
            local: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
