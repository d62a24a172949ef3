//! Importer-side traffic policy through real gateways: weighted split,
//! consistent hash, fault injection and per-service overrides.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;

const LIMIT: Duration = Duration::from_secs(5);

/// A mesh where `a` imports demo/who from every other cluster, each serving its own name.
async fn who_mesh(clusters: &[(&'static str, &str)], range: &str, vip: &str) -> (Mesh, SocketAddr) {
    let mut mesh = Mesh::new(clusters, range);
    for (name, _) in &clusters[1..] {
        let tag = tag_server(name).await;
        mesh.set_exports(name, vec![export("demo/who", 7100, tag, ExportTo::All)]);
    }
    let serving: Vec<_> = clusters[1..]
        .iter()
        .map(|(n, _)| mesh.info(n).clone())
        .collect();
    let refs: Vec<_> = serving.iter().collect();
    mesh.publish("a", vec![import("demo/who", 7100, vip, &refs)]);
    let vip: SocketAddr = format!("{vip}:7100").parse().unwrap();
    for (name, _) in &clusters[1..] {
        let a = mesh.node("a");
        wait_for(
            &format!("a connected to {name}"),
            Duration::from_secs(10),
            || async move { (!a.connected(name).is_empty()).then_some(()) },
        )
        .await;
    }
    (mesh, vip)
}

fn tally(results: &[Result<String, String>]) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for r in results {
        let k = match r {
            Ok(s) if !s.is_empty() => s.clone(),
            Ok(_) => "empty".into(),
            Err(_) => "error".into(),
        };
        *t.entry(k).or_default() += 1;
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_90_10_split_holds_over_10000_connections_and_skips_a_dead_cluster() {
    let (mut mesh, vip) = who_mesh(
        &[("a", "eu"), ("b", "eu"), ("c", "us")],
        "127.77.20.0/24",
        "127.77.20.1",
    )
    .await;
    // Without policy, locality sends everything to b (a's region).
    assert_eq!(fetch(vip, LIMIT).await.unwrap(), "b");
    mesh.node("a")
        .set_policies("- { service: demo/who, split: { b: 90, c: 10 } }");
    let results = run_many(10_000, 32, |_| fetch(vip, LIMIT)).await;
    let t = tally(&results);
    println!("split 90/10 over 10,000 connections: {t:?}");
    assert_eq!(t["b"] + t["c"], 10_000, "every connection served: {t:?}");
    assert!(
        (800..=1200).contains(&t["c"]),
        "c got {} (10 % ± 2)",
        t["c"]
    );
    let a = mesh.node("a");
    let routed =
        a.metric("gateway_policy_routed_total{service=\"demo/who\",cluster=\"c\",rule=\"split\"}");
    assert_eq!(routed as usize, t["c"]);

    // c dies: its share goes to b and no connection fails.
    mesh.kill("c");
    let a = mesh.node("a");
    a.wait_silent("c", Duration::from_secs(10)).await;

    let results = run_many(500, 16, |_| fetch(vip, LIMIT)).await;
    assert_eq!(
        tally(&results).get("b"),
        Some(&500),
        "{:?}",
        tally(&results)
    );
}

fn client_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        100 + (i / 250) as u8,
        1 + (i % 250) as u8,
    ))
}

async fn who_from_each(vip: SocketAddr, clients: usize) -> Vec<String> {
    run_many(clients, 32, |i| async move {
        fetch_from(client_ip(i), vip, LIMIT).await.unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_keeps_each_client_on_its_cluster_and_a_departure_moves_few() {
    let clusters = [
        ("a", "eu"),
        ("b", "eu"),
        ("c", "eu"),
        ("d", "us"),
        ("e", "us"),
    ];
    let (mut mesh, vip) = who_mesh(&clusters, "127.77.21.0/24", "127.77.21.1").await;
    mesh.node("a")
        .set_policies("- { service: demo/who, hash: client_ip }");
    let first = who_from_each(vip, 1000).await;
    let spread = tally(&first.iter().cloned().map(Ok).collect::<Vec<_>>());
    println!("1,000 clients over 4 clusters: {spread:?}");
    assert_eq!(spread.len(), 4, "every cluster gets clients: {spread:?}");
    for round in 1..10 {
        assert_eq!(who_from_each(vip, 1000).await, first, "round {round}");
    }
    // e leaves the service: only its clients move.
    let serving: Vec<_> = ["b", "c", "d"]
        .iter()
        .map(|n| mesh.info(n).clone())
        .collect();
    let refs: Vec<_> = serving.iter().collect();
    mesh.publish("a", vec![import("demo/who", 7100, "127.77.21.1", &refs)]);
    let a = mesh.node("a");
    wait_for("a stops sending to e", Duration::from_secs(10), || async {
        (fetch_from(client_ip(0), vip, LIMIT).await.ok()? != "e"
            && who_from_each(vip, 1000).await.iter().all(|w| w != "e"))
        .then_some(())
    })
    .await;
    let after = who_from_each(vip, 1000).await;
    let moved = first.iter().zip(&after).filter(|(x, y)| x != y).count();
    let from_e = first.iter().filter(|w| *w == "e").count();
    println!("after e left: {moved} of 1,000 clients moved ({from_e} were on e)");
    assert!(moved <= 300, "{moved} moved");
    assert_eq!(moved, from_e, "only e's clients moved");
    assert!(
        a.metric("gateway_policy_routed_total{service=\"demo/who\",cluster=\"b\",rule=\"hash\"}")
            > 0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_abort_a_quarter_and_delay_every_connection() {
    let (mesh, vip) = who_mesh(&[("a", "eu"), ("b", "eu")], "127.77.22.0/24", "127.77.22.1").await;
    let a = mesh.node("a");
    a.set_policies("- { service: demo/who, fault: { abort_percent: 25 } }");
    let results = run_many(10_000, 32, |_| fetch(vip, LIMIT)).await;
    let t = tally(&results);
    let aborted = results.len() - t.get("b").copied().unwrap_or(0);
    println!("abort 25 % over 10,000 connections: {t:?}");
    assert!(
        (2300..=2700).contains(&aborted),
        "{aborted} aborted (25 % ± 2)"
    );
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().err().is_none_or(|e| e != "timeout")),
        "aborts are resets, not hangs"
    );
    let counted = a.metric("gateway_policy_faults_total{service=\"demo/who\",fault=\"abort\"}");
    assert_eq!(counted as usize, aborted);

    a.set_policies("- { service: demo/who, fault: { delay: 50ms } }");
    let times = run_many(200, 16, |_| async move {
        let t0 = Instant::now();
        let who = fetch(vip, LIMIT).await;
        (who, t0.elapsed())
    })
    .await;
    let min = times.iter().map(|(_, t)| *t).min().unwrap();
    println!("delay 50 ms: fastest of 200 connections took {min:?}");
    assert!(times.iter().all(|(w, _)| w.as_deref() == Ok("b")));
    assert!(min >= Duration::from_millis(50), "{min:?}");
    let delayed = a.metric("gateway_policy_faults_total{service=\"demo/who\",fault=\"delay\"}");
    assert_eq!(delayed, 200.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_scoped_to_another_destination_does_nothing() {
    let (mesh, vip) = who_mesh(&[("a", "eu"), ("b", "eu")], "127.77.23.0/24", "127.77.23.1").await;
    mesh.node("a")
        .set_policies("- { service: demo/who, fault: { abort_percent: 100, destinations: [z] } }");
    let results = run_many(100, 8, |_| fetch(vip, LIMIT)).await;
    assert_eq!(tally(&results).get("b"), Some(&100));
    mesh.node("a").set_policies(
        "- { service: demo/who, fault: { abort_percent: 100, destinations: [b], sources: [a] } }",
    );
    let results = run_many(100, 8, |_| fetch(vip, LIMIT)).await;
    assert_eq!(tally(&results).get("b"), None, "{:?}", tally(&results));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_order_and_attempts_are_overridden_per_service() {
    let (mesh, vip) = who_mesh(
        &[("a", "eu"), ("b", "eu"), ("c", "us")],
        "127.77.24.0/24",
        "127.77.24.1",
    )
    .await;
    let a = mesh.node("a");
    a.set_policies("- { service: demo/who, failover: [c, b] }");
    assert_eq!(fetch(vip, LIMIT).await.unwrap(), "c");
    // c's endpoint now refuses: with one attempt the client gets a reset, with two b serves.
    let refusing = refusing_addr();
    mesh.set_exports("c", vec![export("demo/who", 7100, refusing, ExportTo::All)]);
    a.set_policies("- { service: demo/who, failover: [c, b], attempts: 1 }");
    let r = fetch(vip, LIMIT).await;
    assert!(r.as_deref().is_err() || r.as_deref() == Ok(""), "{r:?}");
    a.set_policies("- { service: demo/who, failover: [c, b], attempts: 2 }");
    assert_eq!(fetch(vip, LIMIT).await.unwrap(), "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_change_leaves_open_connections_alone() {
    let (mesh, vip) = who_mesh(
        &[("a", "eu"), ("b", "eu"), ("c", "us")],
        "127.77.25.0/24",
        "127.77.25.1",
    )
    .await;
    let echo_b = echo_server().await;
    mesh.set_exports("b", vec![export("demo/who", 7100, echo_b, ExportTo::All)]);
    let a = mesh.node("a");
    let mut open = tokio::net::TcpStream::connect(vip).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    open.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    open.read_exact(&mut buf).await.unwrap();
    a.set_policies("- { service: demo/who, split: { c: 1 } }");
    assert_eq!(
        fetch(vip, LIMIT).await.unwrap(),
        "c",
        "new connections follow the new policy"
    );
    open.write_all(b"again").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"again", "the open connection still reaches b");
}
