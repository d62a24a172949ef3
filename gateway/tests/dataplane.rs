//! The data plane across cores and its integrity: streams spread over the
//! pooled connections and the workers; a peer that dies mid-transfer resets
//! the TCP connection on the other side, never ends it cleanly; catalog work
//! on the control runtime never stalls the tunnel.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn two_workers(_: &str, c: &mut causeway_gateway::Config) {
    c.workers = Some(2);
    c.connections.per_peer = Some(2);
}

/// Dead peers are seen by the liveness watchdog at once; their connections
/// (and the streams on them) end after this idle timeout.
fn short_idle(_: &str, c: &mut causeway_gateway::Config) {
    c.connections.idle_timeout = Duration::from_secs(2);
}

/// a imports `demo/svc` from b at `PREFIX.1:7000`, served by `server`.
async fn pair(
    prefix: &str,
    server: SocketAddr,
    tweak: fn(&str, &mut causeway_gateway::Config),
) -> (Mesh, SocketAddr) {
    let mut mesh = Mesh::with_config(
        &[("a", "eu"), ("b", "eu")],
        &format!("{prefix}.0/24"),
        tweak,
    );
    mesh.set_exports("b", vec![export("demo/svc", 7000, server, ExportTo::All)]);
    let b = mesh.info("b").clone();
    let vip = format!("{prefix}.1");
    mesh.publish("a", vec![import("demo/svc", 7000, &vip, &[&b])]);
    let addr: SocketAddr = format!("{vip}:7000").parse().unwrap();
    (mesh, addr)
}

fn sample(text: &str, prefix: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| {
            let (labels, v) = l.rsplit_once(' ')?;
            Some((labels.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_spread_over_pooled_connections_and_workers() {
    let (mesh, addr) = pair("127.77.30", echo_server().await, two_workers).await;
    wait_for("tunnel ready", Duration::from_secs(10), || ping(addr)).await;
    // Held open, so each new stream sees the others' load.
    let mut held = Vec::new();
    for _ in 0..32 {
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"x").await.unwrap();
        let mut k = [0u8; 1];
        c.read_exact(&mut k).await.unwrap();
        held.push(c);
    }
    let a = mesh.node("a").metrics();
    let per_conn = sample(&a, "gateway_peer_streams_total{cluster=\"b\"");
    let used: Vec<_> = per_conn.iter().filter(|(_, n)| *n > 0.0).collect();
    assert_eq!(
        used.len(),
        2,
        "both pooled connections carry streams: {per_conn:?}"
    );
    assert!(used.iter().map(|(_, n)| n).sum::<f64>() >= 32.0);
    for (node, direction) in [("a", "outbound"), ("b", "inbound")] {
        let text = mesh.node(node).metrics();
        let per_worker = sample(&text, "gateway_worker_streams_total{");
        let busy = |w: &str| {
            let label = format!("worker=\"{w}\",direction=\"{direction}\"");
            per_worker
                .iter()
                .any(|(l, n)| l.contains(&label) && *n > 0.0)
        };
        assert!(
            busy("0") && busy("1"),
            "{node}: {direction} streams on both worker threads: {per_worker:?}"
        );
    }
}

/// Writes 64 KiB chunks until the client goes away (at most 60 s).
async fn firehose() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let chunk = vec![9u8; 64 << 10];
                let until = Instant::now() + Duration::from_secs(60);
                while Instant::now() < until && s.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    addr
}

/// Reads until the connection ends; its end and the bytes read before it.
async fn read_to_end_or_error(mut s: TcpStream, count: Arc<AtomicU64>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match s.read(&mut buf).await? {
            0 => return Ok(()),
            n => count.fetch_add(n as u64, Ordering::SeqCst),
        };
    }
}

async fn until_bytes(what: &str, count: &AtomicU64, at_least: u64) {
    wait_for(what, Duration::from_secs(20), || async {
        (count.load(Ordering::SeqCst) >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_exporter_resets_the_client_mid_download() {
    let (mut mesh, addr) = pair("127.77.31", firehose().await, short_idle).await;
    wait_for("tunnel ready", Duration::from_secs(10), || async {
        TcpStream::connect(addr).await.ok()
    })
    .await;
    let got = Arc::new(AtomicU64::new(0));
    let client = TcpStream::connect(addr).await.unwrap();
    let reader = tokio::spawn(read_to_end_or_error(client, got.clone()));
    until_bytes("the download under way", &got, 1 << 20).await;
    tokio::task::block_in_place(|| mesh.kill("b"));
    let end = tokio::time::timeout(Duration::from_secs(20), reader)
        .await
        .expect("the client's connection ends once the peer connection is gone")
        .unwrap();
    let err = end.expect_err("a download cut short must not end with a clean EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(got.load(Ordering::SeqCst) >= 1 << 20);
}

/// Accepts one connection and reports how it ended and how much it read.
async fn recording_sink() -> (
    SocketAddr,
    Arc<AtomicU64>,
    tokio::sync::oneshot::Receiver<std::io::Result<()>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let c = count.clone();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let _ = tx.send(read_to_end_or_error(s, c).await);
    });
    (addr, count, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_importer_resets_the_backend_mid_upload() {
    let (sink, got, ended) = recording_sink().await;
    let (mut mesh, addr) = pair("127.77.32", sink, short_idle).await;
    let mut client = wait_for("tunnel ready", Duration::from_secs(10), || async {
        TcpStream::connect(addr).await.ok()
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let uploader = tokio::spawn(async move {
        let chunk = vec![5u8; 64 << 10];
        let until = Instant::now() + Duration::from_secs(30);
        while !s.load(Ordering::SeqCst) && Instant::now() < until {
            if client.write_all(&chunk).await.is_err() {
                break;
            }
        }
        client // kept open: the upload is never finished by the client
    });
    until_bytes("the upload under way", &got, 1 << 20).await;
    tokio::task::block_in_place(|| mesh.kill("a"));
    stop.store(true, Ordering::SeqCst);
    let end = tokio::time::timeout(Duration::from_secs(20), ended)
        .await
        .expect("the backend's connection ends once the peer connection is gone")
        .unwrap();
    let err = end.expect_err("an upload cut short must not end with a clean EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    drop(uploader.await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_control_runtime_does_not_stall_the_tunnel() {
    let (mesh, addr) = pair("127.77.33", echo_server().await, |_, _| {}).await;
    wait_for("tunnel ready", Duration::from_secs(10), || ping(addr)).await;
    // What a 100k-export catalog merge does to the runtime it runs on, on both sides.
    let stall = Duration::from_secs(2);
    let stalled = Arc::new(AtomicU64::new(0));
    for node in ["a", "b"] {
        let s = stalled.clone();
        mesh.node(node).control.spawn(async move {
            s.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(stall);
            s.fetch_add(10, Ordering::SeqCst);
        });
    }
    wait_for(
        "both control runtimes stalled",
        Duration::from_secs(5),
        || async { (stalled.load(Ordering::SeqCst) == 2).then_some(()) },
    )
    .await;
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    for i in 0..10 {
        let t = Instant::now();
        assert!(ping(addr).await.is_some(), "ping {i} through the tunnel");
        worst = worst.max(t.elapsed());
    }
    assert_eq!(
        stalled.load(Ordering::SeqCst),
        2,
        "the pings ran while both control runtimes were blocked ({:?})",
        t0.elapsed()
    );
    println!("10 pings during the stall, slowest {worst:?}");
    assert!(
        worst < stall / 4,
        "a ping waited for the stalled runtime: {worst:?}"
    );
}
