//! UDP service ports through the tunnel: flows, identity, failover, caps,
//! oversize datagrams and idle flows, on real gateways and sockets.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_catalog::{ClusterInfo, ExportTo};
use support::udp::*;
use support::*;

const SERVICE: &str = "demo/dns";
const WAIT: Duration = Duration::from_millis(500);

fn flows(direction: &str, result: &str) -> String {
    format!(
        "gateway_udp_flows_total{{service=\"{SERVICE}\",direction=\"{direction}\",result=\"{result}\"}}"
    )
}

fn dropped(reason: &str) -> String {
    format!("gateway_udp_dropped_total{{reason=\"{reason}\"}}")
}

/// A (client) imports demo/dns from the listed clusters at `vip`:5353;
/// each of them exports an echo tagged with its name.
async fn mesh(
    clusters: &[(&str, &str)],
    range: &str,
    vip: &str,
    tweak: fn(&str, &mut causeway_gateway::Config),
) -> (Mesh, SocketAddr) {
    let mut mesh = Mesh::with_config(clusters, range, tweak);
    let tags: [&'static str; 3] = ["a", "b", "c"];
    for (name, _) in &clusters[1..] {
        let tag = tags.into_iter().find(|t| t == name).unwrap();
        mesh.set_exports(
            name,
            vec![udp_export(
                SERVICE,
                5353,
                udp_echo(tag).await,
                ExportTo::All,
            )],
        );
    }
    let serving: Vec<ClusterInfo> = clusters[1..]
        .iter()
        .map(|(n, _)| mesh.info(n).clone())
        .collect();
    let refs: Vec<&ClusterInfo> = serving.iter().collect();
    mesh.publish("a", vec![udp_import(SERVICE, 5353, vip, &refs)]);
    let to: SocketAddr = format!("{vip}:5353").parse().unwrap();
    let probe = client().await;
    wait_for(
        "a first flow round trip",
        Duration::from_secs(15),
        || async { ask(&probe, to, b"ready", 1, WAIT).await.map(|_| ()) },
    )
    .await;
    (mesh, to)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_flows_each_round_trip_a_unique_payload() {
    let (mesh, to) = mesh(
        &[("a", "eu"), ("b", "eu")],
        "127.77.40.0/24",
        "127.77.40.1",
        |_, _| {},
    )
    .await;
    let before = mesh.node("a").metric(&flows("outbound", "ok"));
    let sockets: Vec<_> = run_many(1000, 1000, |_| client()).await;
    let replies = run_many(1000, 1000, |i| {
        let s = &sockets[i];
        async move {
            ask(
                s,
                to,
                format!("flow-{i}").as_bytes(),
                10,
                Duration::from_secs(1),
            )
            .await
        }
    })
    .await;
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(
            r.as_deref(),
            Some(format!("b:flow-{i}").as_bytes()),
            "flow {i}"
        );
    }
    let a = mesh.node("a").metric(&flows("outbound", "ok")) - before;
    let b = mesh.node("b").metric(&flows("inbound", "ok"));
    assert!(a >= 1000.0, "a opened {a} flows for 1,000 clients");
    assert!(b >= 1000.0, "b accepted {b} flows");
    let active = mesh.node("b").metric(&format!(
        "gateway_udp_flows_active{{service=\"{SERVICE}\",direction=\"inbound\"}}"
    ));
    assert!(active >= 1000.0, "every flow still open at b: {active}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_not_in_export_to_gets_nothing_and_is_counted() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.41.0/24");
    let only_c = ExportTo::Only([id("c")].into_iter().collect());
    mesh.set_exports(
        "b",
        vec![udp_export(SERVICE, 5353, udp_echo("b").await, only_c)],
    );
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![udp_import(SERVICE, 5353, "127.77.41.1", &[&b])]);
    let to: SocketAddr = "127.77.41.1:5353".parse().unwrap();
    let s = client().await;
    let refused = wait_for("b refusing the flow", Duration::from_secs(15), || async {
        let _ = ask(&s, to, b"let me in", 1, Duration::from_millis(200)).await;
        let n = mesh.node("b").metric(&flows("inbound", "forbidden"));
        (n >= 1.0).then_some(n)
    })
    .await;
    assert!(mesh.node("a").metric(&flows("outbound", "forbidden")) >= 1.0);
    // A refused client is held off: its datagrams do not open a stream each.
    assert_eq!(
        ask(&s, to, b"again", 20, Duration::from_millis(20)).await,
        None
    );
    assert!(mesh.node("a").metric(&dropped("refused")) >= 1.0);
    let after = mesh.node("b").metric(&flows("inbound", "forbidden"));
    assert!(
        after - refused <= 2.0,
        "20 datagrams made {} new refusals",
        after - refused
    );
    assert_eq!(
        mesh.node("b").metric(&flows("inbound", "ok")),
        0.0,
        "nothing got through"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_move_to_c_when_b_is_killed() {
    let (mut mesh, to) = mesh(
        &[("a", "eu"), ("b", "eu"), ("c", "us")],
        "127.77.42.0/24",
        "127.77.42.1",
        |_, _| {},
    )
    .await;
    // The first flow may have gone to c while a's connection to b was still
    // coming up; a new client address picks afresh, so wait for b to serve one.
    wait_for("b serving a new flow", Duration::from_secs(15), || async {
        let s = client().await;
        let r = ask(&s, to, b"ready", 1, WAIT).await?;
        r.starts_with(b"b:").then_some(())
    })
    .await;
    let sockets: Vec<_> = run_many(50, 50, |_| client()).await;
    let first = run_many(50, 50, |i| ask(&sockets[i], to, b"x", 10, WAIT)).await;
    let elsewhere: Vec<_> = first
        .iter()
        .filter(|r| r.as_deref() != Some(b"b:x"))
        .map(|r| r.as_deref().map(String::from_utf8_lossy))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "served by b, the same region; not: {elsewhere:?}"
    );
    let killed = Instant::now();
    mesh.kill("b");
    let moved = run_many(50, 50, |i| {
        let s = &sockets[i];
        async move {
            // The same client address keeps sending until c answers.
            while killed.elapsed() < Duration::from_secs(20) {
                if ask(s, to, b"y", 1, Duration::from_millis(200))
                    .await
                    .as_deref()
                    == Some(b"c:y")
                {
                    return Some(killed.elapsed());
                }
            }
            None
        }
    })
    .await;
    let worst = moved
        .iter()
        .map(|m| m.expect("every flow reaches c"))
        .max()
        .unwrap();
    println!("the last of 50 flows was answered by c {worst:?} after b was killed");
    assert!(worst < Duration::from_secs(10), "{worst:?}");
}

fn small_caps(name: &str, c: &mut causeway_gateway::Config) {
    // Longer than a client's one try below: no flow idles out (freeing a place) mid-count.
    c.udp.idle_timeout = Duration::from_secs(3);
    match name {
        "a" => c.udp.max_flows_per_service = 6,
        _ => c.udp.max_flows_per_peer = 4,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_caps_hold_on_both_sides_and_idle_flows_close() {
    let (mesh, to) = mesh(
        &[("a", "eu"), ("b", "eu")],
        "127.77.43.0/24",
        "127.77.43.1",
        small_caps,
    )
    .await;
    let (a, b) = (mesh.node("a"), mesh.node("b"));
    let active = |n: &Node, dir: &str| {
        n.metric(&format!(
            "gateway_udp_flows_active{{service=\"{SERVICE}\",direction=\"{dir}\"}}"
        ))
    };
    wait_for(
        "the probe flow idled out on both sides",
        Duration::from_secs(10),
        || async { (active(a, "outbound") == 0.0 && active(b, "inbound") == 0.0).then_some(()) },
    )
    .await;
    // 8 clients: b lets 4 flows in (per peer), a holds at most 6 (per service).
    let sockets: Vec<_> = run_many(8, 8, |_| client()).await;
    // One datagram each: a refused client is not tried again.
    let replies = run_many(8, 8, |i| {
        ask(&sockets[i], to, b"z", 1, Duration::from_secs(2))
    })
    .await;
    let served = replies
        .iter()
        .filter(|r| r.as_deref() == Some(b"b:z"))
        .count();
    assert_eq!(served, 4, "b's per-peer cap: {replies:?}");
    assert!(b.metric(&flows("inbound", "overloaded")) >= 2.0);
    assert!(active(a, "outbound") <= 6.0);
    assert!(a.metric(&dropped("flow_cap")) + a.metric(&dropped("refused")) >= 1.0);
    // Idle flows close on both sides, and the caps free up.
    wait_for("idle flows closed", Duration::from_secs(10), || async {
        (active(a, "outbound") == 0.0 && active(b, "inbound") == 0.0).then_some(())
    })
    .await;
    let s = client().await;
    let again = wait_for(
        "a new flow after the idle ones closed",
        Duration::from_secs(5),
        || async { ask(&s, to, b"back", 1, WAIT).await },
    )
    .await;
    assert_eq!(again, b"b:back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_larger_than_the_path_is_dropped_and_counted_never_cut() {
    let (mesh, to) = mesh(
        &[("a", "eu"), ("b", "eu")],
        "127.77.44.0/24",
        "127.77.44.1",
        |_, _| {},
    )
    .await;
    let s = client().await;
    assert_eq!(
        ask(&s, to, b"small", 5, WAIT).await.as_deref(),
        Some(&b"b:small"[..])
    );
    let big = vec![7u8; 8000];
    assert_eq!(
        ask(&s, to, &big, 3, WAIT).await,
        None,
        "no reply: nothing was carried"
    );
    assert!(mesh.node("a").metric(&dropped("too_large")) >= 3.0);
    assert_eq!(
        ask(&s, to, b"after", 5, WAIT).await.as_deref(),
        Some(&b"b:after"[..]),
        "the flow goes on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_serves_the_service_keeps_its_flows_local() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.45.0/24");
    mesh.set_exports(
        "a",
        vec![udp_export(
            SERVICE,
            5353,
            udp_echo("a").await,
            ExportTo::All,
        )],
    );
    mesh.set_exports(
        "b",
        vec![udp_export(
            SERVICE,
            5353,
            udp_echo("b").await,
            ExportTo::All,
        )],
    );
    let (ia, ib) = (mesh.info("a").clone(), mesh.info("b").clone());
    mesh.publish(
        "a",
        vec![udp_import(SERVICE, 5353, "127.77.45.1", &[&ia, &ib])],
    );
    let to: SocketAddr = "127.77.45.1:5353".parse().unwrap();
    let s = client().await;
    let r = wait_for("a local flow", Duration::from_secs(15), || async {
        ask(&s, to, b"q", 1, WAIT).await
    })
    .await;
    assert_eq!(r, b"a:q");
    assert_eq!(mesh.node("b").metric(&flows("inbound", "ok")), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_inject_datagrams_into_another_peers_flows() {
    let (mesh, to) = mesh(
        &[("a", "eu"), ("b", "eu"), ("c", "us")],
        "127.77.46.0/24",
        "127.77.46.1",
        |_, _| {},
    )
    .await;
    let s = client().await;
    assert_eq!(
        ask(&s, to, b"mine", 5, WAIT).await.as_deref(),
        Some(&b"b:mine"[..])
    );
    // c is a peer b trusts; it sends datagrams naming every low flow id, the
    // ids a's flows use on a's own connection.
    let hostile = raw_connection(&mesh.pki[2], &mesh.pki[1], mesh.addrs[1]).await;
    for id in 0u8..64 {
        let mut d = vec![id];
        d.extend_from_slice(b"injected");
        hostile.send_datagram(d.into()).unwrap();
    }
    let b = mesh.node("b");
    wait_for(
        "b dropping the unknown flows",
        Duration::from_secs(10),
        || async { (b.metric(&dropped("unknown_flow")) >= 64.0).then_some(()) },
    )
    .await;
    // Nothing reached a's flow: its next reply is its own.
    assert_eq!(
        ask(&s, to, b"still", 5, WAIT).await.as_deref(),
        Some(&b"b:still"[..])
    );
    let mut buf = [0u8; 64];
    assert!(
        s.try_recv(&mut buf).is_err(),
        "no stray datagram for a's client"
    );
}
