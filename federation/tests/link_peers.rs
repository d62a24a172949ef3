//! Peers linked and unlinked while the federation runs (`causeway token
//! redeem`, `causeway unlink`): trusted, subscribed and imported at once,
//! then withdrawn at once, with no restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use causeway_federation::{Federation, PeerEndpoint};
use causeway_identity::PeerSetError;
use common::*;
use prometheus_client::registry::Registry;

const LIMIT: Duration = Duration::from_secs(10);

fn endpoint(n: &Node) -> PeerEndpoint {
    PeerEndpoint {
        trust: n.id.trust(),
        addr: n.addr.to_string(),
        policy: n.id.policy(),
    }
}

async fn start_alone(node: &mut Node) {
    let inputs = inputs_for(node, Vec::new());
    node.stop = inputs.shutdown.clone();
    let mut registry = Registry::default();
    node.fed = Some(Federation::start(inputs, &mut registry).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_added_while_running_syncs_and_a_removed_one_is_withdrawn() {
    init_tracing();
    let mut a = Node::new("a", &export_yaml(&[("demo/web", "all")]));
    let mut b = Node::new("b", &export_yaml(&[("demo/db", "all")]));
    start_alone(&mut a).await;
    start_alone(&mut b).await;
    assert!(a.fed().peers_status().is_empty());

    a.fed().add_peer(endpoint(&b)).unwrap();
    b.fed().add_peer(endpoint(&a)).unwrap();
    wait_until("each imports the other's service", LIMIT, || {
        has(&a.catalog(), "demo/db") && has(&b.catalog(), "demo/web")
    })
    .await;
    assert_eq!(a.status("b").name.as_str(), "b");
    assert!(matches!(
        a.fed().add_peer(endpoint(&b)),
        Err(PeerSetError::DuplicateName { .. })
    ));

    assert!(a.fed().remove_peer(&b.id.name));
    assert!(a.fed().peers_status().is_empty());
    wait_until("a withdraws b's service", LIMIT, || {
        !has(&a.catalog(), "demo/db")
    })
    .await;
    // b is no longer trusted by a's listener: its session cannot come back.
    wait_until("b loses its subscription to a", LIMIT, || {
        b.status("a").state != causeway_federation::SessionState::Connected
    })
    .await;
    assert!(!a.fed().remove_peer(&b.id.name));

    // Linked again, it syncs again.
    a.fed().add_peer(endpoint(&b)).unwrap();
    wait_until("a imports b's service again", LIMIT, || {
        has(&a.catalog(), "demo/db")
    })
    .await;
    a.kill().await;
    b.kill().await;
}
