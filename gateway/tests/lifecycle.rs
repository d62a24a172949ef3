//! Resets, idle timeouts, limits and drain.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn pair(
    mesh: &mut Mesh,
    service: &str,
    port: u16,
    vip: &str,
    server: SocketAddr,
) -> SocketAddr {
    mesh.set_exports("b", vec![export(service, port, server, ExportTo::All)]);
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import(service, port, vip, &[&b])]);
    let a = mesh.node("a");
    wait_for("peer connected", Duration::from_secs(10), || async {
        let up = a.metric("gateway_peer_connected{cluster=\"b\",address=\"");
        let up = up.max(
            a.metrics()
                .lines()
                .filter(|l| {
                    l.starts_with("gateway_peer_connected{cluster=\"b\"") && l.ends_with(" 1")
                })
                .count() as f64,
        );
        (up >= 1.0).then_some(())
    })
    .await;
    format!("{vip}:{port}").parse().unwrap()
}

/// Accepts connections and reports how each one's first read after data ended.
async fn observing_server() -> (SocketAddr, tokio::sync::mpsc::Receiver<std::io::ErrorKind>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let kind = loop {
                    match s.read(&mut buf).await {
                        Ok(0) => break std::io::ErrorKind::UnexpectedEof,
                        Ok(_) => {
                            // Answer so the client knows the tunnel is up, then keep reading.
                            let _ = s.write_all(b"k").await;
                        }
                        Err(e) => break e.kind(),
                    }
                };
                let _ = tx.send(kind).await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_are_carried_both_ways() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.10.0/24");
    let (srv, mut seen) = observing_server().await;
    let vip = pair(&mut mesh, "demo/obs", 7007, "127.77.10.1", srv).await;
    // Client resets: the server sees a reset, not an end of stream.
    let mut c = TcpStream::connect(vip).await.unwrap();
    c.write_all(b"x").await.unwrap();
    let mut k = [0u8; 1];
    c.read_exact(&mut k).await.unwrap();
    c.set_zero_linger().unwrap();
    drop(c);
    let kind = tokio::time::timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kind, std::io::ErrorKind::ConnectionReset);

    // Server resets: the client sees a reset.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rst = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut b = [0u8; 1];
            let _ = s.read_exact(&mut b).await;
            let _ = s.set_zero_linger();
        }
    });
    let vip = {
        mesh.set_exports("b", vec![export("demo/rst", 7008, rst, ExportTo::All)]);
        let b = mesh.info("b").clone();
        mesh.publish("a", vec![import("demo/rst", 7008, "127.77.10.2", &[&b])]);
        "127.77.10.2:7008".parse::<SocketAddr>().unwrap()
    };
    let kind = wait_for("listener up", Duration::from_secs(10), || async {
        let mut c = TcpStream::connect(vip).await.ok()?;
        c.write_all(b"x").await.ok()?;
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf))
            .await
            .unwrap();
        Some(r.map(|_| ()).map_err(|e| e.kind()))
    })
    .await;
    assert_eq!(kind, Err(std::io::ErrorKind::ConnectionReset));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.11.0/24", |_, c| {
        c.timeouts.idle = Duration::from_millis(300);
    });
    let (srv, _seen) = observing_server().await;
    let vip = pair(&mut mesh, "demo/obs", 7009, "127.77.11.1", srv).await;
    let mut c = TcpStream::connect(vip).await.unwrap();
    c.write_all(b"x").await.unwrap();
    let mut k = [0u8; 1];
    c.read_exact(&mut k).await.unwrap();
    let t0 = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
        .await
        .unwrap();
    let took = t0.elapsed();
    println!("idle connection closed after {took:?} (idle timeout 300 ms)");
    assert!(took >= Duration::from_millis(250), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_service_limit_gives_overloaded_not_a_hang() {
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.12.0/24", |name, c| {
        if name == "b" {
            c.limits.max_streams_per_service = 2;
        }
    });
    let (srv, _seen) = observing_server().await;
    let vip = pair(&mut mesh, "demo/obs", 7010, "127.77.12.1", srv).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(vip).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut k = [0u8; 1];
        c.read_exact(&mut k).await.unwrap();
        held.push(c);
    }
    let t0 = Instant::now();
    let served = match TcpStream::connect(vip).await {
        // The reset can arrive before connect() returns: refused all the same.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => false,
        Err(e) => panic!("third connect to {vip}: {e}"),
        Ok(mut c) => {
            let mut buf = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut buf))
                .await
                .unwrap();
            r.is_ok() && !buf.is_empty()
        }
    };
    assert!(!served, "third connection was served");
    println!("third connection refused after {:?}", t0.elapsed());
    let b = mesh.node("b");
    let over = b
        .metric("gateway_streams_total{cluster=\"a\",direction=\"inbound\",status=\"overloaded\"}");
    assert!(over >= 1.0, "overloaded counted: {over}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_open_streams_and_sends_new_ones_elsewhere() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu"), ("c", "us")], "127.77.13.0/24");
    let (echo_b, tag_b, tag_c) = (
        echo_server().await,
        tag_server("b").await,
        tag_server("c").await,
    );
    mesh.set_exports(
        "b",
        vec![
            export("demo/echo", 7011, echo_b, ExportTo::All),
            export("demo/who", 7012, tag_b, ExportTo::All),
        ],
    );
    mesh.set_exports("c", vec![export("demo/who", 7012, tag_c, ExportTo::All)]);
    let (b, c) = (mesh.info("b").clone(), mesh.info("c").clone());
    mesh.publish(
        "a",
        vec![
            import("demo/echo", 7011, "127.77.13.1", &[&b]),
            import("demo/who", 7012, "127.77.13.1", &[&b, &c]),
        ],
    );
    let (echo, who): (SocketAddr, SocketAddr) = (
        "127.77.13.1:7011".parse().unwrap(),
        "127.77.13.1:7012".parse().unwrap(),
    );
    let limit = Duration::from_secs(3);
    wait_for("B serving", Duration::from_secs(10), || async move {
        (fetch(who, limit).await.ok()? == "b").then_some(())
    })
    .await;
    let mut open = TcpStream::connect(echo).await.unwrap();
    let mut buf = [0u8; 5];
    open.write_all(b"hello").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();

    let node_b = mesh.take("b");
    let draining =
        tokio::task::spawn_blocking(move || node_b.drain_and_join(Duration::from_secs(10)));
    // New connections go elsewhere while B drains.
    wait_for(
        "C serving during the drain",
        Duration::from_secs(5),
        || async move { (fetch(who, limit).await.ok()? == "c").then_some(()) },
    )
    .await;
    // The open connection still works, then ends cleanly.
    open.write_all(b"again").await.unwrap();
    open.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"again");
    open.shutdown().await.unwrap();
    let mut rest = Vec::new();
    open.read_to_end(&mut rest).await.unwrap();
    let took = draining.await.unwrap();
    println!("B drained in {took:?} (deadline 2 s)");
    let a = mesh.node("a");
    let draining_seen =
        a.metric("gateway_streams_total{cluster=\"b\",direction=\"outbound\",status=\"draining\"}");
    assert!(draining_seen >= 1.0, "B answered draining");
    assert_eq!(
        a.metric("gateway_cluster_ejected{cluster=\"b\"}"),
        0.0,
        "draining is not a failure"
    );
}
