//! Loopback benchmark: direct TCP vs through a gateway pair (A -> QUIC -> B).
//!
//! cargo run --release -p causeway-gateway --example bench -- [bytes] [rounds] [splice_buffer] [stream_window] [send_window]
//!
//! Each gateway runs on its own thread with a current-thread runtime; the client
//! and servers share a third. Prints single-connection bulk throughput and
//! 64-byte round-trip latency (p50/p99) on an established connection. Bulk is the
//! median of three runs; CPU s/GiB is the whole process's CPU time per GiB moved
//! (client, servers and both gateways), which is steadier than wall-clock rates on
//! a shared machine.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_catalog::{
    CatalogSnapshot, ClusterId, ClusterInfo, Endpoint, Export, ExportTo, Freshness, Import, Port,
    ServingCluster,
};
use causeway_gateway::{Config, Gateway, GatewayInputs};
use causeway_identity::{
    Ca, CertPaths, PeerSet, PeerTrust, ReloadingCert, TrustDomain, Validity, Workload,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

struct Cluster {
    info: ClusterInfo,
    td: TrustDomain,
    dir: tempfile::TempDir,
}

fn cluster(name: &str) -> Cluster {
    let td = TrustDomain::new(format!("{name}.bench")).unwrap();
    let ca = Ca::generate(&ClusterId::new(name).unwrap(), &td).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.issue(Workload::Gateway, Validity::default()).unwrap();
    leaf.save(dir.path(), Workload::Gateway, false).unwrap();
    std::fs::write(dir.path().join("bundle.pem"), ca.cert_pem()).unwrap();
    let info = ClusterInfo {
        name: ClusterId::new(name).unwrap(),
        region: "r".into(),
        zone: "z".into(),
        trust_domain: td.to_string(),
        gateways: vec![],
    };
    Cluster { info, td, dir }
}

fn trust(c: &Cluster) -> PeerTrust {
    PeerTrust::load(
        c.info.name.clone(),
        c.td.clone(),
        &c.dir.path().join("bundle.pem"),
    )
    .unwrap()
}

type Channels = (
    watch::Sender<Arc<CatalogSnapshot>>,
    watch::Sender<Arc<Vec<Export>>>,
);

/// Starts a gateway on its own thread; returns its address and catalog channels.
fn start(me: &Cluster, peer: &Cluster, cfg: Config) -> (SocketAddr, Channels) {
    let cert = ReloadingCert::load(CertPaths {
        cert: me.dir.path().join("gateway.pem"),
        key: me.dir.path().join("gateway-key.pem"),
    })
    .unwrap();
    let (ctx, crx) = watch::channel(Arc::new(CatalogSnapshot::default()));
    let (etx, erx) = watch::channel(Arc::new(Vec::new()));
    let inputs = GatewayInputs {
        cfg,
        local: me.info.clone(),
        cert,
        peers: Arc::new(PeerSet::new(vec![trust(peer)]).unwrap()),
        catalog: crx,
        local_exports: erx,
        policies: tokio::sync::watch::channel(Default::default()).1,
        shutdown: Default::default(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let mut reg = prometheus_client::registry::Registry::default();
            let gw = Gateway::bind(inputs, &mut reg).await.unwrap();
            tx.send(gw.local_addr().unwrap()).unwrap();
            gw.run().await.unwrap();
        });
    });
    (rx.recv().unwrap(), (ctx, etx))
}

/// Reads everything, then answers with the byte count.
async fn sink(l: TcpListener) {
    while let Ok((mut s, _)) = l.accept().await {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 256 << 10];
            let mut n = 0u64;
            while let Ok(k) = s.read(&mut buf).await {
                if k == 0 {
                    break;
                }
                n += k as u64;
            }
            let _ = s.write_all(&n.to_be_bytes()).await;
        });
    }
}

async fn echo(l: TcpListener) {
    while let Ok((mut s, _)) = l.accept().await {
        tokio::spawn(async move {
            let _ = s.set_nodelay(true);
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // utime and stime are fields 14 and 15, i.e. indexes 11 and 12 after the state field.
    f.get(10)
        .zip(f.get(11))
        .map_or(0.0, |(u, s)| (u + s) / 100.0)
}

/// Median of three bulk runs: (Gbit/s, CPU seconds per GiB for the whole process).
async fn bulk3(addr: SocketAddr, bytes: u64) -> (f64, f64) {
    let mut runs = Vec::new();
    for _ in 0..3 {
        let cpu0 = cpu_seconds();
        let gbps = bulk(addr, bytes).await;
        let cpu = (cpu_seconds() - cpu0) / (bytes as f64 / (1u64 << 30) as f64);
        runs.push((gbps, cpu));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[1]
}

async fn bulk(addr: SocketAddr, bytes: u64) -> f64 {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let buf = vec![7u8; 256 << 10];
    let t0 = Instant::now();
    let mut left = bytes;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        s.write_all(&buf[..n]).await.unwrap();
        left -= n as u64;
    }
    s.shutdown().await.unwrap();
    let mut got = [0u8; 8];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(u64::from_be_bytes(got), bytes);
    bytes as f64 * 8.0 / t0.elapsed().as_secs_f64() / 1e9
}

async fn latency(addr: SocketAddr, rounds: usize) -> (Duration, Duration) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (msg, mut back) = ([1u8; 64], [0u8; 64]);
    for _ in 0..100 {
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
    }
    let mut v: Vec<Duration> = (0..rounds).map(|_| Duration::ZERO).collect();
    for d in v.iter_mut() {
        let t0 = Instant::now();
        s.write_all(&msg).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        *d = t0.elapsed();
    }
    v.sort();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn config(range: &str) -> Config {
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        vip_ranges: vec![range.parse().unwrap()],
        ..Config::default()
    };
    let t = &mut cfg.transport;
    t.splice_buffer = arg(3, t.splice_buffer.into()) as u32;
    t.stream_receive_window = arg(4, t.stream_receive_window.into()) as u32;
    t.send_window = arg(5, t.send_window.into()) as u32;
    cfg
}

fn import(name: &str, port: u16, vip: &str, b: &ClusterInfo) -> Import {
    Import {
        key: format!("bench/{name}").parse().unwrap(),
        ports: vec![Port::tcp("tcp", port)],
        clusters: vec![ServingCluster {
            cluster: b.name.clone(),
            region: b.region.clone(),
            zone: b.zone.clone(),
            ready_endpoints: 1,
            freshness: Freshness::Fresh,
            ports: Vec::new(),
        }],
        vips: vec![vip.parse().unwrap()],
        serve_stale: false,
        conditions: vec![],
        endpoints: Vec::new(),
        headless: false,
        props: Default::default(),
    }
}

fn export(name: &str, port: u16, addr: SocketAddr) -> Export {
    Export {
        key: format!("bench/{name}").parse().unwrap(),
        ports: vec![Port::tcp("tcp", port)],
        endpoints: vec![Endpoint {
            addr,
            ready: true,
            hostname: None,
        }],
        export_to: ExportTo::All,
        created_at: Default::default(),
        serve_stale: false,
        headless: false,
        props: Default::default(),
    }
}

fn main() {
    let (bytes, rounds) = (arg(1, 1 << 30), arg(2, 10_000) as usize);
    let (a, b) = (cluster("a"), cluster("b"));
    let (a_addr, (a_cat, _a_exp)) = start(&a, &b, config("127.78.0.0/24"));
    let (b_addr, (b_cat, b_exp)) = start(&b, &a, config("127.78.1.0/24"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (sl, el) = (
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
        );
        let (sink_addr, echo_addr) = (sl.local_addr().unwrap(), el.local_addr().unwrap());
        tokio::spawn(sink(sl));
        tokio::spawn(echo(el));
        b_exp.send_replace(Arc::new(vec![
            export("sink", 9001, sink_addr),
            export("echo", 9002, echo_addr),
        ]));
        let mut clusters = std::collections::BTreeMap::new();
        for (c, addr) in [(&a.info, a_addr), (&b.info, b_addr)] {
            let mut i = c.clone();
            i.gateways = vec![addr];
            clusters.insert(i.name.clone(), i);
        }
        let imports = [
            import("sink", 9001, "127.78.0.1", &b.info),
            import("echo", 9002, "127.78.0.1", &b.info),
        ];
        let imports = imports.into_iter().map(|i| (i.key.clone(), i)).collect();
        b_cat.send_replace(Arc::new(CatalogSnapshot {
            imports: Default::default(),
            clusters: clusters.clone(),
        }));
        a_cat.send_replace(Arc::new(CatalogSnapshot { imports, clusters }));
        let (g_sink, g_echo): (SocketAddr, SocketAddr) = (
            "127.78.0.1:9001".parse().unwrap(),
            "127.78.0.1:9002".parse().unwrap(),
        );
        // Wait (bounded) for the listeners and the peer connection.
        let t0 = Instant::now();
        while latency_probe(g_echo).await.is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "gateway pair not ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "bulk {} MiB on one connection, {rounds} x 64 B round trips",
            bytes >> 20
        );
        println!(
            "{:<10} {:>12} {:>14} {:>12} {:>12}",
            "path", "Gbit/s", "CPU s/GiB", "p50 us", "p99 us"
        );
        for (name, sink, echo) in [
            ("direct", sink_addr, echo_addr),
            ("gateway", g_sink, g_echo),
        ] {
            let (gbps, cpu) = bulk3(sink, bytes).await;
            let (p50, p99) = latency(echo, rounds).await;
            println!(
                "{name:<10} {gbps:>12.2} {cpu:>14.2} {:>12.1} {:>12.1}",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6
            );
        }
    });
}

async fn latency_probe(addr: SocketAddr) -> Option<()> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"x").await.ok()?;
    let mut b = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut b))
        .await
        .ok()?
        .ok()?;
    Some(())
}
