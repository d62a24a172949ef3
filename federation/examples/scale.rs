//! Scale benchmark (not a test): 10,000 exports across 5 peers, one
//! subscriber, all in this process over mutual TLS on loopback.
//!
//! `cargo run --release -p causeway-federation --example scale [exports_per_peer] [peers]`
//!
//! Prints the snapshot size on the wire, the time until the subscriber's
//! merged catalog holds every export, and the process's memory.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_catalog::{ClusterId, ClusterInfo, Endpoint, Export, ExportTo, Port, UnixMillis};
use causeway_federation::{
    Config, Federation, FederationInputs, PeerEndpoint, PeerLimits, PeerPolicy, SourceConfig,
    export_to_proto, proto,
};
use causeway_identity::{Ca, CertPaths, PeerTrust, ReloadingCert, TrustDomain, Validity, Workload};
use prometheus_client::registry::Registry;
use prost::Message;
use tokio_util::sync::CancellationToken;

struct Id {
    name: ClusterId,
    td: TrustDomain,
    dir: tempfile::TempDir,
    /// Its own gateway address: a claim on another cluster's address is dropped.
    gateway: std::net::SocketAddr,
}

impl Id {
    fn new(name: &str, idx: u16) -> Self {
        let name = ClusterId::new(name).unwrap();
        let td = TrustDomain::new(format!("{name}.bench.causeway")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(&name, &td).unwrap();
        let leaf = ca.issue(Workload::Federation, Validity::default()).unwrap();
        leaf.save(dir.path(), Workload::Federation, true).unwrap();
        std::fs::write(dir.path().join("bundle.pem"), ca.cert_pem()).unwrap();
        let gateway = std::net::SocketAddr::from(([127, 0, 0, 1], 4433 + idx));
        Self {
            name,
            td,
            dir,
            gateway,
        }
    }
    fn cert(&self) -> Arc<ReloadingCert> {
        let d = self.dir.path();
        ReloadingCert::load(CertPaths {
            cert: d.join("federation.pem"),
            key: d.join("federation-key.pem"),
        })
        .unwrap()
    }
    fn trust(&self) -> PeerTrust {
        PeerTrust::load(
            self.name.clone(),
            self.td.clone(),
            &self.dir.path().join("bundle.pem"),
        )
        .unwrap()
    }
    fn info(&self) -> ClusterInfo {
        ClusterInfo {
            name: self.name.clone(),
            region: "bench".into(),
            zone: "bench-a".into(),
            trust_domain: self.td.to_string(),
            gateways: vec![self.gateway],
        }
    }
}

fn exports(peer: usize, n: usize) -> Vec<Export> {
    (0..n)
        .map(|j| Export {
            key: format!("team-{}/svc-{peer}-{j}", j % 50).parse().unwrap(),
            ports: vec![Port::tcp("http", 80), Port::tcp("grpc", 9090)],
            endpoints: (0..3)
                .map(|k| Endpoint {
                    addr: format!("10.{peer}.{}.{k}:8080", j % 250).parse().unwrap(),
                    ready: true,
                    hostname: None,
                })
                .collect(),
            export_to: ExportTo::All,
            created_at: UnixMillis(1_700_000_000_000 + j as u64),
            serve_stale: false,
            headless: false,
            props: Default::default(),
        })
        .collect()
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_owned())
            .unwrap_or_default()
    };
    format!("rss {} (peak {})", get("VmRSS:"), get("VmHWM:"))
}

fn cfg(state: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        state_dir: Some(state.to_owned()),
        ..Config::default()
    }
}

/// Quotas that admit all of a peer's exports (the default is 1,000 per peer).
fn quotas_for(exports: usize) -> PeerPolicy {
    PeerPolicy {
        limits: PeerLimits {
            max_exports: exports,
            max_ports: 2 * exports, // two ports each
            max_bytes: exports * 1024,
            ..PeerLimits::default()
        },
        ..PeerPolicy::default()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let per_peer = args.first().copied().unwrap_or(2000);
    let n_peers = args.get(1).copied().unwrap_or(5);
    println!(
        "{} exports across {n_peers} peers ({per_peer} each), one subscriber",
        per_peer * n_peers
    );
    println!("start: {}", rss());
    let stop = CancellationToken::new();
    let sub = Id::new("sub", 0);
    let sub_state = tempfile::tempdir().unwrap();
    let mut peers = Vec::new();
    let mut feds = Vec::new();
    let mut registry = Registry::default();
    for i in 0..n_peers {
        let id = Id::new(&format!("p{i}"), i as u16 + 1);
        let list = exports(i, per_peer);
        if i == 0 {
            let snap = proto::Snapshot {
                exports: list.iter().map(export_to_proto).collect(),
                ..Default::default()
            };
            let json = serde_json::to_vec(&list).unwrap().len();
            println!(
                "snapshot of one peer ({per_peer} exports): {} bytes protobuf, {json} bytes as JSON",
                snap.encoded_len()
            );
        }
        let state = tempfile::tempdir().unwrap();
        let fed = Federation::start(
            FederationInputs {
                cfg: cfg(state.path()),
                source: SourceConfig::Static {
                    exports: list,
                    file: None,
                    poll_interval: Duration::from_millis(500),
                },
                local: id.info(),
                cert: id.cert(),
                peers: vec![PeerEndpoint {
                    trust: sub.trust(),
                    addr: "127.0.0.1:9".into(),
                    policy: Default::default(),
                }],
                own: Some(id.trust()),
                vip_ranges: vec![],
                shutdown: stop.clone(),
            },
            &mut registry,
        )
        .await
        .unwrap();
        peers.push(PeerEndpoint {
            trust: id.trust(),
            addr: fed.listen_addr().to_string(),
            policy: quotas_for(per_peer),
        });
        feds.push((fed, id, state));
    }
    println!("{n_peers} exporters up: {}", rss());
    let t0 = Instant::now();
    let fed = Federation::start(
        FederationInputs {
            cfg: cfg(sub_state.path()),
            source: SourceConfig::default(),
            local: sub.info(),
            cert: sub.cert(),
            peers,
            own: Some(sub.trust()),
            // A /16 holds 65,534 ClusterSetIPs; past that every import would
            // find the range full (and the sync would measure that instead).
            vip_ranges: vec![
                if per_peer * n_peers > 60_000 {
                    "127.80.0.0/12"
                } else {
                    "127.80.0.0/16"
                }
                .parse()
                .unwrap(),
            ],
            shutdown: stop.clone(),
        },
        &mut Registry::default(),
    )
    .await
    .unwrap();
    let want = per_peer * n_peers;
    let mut cat = fed.catalog();
    tokio::time::timeout(
        Duration::from_secs(300),
        cat.wait_for(|c| c.imports.len() == want),
    )
    .await
    .expect("full sync within 5 minutes")
    .unwrap();
    let synced = t0.elapsed();
    println!("full sync of {want} imports (with ClusterSetIPs): {synced:?}");
    println!("after sync: {}", rss());
    // Persisted state, once the debounced writer has caught up: every file
    // there (peers, local, catalog, VIPs) and no write in progress.
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = |files: &[(String, u64)]| {
        files.len() == n_peers + 3 && files.iter().all(|(n, _)| !n.starts_with('.'))
    };
    let mut files = state_files(sub_state.path());
    while !settled(&files)
        || files
            .iter()
            .find(|(n, _)| n == "catalog.json")
            .is_none_or(|(_, l)| *l < 100 * want as u64)
    {
        assert!(Instant::now() < deadline, "state never written");
        tokio::time::sleep(Duration::from_millis(50)).await;
        files = state_files(sub_state.path());
    }
    let total: u64 = files.iter().map(|(_, l)| l).sum();
    println!(
        "subscriber state dir: {total} bytes in {} files",
        files.len()
    );
    for (name, len) in &files {
        println!("  {name}: {len} bytes");
    }
    let t1 = Instant::now();
    stop.cancel();
    fed.closed().await;
    for (f, _, _) in feds {
        f.closed().await;
    }
    println!("shutdown: {:?}", t1.elapsed());
}

fn state_files(dir: &std::path::Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            (e.file_name().to_string_lossy().into_owned(), len)
        })
        .collect();
    out.sort();
    out
}
