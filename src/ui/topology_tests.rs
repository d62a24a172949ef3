use std::net::SocketAddr;

use causeway_catalog::{Freshness, Import, ServingCluster};

use super::*;
use crate::ui::rates::PeerRates;

fn peer(name: &str, state: &str, rates: PeerRates) -> PeerRow {
    PeerRow {
        name: name.into(),
        state: state.into(),
        freshness: None,
        last_heard_ms_ago: None,
        reconnects: 0,
        last_error: None,
        rtt_ms: Some(2.0),
        transport: None,
        rates: Some(rates),
    }
}

fn cluster(name: &str, peers: Vec<PeerRow>) -> ClusterStatus {
    ClusterStatus {
        cluster: name.into(),
        admin: SocketAddr::from(([127, 0, 0, 1], 1)),
        error: None,
        peers,
        imports: Vec::new(),
    }
}

fn sent(bytes: f64, received: f64, out: f64, inb: f64) -> PeerRates {
    PeerRates {
        sent_bytes_per_s: bytes,
        received_bytes_per_s: received,
        outbound_streams_per_s: out,
        inbound_streams_per_s: inb,
    }
}

#[test]
fn both_sides_make_one_link_with_flows_per_direction() {
    let alpha = cluster(
        "alpha",
        vec![peer("bravo", "connected", sent(100.0, 40.0, 3.0, 0.0))],
    );
    let bravo = cluster(
        "bravo",
        vec![peer("alpha", "connected", sent(7.0, 5.0, 0.0, 2.5))],
    );
    let v = view(vec![bravo, alpha]);
    assert_eq!(v.nodes.len(), 2);
    assert!(v.nodes.iter().all(|n| n.state == "up"));
    let [l] = v.links.as_slice() else {
        panic!("{:?}", v.links)
    };
    assert_eq!(
        (l.a.as_str(), l.b.as_str(), l.state),
        ("alpha", "bravo", "up")
    );
    // alpha→bravo: alpha sent 100 on its connections, bravo received 5 on its own.
    assert_eq!(l.a_to_b.bytes_per_s, 105.0);
    assert_eq!(l.b_to_a.bytes_per_s, 47.0);
    assert_eq!(l.a_to_b.connections_per_s, 3.0);
    assert_eq!(l.b_to_a.connections_per_s, 0.0);
    assert_eq!(l.transport, "quic", "unknown transport shows as quic");
    assert_eq!(l.rtt_ms, Some(2.0));
}

#[test]
fn an_unreachable_cluster_turns_its_links_down() {
    let alpha = cluster(
        "alpha",
        vec![peer("bravo", "connected", PeerRates::default())],
    );
    let mut bravo = cluster("bravo", Vec::new());
    bravo.error = Some("connection refused".into());
    let charlie = cluster(
        "charlie",
        vec![peer("alpha", "connected", PeerRates::default())],
    );
    let v = view(vec![alpha, bravo, charlie]);
    let state = |a: &str, b: &str| {
        v.links
            .iter()
            .find(|l| l.a == a && l.b == b)
            .map(|l| l.state)
    };
    assert_eq!(
        state("alpha", "bravo"),
        Some("down"),
        "alpha still says connected"
    );
    assert_eq!(state("alpha", "charlie"), Some("up"));
    let bravo = v.nodes.iter().find(|n| n.name == "bravo").map(|n| n.state);
    assert_eq!(bravo, Some("down"));
}

#[test]
fn session_states_decide_the_link() {
    let one = |state: &str| {
        let mut p = peer("bravo", state, PeerRates::default());
        p.transport = Some("tcp".into());
        view(vec![cluster("alpha", vec![p])])
    };
    let v = one("connecting");
    assert_eq!(v.links[0].state, "connecting");
    assert_eq!(v.links[0].transport, "tcp");
    assert_eq!(v.nodes[1].state, "unknown", "bravo only named by a peer");
    assert_eq!(one("backoff").links[0].state, "down");
    assert_eq!(one("connected").links[0].state, "up");
}

fn import(key: &str, by: &[(&str, usize, Freshness)]) -> Import {
    let mut i = Import::new(key.parse().unwrap_or_else(|e| panic!("{e}")));
    i.clusters = by
        .iter()
        .map(|(c, ready, freshness)| ServingCluster {
            cluster: c.parse().unwrap_or_else(|e| panic!("{e:?}")),
            region: "r".into(),
            zone: "z".into(),
            ready_endpoints: *ready,
            freshness: *freshness,
            ports: Vec::new(),
        })
        .collect();
    i
}

#[test]
fn services_merge_and_a_cluster_speaks_for_itself() {
    let mut alpha = cluster("alpha", Vec::new());
    alpha.imports = vec![import(
        "demo/hello",
        &[
            ("alpha", 1, Freshness::Fresh),
            ("bravo", 2, Freshness::Stale),
        ],
    )];
    let mut bravo = cluster("bravo", Vec::new());
    bravo.imports = vec![import(
        "demo/hello",
        &[
            ("alpha", 1, Freshness::Fresh),
            ("bravo", 0, Freshness::Fresh),
        ],
    )];
    let v = view(vec![alpha, bravo]);
    let [s] = v.services.as_slice() else {
        panic!("{:?}", v.services)
    };
    assert_eq!(s.name, "demo/hello");
    let by: Vec<_> = s
        .served_by
        .iter()
        .map(|c| (c.cluster.as_str(), c.ready_endpoints, c.healthy))
        .collect();
    assert_eq!(by, [("alpha", 1, true), ("bravo", 0, false)]);
}
