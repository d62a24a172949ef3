//! Connection migration: the importing gateway's address changes mid-transfer
//! (a NAT rebinding: a relay in front of it starts sending from a new port)
//! and every stream on the peer connections carries on, byte for byte, on the
//! exporter's reuseport shards.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use causeway_catalog::ExportTo;
use support::*;
use tokio::net::UdpSocket;
use tokio::sync::watch;

/// A UDP relay in front of `target`, like a NAT: each client address gets
/// its own back socket (a mapping), and replies come back the same way. A
/// value sent on the returned channel drops every mapping: later packets go
/// out from new source ports. Counts datagrams that came back through a
/// mapping made after that.
async fn nat(target: SocketAddr) -> (SocketAddr, watch::Sender<u32>, Arc<AtomicU64>) {
    let front = Arc::new(udp());
    let addr = front.local_addr().unwrap();
    let (tx, rx) = watch::channel(0u32);
    let after = Arc::new(AtomicU64::new(0));
    tokio::spawn(relay(front, target, rx, after.clone()));
    (addr, tx, after)
}

/// A loopback UDP socket with buffers deep enough for a bulk transfer's bursts.
fn udp() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(8 << 20);
    let _ = s.set_send_buffer_size(8 << 20);
    s.set_nonblocking(true).unwrap();
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    UdpSocket::from_std(s.into()).unwrap()
}

async fn relay(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    mut rebind: watch::Receiver<u32>,
    after: Arc<AtomicU64>,
) {
    let mut maps: HashMap<SocketAddr, (Arc<UdpSocket>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            r = front.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { return };
                let (back, _) = maps.entry(from).or_insert_with(|| {
                    let back = Arc::new(udp());
                    let counted = (*rebind.borrow() > 0).then(|| after.clone());
                    let task = tokio::spawn(replies(back.clone(), front.clone(), from, counted));
                    (back, task)
                });
                let _ = back.send_to(&buf[..n], target).await;
            }
            r = rebind.changed() => {
                if r.is_err() { return }
                for (_, (_, task)) in maps.drain() {
                    task.abort();
                }
            }
        }
    }
}

async fn replies(
    back: Arc<UdpSocket>,
    front: Arc<UdpSocket>,
    client: SocketAddr,
    counted: Option<Arc<AtomicU64>>,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok((n, _)) = back.recv_from(&mut buf).await {
        if let Some(c) = &counted {
            c.fetch_add(1, Ordering::Relaxed);
        }
        let _ = front.send_to(&buf[..n], client).await;
    }
}

/// One 64-byte round trip on a new connection, within 10 s (the machine may be loaded).
async fn ping_within(vip: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let go = async {
        let mut s = tokio::net::TcpStream::connect(vip).await?;
        s.write_all(&[9u8; 64]).await?;
        let mut buf = [0u8; 64];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf == [9u8; 64])
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), go).await,
        Ok(Ok(true))
    )
}

fn two_workers(_: &str, c: &mut causeway_gateway::Config) {
    c.workers = Some(2);
    c.connections.per_peer = Some(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_survive_the_importers_address_changing_mid_transfer() {
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.33.0/24", two_workers);
    mesh.set_exports(
        "b",
        vec![export(
            "demo/echo",
            7400,
            echo_server().await,
            ExportTo::All,
        )],
    );
    // a reaches b only through the relay.
    let (relay, rebind, after) = nat(mesh.addrs[1]).await;
    mesh.addrs[1] = relay;
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import("demo/echo", 7400, "127.77.33.1", &[&b])]);
    let vip: SocketAddr = "127.77.33.1:7400".parse().unwrap();
    wait_for("tunnel ready", Duration::from_secs(10), || ping(vip)).await;

    let data: Vec<u8> = (0..24u32 << 20).map(|i| (i % 253) as u8).collect();
    let bulk = tokio::spawn(echo_through(vip, data.clone()));
    let pings = tokio::spawn(async move {
        let mut ok = 0;
        for _ in 0..100 {
            ok += usize::from(ping_within(vip).await);
        }
        ok
    });
    let a = mesh.node("a");
    wait_for("the bulk transfer under way", Duration::from_secs(20), || async {
        (a.metric("gateway_service_bytes_total{service=\"demo/echo\",direction=\"outbound\",flow=\"request\"}") > f64::from(4u32 << 20)).then_some(())
    })
    .await;
    rebind.send_replace(1);
    let back = tokio::time::timeout(Duration::from_secs(60), bulk)
        .await
        .unwrap()
        .unwrap();
    assert!(back == data, "the bulk transfer came back byte for byte");
    assert_eq!(
        pings.await.unwrap(),
        100,
        "every ping-pong connection succeeded"
    );
    assert!(
        after.load(Ordering::Relaxed) > 100,
        "traffic moved to the new address"
    );
}

/// Round trips of 64 bytes on one connection until `stop`; the longest wait
/// for an answer, or an error.
async fn ping_pong(
    vip: SocketAddr,
    stop: watch::Receiver<bool>,
) -> std::io::Result<(u32, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(vip).await?;
    let (mut n, mut worst) = (0u32, Duration::ZERO);
    while !*stop.borrow() && n < 100_000 {
        let msg = [(n % 251) as u8; 64];
        let sent = std::time::Instant::now();
        s.write_all(&msg).await?;
        let mut buf = [0u8; 64];
        tokio::time::timeout(Duration::from_secs(20), s.read_exact(&mut buf)).await??;
        assert_eq!(buf, msg, "round trip {n} came back changed");
        worst = worst.max(sent.elapsed());
        n += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    s.shutdown().await?;
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await?;
    Ok((n, worst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_survive_the_importer_rebinding_its_own_socket_mid_transfer() {
    let mut mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.34.0/24");
    mesh.set_exports(
        "b",
        vec![export(
            "demo/echo",
            7401,
            echo_server().await,
            ExportTo::All,
        )],
    );
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import("demo/echo", 7401, "127.77.34.1", &[&b])]);
    let vip: SocketAddr = "127.77.34.1:7401".parse().unwrap();
    wait_for("tunnel ready", Duration::from_secs(10), || ping(vip)).await;
    let a = mesh.node("a");
    let handshakes = "gateway_peer_handshakes_total{cluster=\"b\",result=\"ok\"}";
    let dialled = a.metric(handshakes);

    let data: Vec<u8> = (0..24u32 << 20).map(|i| (i % 251) as u8).collect();
    let bulk = tokio::spawn(echo_through(vip, data.clone()));
    let (stop, stopped) = watch::channel(false);
    let pong = tokio::spawn(ping_pong(vip, stopped));
    wait_for("the bulk transfer under way", Duration::from_secs(20), || async {
        (a.metric("gateway_service_bytes_total{service=\"demo/echo\",direction=\"outbound\",flow=\"request\"}") > f64::from(4u32 << 20)).then_some(())
    })
    .await;
    let new_ip = "127.0.0.2".parse().unwrap();
    let old = a.rebinder.local_addrs();
    let moved = a.rebinder.rebind(Some(new_ip)).unwrap();
    assert!(moved.iter().all(|m| m.ip() == new_ip), "{moved:?}");
    // Once the peer answers on the new address, the old sockets close: their ports are free.
    wait_for(
        "the old sockets released",
        Duration::from_secs(10),
        || async {
            old.iter()
                .all(|o| std::net::UdpSocket::bind(o).is_ok())
                .then_some(())
        },
    )
    .await;
    let back = tokio::time::timeout(Duration::from_secs(60), bulk)
        .await
        .unwrap()
        .unwrap();
    assert!(back == data, "the bulk transfer came back byte for byte");
    stop.send_replace(true);
    let (rounds, worst) = pong
        .await
        .unwrap()
        .expect("the ping-pong connection saw no reset");
    println!("ping-pong: {rounds} round trips, longest {worst:?} across the rebind");
    assert!(
        rounds > 10,
        "the ping-pong ran during the transfer: {rounds}"
    );
    assert_eq!(
        a.metric(handshakes),
        dialled,
        "no connection was dialled again: they migrated"
    );
    assert_eq!(a.metric("gateway_rebinds_total"), 1.0);
}
