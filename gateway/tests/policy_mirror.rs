//! Mirroring through real gateways: the mirror gets a byte-exact copy; a slow
//! or dead mirror never slows or breaks the primary.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(10);

/// a imports demo/svc (and demo/plain, the same echo) from b only; c is a peer
/// that also exports demo/svc at `c_backend`, the mirror.
async fn mesh(range: &str, c_backend: SocketAddr) -> (Mesh, SocketAddr, SocketAddr) {
    let mut mesh = Mesh::new(
        &[("a", "eu"), ("b", "eu"), ("c", "us")],
        &format!("{range}.0/24"),
    );
    let echo = echo_server().await;
    mesh.set_exports(
        "b",
        vec![
            export("demo/svc", 7300, echo, ExportTo::All),
            export("demo/plain", 7301, echo, ExportTo::All),
        ],
    );
    mesh.set_exports(
        "c",
        vec![export("demo/svc", 7300, c_backend, ExportTo::All)],
    );
    let b = mesh.info("b").clone();
    let (v1, v2) = (format!("{range}.1"), format!("{range}.2"));
    mesh.publish(
        "a",
        vec![
            import("demo/svc", 7300, &v1, &[&b]),
            import("demo/plain", 7301, &v2, &[&b]),
        ],
    );
    let svc: SocketAddr = format!("{v1}:7300").parse().unwrap();
    let plain: SocketAddr = format!("{v2}:7301").parse().unwrap();
    let a = mesh.node("a");
    wait_for("a connected to b and c", LIMIT, || async {
        (!a.connected("b").is_empty() && !a.connected("c").is_empty()).then_some(())
    })
    .await;
    for vip in [svc, plain] {
        wait_for("tunnel ready", LIMIT, || ping(vip)).await;
    }
    (mesh, svc, plain)
}

/// Accepts connections and sends each one's bytes, once it ends, to the channel.
async fn recorder() -> (SocketAddr, mpsc::UnboundedReceiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all).await;
                let _ = tx.send(all);
            });
        }
    });
    (addr, rx)
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_gets_an_exact_copy_and_its_replies_are_dropped() {
    let (c_backend, mut copies) = recorder().await;
    let (mesh, svc, _) = mesh("127.77.29", c_backend).await;
    let a = mesh.node("a");
    a.set_policies("- { service: demo/svc, mirror: { cluster: c } }");
    let data = pattern(1 << 20);
    assert_eq!(
        echo_through(svc, data.clone()).await,
        data,
        "the primary's bytes intact"
    );
    let copy = tokio::time::timeout(LIMIT, copies.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(copy.len(), data.len());
    assert!(copy == data, "the mirror got a byte-exact copy");
    let sent =
        "gateway_policy_mirror_bytes_total{service=\"demo/svc\",cluster=\"c\",result=\"sent\"}";
    wait_for("mirror counted", LIMIT, || async {
        (a.metric(sent) == data.len() as f64).then_some(())
    })
    .await;
    let ok =
        "gateway_policy_mirror_streams_total{service=\"demo/svc\",cluster=\"c\",result=\"ok\"}";
    wait_for("the mirror stream ended ok", LIMIT, || async {
        (a.metric(ok) == 1.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_stops_reading_is_cut_off_and_the_primary_finishes() {
    let (mesh, svc, _) = mesh("127.77.30", silent_server().await).await;
    let a = mesh.node("a");
    a.set_policies("- { service: demo/svc, mirror: { cluster: c, buffer_bytes: 262144 } }");
    let data = pattern(32 << 20);
    assert!(
        echo_through(svc, data.clone()).await == data,
        "the primary's bytes intact"
    );
    let dropped =
        "gateway_policy_mirror_bytes_total{service=\"demo/svc\",cluster=\"c\",result=\"dropped\"}";
    assert!(
        a.metric(dropped) > 0.0,
        "what the mirror could not take is counted"
    );
    let cut =
        "gateway_policy_mirror_streams_total{service=\"demo/svc\",cluster=\"c\",result=\"cut\"}";
    wait_for("the mirror stream is cut", LIMIT, || async {
        (a.metric(cut) == 1.0).then_some(())
    })
    .await;
}

/// Connect, one 64-byte ping-pong, close: how long it took.
async fn round_trip(vip: SocketAddr) -> Duration {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(vip).await.unwrap();
    s.write_all(&[5u8; 64]).await.unwrap();
    let mut buf = [0u8; 64];
    s.read_exact(&mut buf).await.unwrap();
    t0.elapsed()
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_mirror_costs_the_primary_no_latency() {
    let (mut mesh, svc, plain) = mesh("127.77.32", echo_server().await).await;
    mesh.kill("c");
    let a = mesh.node("a");
    a.wait_silent("c", LIMIT).await;

    a.set_policies("- { service: demo/svc, mirror: { cluster: c } }");
    // Interleaved, so machine noise hits both alike; three rounds, judged by
    // the quietest (noise only ever adds, a real cost shows in every round).
    let mut ratios = Vec::new();
    for round in 0..3 {
        let (mut with, mut without) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            with.push(round_trip(svc).await);
            without.push(round_trip(plain).await);
        }
        let (m, p) = (p50(with), p50(without));
        println!(
            "round {round}: p50 connect + 64 B ping-pong: mirrored to a dead cluster {m:?}, no mirror {p:?}"
        );
        ratios.push(m.as_secs_f64() / p.as_secs_f64());
    }
    let best = ratios.iter().copied().fold(f64::MAX, f64::min);
    assert!(
        best <= 1.10,
        "mirrored / unmirrored p50 per round: {ratios:?}"
    );
    let gone = "gateway_policy_mirror_streams_total{service=\"demo/svc\",cluster=\"c\",result=\"unavailable\"}";
    assert_eq!(a.metric(gone), 600.0, "every connection tried the mirror");
}
