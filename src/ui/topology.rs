//! What the `/ui` page draws, derived from `causeway status --json` data of
//! one or more clusters: nodes, links with state and per-direction rates,
//! and services with where they are served. Pure.

use std::collections::BTreeMap;

use causeway_catalog::Freshness;
use serde::Serialize;

use crate::status::{ClusterStatus, PeerRow};

/// One `/ui/events` message: the status data and what the page draws from it.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Exactly what `causeway status --json` prints for these clusters.
    pub status: Vec<ClusterStatus>,
    pub nodes: Vec<Node>,
    pub links: Vec<Link>,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Node {
    pub name: String,
    /// `up` (its admin answered), `down` (it did not) or `unknown` (only a peer names it).
    pub state: &'static str,
}

/// Two clusters and what each says about the other.
#[derive(Debug, Clone, Serialize)]
pub struct Link {
    /// Names in order: `a < b`.
    pub a: String,
    pub b: String,
    /// `up`, `connecting` or `down`.
    pub state: &'static str,
    pub rtt_ms: Option<f64>,
    /// `quic` unless a side reports otherwise.
    pub transport: String,
    pub a_to_b: Flow,
    pub b_to_a: Flow,
    /// A's row for B and B's row for A, where known.
    pub from_a: Option<PeerRow>,
    pub from_b: Option<PeerRow>,
}

/// Traffic from one cluster towards the other, per second.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Flow {
    pub bytes_per_s: f64,
    /// Connections (streams) the source's clients opened to the other's services.
    pub connections_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    pub served_by: Vec<Served>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Served {
    pub cluster: String,
    pub ready_endpoints: usize,
    pub freshness: Freshness,
    /// Fresh with at least one ready endpoint.
    pub healthy: bool,
}

pub fn view(status: Vec<ClusterStatus>) -> View {
    let nodes = nodes(&status);
    let links = links(&status);
    let services = services(&status);
    View {
        status,
        nodes,
        links,
        services,
    }
}

fn nodes(status: &[ClusterStatus]) -> Vec<Node> {
    let mut out: BTreeMap<&str, &'static str> = BTreeMap::new();
    for st in status {
        out.insert(&st.cluster, if st.error.is_some() { "down" } else { "up" });
    }
    for p in status.iter().flat_map(|s| &s.peers) {
        out.entry(&p.name).or_insert("unknown");
    }
    out.into_iter()
        .map(|(n, state)| Node {
            name: n.to_owned(),
            state,
        })
        .collect()
}

fn links(status: &[ClusterStatus]) -> Vec<Link> {
    let by_name: BTreeMap<&str, &ClusterStatus> =
        status.iter().map(|s| (s.cluster.as_str(), s)).collect();
    let row = |from: &str, to: &str| {
        let st = by_name.get(from)?;
        st.peers.iter().find(|p| p.name == to).cloned()
    };
    let mut pairs: BTreeMap<(String, String), ()> = BTreeMap::new();
    for st in status {
        for p in &st.peers {
            let (a, b) = ordered(&st.cluster, &p.name);
            pairs.insert((a.to_owned(), b.to_owned()), ());
        }
    }
    pairs
        .into_keys()
        .map(|(a, b)| {
            let down = [&a, &b]
                .iter()
                .any(|n| by_name.get(n.as_str()).is_some_and(|s| s.error.is_some()));
            link(a.clone(), b.clone(), row(&a, &b), row(&b, &a), down)
        })
        .collect()
}

fn ordered<'a>(x: &'a str, y: &'a str) -> (&'a str, &'a str) {
    if x <= y { (x, y) } else { (y, x) }
}

fn link(
    a: String,
    b: String,
    from_a: Option<PeerRow>,
    from_b: Option<PeerRow>,
    down: bool,
) -> Link {
    let rows = [from_a.as_ref(), from_b.as_ref()];
    let states: Vec<&str> = rows.iter().flatten().map(|r| r.state.as_str()).collect();
    let state = if down
        || states
            .iter()
            .any(|s| *s != "connected" && *s != "connecting")
    {
        "down"
    } else if states.contains(&"connecting") {
        "connecting"
    } else {
        "up"
    };
    let rtts: Vec<f64> = rows.iter().flatten().filter_map(|r| r.rtt_ms).collect();
    let rtt_ms = (!rtts.is_empty()).then(|| rtts.iter().sum::<f64>() / rtts.len() as f64);
    let transport = rows
        .iter()
        .flatten()
        .find_map(|r| r.transport.clone())
        .unwrap_or_else(|| "quic".to_owned());
    Link {
        a_to_b: flow(from_a.as_ref(), from_b.as_ref()),
        b_to_a: flow(from_b.as_ref(), from_a.as_ref()),
        a,
        b,
        state,
        rtt_ms,
        transport,
        from_a,
        from_b,
    }
}

/// From `src` to `dst`: what src sent on its own connections plus what dst
/// received on its own; connections as counted by either side.
fn flow(src: Option<&PeerRow>, dst: Option<&PeerRow>) -> Flow {
    let s = src.and_then(|r| r.rates).unwrap_or_default();
    let d = dst.and_then(|r| r.rates).unwrap_or_default();
    Flow {
        bytes_per_s: s.sent_bytes_per_s + d.received_bytes_per_s,
        connections_per_s: s.outbound_streams_per_s.max(d.inbound_streams_per_s),
    }
}

fn services(status: &[ClusterStatus]) -> Vec<Service> {
    let mut out: BTreeMap<String, BTreeMap<String, Served>> = BTreeMap::new();
    for st in status {
        for import in &st.imports {
            let entry = out.entry(import.key.to_string()).or_default();
            for c in &import.clusters {
                let served = Served {
                    cluster: c.cluster.to_string(),
                    ready_endpoints: c.ready_endpoints,
                    freshness: c.freshness,
                    healthy: c.freshness == Freshness::Fresh && c.ready_endpoints > 0,
                };
                // A cluster's view of its own endpoints wins over a peer's.
                if st.cluster == served.cluster || !entry.contains_key(&served.cluster) {
                    entry.insert(served.cluster.clone(), served);
                }
            }
        }
    }
    out.into_iter()
        .map(|(name, by)| Service {
            name,
            served_by: by.into_values().collect(),
        })
        .collect()
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
