//! Data path through real gateways: bulk transfer and half-close.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A pair A -> B with `demo/echo` exported by B and imported by A at `vip`.
async fn echo_pair(range: &str, vip: &str) -> (Mesh, SocketAddr) {
    echo_pair_with(range, vip, |_, _| {}).await
}

/// `echo_pair` with `tweak` applied to both gateways' configs.
async fn echo_pair_with(
    range: &str,
    vip: &str,
    tweak: fn(&str, &mut causeway_gateway::Config),
) -> (Mesh, SocketAddr) {
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], range, tweak);
    let echo = echo_server().await;
    mesh.set_exports("b", vec![export("demo/echo", 7000, echo, ExportTo::All)]);
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import("demo/echo", 7000, vip, &[&b])]);
    let addr: SocketAddr = format!("{vip}:7000").parse().unwrap();
    wait_ready(addr).await;
    (mesh, addr)
}

/// Waits until a round trip through the tunnel works.
async fn wait_ready(addr: SocketAddr) {
    wait_for("tunnel ready", Duration::from_secs(10), || ping(addr)).await
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_64_mib_both_ways_over_100_connections() {
    let (mesh, addr) = echo_pair("127.77.1.0/24", "127.77.1.1").await;
    const CONNS: usize = 100;
    const PER_CONN: usize = (64 << 20) / CONNS;
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..CONNS)
        .map(|i| {
            let data = pattern(i as u64, PER_CONN);
            tokio::spawn(async move {
                let got = echo_through(addr, data.clone()).await;
                assert!(
                    got == data,
                    "connection {i}: {} bytes back, expected {}",
                    got.len(),
                    data.len()
                );
            })
        })
        .collect();
    let all = async {
        for t in tasks {
            t.await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), all)
        .await
        .expect("bulk transfer bounded in time");
    println!(
        "64 MiB each way over {CONNS} connections in {:?}",
        t0.elapsed()
    );
    let a = mesh.node("a");
    let sent = a.metric("gateway_service_bytes_total{service=\"demo/echo\",direction=\"outbound\",flow=\"request\"}");
    assert!(
        sent >= (CONNS * PER_CONN) as f64,
        "request bytes counted: {sent}"
    );
    let text = a.metrics();
    for name in [
        "gateway_peer_rtt_seconds{cluster=\"b\",address=",
        "gateway_peer_lost_packets_total{cluster=\"b\",address=",
        "gateway_peer_congestion_events_total{cluster=\"b\",address=",
        "gateway_peer_handshakes_total{cluster=\"b\",result=\"ok\"}",
        "gateway_service_connections_total{service=\"demo/echo\",direction=\"outbound\"}",
    ] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    let conns =
        a.metric("gateway_service_connections_total{service=\"demo/echo\",direction=\"outbound\"}");
    assert!(conns >= CONNS as f64, "connections counted: {conns}");
    // Each stream task ends just after its client saw EOF: wait for them all.
    let active = "gateway_service_active_streams{service=\"demo/echo\",direction=\"outbound\"}";
    wait_for("no stream left open", Duration::from_secs(5), || async {
        (a.metric(active) == 0.0).then_some(())
    })
    .await;
}

fn cubic(_: &str, c: &mut causeway_gateway::Config) {
    c.transport.congestion = causeway_gateway::Congestion::Cubic;
}

fn new_reno(_: &str, c: &mut causeway_gateway::Config) {
    c.transport.congestion = causeway_gateway::Congestion::NewReno;
}

/// The controller quinn runs (read from the live connection, not the config)
/// is the one configured, BBR by default, and bytes arrive intact under each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_congestion_controller_is_in_effect() {
    type Tweak = fn(&str, &mut causeway_gateway::Config);
    let cases: [(&str, Tweak, &str); 3] = [
        ("127.77.3", |_, _| {}, "bbr"),
        ("127.77.4", cubic, "cubic"),
        ("127.77.5", new_reno, "new_reno"),
    ];
    for (prefix, tweak, want) in cases {
        let (mesh, addr) =
            echo_pair_with(&format!("{prefix}.0/24"), &format!("{prefix}.1"), tweak).await;
        let data = pattern(7, 8 << 20);
        let got = tokio::time::timeout(Duration::from_secs(60), echo_through(addr, data.clone()))
            .await
            .expect("8 MiB echo bounded in time");
        assert!(
            got == data,
            "{want}: {} bytes back of {}",
            got.len(),
            data.len()
        );
        let text = mesh.node("a").metrics();
        let controllers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("gateway_peer_congestion_controller{cluster=\"b\""))
            .collect();
        assert!(!controllers.is_empty(), "no controller exported:\n{text}");
        for l in &controllers {
            assert!(
                l.contains(&format!("controller=\"{want}\"")) && l.ends_with(" 1"),
                "{want} configured, quinn runs: {l}"
            );
        }
        let cwnd = "gateway_peer_congestion_window_bytes{cluster=\"b\"";
        assert!(text.contains(cwnd), "cwnd from path stats exported");
        // The 8 MiB went out and came back on a's connections to b (stats sampled every second).
        let a = mesh.node("a");
        wait_for(
            "8 MiB each way in gateway_peer_bytes_total",
            Duration::from_secs(10),
            || {
                let text = a.metrics();
                let each_way = ["sent", "received"].map(|d| peer_bytes(&text, "b", d));
                async move {
                    each_way
                        .iter()
                        .all(|b| *b >= (8 << 20) as f64)
                        .then_some(())
                }
            },
        )
        .await;
    }
}

/// `gateway_peer_bytes_total` to `cluster` in `direction`, summed over its connections.
fn peer_bytes(metrics: &str, cluster: &str, direction: &str) -> f64 {
    let prefix = format!("gateway_peer_bytes_total{{cluster=\"{cluster}\"");
    let dir = format!("direction=\"{direction}\"");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix) && l.contains(&dir))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A server that reads everything first, then answers with the bytes reversed.
async fn reverse_server() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                if s.read_to_end(&mut all).await.is_ok() {
                    all.reverse();
                    let _ = s.write_all(&all).await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_close_gets_the_whole_reply() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.2.0/24");
    let srv = reverse_server().await;
    mesh.set_exports("b", vec![export("demo/rev", 7001, srv, ExportTo::All)]);
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import("demo/rev", 7001, "127.77.2.1", &[&b])]);
    let addr: SocketAddr = "127.77.2.1:7001".parse().unwrap();
    let data = pattern(7, 300_000);
    let mut want = data.clone();
    want.reverse();
    let got = wait_for("reply after half-close", Duration::from_secs(10), || {
        let data = data.clone();
        async move {
            let mut s = TcpStream::connect(addr).await.ok()?;
            s.write_all(&data).await.ok()?;
            s.shutdown().await.ok()?;
            let mut got = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
                .await
                .ok()?
                .ok()?;
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    assert!(
        got == want,
        "reply of {} bytes, expected {}",
        got.len(),
        want.len()
    );
}
