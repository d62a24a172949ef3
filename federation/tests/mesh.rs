//! Three federations A, B, C in full mesh over mutual TLS on loopback.

#![allow(clippy::unwrap_used)]

mod common;

use causeway_identity::Workload;

use std::time::{Duration, Instant};

use causeway_catalog::Freshness;
use common::*;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_added_to_a_reaches_b_and_c() {
    init_tracing();
    let mesh = Mesh::start(&["a", "b", "c"], &[]).await;
    let (a, b, c) = (mesh.node("a"), mesh.node("b"), mesh.node("c"));
    wait_until("the mesh is connected", LIMIT, || {
        mesh.nodes.iter().all(|n| {
            n.fed()
                .peers_status()
                .iter()
                .all(|p| p.freshness == Some(Freshness::Fresh))
        })
    })
    .await;
    let t0 = Instant::now();
    a.write_exports(&export_yaml(&[("demo/web", "all")]));
    wait_until("b and c import demo/web", LIMIT, || {
        has(&b.catalog(), "demo/web") && has(&c.catalog(), "demo/web")
    })
    .await;
    println!(
        "propagation A -> B, C: {:?} (file poll every 20 ms)",
        t0.elapsed()
    );
    let imp = b.catalog().imports.values().next().cloned().unwrap();
    assert_eq!(imp.clusters.len(), 1);
    assert_eq!(imp.clusters[0].cluster.as_str(), "a");
    assert_eq!(imp.clusters[0].region, "region-a");
    assert_eq!(imp.vips.len(), 1, "a ClusterSetIP is allocated");
    // Every cluster's info is published, with its gateways.
    let clusters = b.catalog().clusters.clone();
    assert_eq!(clusters.len(), 3);
    assert_eq!(clusters[&a.id.name].gateways.len(), 1);
    // The local watch API serves the same catalog to another process.
    let stop = tokio_util::sync::CancellationToken::new();
    let target =
        b.id.watch_target(b.fed().watch_addr().unwrap(), Workload::Gateway);
    let watched = causeway_federation::watch_remote(target, stop.clone());
    let mut remote = watched.catalog;
    tokio::time::timeout(LIMIT, remote.wait_for(|c| has(c, "demo/web")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(**remote.borrow(), *b.catalog());
    // It carries b's own exports too, for a gateway run apart.
    assert_eq!(
        **watched.local_exports.borrow(),
        *b.fed().local_exports().borrow().clone()
    );
    stop.cancel();
    // Removing it withdraws it (a delta, not a snapshot).
    let snaps = b.status("a").snapshots;
    a.write_exports("exports: []\n");
    wait_until("demo/web is withdrawn from b and c", LIMIT, || {
        !has(&b.catalog(), "demo/web") && !has(&c.catalog(), "demo/web")
    })
    .await;
    assert_eq!(b.status("a").snapshots, snaps);
    assert!(b.status("a").deltas >= 2);
    let metrics = b.metrics();
    for line in [
        r#"federation_messages_received_total{peer="a",kind="Snapshot"} 1"#,
        r#"federation_peer_session_state{peer="a",state="Connected"} 1"#,
        "federation_catalog_imports 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    assert!(
        a.metrics()
            .contains(r#"federation_messages_sent_total{peer="b",kind="Delta"}"#)
    );
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_leaves_exports_unchanged_everywhere() {
    init_tracing();
    let good = export_yaml(&[("demo/web", "all")]);
    let mesh = Mesh::start(&["a", "b", "c"], &[&good]).await;
    let (a, b, c) = (mesh.node("a"), mesh.node("b"), mesh.node("c"));
    wait_until("b and c import demo/web", LIMIT, || {
        has(&b.catalog(), "demo/web") && has(&c.catalog(), "demo/web")
    })
    .await;
    let version = b.status("a").version;
    // A typo: port 0. Then a YAML syntax error.
    a.write_exports(&good.replace("port: 80", "port: 0"));
    wait_until("a rejects the edit", LIMIT, || {
        a.metrics().contains("federation_source_rejected_total 1")
    })
    .await;
    a.write_exports("exports: [{service: demo/web");
    wait_until("a rejects the second edit", LIMIT, || {
        a.metrics().contains("federation_source_rejected_total 2")
    })
    .await;
    // Heartbeats keep flowing at the old version; nothing was withdrawn.
    let hb = b.status("a").heartbeats;
    wait_until("b hears a again", LIMIT, || {
        b.status("a").heartbeats > hb + 1
    })
    .await;
    assert_eq!(b.status("a").version, version);
    assert_eq!(a.fed().local_exports().borrow().len(), 1);
    assert!(has(&b.catalog(), "demo/web") && has(&c.catalog(), "demo/web"));
    mesh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_exports_without_a_file_are_served_and_peers_still_merged() {
    init_tracing();
    let mut mesh = Mesh::start(&["a", "b"], &["", &export_yaml(&[("demo/web", "all")])]).await;
    // Restart A with its exports inline in the config and no file at all.
    mesh.nodes[0].kill().await;
    let peers = mesh.peers_of(0);
    let a = &mut mesh.nodes[0];
    let mut inputs = inputs_for(a, peers);
    let inline: causeway_federation::SourceConfig = serde_json::from_str(
        r#"{"static": {"exports": [{"service": "demo/inline", "ports": [{"port": 80}]}]}}"#,
    )
    .unwrap();
    inputs.source = inline;
    // No state: whatever A shows of B must arrive after the restart.
    inputs.cfg.state_dir = None;
    a.stop = inputs.shutdown.clone();
    a.fed = Some(
        causeway_federation::Federation::start(inputs, &mut a.registry)
            .await
            .unwrap(),
    );
    let (a, b) = (&mesh.nodes[0], &mesh.nodes[1]);
    wait_until("b imports a's inline export", LIMIT, || {
        has(&b.catalog(), "demo/inline")
    })
    .await;
    wait_until("a imports b's export", LIMIT, || {
        has(&a.catalog(), "demo/web")
    })
    .await;
    mesh.shutdown().await;
}
