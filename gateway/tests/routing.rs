//! Choosing clusters: failover on a dead gateway, on a refusing endpoint, and policy refusals.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_another_region_and_back() {
    // A and B in eu, C in us: A prefers B (same region) and falls back to C.
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu"), ("c", "us")], "127.77.3.0/24");
    let (tag_b, tag_c) = (tag_server("b").await, tag_server("c").await);
    let b_exports = vec![export("demo/who", 7002, tag_b, ExportTo::All)];
    mesh.set_exports("b", b_exports.clone());
    mesh.set_exports("c", vec![export("demo/who", 7002, tag_c, ExportTo::All)]);
    let (b, c) = (mesh.info("b").clone(), mesh.info("c").clone());
    mesh.publish("a", vec![import("demo/who", 7002, "127.77.3.1", &[&b, &c])]);
    let vip: SocketAddr = "127.77.3.1:7002".parse().unwrap();
    let limit = Duration::from_secs(3);
    wait_for("B serving", Duration::from_secs(10), || async move {
        (fetch(vip, limit).await.ok()? == "b").then_some(())
    })
    .await;

    // Traffic runs: a new connection every 10 ms, each on its own task. One
    // caught on B as it dies waits out its timeout (its stream is only reset
    // at the idle timeout) without holding back the new connections behind it.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Instant, Result<String, String>)>(10_000);
    let traffic = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for _ in 0..5_000 {
            tick.tick().await;
            if tx.is_closed() {
                return;
            }
            let tx = tx.clone();
            tokio::spawn(async move {
                let r = fetch(vip, limit).await;
                let _ = tx.send((Instant::now(), r)).await;
            });
        }
    });
    // Traffic is flowing (through B) before the kill.
    for _ in 0..5 {
        let (_, r) = tokio::time::timeout(limit, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.as_deref(), Ok("b"));
    }
    let killed = Instant::now();
    mesh.kill("b");
    let failover = loop {
        let (at, r) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if at > killed && r.as_deref() == Ok("c") {
            break at - killed;
        }
    };
    println!("failover: first connection served by C {failover:?} after B was killed");
    // Unloaded this takes under 1 s; the bound here catches a failover that
    // does not happen, the benchmark measures its time.
    assert!(
        failover < Duration::from_secs(3),
        "failover took {failover:?} (target: within 1 s)"
    );

    let a = mesh.node("a");
    a.wait_silent("b", Duration::from_secs(2)).await;

    // B comes back: new connections prefer it again.
    let restarted = Instant::now();
    mesh.restart("b", b_exports);
    let back = loop {
        let (at, r) = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if at > restarted && r.as_deref() == Ok("b") {
            break at - restarted;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(15),
            "B never preferred again"
        );
    };
    println!("failback: first connection served by B {back:?} after it restarted");
    traffic.abort();
    let mut tail = BTreeSet::new();
    for _ in 0..20 {
        tail.insert(fetch(vip, limit).await.unwrap());
    }
    assert_eq!(
        tail.into_iter().collect::<Vec<_>>(),
        ["b"],
        "B preferred once back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_endpoint_moves_on_to_the_next_cluster() {
    let mesh = Mesh::new(&[("a", "eu"), ("b", "eu"), ("c", "us")], "127.77.4.0/24");
    let mut mesh = mesh;
    mesh.set_exports(
        "b",
        vec![export("demo/who", 7003, refusing_addr(), ExportTo::All)],
    );
    mesh.set_exports(
        "c",
        vec![export(
            "demo/who",
            7003,
            tag_server("c").await,
            ExportTo::All,
        )],
    );
    let (b, c) = (mesh.info("b").clone(), mesh.info("c").clone());
    mesh.publish("a", vec![import("demo/who", 7003, "127.77.4.1", &[&b, &c])]);
    let vip: SocketAddr = "127.77.4.1:7003".parse().unwrap();
    // Wait until both peer connections are up, so B (same region) is tried first.
    let a = mesh.node("a");
    wait_for("peers connected", Duration::from_secs(10), || async {
        (a.connected("b").len() == 1 && a.connected("c").len() == 1).then_some(())
    })
    .await;
    let got = fetch(vip, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got, "c");
    let refused = mesh.node("b").metric(
        "gateway_streams_total{cluster=\"a\",direction=\"inbound\",status=\"connect_failed\"}",
    );
    assert_eq!(refused, 1.0, "B answered connect_failed once");
    let moved = a.metric(
        "gateway_streams_total{cluster=\"b\",direction=\"outbound\",status=\"connect_failed\"}",
    );
    assert_eq!(moved, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_not_exported_to_the_caller_is_forbidden() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.5.0/24");
    let only_c = ExportTo::Only([id("c")].into_iter().collect());
    mesh.set_exports(
        "b",
        vec![export("demo/secret", 7004, tag_server("b").await, only_c)],
    );
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import("demo/secret", 7004, "127.77.5.1", &[&b])]);
    let vip: SocketAddr = "127.77.5.1:7004".parse().unwrap();
    let sample = "gateway_streams_total{cluster=\"a\",direction=\"inbound\",status=\"forbidden\"}";
    let b_node = mesh.node("b");
    let elapsed = wait_for("forbidden counted", Duration::from_secs(10), || async {
        let t0 = Instant::now();
        let r = fetch(vip, Duration::from_secs(5)).await;
        let took = t0.elapsed();
        assert!(r.as_deref() != Ok("b"), "forbidden service must not answer");
        (b_node.metric(sample) >= 1.0).then_some(took)
    })
    .await;
    println!("forbidden connection closed after {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "closed quickly, took {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_of_a_peer_cluster_is_used() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (a_pki, b_pki) = (Pki::new("a"), Pki::new("b"));
    let (a_info, b_info) = (info("a", "eu"), info("b", "eu"));
    let range = "127.77.14.0/24";
    let spec = |me: &Pki, i: &causeway_catalog::ClusterInfo| NodeSpec {
        info: i.clone(),
        cfg: test_config(any_port(), range),
        cert: me.cert(),
        peers: peer_set(&[&a_pki, &b_pki], &me.name),
    };
    let a = Node::start(spec(&a_pki, &a_info));
    let replicas = [
        Node::start(spec(&b_pki, &b_info)),
        Node::start(spec(&b_pki, &b_info)),
    ];
    let echo = echo_server().await;
    for b in &replicas {
        b.exports.send_replace(Arc::new(vec![export(
            "demo/echo",
            7013,
            echo,
            ExportTo::All,
        )]));
    }
    let mut b_all = b_info.clone();
    b_all.gateways = replicas.iter().map(|n| n.addr).collect();
    let mut a_self = a_info.clone();
    a_self.gateways = vec![a.addr];
    let imp = import("demo/echo", 7013, "127.77.14.1", &[&b_info]);
    a.catalog
        .send_replace(Arc::new(causeway_catalog::CatalogSnapshot {
            imports: [(imp.key.clone(), imp)].into_iter().collect(),
            clusters: [(a_self.name.clone(), a_self), (b_all.name.clone(), b_all)]
                .into_iter()
                .collect(),
        }));
    wait_for(
        "both replicas connected",
        Duration::from_secs(10),
        || async { (a.connected("b").len() == 2).then_some(()) },
    )
    .await;
    let vip: SocketAddr = "127.77.14.1:7013".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut c = tokio::net::TcpStream::connect(vip).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut k = [0u8; 1];
        c.read_exact(&mut k).await.unwrap();
        held.push(c);
    }
    let ok = "gateway_streams_total{cluster=\"a\",direction=\"inbound\",status=\"ok\"}";
    let per: Vec<f64> = replicas.iter().map(|n| n.metric(ok)).collect();
    println!("streams per replica: {per:?}");
    assert_eq!(per.iter().sum::<f64>(), 10.0);
    assert!(
        per.iter().all(|n| *n >= 4.0),
        "least-loaded spreads over replicas: {per:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_is_served_directly_without_a_tunnel() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.15.0/24");
    mesh.set_exports(
        "a",
        vec![export(
            "demo/who",
            7014,
            tag_server("a").await,
            ExportTo::All,
        )],
    );
    mesh.set_exports(
        "b",
        vec![export(
            "demo/who",
            7014,
            tag_server("b").await,
            ExportTo::All,
        )],
    );
    let (a, b) = (mesh.info("a").clone(), mesh.info("b").clone());
    mesh.publish(
        "a",
        vec![import("demo/who", 7014, "127.77.15.1", &[&a, &b])],
    );
    let vip: SocketAddr = "127.77.15.1:7014".parse().unwrap();
    let limit = Duration::from_secs(3);
    wait_for("listener up", Duration::from_secs(10), || async move {
        fetch(vip, limit).await.ok()
    })
    .await;
    for _ in 0..10 {
        assert_eq!(fetch(vip, limit).await.unwrap(), "a");
    }
    let tunnelled = mesh
        .node("a")
        .metric("gateway_streams_total{cluster=\"b\",direction=\"outbound\",status=\"ok\"}");
    assert_eq!(tunnelled, 0.0, "no stream to b while a serves locally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_follow_imports_without_disturbing_others() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.16.0/24");
    let echo = echo_server().await;
    mesh.set_exports(
        "b",
        vec![
            export("demo/one", 7015, echo, ExportTo::All),
            export("demo/two", 7016, echo, ExportTo::All),
        ],
    );
    let b = mesh.info("b").clone();
    let one = import("demo/one", 7015, "127.77.16.1", &[&b]);
    let two = import("demo/two", 7016, "127.77.16.2", &[&b]);
    mesh.publish("a", vec![one.clone(), two]);
    let (vip1, vip2): (SocketAddr, SocketAddr) = (
        "127.77.16.1:7015".parse().unwrap(),
        "127.77.16.2:7016".parse().unwrap(),
    );
    let mut held = wait_for("one up", Duration::from_secs(10), || async move {
        let mut c = tokio::net::TcpStream::connect(vip1).await.ok()?;
        c.write_all(b"1").await.ok()?;
        let mut k = [0u8; 1];
        tokio::time::timeout(Duration::from_secs(1), c.read_exact(&mut k))
            .await
            .ok()?
            .ok()?;
        Some(c)
    })
    .await;
    wait_for("two up", Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(vip2).await.ok().map(|_| ())
    })
    .await;
    // Withdraw `two`: its listener goes, `one` and its open connection stay.
    mesh.publish("a", vec![one]);
    wait_for("two closed", Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(vip2)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    held.write_all(b"2").await.unwrap();
    let mut k = [0u8; 1];
    held.read_exact(&mut k).await.unwrap();
    assert_eq!(&k, b"2");
    let mut fresh = tokio::net::TcpStream::connect(vip1).await.unwrap();
    fresh.write_all(b"3").await.unwrap();
    fresh.read_exact(&mut k).await.unwrap();
    assert_eq!(&k, b"3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_failover_list_overrides_region_order() {
    let mut mesh = Mesh::with_config(
        &[("a", "eu"), ("b", "eu"), ("c", "us")],
        "127.77.17.0/24",
        |_, c| {
            c.locality
                .failover
                .insert(key("demo/who"), vec![id("c"), id("b")]);
        },
    );
    mesh.set_exports(
        "b",
        vec![export(
            "demo/who",
            7017,
            tag_server("b").await,
            ExportTo::All,
        )],
    );
    mesh.set_exports(
        "c",
        vec![export(
            "demo/who",
            7017,
            tag_server("c").await,
            ExportTo::All,
        )],
    );
    let (b, c) = (mesh.info("b").clone(), mesh.info("c").clone());
    mesh.publish(
        "a",
        vec![import("demo/who", 7017, "127.77.17.1", &[&b, &c])],
    );
    let vip: SocketAddr = "127.77.17.1:7017".parse().unwrap();
    let limit = Duration::from_secs(3);
    let a = mesh.node("a");
    wait_for("both peers connected", Duration::from_secs(10), || async {
        (a.connected("b").len() == 1 && a.connected("c").len() == 1).then_some(())
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            fetch(vip, limit).await.unwrap(),
            "c",
            "c is first in the failover list"
        );
    }
}
