//! A peer unlinked while connected (`causeway unlink`): its open connection
//! serves no further stream, and it cannot connect again.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::ExportTo;
use support::*;

const RANGE: &str = "127.77.50.0/24";
const VIP: &str = "127.77.50.1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_removed_while_connected_gets_no_further_stream() {
    let (pa, pb) = (Pki::new("a"), Pki::new("b"));
    let b_peers = peer_set(&[&pa, &pb], &pb.name);
    let (ia, ib) = (info("a", "eu"), info("b", "eu"));
    let start = |pki: &Pki, info: &causeway_catalog::ClusterInfo, peers| {
        Node::start(NodeSpec {
            info: info.clone(),
            cfg: test_config(any_port(), RANGE),
            cert: pki.cert(),
            peers,
        })
    };
    let a = start(&pa, &ia, peer_set(&[&pa, &pb], &pa.name));
    let b = start(&pb, &ib, b_peers.clone());
    let echo = echo_server().await;
    b.exports.send_replace(Arc::new(vec![export(
        "demo/echo",
        7005,
        echo,
        ExportTo::All,
    )]));
    let gateways = [(&ia, a.addr), (&ib, b.addr)];
    let imports = vec![import("demo/echo", 7005, VIP, &[&ib])];
    a.catalog.send_replace(snapshot(&gateways, imports));
    b.catalog.send_replace(snapshot(&gateways, vec![]));
    let addr: SocketAddr = format!("{VIP}:7005").parse().unwrap();
    let limit = Duration::from_secs(10);
    wait_for("an echo through a to b", limit, || ping(addr)).await;

    assert!(b_peers.remove(&pa.name));
    wait_for("b to refuse a", limit, || async {
        ping(addr).await.is_none().then_some(())
    })
    .await;
    // Refused for good: neither the open connection nor a new one serves it.
    for _ in 0..3 {
        assert!(ping(addr).await.is_none());
    }
}
