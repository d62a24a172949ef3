//! Waiting until a planned clusterset is up: every admin endpoint ready, and
//! every cluster importing every other cluster's own demo service.

use std::net::IpAddr;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, ClusterId, ServiceKey};

use super::http::{HttpError, get, get_json};
use super::plan::{ClusterPlan, Plan};

const REQUEST_LIMIT: Duration = Duration::from_secs(2);

/// Where one cluster stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// No admin answer yet (starting).
    Starting,
    /// `/readyz` is not 200 yet.
    NotReady(String),
    /// Ready; these peers' exports are not imported yet.
    Waiting(Vec<ClusterId>),
    Ready,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Starting => f.write_str("starting"),
            Stage::NotReady(why) => write!(f, "{}", why.trim()),
            Stage::Waiting(peers) => {
                let names: Vec<_> = peers.iter().map(ClusterId::as_str).collect();
                write!(f, "waiting for exports of {}", names.join(", "))
            }
            Stage::Ready => f.write_str("ready"),
        }
    }
}

/// The cluster's own demo service: exported by it alone, so seeing it proves the link.
pub fn own_service(c: &ClusterPlan) -> Option<ServiceKey> {
    let own = format!("hello-{}", c.name);
    c.exports
        .iter()
        .map(|e| &e.key)
        .find(|k| k.name() == own)
        .cloned()
}

/// One look at one cluster.
pub async fn stage(plan: &Plan, c: &ClusterPlan) -> Stage {
    match get(c.admin, "/readyz", REQUEST_LIMIT).await {
        Err(_) => return Stage::Starting,
        Ok((200, _)) => {}
        Ok((_, body)) => return Stage::NotReady(body),
    }
    let Ok(snap) = catalog(c).await else {
        return Stage::NotReady("catalog not served yet".into());
    };
    let missing: Vec<ClusterId> = plan
        .clusters
        .iter()
        .filter(|p| p.name != c.name && !serves(&snap, p))
        .map(|p| p.name.clone())
        .collect();
    if missing.is_empty() {
        Stage::Ready
    } else {
        Stage::Waiting(missing)
    }
}

/// The cluster's merged catalog from `/v1/catalog`.
pub async fn catalog(c: &ClusterPlan) -> Result<CatalogSnapshot, HttpError> {
    get_json(c.admin, "/v1/catalog", REQUEST_LIMIT).await
}

/// Whether `snap` imports `peer`'s own service, served by `peer`, with a ClusterSetIP.
fn serves(snap: &CatalogSnapshot, peer: &ClusterPlan) -> bool {
    let Some(key) = own_service(peer) else {
        return true;
    };
    snap.imports
        .get(&key)
        .is_some_and(|i| !i.vips.is_empty() && i.clusters.iter().any(|s| s.cluster == peer.name))
}

/// The ClusterSetIP `snap` assigned to `key`, if any (IPv4 first).
pub fn vip_of(snap: &CatalogSnapshot, key: &ServiceKey) -> Option<IpAddr> {
    let vips = &snap.imports.get(key)?.vips;
    vips.iter().find(|v| v.is_ipv4()).or(vips.first()).copied()
}
