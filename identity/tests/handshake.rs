//! Real mutual TLS 1.3 handshakes (in memory) between test clusters.
// Test helpers: a panic is how a test fails (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;

use causeway_identity::{
    PeerSet, PeerTrust, ReloadingCert, SpiffeId, Validity, VerifyError, Workload, client_config,
    server_config,
};
use common::{Cluster, Failed, expired, handshake, load_pems, not_yet_valid, peer_leaf, reason};
use rustls::pki_types::pem::PemObject;
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, NamedGroup, ProtocolVersion};

/// `client` (holding `client_cert`) connects to `server` (holding `server_cert`).
fn connect(
    client: &Cluster,
    client_cert: Arc<ReloadingCert>,
    server: &Cluster,
    server_cert: Arc<ReloadingCert>,
    expect: Workload,
) -> Result<(rustls::ClientConnection, rustls::ServerConnection), Failed> {
    let peers = Arc::new(PeerSet::new(vec![client.trust()]).unwrap());
    let server_cfg = server_config(server_cert, peers, expect).unwrap();
    let client_cfg = client_config(client_cert, &server.trust(), expect).unwrap();
    handshake(client_cfg, server_cfg, &server.td)
}

#[test]
fn good_peers_are_accepted_in_both_directions() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    for (a, b) in [(&east, &west), (&west, &east)] {
        let (mut client, mut server) = connect(
            a,
            a.cert(Workload::Gateway),
            b,
            b.cert(Workload::Gateway),
            Workload::Gateway,
        )
        .unwrap();
        for conn in [&client.protocol_version(), &server.protocol_version()] {
            assert_eq!(*conn, Some(ProtocolVersion::TLSv1_3));
        }
        let group = client.negotiated_key_exchange_group().unwrap().name();
        assert_eq!(group, NamedGroup::X25519MLKEM768);

        // Each side sees the other's SPIFFE ID.
        let peers = PeerSet::new(vec![a.trust()]).unwrap();
        let (cluster, id) = peers.identify(&peer_leaf(&server)).unwrap();
        assert_eq!(cluster, a.name);
        assert_eq!(id, SpiffeId::new(a.td.clone(), Workload::Gateway));
        let server_id = causeway_identity::spiffe_id_of(&peer_leaf(&client)).unwrap();
        assert_eq!(server_id, SpiffeId::new(b.td.clone(), Workload::Gateway));

        // Application data flows.
        client.writer().write_all(b"ping").unwrap();
        common::transfer(&mut client, &mut server);
        server.process_new_packets().unwrap();
        let mut buf = [0u8; 4];
        server.reader().read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }
}

#[test]
fn server_tells_several_peers_apart() {
    let (east, west, north) = (
        Cluster::new("east"),
        Cluster::new("west"),
        Cluster::new("north"),
    );
    let peers = Arc::new(PeerSet::new(vec![west.trust(), north.trust()]).unwrap());
    for client in [&west, &north] {
        let server_cfg = server_config(
            east.cert(Workload::Federation),
            peers.clone(),
            Workload::Federation,
        )
        .unwrap();
        let client_cfg = client_config(
            client.cert(Workload::Federation),
            &east.trust(),
            Workload::Federation,
        )
        .unwrap();
        let (_, server) = handshake(client_cfg, server_cfg, &east.td).unwrap();
        let (cluster, id) = peers.identify(&peer_leaf(&server)).unwrap();
        assert_eq!(cluster, client.name);
        assert_eq!(id.workload(), Some(Workload::Federation));
    }
}

#[test]
fn certificate_from_an_unconfigured_ca_is_rejected_by_the_server() {
    let (east, west, rogue) = (
        Cluster::new("east"),
        Cluster::new("west"),
        Cluster::new("rogue"),
    );
    let peers = Arc::new(PeerSet::new(vec![west.trust()]).unwrap());
    let server_cfg = server_config(east.cert(Workload::Gateway), peers, Workload::Gateway).unwrap();
    // rogue trusts east, so only the server's check can stop it.
    let client_cfg = client_config(
        rogue.cert(Workload::Gateway),
        &east.trust(),
        Workload::Gateway,
    )
    .unwrap();
    let err = handshake(client_cfg, server_cfg, &east.td)
        .unwrap_err()
        .server();
    assert!(matches!(
        VerifyError::from_rustls(&err),
        Some(VerifyError::UnknownCa { .. })
    ));
    assert_eq!(
        reason(&err),
        "certificate is not signed by the CA of any configured peer (presented spiffe://rogue.demo.causeway/gateway)"
    );
}

#[test]
fn certificate_from_an_unconfigured_ca_is_rejected_by_the_client() {
    let (east, west, rogue) = (
        Cluster::new("east"),
        Cluster::new("west"),
        Cluster::new("rogue"),
    );
    // The client thinks it talks to east; a rogue server answers.
    let err = connect(
        &west,
        west.cert(Workload::Gateway),
        &east,
        rogue.cert(Workload::Gateway),
        Workload::Gateway,
    )
    .unwrap_err()
    .client();
    let text = reason(&err);
    assert!(
        text.starts_with("peer east presented a certificate not signed by its CA"),
        "{text}"
    );
    assert!(
        text.contains("spiffe://rogue.demo.causeway/gateway"),
        "{text}"
    );
}

#[test]
fn a_regenerated_ca_with_the_same_name_is_not_trusted() {
    // Same cluster name and trust domain, so same issuer name: only the key differs.
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let west_again = Cluster::new("west");
    let err = connect(
        &west,
        west_again.cert(Workload::Gateway),
        &east,
        east.cert(Workload::Gateway),
        Workload::Gateway,
    )
    .unwrap_err()
    .server();
    assert!(reason(&err).starts_with("certificate is not signed by the CA of any configured peer"));
}

#[test]
fn right_ca_but_another_trust_domain_is_rejected_by_the_server() {
    let (east, west, north) = (
        Cluster::new("east"),
        Cluster::new("west"),
        Cluster::new("north"),
    );
    // west's CA (compromised) mints a certificate claiming to be east's gateway.
    let (cert, key) = west.forge("spiffe://east.demo.causeway/gateway", Validity::default());
    let forged = load_pems(&cert, &key);
    let peers = Arc::new(PeerSet::new(vec![west.trust(), east.trust()]).unwrap());
    let server_cfg =
        server_config(north.cert(Workload::Gateway), peers, Workload::Gateway).unwrap();
    let client_cfg = client_config(forged, &north.trust(), Workload::Gateway).unwrap();
    let err = handshake(client_cfg, server_cfg, &north.td)
        .unwrap_err()
        .server();
    assert_eq!(
        reason(&err),
        "peer west presented a certificate for trust domain east.demo.causeway; expected west.demo.causeway (check the CA bundle configured for peer west)"
    );
}

#[test]
fn right_ca_but_another_trust_domain_is_rejected_by_the_client() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let (cert, key) = west.forge("spiffe://east.demo.causeway/gateway", Validity::default());
    let err = connect(
        &east,
        east.cert(Workload::Gateway),
        &west,
        load_pems(&cert, &key),
        Workload::Gateway,
    )
    .unwrap_err()
    .client();
    assert_eq!(
        reason(&err),
        "peer west presented a certificate for trust domain east.demo.causeway; expected west.demo.causeway (check the CA bundle configured for peer west)"
    );
}

#[test]
fn wrong_workload_is_rejected_on_both_sides() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let expected = "peer west presented spiffe://west.demo.causeway/federation; expected spiffe://west.demo.causeway/gateway";
    // west's federation certificate used as a gateway client...
    let err = connect(
        &west,
        west.cert(Workload::Federation),
        &east,
        east.cert(Workload::Gateway),
        Workload::Gateway,
    )
    .unwrap_err()
    .server();
    assert!(reason(&err).starts_with(expected), "{}", reason(&err));
    // ...and as a gateway server.
    let err = connect(
        &east,
        east.cert(Workload::Gateway),
        &west,
        west.cert(Workload::Federation),
        Workload::Gateway,
    )
    .unwrap_err()
    .client();
    assert!(reason(&err).starts_with(expected), "{}", reason(&err));
}

#[test]
fn certificate_without_spiffe_id_is_rejected() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let (cert, key) = west.forge("https://west.example/gateway", Validity::default());
    // ReloadingCert refuses such a certificate, so present it through a plain resolver.
    let chain = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let peers = Arc::new(PeerSet::new(vec![west.trust()]).unwrap());
    let server_cfg = server_config(east.cert(Workload::Gateway), peers, Workload::Gateway).unwrap();
    let mut client_cfg = client_config(
        west.cert(Workload::Gateway),
        &east.trust(),
        Workload::Gateway,
    )
    .unwrap();
    let certified = CertifiedKey::from_der(chain, key, &causeway_identity::provider()).unwrap();
    client_cfg.client_auth_cert_resolver = Arc::new(Fixed(Some(Arc::new(certified))));
    let err = handshake(client_cfg, server_cfg, &east.td)
        .unwrap_err()
        .server();
    let text = reason(&err);
    assert!(
        text.starts_with("peer west presented a certificate without a usable SPIFFE ID"),
        "{text}"
    );
    assert!(text.contains("spiffe://"), "{text}");
}

/// Presents a fixed certificate (or none), bypassing `ReloadingCert`'s checks.
#[derive(Debug)]
struct Fixed(Option<Arc<CertifiedKey>>);

impl rustls::client::ResolvesClientCert for Fixed {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.0.clone()
    }

    fn has_certs(&self) -> bool {
        self.0.is_some()
    }
}

#[test]
fn client_without_a_certificate_is_rejected() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let peers = Arc::new(PeerSet::new(vec![west.trust()]).unwrap());
    let server_cfg = server_config(east.cert(Workload::Gateway), peers, Workload::Gateway).unwrap();
    let mut client_cfg = client_config(
        west.cert(Workload::Gateway),
        &east.trust(),
        Workload::Gateway,
    )
    .unwrap();
    client_cfg.client_auth_cert_resolver = Arc::new(Fixed(None));
    let err = handshake(client_cfg, server_cfg, &east.td)
        .unwrap_err()
        .server();
    assert!(
        matches!(err, rustls::Error::NoCertificatesPresented),
        "{err}"
    );
}

fn is_expired(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        )
    )
}

fn is_not_yet_valid(err: &rustls::Error) -> bool {
    matches!(
        err,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
        )
    )
}

#[test]
fn expired_and_not_yet_valid_certificates_are_rejected_on_both_sides() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    type Check = fn(&rustls::Error) -> bool;
    let cases: [(Validity, Check); 2] =
        [(expired(), is_expired), (not_yet_valid(), is_not_yet_valid)];
    for (validity, check) in cases {
        let bad_client = connect(
            &west,
            west.cert_with(Workload::Gateway, validity),
            &east,
            east.cert(Workload::Gateway),
            Workload::Gateway,
        );
        let err = bad_client.unwrap_err().server();
        assert!(
            check(&err),
            "server accepted or gave the wrong error: {err}"
        );

        let bad_server = connect(
            &west,
            west.cert(Workload::Gateway),
            &east,
            east.cert_with(Workload::Gateway, validity),
            Workload::Gateway,
        );
        let err = bad_server.unwrap_err().client();
        assert!(
            check(&err),
            "client accepted or gave the wrong error: {err}"
        );
    }
}

#[test]
fn peer_sets_reject_duplicates() {
    let (east, west) = (Cluster::new("east"), Cluster::new("west"));
    let err = PeerSet::new(vec![east.trust(), east.trust()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "peer east is configured twice; peer names must be unique"
    );
    let twin = PeerTrust {
        name: "east2".parse().unwrap(),
        ..east.trust()
    };
    let err = PeerSet::new(vec![east.trust(), west.trust(), twin]).unwrap_err();
    assert!(
        err.to_string()
            .contains("peers east and east2 both use trust domain east.demo.causeway")
    );
    assert!(PeerSet::new(vec![]).unwrap().is_empty());
}
