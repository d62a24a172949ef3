//! Peer authentication: only the configured peers' own CAs and trust domains get in.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::ExportTo;
use causeway_identity::{PeerSet, ReloadingCert};
use support::*;

const REJECTED: &str = "gateway_inbound_handshakes_total{result=\"rejected\"}";

/// Runs a rogue gateway with `cert` that dials B and imports B's service; asserts it gets nothing.
async fn rogue_cannot_connect(mesh: &Mesh, cert: Arc<ReloadingCert>, range: &str, vip: &str) {
    let b = mesh.node("b");
    let before = b.metric(REJECTED);
    let b_pki = &mesh.pki[1];
    let spec = NodeSpec {
        info: info("rogue", "eu"),
        cfg: test_config(any_port(), range),
        cert,
        peers: Arc::new(PeerSet::new(vec![b_pki.trust()]).unwrap()),
    };
    let rogue = Node::start(spec);
    let b_info = mesh.info("b").clone();
    let rogue_info = info("rogue", "eu");
    let imports = vec![import("demo/echo", 7005, vip, &[&b_info])];
    rogue.catalog.send_replace(snapshot(
        &[(&b_info, mesh.addrs[1]), (&rogue_info, rogue.addr)],
        imports,
    ));
    wait_for(
        "rejected handshake counted",
        Duration::from_secs(10),
        || async { (b.metric(REJECTED) > before).then_some(()) },
    )
    .await;
    let addr: SocketAddr = format!("{vip}:7005").parse().unwrap();
    for _ in 0..5 {
        let r = fetch(addr, Duration::from_secs(3)).await;
        assert!(
            r.as_deref().map_or(true, str::is_empty),
            "rogue got data: {r:?}"
        );
    }
    let served =
        b.metric("gateway_streams_total{cluster=\"a\",direction=\"inbound\",status=\"ok\"}");
    assert_eq!(served, 0.0, "no stream was served to anyone posing as a");
}

async fn mesh_with_echo(range: &str) -> Mesh {
    let mesh = Mesh::new(&[("a", "eu"), ("b", "eu"), ("c", "us")], range);
    mesh.set_exports(
        "b",
        vec![export(
            "demo/echo",
            7005,
            echo_server().await,
            ExportTo::All,
        )],
    );
    mesh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_from_an_unknown_ca_is_rejected() {
    let mesh = mesh_with_echo("127.77.6.0/24").await;
    // Same cluster name and trust domain as a, but a CA nobody trusts.
    let impostor = Pki::new("a");
    rogue_cannot_connect(&mesh, impostor.cert(), "127.77.6.0/24", "127.77.6.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_ca_naming_another_clusters_trust_domain_is_rejected() {
    let mesh = mesh_with_echo("127.77.7.0/24").await;
    // c's real CA (trusted by b for c.test) mints a certificate claiming to be a.
    let dir = tempfile::tempdir().unwrap();
    let paths = forge_leaf(&mesh.pki[2].ca, "spiffe://a.test/gateway", dir.path());
    let cert = ReloadingCert::load(paths).unwrap();
    rogue_cannot_connect(&mesh, cert, "127.77.7.0/24", "127.77.7.1").await;
}
