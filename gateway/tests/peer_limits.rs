//! A hostile but authenticated peer against a gateway's shared resources:
//! metric labels, streams, connections, handshakes. Each test performs the
//! attack over real QUIC with the peer's real certificate.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use causeway_catalog::ExportTo;
use causeway_gateway::protocol::{self, Request, Status};
use support::*;

fn request(service: &str, port: u16) -> Vec<u8> {
    protocol::encode_request(&Request {
        service: key(service),
        port,
        protocol: causeway_catalog::Protocol::Tcp,
        target: None,
        endpoint: None,
        traceparent: None,
    })
    .unwrap()
}

/// Sends a header on a new stream; the status the far side answers. The
/// stream stays open (returned) so what it holds stays held.
async fn open(
    conn: &quinn::Connection,
    header: &[u8],
) -> (Status, (quinn::SendStream, quinn::RecvStream)) {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(header).await.unwrap();
    let mut head = [0u8; 3];
    tokio::time::timeout(Duration::from_secs(10), recv.read_exact(&mut head))
        .await
        .expect("a status within 10 s")
        .unwrap();
    let (status, _) = protocol::decode_response_head(head).unwrap();
    (status, (send, recv))
}

fn limits(name: &str, c: &mut causeway_gateway::Config) {
    if name == "b" {
        c.limits.max_streams_per_peer = 4;
        c.limits.max_connections_per_peer = 3;
    }
}

/// b exports `demo/echo` to everyone; a and c are peers of b.
async fn setup(range: &str) -> Mesh {
    let mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu"), ("c", "eu")], range, limits);
    mesh.set_exports(
        "b",
        vec![export(
            "demo/echo",
            7100,
            echo_server().await,
            ExportTo::All,
        )],
    );
    mesh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexported_service_names_create_no_metric_labels() {
    let mesh = setup("127.77.40.0/24").await;
    let conn = raw_connection(&mesh.pki[2], &mesh.pki[1], mesh.addrs[1]).await;
    for i in 0..50 {
        let (status, _) = open(&conn, &request(&format!("junk/name{i}"), 7100)).await;
        assert_eq!(status, Status::UnknownService);
    }
    let text = mesh.node("b").metrics();
    assert!(
        !text.contains("junk/"),
        "labels for unknown services:\n{text}"
    );
    let unknown =
        "gateway_streams_total{cluster=\"c\",direction=\"inbound\",status=\"unknown_service\"}";
    assert_eq!(
        mesh.node("b").metric(unknown),
        50.0,
        "the attempts happened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_holds_at_most_its_streams_and_others_still_get_theirs() {
    let mesh = setup("127.77.41.0/24").await;
    let c = raw_connection(&mesh.pki[2], &mesh.pki[1], mesh.addrs[1]).await;
    let mut held = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (status, streams) = open(&c, &request("demo/echo", 7100)).await;
        statuses.push(status);
        held.push(streams);
    }
    let ok = statuses.iter().filter(|s| **s == Status::Ok).count();
    assert_eq!(ok, 4, "limits.max_streams_per_peer = 4: {statuses:?}");
    assert!(
        statuses[4..].iter().all(|s| *s == Status::Overloaded),
        "{statuses:?}"
    );
    // Another peer is not affected by c's use.
    let a = raw_connection(&mesh.pki[0], &mesh.pki[1], mesh.addrs[1]).await;
    assert_eq!(open(&a, &request("demo/echo", 7100)).await.0, Status::Ok);
    // Released when c's streams end.
    drop(held);
    wait_for("c's streams released", Duration::from_secs(10), || async {
        (open(&c, &request("demo/echo", 7100)).await.0 == Status::Ok).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_holds_at_most_its_connections() {
    let mesh = setup("127.77.42.0/24").await;
    let mut conns = Vec::new();
    for _ in 0..5 {
        conns.push(raw_connection(&mesh.pki[2], &mesh.pki[1], mesh.addrs[1]).await);
    }
    let mut closed = 0;
    for conn in &conns {
        let r = tokio::time::timeout(Duration::from_secs(10), conn.open_bi()).await;
        let usable = match r {
            Ok(Ok((mut send, mut recv))) => {
                send.write_all(&request("demo/echo", 7100)).await.is_ok()
                    && recv.read_exact(&mut [0u8; 3]).await.is_ok()
            }
            _ => false,
        };
        if !usable {
            closed += 1;
            let reason = conn
                .close_reason()
                .map(|r| r.to_string())
                .unwrap_or_default();
            assert!(reason.contains("too many connections"), "{reason}");
        }
    }
    assert_eq!(closed, 2, "limits.max_connections_per_peer = 3 of 5");
    let refused = "gateway_inbound_handshakes_total{result=\"too_many\"}";
    assert_eq!(mesh.node("b").metric(refused), 2.0);
}

fn retry_always(name: &str, c: &mut causeway_gateway::Config) {
    if name == "b" {
        c.limits.retry_above_handshakes = 0;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unvalidated_peers_are_sent_a_retry_when_handshakes_pile_up() {
    let mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.43.0/24", retry_always);
    let conn = raw_connection(&mesh.pki[0], &mesh.pki[1], mesh.addrs[1]).await;
    assert!(
        conn.close_reason().is_none(),
        "a real peer completes the Retry and connects"
    );
    let retries = mesh
        .node("b")
        .metric("gateway_inbound_handshakes_total{result=\"retry\"}");
    assert!(retries >= 1.0, "b answered with a Retry: {retries}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_advertising_anothers_gateway_address_cannot_cut_it_off() {
    let mesh = setup("127.77.44.0/24").await;
    let (a, b, c) = (mesh.info("a"), mesh.info("b"), mesh.info("c"));
    let import = import("demo/echo", 7100, "127.77.44.1", &[b]);
    // c (a peer a trusts) claims b's address as its own gateway, listed after b.
    let mut snap = (*snapshot(
        &[(a, mesh.addrs[0]), (b, mesh.addrs[1]), (c, mesh.addrs[2])],
        vec![import],
    ))
    .clone();
    if let Some(c) = snap.clusters.get_mut(&id("c")) {
        c.gateways = vec![mesh.addrs[1]];
    }
    mesh.node("a")
        .catalog
        .send_replace(std::sync::Arc::new(snap));
    let vip: std::net::SocketAddr = "127.77.44.1:7100".parse().unwrap();
    wait_for("a reaches b's service", Duration::from_secs(10), || {
        ping(vip)
    })
    .await;
    let node = mesh.node("a");
    wait_for(
        "c's dialler for the stolen address failed",
        Duration::from_secs(10),
        || async {
            (node.metric("gateway_peer_handshakes_total{cluster=\"c\",result=\"failed\"}") >= 1.0)
                .then_some(())
        },
    )
    .await;
    for _ in 0..10 {
        assert!(ping(vip).await.is_some(), "b stays reachable");
    }
    assert_eq!(node.connected("b").len(), 1, "b's connections untouched");
}
