//! Peers added and removed while running, and the link endpoint's TLS:
//! optional client certificates, and the redeemer's deferred pin check.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use causeway_identity::{
    PeerSet, PeerSetError, Workload, client_config, link_server_config, pinning_client_config,
    server_config, verify_server_chain,
};
use common::{Cluster, handshake, peer_leaf};
use rustls::pki_types::CertificateDer;

#[test]
fn a_peer_added_after_the_config_was_built_is_accepted_and_a_removed_one_refused() {
    let (east, west, north) = (
        Cluster::new("east"),
        Cluster::new("west"),
        Cluster::new("north"),
    );
    let peers = Arc::new(PeerSet::new(vec![north.trust()]).unwrap());
    let server = || {
        server_config(
            east.cert(Workload::Gateway),
            peers.clone(),
            Workload::Gateway,
        )
        .unwrap()
    };
    let client = || {
        client_config(
            west.cert(Workload::Gateway),
            &east.trust(),
            Workload::Gateway,
        )
        .unwrap()
    };
    handshake(client(), server(), &east.td)
        .unwrap_err()
        .server();

    let built_before = server();
    peers.add(west.trust()).unwrap();
    handshake(client(), built_before, &east.td).unwrap();
    assert_eq!(
        peers.add(west.trust()),
        Err(PeerSetError::DuplicateName {
            name: west.name.clone()
        })
    );

    assert!(peers.remove(&west.name));
    handshake(client(), server(), &east.td)
        .unwrap_err()
        .server();
    assert!(!peers.remove(&west.name));
}

#[test]
fn the_link_endpoint_takes_no_certificate_or_a_peers_but_not_a_strangers() {
    let (east, west, stranger) = (
        Cluster::new("east"),
        Cluster::new("west"),
        Cluster::new("x"),
    );
    let peers = Arc::new(PeerSet::new(vec![west.trust()]).unwrap());
    let server = || {
        link_server_config(
            east.cert(Workload::Federation),
            peers.clone(),
            Workload::Federation,
        )
        .unwrap()
    };

    // A redeemer: no certificate; it checks east's chain after the handshake.
    let (client, server_conn) =
        handshake(pinning_client_config().unwrap(), server(), &east.td).unwrap();
    assert!(server_conn.peer_certificates().is_none());
    let chain: Vec<CertificateDer<'static>> = client.peer_certificates().unwrap().to_vec();
    verify_server_chain(&east.trust(), &chain, Workload::Federation).unwrap();
    // Pinned to another cluster's bundle, the same chain fails.
    verify_server_chain(&stranger.trust(), &chain, Workload::Federation).unwrap_err();

    // A linked peer's federation certificate is verified and identifies it.
    let as_west = client_config(
        west.cert(Workload::Federation),
        &east.trust(),
        Workload::Federation,
    )
    .unwrap();
    let (_, server_conn) = handshake(as_west, server(), &east.td).unwrap();
    let (who, _) = peers.identify(&peer_leaf(&server_conn)).unwrap();
    assert_eq!(who, west.name);

    // A certificate from a CA no peer has is refused, not ignored.
    let as_stranger = client_config(
        stranger.cert(Workload::Federation),
        &east.trust(),
        Workload::Federation,
    )
    .unwrap();
    handshake(as_stranger, server(), &east.td)
        .unwrap_err()
        .server();
}
