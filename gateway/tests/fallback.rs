//! Transport fallback: with UDP to a peer blocked, tunnelled connections go
//! over TLS on TCP; with UDP back, new streams return to QUIC while those on
//! TCP finish there. A firewall in front of the exporter passes or drops UDP
//! and always forwards TCP, counting the bytes each way carries.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

struct Firewall {
    addr: SocketAddr,
    udp_open: Arc<AtomicBool>,
    udp_bytes: Arc<AtomicU64>,
    tcp_bytes: Arc<AtomicU64>,
}

impl Firewall {
    /// UDP and TCP on one port number, in front of `target` (both protocols).
    async fn start(target: SocketAddr) -> Firewall {
        let (front, tcp) = same_port_pair().await;
        let fw = Firewall {
            addr: front.local_addr().unwrap(),
            udp_open: Arc::new(AtomicBool::new(true)),
            udp_bytes: Arc::default(),
            tcp_bytes: Arc::default(),
        };
        let (open, bytes) = (fw.udp_open.clone(), fw.udp_bytes.clone());
        tokio::spawn(udp_relay(Arc::new(front), target, open, bytes));
        tokio::spawn(tcp_relay(tcp, target, fw.tcp_bytes.clone()));
        fw
    }

    fn udp(&self) -> u64 {
        self.udp_bytes.load(Ordering::Relaxed)
    }

    fn tcp(&self) -> u64 {
        self.tcp_bytes.load(Ordering::Relaxed)
    }
}

async fn same_port_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(t) = TcpListener::bind(u.local_addr().unwrap()).await {
            return (u, t);
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// Like a NAT: one back socket per client address; drops both ways while closed.
async fn udp_relay(
    front: Arc<UdpSocket>,
    target: SocketAddr,
    open: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
) {
    let mut maps: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while let Ok((n, from)) = front.recv_from(&mut buf).await {
        if !open.load(Ordering::Relaxed) {
            continue;
        }
        let back = maps.entry(from).or_insert_with(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            let back = Arc::new(UdpSocket::from_std(s).unwrap());
            let (b, f, o, c) = (back.clone(), front.clone(), open.clone(), bytes.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                while let Ok((n, _)) = b.recv_from(&mut buf).await {
                    if o.load(Ordering::Relaxed) {
                        c.fetch_add(n as u64, Ordering::Relaxed);
                        let _ = f.send_to(&buf[..n], from).await;
                    }
                }
            });
            back
        });
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        let _ = back.send_to(&buf[..n], target).await;
    }
}

async fn tcp_relay(l: TcpListener, target: SocketAddr, bytes: Arc<AtomicU64>) {
    while let Ok((s, _)) = l.accept().await {
        let bytes = bytes.clone();
        tokio::spawn(async move {
            let Ok(t) = TcpStream::connect(target).await else {
                return;
            };
            let ((sr, sw), (tr, tw)) = (s.into_split(), t.into_split());
            tokio::join!(counted(sr, tw, &bytes), counted(tr, sw, &bytes));
        });
    }
}

/// Copies until EOF or an error, counting bytes as they pass.
async fn counted(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    bytes: &AtomicU64,
) {
    let mut buf = vec![0u8; 65536];
    while let Ok(n @ 1..) = r.read(&mut buf).await {
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

fn fast_fallback(_: &str, c: &mut causeway_gateway::Config) {
    c.workers = Some(2);
    c.connections.per_peer = Some(2);
    c.fallback.after = Duration::from_secs(1);
    c.fallback.reprobe = Duration::from_secs(2);
}

const VIP: &str = "127.77.41.1:7400";

fn transport(node: &Node, t: &str) -> f64 {
    node.metric(&format!(
        "gateway_peer_transport{{cluster=\"b\",transport=\"{t}\"}}"
    ))
}

/// `n` connections each echoing `size` bytes, all checked byte for byte.
async fn echo_load(n: usize, size: usize) {
    let vip: SocketAddr = VIP.parse().unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let got = run_many(n, n, |_| echo_through(vip, data.clone())).await;
    assert!(
        got.iter().all(|g| *g == data),
        "every echo came back intact"
    );
}

/// Echoes 16 KiB chunks until `stop` (at most 5000 or 120 s); returns chunks
/// echoed before and after `stop`'s first value, i.e. across the switch.
async fn steady(switched: Arc<AtomicBool>, stop: Arc<AtomicBool>) -> (u32, u32) {
    let vip: SocketAddr = VIP.parse().unwrap();
    let mut s = TcpStream::connect(vip).await.unwrap();
    let chunk: Vec<u8> = (0..16384u32).map(|i| (i % 241) as u8).collect();
    let mut back = vec![0u8; chunk.len()];
    let (mut before, mut after, t0) = (0, 0, Instant::now());
    for _ in 0..5000 {
        if stop.load(Ordering::Relaxed) || t0.elapsed() > Duration::from_secs(120) {
            break;
        }
        s.write_all(&chunk).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        assert!(back == chunk, "a chunk came back changed");
        if switched.load(Ordering::Relaxed) {
            after += 1;
        } else {
            before += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // paced, not synchronising
    }
    (before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_udp_falls_back_to_tcp_and_returns_to_quic() {
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.41.0/24", fast_fallback);
    let echo = echo_server().await;
    mesh.set_exports("b", vec![export("demo/echo", 7400, echo, ExportTo::All)]);
    // b's fallback listens on TCP at its QUIC port; a reaches both through the firewall.
    let fw = Firewall::start(mesh.addrs[1]).await;
    mesh.addrs[1] = fw.addr;
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import("demo/echo", 7400, "127.77.41.1", &[&b])]);
    let vip: SocketAddr = VIP.parse().unwrap();
    wait_for("tunnel over QUIC", Duration::from_secs(15), || ping(vip)).await;
    let a = mesh.node("a");
    assert_eq!(transport(a, "quic"), 1.0);
    assert_eq!(fw.tcp(), 0, "nothing on TCP while QUIC works");

    // Block UDP: new connections succeed over TCP within the stated time
    // (2 x liveness + fallback.after + handshakes: about 3 s here, 5 s by default).
    fw.udp_open.store(false, Ordering::Relaxed);
    let t0 = Instant::now();
    wait_for("transport tcp", Duration::from_secs(20), || async {
        (transport(a, "tcp") == 1.0).then_some(())
    })
    .await;
    wait_for("tunnel over TCP", Duration::from_secs(10), || ping(vip)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(15), "fallback took {took:?}");
    assert_eq!(transport(a, "quic"), 0.0);
    let (udp0, tcp0) = (fw.udp(), fw.tcp());
    echo_load(8, 256 << 10).await;
    assert!(
        fw.tcp() - tcp0 >= 2 * 8 * (256 << 10),
        "the echoes went over TCP"
    );
    assert_eq!(fw.udp(), udp0, "nothing passed the blocked UDP");
    assert!(a.metric("gateway_fallback_dials_total{cluster=\"b\",result=\"ok\"}") >= 1.0);

    // Connections open on TCP run through the return to QUIC.
    let (switched, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let load: Vec<_> = (0..6)
        .map(|_| tokio::spawn(steady(switched.clone(), stop.clone())))
        .collect();
    wait_for("steady load under way", Duration::from_secs(20), || async {
        (fw.tcp() > tcp0 + 2 * 8 * (256 << 10)).then_some(())
    })
    .await;
    fw.udp_open.store(true, Ordering::Relaxed);
    wait_for("transport quic again", Duration::from_secs(30), || async {
        (transport(a, "quic") == 1.0).then_some(())
    })
    .await;
    assert_eq!(transport(a, "tcp"), 0.0);
    wait_for("slot 0 re-probed QUIC", Duration::from_secs(30), || async {
        (a.metric("gateway_fallback_reprobes_total{cluster=\"b\",result=\"ok\"}") >= 1.0)
            .then_some(())
    })
    .await;
    switched.store(true, Ordering::Relaxed);

    // New streams go over QUIC while the open ones finish on TCP.
    let udp1 = fw.udp();
    echo_load(8, 256 << 10).await;
    assert!(
        fw.udp() - udp1 >= 2 * 8 * (256 << 10),
        "new echoes went over QUIC"
    );
    stop.store(true, Ordering::Relaxed);
    for l in load {
        let (before, after) = tokio::time::timeout(Duration::from_secs(60), l)
            .await
            .unwrap()
            .unwrap();
        assert!(
            before > 0 && after > 0,
            "ran through the switch: {before} + {after} chunks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_at_the_outer_tls() {
    let mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], "127.77.42.0/24");
    let b = mesh.node("b");
    let mallory = Pki::new("mallory");
    // Mallory verifies b properly but presents a certificate from her own CA.
    let mut tls = causeway_identity::client_config(
        mallory.cert(),
        &mesh.pki[1].trust(),
        causeway_identity::Workload::Gateway,
    )
    .unwrap();
    tls.alpn_protocols = vec![b"causeway-tcp/1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = TcpStream::connect(mesh.addrs[1]).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("b.test").unwrap();
    let refused = match connector.connect(name, tcp).await {
        Err(_) => true,
        // TLS 1.3: the client finishes first; the server's alert ends the read.
        Ok(mut s) => {
            let mut buf = [0u8; 1];
            matches!(
                tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
                Ok(Err(_) | Ok(0))
            )
        }
    };
    assert!(refused, "the stranger's TLS connection was refused");
    wait_for("refusal counted", Duration::from_secs(10), || async {
        (b.metric("gateway_fallback_accepts_total{result=\"rejected\"}") == 1.0).then_some(())
    })
    .await;
    assert_eq!(
        b.metric("gateway_fallback_accepts_total{result=\"ok\"}"),
        0.0
    );
    assert_eq!(
        b.metric("gateway_inbound_handshakes_total{result=\"rejected\"}"),
        0.0,
        "never reached QUIC"
    );
}

fn two_per_source(_: &str, c: &mut causeway_gateway::Config) {
    c.fallback.max_per_source = 2;
    c.timeouts.handshake = Duration::from_secs(10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_past_its_cap_is_closed() {
    let mesh = Mesh::with_config(
        &[("a", "eu"), ("b", "eu")],
        "127.77.43.0/24",
        two_per_source,
    );
    let b = mesh.node("b");
    // Two connections that never start TLS hold the source's slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(mesh.addrs[1]).await.unwrap());
    }
    let mut third = TcpStream::connect(mesh.addrs[1]).await.unwrap();
    wait_for(
        "the third counted over the limit",
        Duration::from_secs(10),
        || async {
            (b.metric("gateway_fallback_accepts_total{result=\"over_limit\"}") == 1.0).then_some(())
        },
    )
    .await;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buf)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the third was closed: {read:?}"
    );
    assert_eq!(held.len(), 2);
}
