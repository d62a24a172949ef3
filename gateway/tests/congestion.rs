//! One stuck service must not wedge the peer connection for every other service.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use causeway_catalog::ExportTo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Both tests load the machine hard: run them one at a time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Writes into `addr` until the tunnel stops taking bytes (bounded at 64 MiB),
/// then counts itself in `stuck` and holds the connection (and the far side's
/// buffered bytes) until `release`, or 60 s; then resets it, so the gateways
/// reset the stream and drop what it buffered.
async fn push_until_stuck(
    addr: SocketAddr,
    stuck: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let chunk = vec![7u8; 256 << 10];
    for _ in 0..256 {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            _ => break, // blocked: every buffer on the way is full
        }
    }
    stuck.fetch_add(1, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(60), release.notified()).await;
    let _ = s.set_zero_linger();
}

async fn echo_once(addr: SocketAddr) -> Result<Vec<u8>, String> {
    let go = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(b"still here")
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 10];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        Ok(buf.to_vec())
    };
    tokio::time::timeout(Duration::from_secs(10), go)
        .await
        .map_err(|_| "no echo within 10 s".to_string())?
}

fn streams(metrics: &str) -> String {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("gateway_streams_total") || l.starts_with("gateway_cluster_ejected")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A pair A -> B: B exports `demo/echo` and `demo/load` (backed by `load`), A
/// imports them at `PREFIX.1:7000` and `PREFIX.2:7001`. Returns once an echo works.
async fn echo_and_load(
    prefix: &str,
    load: SocketAddr,
    tweak: fn(&str, &mut causeway_gateway::Config),
) -> (Mesh, SocketAddr, SocketAddr) {
    let mut mesh = Mesh::with_config(
        &[("a", "eu"), ("b", "eu")],
        &format!("{prefix}.0/24"),
        tweak,
    );
    let echo = echo_server().await;
    mesh.set_exports(
        "b",
        vec![
            export("demo/echo", 7000, echo, ExportTo::All),
            export("demo/load", 7001, load, ExportTo::All),
        ],
    );
    let b = mesh.info("b").clone();
    mesh.publish(
        "a",
        vec![
            import("demo/echo", 7000, &format!("{prefix}.1"), &[&b]),
            import("demo/load", 7001, &format!("{prefix}.2"), &[&b]),
        ],
    );
    let echo_vip: SocketAddr = format!("{prefix}.1:7000").parse().unwrap();
    let load_vip: SocketAddr = format!("{prefix}.2:7001").parse().unwrap();
    wait_for("tunnel ready", Duration::from_secs(10), || async {
        echo_once(echo_vip).await.ok()
    })
    .await;
    (mesh, echo_vip, load_vip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_service_does_not_block_new_streams_to_the_same_peer() {
    let _heavy = HEAVY.lock().await;
    let (mesh, echo_vip, stuck_vip) =
        echo_and_load("127.77.9", silent_server().await, |_, _| {}).await;

    // Enough stuck connections that their buffered bytes exceed the far side's
    // connection receive window many times over.
    const STUCK: usize = 32;
    let stuck = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let pushers: Vec<_> = (0..STUCK)
        .map(|_| tokio::spawn(push_until_stuck(stuck_vip, stuck.clone(), release.clone())))
        .collect();
    wait_for(
        "every stuck connection blocked",
        Duration::from_secs(60),
        || {
            let n = stuck.load(Ordering::SeqCst);
            async move { (n == STUCK).then_some(()) }
        },
    )
    .await;
    let a = mesh.node("a");
    let pushed = "gateway_service_bytes_total{service=\"demo/load\",direction=\"outbound\",flow=\"request\"}";
    println!(
        "{} MiB stuck in the tunnel",
        a.metric(pushed) / f64::from(1 << 20)
    );

    for i in 0..5 {
        let got = echo_once(echo_vip).await;
        assert_eq!(
            got.as_deref(),
            Ok(&b"still here"[..]),
            "new connection {i} to another service on the same peer; a: {}\nb: {}",
            streams(&a.metrics()),
            streams(&mesh.node("b").metrics())
        );
    }
    let timeouts = "gateway_streams_total{cluster=\"b\",direction=\"outbound\",status=\"timeout\"}";
    assert_eq!(a.metric(timeouts), 0.0, "{}", a.metrics());
    assert_eq!(a.metric("gateway_cluster_ejected{cluster=\"b\"}"), 0.0);
    // The clients give up with a reset while their streams are blocked: both
    // gateways free the streams, and what b buffered for the stuck backend.
    let b = mesh.node("b");
    let open = |node: &Node, dir: &str| {
        node.metric(&format!(
            "gateway_service_active_streams{{service=\"demo/load\",direction=\"{dir}\"}}"
        ))
    };
    // (Not all 32 need reach b: a connection window full of stuck data holds
    // back the headers of later ones, which is what this test is about.)
    assert!(open(b, "inbound") > 0.0, "stuck streams reached b");
    release.notify_waiters();
    for p in pushers {
        p.await.unwrap();
    }
    wait_for(
        "the stuck streams freed",
        Duration::from_secs(10),
        || async { (open(a, "outbound") == 0.0 && open(b, "inbound") == 0.0).then_some(()) },
    )
    .await;
}

/// A sink that reads and discards everything, counting the bytes: bulk data
/// flows as fast as the tunnel allows.
async fn counting_sink() -> (SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = s.read(&mut buf).await {
                    c.fetch_add(n as u64, Ordering::SeqCst);
                }
            });
        }
    });
    (addr, count)
}

/// Pushes bulk data into `addr` until `stop`, bounded at 30 s.
async fn push_bulk(addr: SocketAddr, stop: Arc<AtomicUsize>) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let chunk = vec![3u8; 64 << 10];
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while stop.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < until {
        if s.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// Waits (bounded) until `count` has grown by `by` bytes: the load is flowing.
async fn flowing(what: &str, count: &AtomicU64, by: u64) -> u64 {
    let from = count.load(Ordering::SeqCst);
    wait_for(what, Duration::from_secs(30), || async {
        let now = count.load(Ordering::SeqCst);
        (now >= from + by).then_some(now)
    })
    .await
}

fn patient(_: &str, c: &mut causeway_gateway::Config) {
    c.connections.liveness = Duration::from_secs(3);
    c.connections.idle_timeout = Duration::from_secs(10);
    c.timeouts.connect = Duration::from_secs(5);
    c.timeouts.status = Duration::from_secs(8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_get_through_while_hundreds_of_streams_move_bulk_data() {
    let _heavy = HEAVY.lock().await;
    // This test is about fair credit, not liveness: a debug build on a loaded CI
    // machine can stall for longer than the default dead-peer and connect timeouts.
    let (sink, moved) = counting_sink().await;
    let (mesh, echo_vip, sink_vip) = echo_and_load("127.77.10", sink, patient).await;
    let stop = Arc::new(AtomicUsize::new(0));
    let bulk: Vec<_> = (0..400)
        .map(|_| tokio::spawn(push_bulk(sink_vip, stop.clone())))
        .collect();
    let before = flowing("bulk data flowing", &moved, 64 << 20).await;
    // New connections in bursts while the bulk streams saturate the peer connection.
    let mut failed = Vec::new();
    for round in 0..5 {
        let burst: Vec<_> = (0..40).map(|_| tokio::spawn(echo_once(echo_vip))).collect();
        for (i, t) in burst.into_iter().enumerate() {
            if let Err(e) = t.await.unwrap() {
                failed.push(format!("round {round} connection {i}: {e}"));
            }
        }
    }
    let during = moved.load(Ordering::SeqCst) - before;
    stop.store(1, Ordering::SeqCst);
    for t in bulk {
        let _ = t.await;
    }
    let a = mesh.node("a");
    assert!(failed.is_empty(), "{failed:?}\n{}", streams(&a.metrics()));
    assert!(during > 0, "bulk data kept moving during the bursts");
    let timeouts = "gateway_streams_total{cluster=\"b\",direction=\"outbound\",status=\"timeout\"}";
    assert_eq!(a.metric(timeouts), 0.0, "{}", streams(&a.metrics()));
}

/// Bytes per second the sink receives from one bulk connection while `during`
/// runs (at least `at_least`), after the stream got going.
async fn bulk_rate<F: Future>(
    vip: SocketAddr,
    moved: &AtomicU64,
    at_least: Duration,
    during: F,
) -> (f64, F::Output) {
    let stop = Arc::new(AtomicUsize::new(0));
    let pusher = tokio::spawn(push_bulk(vip, stop.clone()));
    let from = flowing("the healthy bulk stream flowing", moved, 4 << 20).await;
    let t0 = tokio::time::Instant::now();
    let (out, ()) = tokio::join!(during, tokio::time::sleep(at_least));
    let rate = (moved.load(Ordering::SeqCst) - from) as f64 / t0.elapsed().as_secs_f64();
    stop.store(1, Ordering::SeqCst);
    let _ = pusher.await;
    (rate, out)
}

/// New echo connections one after another; their setup-to-echo times, sorted.
async fn echo_times(vip: SocketAddr, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = tokio::time::Instant::now();
        echo_once(vip).await.unwrap();
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn two_workers(_: &str, c: &mut causeway_gateway::Config) {
    c.workers = Some(2);
    c.connections.per_peer = Some(2);
}

/// 32 connections whose backends never read, and one healthy bulk stream to
/// the same peer: the stuck streams must not take turns from the healthy one
/// (head-of-line blocking), and new connections still open quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_readers_do_not_slow_a_healthy_bulk_stream() {
    let _heavy = HEAVY.lock().await;
    let (sink, moved) = counting_sink().await;
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.11.0/24", two_workers);
    let echo = echo_server().await;
    let services = [
        ("echo", 7000, echo),
        ("stuck", 7001, silent_server().await),
        ("bulk", 7002, sink),
    ];
    mesh.set_exports(
        "b",
        services
            .iter()
            .map(|(n, port, at)| export(&format!("demo/{n}"), *port, *at, ExportTo::All))
            .collect(),
    );
    let b = mesh.info("b").clone();
    let imports = services
        .iter()
        .enumerate()
        .map(|(i, (n, port, _))| {
            import(
                &format!("demo/{n}"),
                *port,
                &format!("127.77.11.{}", i + 1),
                &[&b],
            )
        })
        .collect();
    mesh.publish("a", imports);
    let vip = |i: usize, port: u16| SocketAddr::from(([127, 77, 11, i as u8], port));
    let (echo_vip, stuck_vip, bulk_vip) = (vip(1, 7000), vip(2, 7001), vip(3, 7002));
    wait_for("tunnel ready", Duration::from_secs(10), || async {
        echo_once(echo_vip).await.ok()
    })
    .await;

    // Unloaded, beside the stuck streams, and unloaded again: the machine's own
    // load changes from one window to the next, so the baseline brackets it.
    let window = Duration::from_secs(2);
    let (alone, quiet) = bulk_rate(bulk_vip, &moved, window, echo_times(echo_vip, 100)).await;
    const STUCK: usize = 32;
    let stuck = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let pushers: Vec<_> = (0..STUCK)
        .map(|_| tokio::spawn(push_until_stuck(stuck_vip, stuck.clone(), release.clone())))
        .collect();
    wait_for(
        "every stuck connection blocked",
        Duration::from_secs(60),
        || {
            let n = stuck.load(Ordering::SeqCst);
            async move { (n == STUCK).then_some(()) }
        },
    )
    .await;
    let (mut shared, loaded) = bulk_rate(bulk_vip, &moved, window, echo_times(echo_vip, 100)).await;
    // The machine's load can only lower a window's rate (CI runs beside stress-ng):
    // judge the stuck streams' effect by the best of three windows.
    for _ in 0..2 {
        shared = shared.max(bulk_rate(bulk_vip, &moved, window, async {}).await.0);
    }
    release.notify_waiters(); // their connections and streams are reset
    for p in pushers {
        p.await.unwrap();
    }
    let (again, _) = bulk_rate(bulk_vip, &moved, window, async {}).await;
    let mib = |r: f64| r / f64::from(1 << 20);
    let p99 = |t: &[Duration]| t[t.len() * 99 / 100 - 1];
    println!(
        "healthy bulk stream: {:.0} and {:.0} MiB/s alone, {:.0} MiB/s beside {STUCK} stuck; \
         new connection p99 {:?} alone, {:?} beside them",
        mib(alone),
        mib(again),
        mib(shared),
        p99(&quiet),
        p99(&loaded)
    );
    let a = mesh.node("a");
    let baseline = alone.min(again);
    assert!(
        shared >= baseline / 2.0,
        "the healthy stream kept {:.0}% of its rate\n{}",
        100.0 * shared / baseline,
        streams(&a.metrics())
    );
    // A release build on a quiet machine stays far below 100 ms at p99 (see
    // docs/protocol.md); a loaded debug build only has to show that the stuck
    // streams add nothing (p90) and that no new connection waited anywhere
    // near a timeout (p99).
    let p90 = |t: &[Duration]| t[t.len() * 90 / 100 - 1];
    let bound = (p90(&quiet) * 3).max(Duration::from_millis(100));
    assert!(
        p90(&loaded) < bound && p99(&loaded) < Duration::from_secs(1),
        "new connections p90 {:?} / p99 {:?} beside stuck streams, p90 {:?} without",
        p90(&loaded),
        p99(&loaded),
        p90(&quiet)
    );
}
