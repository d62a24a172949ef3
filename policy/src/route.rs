//! Which cluster takes a connection first: weighted split and consistent
//! hash over the healthy clusters. The caller's usual order (locality, load)
//! follows as the failover list.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use causeway_catalog::ClusterId;

use crate::spec::{HashKey, PolicySpec};

/// Which rule chose the cluster (for metrics and the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Split,
    Hash,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Split => "split",
            Rule::Hash => "hash",
        }
    }
}

/// The first cluster for a connection, when the policy routes at all.
/// `healthy` are the clusters that can take it now (reachable, serving the
/// port, not ejected): an unhealthy cluster's share goes to the others.
pub fn route(
    spec: &PolicySpec,
    healthy: &[ClusterId],
    key: u64,
    roll: f64,
) -> Option<(ClusterId, Rule)> {
    let weights = (!spec.split.is_empty()).then_some(&spec.split);
    match spec.hash {
        Some(_) => hash_pick(key, healthy, weights).map(|c| (c, Rule::Hash)),
        None => split_pick(weights?, healthy, roll).map(|c| (c, Rule::Split)),
    }
}

/// Weighted random choice among the healthy clusters that have a weight;
/// `roll` is uniform in [0, 1). None when no weighted cluster is healthy.
pub fn split_pick(
    weights: &BTreeMap<ClusterId, u32>,
    healthy: &[ClusterId],
    roll: f64,
) -> Option<ClusterId> {
    let live: Vec<(&ClusterId, u64)> = weights
        .iter()
        .filter(|(c, w)| **w > 0 && healthy.contains(c))
        .map(|(c, w)| (c, u64::from(*w)))
        .collect();
    let total: u64 = live.iter().map(|(_, w)| w).sum();
    let mut point = (roll.clamp(0.0, 1.0) * total as f64) as u64;
    for (c, w) in live {
        if point < w {
            return Some(c.clone());
        }
        point -= w;
    }
    None
}

/// Weighted rendezvous hashing: each cluster scores the key, the best wins.
/// When a cluster leaves, only the keys it held move (about 1/N of them).
/// Without weights every healthy cluster weighs the same.
pub fn hash_pick(
    key: u64,
    healthy: &[ClusterId],
    weights: Option<&BTreeMap<ClusterId, u32>>,
) -> Option<ClusterId> {
    let weight = |c: &ClusterId| weights.map_or(1, |w| w.get(c).copied().unwrap_or(0));
    healthy
        .iter()
        .filter(|c| weight(c) > 0)
        .map(|c| (score(key, c, weight(c)), c))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.clone())
}

fn score(key: u64, cluster: &ClusterId, weight: u32) -> f64 {
    let h = mix(key ^ fnv(cluster.as_str().as_bytes()));
    // Uniform in (0, 1): 53 random bits, never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -f64::from(weight) / u.ln()
}

/// The hash key of a client: stable across processes and versions, so every
/// replica of a gateway sends a client to the same cluster.
pub fn client_key(kind: HashKey, client: SocketAddr) -> u64 {
    let ip = match client.ip() {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    };
    let h = fnv(&ip);
    match kind {
        HashKey::ClientIp => mix(h),
        HashKey::ClientAddress => mix(h ^ u64::from(client.port()).rotate_left(48)),
    }
}

/// FNV-1a, 64 bits.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// splitmix64's finaliser: spreads FNV's weak low bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
