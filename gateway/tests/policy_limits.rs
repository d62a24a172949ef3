//! Exporter-side limits through real gateways, enforced on the verified
//! source cluster: connection rate, concurrency and shaped bandwidth.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(5);

/// The rate test saturates the machine; the bandwidth test measures time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// a imports demo/svc from b, which serves it at `backend`.
async fn pair(range: &str, backend: SocketAddr) -> (Mesh, SocketAddr) {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], &format!("{range}.0/24"));
    mesh.set_exports("b", vec![export("demo/svc", 7200, backend, ExportTo::All)]);
    let b = mesh.info("b").clone();
    let vip = format!("{range}.1");
    mesh.publish("a", vec![import("demo/svc", 7200, &vip, &[&b])]);
    let vip: SocketAddr = format!("{vip}:7200").parse().unwrap();
    let a = mesh.node("a");
    wait_for("a connected to b", Duration::from_secs(10), || async {
        (!a.connected("b").is_empty()).then_some(())
    })
    .await;
    wait_for(
        "a listening on the VIP",
        Duration::from_secs(10),
        || async { TcpStream::connect(vip).await.ok() },
    )
    .await;
    (mesh, vip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_rate_holds_under_tenfold_overload() {
    let _alone = HEAVY.lock().await;
    let (mesh, vip) = pair("127.77.26", tag_server("b").await).await;
    let b = mesh.node("b");
    b.set_policies(
        "- { service: demo/svc, limits: { each_source: { connections_per_second: 200, burst: 20 } } }",
    );
    // 2,000 new connections a second for 10 s, at most 256 in flight.
    let (served, tried) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let gate = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tick = tokio::time::interval(Duration::from_micros(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    while t0.elapsed() < Duration::from_secs(10) {
        tick.tick().await;
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (s, t) = (served.clone(), tried.clone());
        tasks.spawn(async move {
            t.fetch_add(1, Ordering::Relaxed);
            if fetch(vip, LIMIT).await.as_deref() == Ok("b") {
                s.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
    }
    let took = t0.elapsed().as_secs_f64();
    while tasks.join_next().await.is_some() {}
    let (served, tried) = (
        served.load(Ordering::Relaxed),
        tried.load(Ordering::Relaxed),
    );
    let rate = served as f64 / took;
    println!(
        "offered {tried} connections in {took:.1} s; {served} admitted = {rate:.0}/s (limit 200/s)"
    );
    assert!(
        tried as f64 >= 5.0 * 200.0 * took,
        "the overload happened: {tried} tried"
    );
    assert!((190.0..=210.0).contains(&rate), "admitted {rate:.0}/s");
    let refused =
        b.metric("gateway_policy_limited_total{service=\"demo/svc\",source=\"a\",limit=\"rate\"}");
    assert_eq!(
        refused as usize,
        tried - served,
        "every refusal counted where it happened"
    );
    let reported = mesh
        .node("a")
        .metric("gateway_streams_total{cluster=\"b\",direction=\"outbound\",status=\"limited\"}");
    assert_eq!(
        reported as usize,
        tried - served,
        "and reported to the caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_limit_the_client_gets_a_reset() {
    let (mesh, vip) = pair("127.77.27", echo_server().await).await;
    mesh.node("b").set_policies(
        "- { service: demo/svc, limits: { sources: { a: { max_connections: 2 } } } }",
    );
    // The readiness probes' streams must be gone from both sides, or they count against the limit.
    // A full round trip first: a accepts in order, so every earlier probe is counted by then.
    wait_for("an echo through the tunnel", LIMIT, || ping(vip)).await;
    let (a, b) = (mesh.node("a"), mesh.node("b"));
    let open = |dir: &str| {
        format!("gateway_service_active_streams{{service=\"demo/svc\",direction=\"{dir}\"}}")
    };
    wait_for("the probe connections closed", LIMIT, || async {
        (a.metric(&open("outbound")) == 0.0 && b.metric(&open("inbound")) == 0.0).then_some(())
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(vip).await.unwrap();
        s.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.unwrap();
        held.push(s);
    }
    // The gateway may reset the third before this task sees its connect
    // complete (a busy machine): then connect itself reports the reset.
    let third = async {
        let mut third = TcpStream::connect(vip).await?;
        let _ = third.write_all(b"x").await;
        let mut buf = [0u8; 1];
        third.read(&mut buf).await
    };
    let r = tokio::time::timeout(LIMIT, third).await.unwrap();
    let err = r.expect_err("the third connection is reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
    let sample =
        "gateway_policy_limited_total{service=\"demo/svc\",source=\"a\",limit=\"concurrency\"}";
    assert_eq!(mesh.node("b").metric(sample), 1.0);
    drop(held);
    wait_for("a slot frees up", LIMIT, || async {
        let mut s = TcpStream::connect(vip).await.ok()?;
        s.write_all(b"y").await.ok()?;
        let mut one = [0u8; 1];
        s.read_exact(&mut one).await.ok().map(|_| ())
    })
    .await;
}

/// Sends `n` bytes to every client, then closes.
async fn sender(n: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let chunk = vec![7u8; 64 << 10];
                let mut left = n;
                while left > 0 {
                    let k = left.min(chunk.len());
                    if s.write_all(&chunk[..k]).await.is_err() {
                        return;
                    }
                    left -= k;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// Downloads to EOF; the bytes and the rate between the first and last byte.
async fn download(vip: SocketAddr) -> (usize, f64) {
    let mut s = TcpStream::connect(vip).await.unwrap();
    let mut buf = vec![0u8; 64 << 10];
    let (mut total, mut first) = (0usize, None);
    loop {
        let n = s
            .read(&mut buf)
            .await
            .expect("the download finishes without error");
        if n == 0 {
            break;
        }
        first.get_or_insert_with(Instant::now);
        total += n;
    }
    let secs = first.unwrap().elapsed().as_secs_f64();
    (total, total as f64 / secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bandwidth_limit_shapes_a_bulk_download_without_failing_it() {
    const SIZE: usize = 40 << 20;
    let _alone = HEAVY.lock().await;
    let (mesh, vip) = pair("127.77.28", sender(SIZE).await).await;
    let (got, raw) = download(vip).await;
    assert_eq!(got, SIZE);
    // 100 Mbit/s, unless this (debug, maybe loaded) build cannot carry three times that.
    let limit = (100e6 / 8.0f64).min(raw / 3.0).round();
    println!(
        "unshaped: {:.0} Mbit/s; limit {:.0} Mbit/s",
        raw * 8e-6,
        limit * 8e-6
    );
    let b = mesh.node("b");
    b.set_policies(&format!(
        "- {{ service: demo/svc, limits: {{ each_source: {{ bytes_per_second: {limit} }} }} }}"
    ));
    let (got, rate) = tokio::time::timeout(Duration::from_secs(60), download(vip))
        .await
        .unwrap();
    println!("shaped download of {got} bytes: {:.1} Mbit/s", rate * 8e-6);
    assert_eq!(got, SIZE, "every byte arrived");
    let ratio = rate / limit;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "{:.1} % of the limit",
        ratio * 100.0
    );
    let waited = b.metric("gateway_policy_shaped_bytes_total{service=\"demo/svc\",source=\"a\"}");
    assert!(
        waited > (SIZE / 2) as f64,
        "the shaper did the slowing: {waited}"
    );
}
