//! A hostile peer over real gRPC and mutual TLS (docs/security.md, findings
//! 3, 4 and 5): it floods exports, imports into kube-system, back-dates a
//! conflicting export, claims this cluster's region, and advertises another
//! cluster's gateway address. Each attempt fails; what it may import, it does;
//! the honest peer is untouched.

#![allow(clippy::unwrap_used)]

mod common;
mod fake_peer;

use std::time::Duration;

use causeway_catalog::{Condition, Port};
use causeway_federation::proto;
use causeway_federation::{Federation, PeerEndpoint};
use common::*;
use fake_peer::port;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(15);

fn export(ns: &str, name: &str, number: u32, created_at_ms: u64) -> proto::Export {
    proto::Export {
        namespace: ns.into(),
        name: name.into(),
        ports: vec![port("http", number)],
        endpoints: vec![proto::Endpoint {
            addr: "10.9.9.9:80".into(),
            ready: true,
            ..Default::default()
        }],
        created_at_ms,
        ..Default::default()
    }
}

/// What x sends: one snapshot, then silence (the session stays open).
fn hostile_snapshot(victim_region: &str, gateways: Vec<String>) -> proto::Update {
    let mut exports: Vec<proto::Export> = (0..1500)
        .map(|i| export("flood", &format!("s{i:04}"), 80, 0))
        .collect();
    exports.push(export("kube-system", "kube-dns", 53, 0));
    // b's demo/web uses http=80; x's says http=81 and that it is from 1970.
    exports.push(export("demo", "web", 81, 0));
    let mut wide = export("wide", "ports", 1, 0);
    wide.ports = (1..=100).map(|i| port(&format!("p{i}"), i)).collect();
    exports.push(wide);
    fake_peer::snapshot(victim_region, "za", gateways, exports)
}

fn gauge(metrics: &str, reason: &str) -> Option<u64> {
    let prefix = format!("federation_peer_refused{{peer=\"x\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_gets_only_what_its_policy_allows() {
    init_tracing();
    let mut mesh = Mesh::start(&["a", "b"], &["", &export_yaml(&[("demo/web", "all")])]).await;
    wait_until("a imports b's demo/web", LIMIT, || {
        has(&mesh.node("a").catalog(), "demo/web")
    })
    .await;
    // x comes later: a first saw b's demo/web before x's, and saved when (a
    // restart that loses it would let x's back-dated export win).
    let saved = mesh.nodes[0].state_dir.path().join("state/peer-b.json");
    wait_until("a saves b's demo/web", LIMIT, || {
        std::fs::read_to_string(&saved).is_ok_and(|s| s.contains("demo/web"))
    })
    .await;
    let x = Identity::new("x");
    let (a_info, b_info) = (mesh.nodes[0].id.info(), mesh.nodes[1].id.info());
    let mut stolen: Vec<String> = [&a_info, &b_info]
        .iter()
        .map(|i| i.gateways[0].to_string())
        .collect();
    stolen.push("127.0.0.1:4999".into());
    let stop = CancellationToken::new();
    let update = hostile_snapshot(&a_info.region, stolen);
    let a_trust = mesh.nodes[0].id.trust();
    let replies = move || vec![update.clone()];
    let x_addr = fake_peer::serve(x.cert(), vec![a_trust], LIMIT, &stop, replies)
        .await
        .addr;
    let mut peers = mesh.peers_of(0);
    peers.push(PeerEndpoint {
        trust: x.trust(),
        addr: x_addr.to_string(),
        policy: Default::default(),
    });
    mesh.nodes[0].kill().await;
    let a = &mut mesh.nodes[0];
    let inputs = inputs_for(a, peers);
    a.stop = inputs.shutdown.clone();
    a.registry = Registry::default();
    a.fed = Some(Federation::start(inputs, &mut a.registry).await.unwrap());
    let a = mesh.node("a");
    wait_until("a imports what x may import", LIMIT, || {
        has(&a.catalog(), "flood/s0000")
    })
    .await;
    let cat = a.catalog();
    // Finding 3: quotas. 1000 exports at most; the 100-port service is left out.
    let from_x = |ns: &str| {
        let of_x =
            |i: &&causeway_catalog::Import| i.clusters.iter().any(|c| c.cluster.as_str() == "x");
        cat.imports
            .values()
            .filter(of_x)
            .filter(|i| i.key.namespace() == ns)
            .count()
    };
    assert_eq!(from_x("flood") + from_x("demo"), 1000);
    assert_eq!(from_x("wide"), 0);
    // Finding 5: no kube-system; region from local config; created_at clamped.
    assert_eq!(from_x("kube-system"), 0);
    let web = &cat.imports[&"demo/web".parse().unwrap()];
    assert_eq!(
        web.ports,
        vec![Port::tcp("http", 80)],
        "b's older export wins"
    );
    assert!(
        web.conditions.iter().any(|c| matches!(c,
            Condition::Conflict { winner, disagreeing, .. }
                if winner.as_str() == "b" && disagreeing.iter().any(|d| d.as_str() == "x"))),
        "{:?}",
        web.conditions
    );
    let x_serving = web
        .clusters
        .iter()
        .find(|c| c.cluster.as_str() == "x")
        .unwrap();
    assert_eq!(x_serving.region, "", "x's claim of a's region is ignored");
    // Finding 4: a's and b's gateway addresses stay theirs.
    let clusters = &cat.clusters;
    let x_id = causeway_catalog::ClusterId::new("x").unwrap();
    let x_gws: Vec<String> = clusters[&x_id]
        .gateways
        .iter()
        .map(|g| g.to_string())
        .collect();
    assert_eq!(x_gws, ["127.0.0.1:4999"]);
    assert_eq!(clusters[&b_info.name].gateways, b_info.gateways);
    // Each refusal is a metric.
    let metrics = a.metrics();
    assert_eq!(gauge(&metrics, "exports"), Some(501), "{metrics}");
    assert_eq!(gauge(&metrics, "namespace"), Some(1));
    assert_eq!(gauge(&metrics, "ports_per_export"), Some(1));
    assert_eq!(gauge(&metrics, "gateway_owned"), Some(2));
    stop.cancel();
    mesh.shutdown().await;
}
