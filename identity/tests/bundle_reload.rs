//! Finding 8 (docs/security.md): a peer's CA bundle is re-read while running.
//! Removing a compromised CA from the file refuses its certificates in new
//! handshakes without a restart, through the same server and client configs;
//! a bad file never replaces a good bundle.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_identity::{PeerSet, PeerTrust, Workload, client_config, server_config};
use common::{Cluster, handshake};

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn removing_a_ca_from_a_peer_bundle_takes_effect_without_restart() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let west_next = Cluster::with_domain("west", west.td.clone());
    let dir = tempfile::TempDir::new().unwrap();
    let bundle = dir.path().join("west-ca.pem");
    std::fs::write(&bundle, west.ca.cert_pem()).unwrap();
    let trust = PeerTrust::load(west.name.clone(), west.td.clone(), &bundle).unwrap();
    let peers = Arc::new(PeerSet::new(vec![trust.clone()]).unwrap());
    let _watch = peers.spawn_watch(Duration::from_millis(20));
    // Built once, before the change: east's server and east dialling west.
    let server = server_config(
        east.cert(Workload::Gateway),
        peers.clone(),
        Workload::Gateway,
    )
    .unwrap();
    let east_dials_west =
        client_config(east.cert(Workload::Gateway), &trust, Workload::Gateway).unwrap();
    let from = |c: &Cluster| {
        client_config(c.cert(Workload::Gateway), &east.trust(), Workload::Gateway).unwrap()
    };
    handshake(from(&west), server.clone(), &east.td).unwrap();
    handshake(from(&west_next), server.clone(), &east.td).unwrap_err();

    // The operator replaces the compromised CA with the next one.
    std::fs::write(&bundle, west_next.ca.cert_pem()).unwrap();
    let started = Instant::now();
    while handshake(from(&west), server.clone(), &east.td).is_ok() {
        assert!(started.elapsed() < LIMIT, "the old CA is still trusted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handshake(from(&west_next), server.clone(), &east.td).unwrap();
    // The client side, too: a west server with a certificate of the removed CA is refused.
    let west_server = |c: &Cluster| {
        let peers = Arc::new(PeerSet::new(vec![east.trust()]).unwrap());
        server_config(c.cert(Workload::Gateway), peers, Workload::Gateway).unwrap()
    };
    handshake(east_dials_west.clone(), west_server(&west), &west.td).unwrap_err();
    handshake(east_dials_west.clone(), west_server(&west_next), &west.td).unwrap();

    // A broken file keeps the bundle in force.
    std::fs::write(&bundle, "not a certificate").unwrap();
    assert!(trust.roots.reload_if_changed().is_err());
    assert_eq!(peers.reload_all(), 0);
    handshake(from(&west_next), server, &east.td).unwrap();
}
