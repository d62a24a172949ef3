//! A mesh of real federations on loopback, each with its own CA, talking
//! gRPC over mutual TLS. Certificates are made here, fresh for every test.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_catalog::{CatalogSnapshot, ClusterId, ClusterInfo};
use causeway_federation::{
    Config, Federation, FederationInputs, PeerEndpoint, PeerStatus, SourceConfig, WatchTarget,
};
use causeway_identity::{Ca, CertPaths, PeerTrust, ReloadingCert, TrustDomain, Validity, Workload};
use prometheus_client::registry::Registry;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub const STALE: Duration = Duration::from_millis(300);
pub const EXPIRE: Duration = Duration::from_millis(900);
pub const HEARTBEAT: Duration = Duration::from_millis(100);

/// A cluster's identity material on disk.
pub struct Identity {
    pub name: ClusterId,
    pub td: TrustDomain,
    pub dir: TempDir,
    pub ca: Ca,
}

impl Identity {
    pub fn new(name: &str) -> Self {
        let name = ClusterId::new(name).unwrap();
        let td = TrustDomain::new(format!("{name}.test.causeway")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate(&name, &td).unwrap();
        let leaf = ca.issue(Workload::Federation, Validity::default()).unwrap();
        leaf.save(dir.path(), Workload::Federation, true).unwrap();
        std::fs::write(dir.path().join("bundle.pem"), ca.cert_pem()).unwrap();
        Self { name, td, dir, ca }
    }

    pub fn cert(&self) -> Arc<ReloadingCert> {
        ReloadingCert::load(CertPaths {
            cert: self.dir.path().join("federation.pem"),
            key: self.dir.path().join("federation-key.pem"),
        })
        .unwrap()
    }

    pub fn trust(&self) -> PeerTrust {
        PeerTrust::load(
            self.name.clone(),
            self.td.clone(),
            &self.dir.path().join("bundle.pem"),
        )
        .unwrap()
    }

    /// A fresh certificate from this cluster's CA for `w`.
    pub fn workload_cert(&self, w: Workload) -> Arc<ReloadingCert> {
        let leaf = self.ca.issue(w, Validity::default()).unwrap();
        leaf.save(self.dir.path(), w, true).unwrap();
        ReloadingCert::load(CertPaths {
            cert: self.dir.path().join(format!("{w}.pem")),
            key: self.dir.path().join(format!("{w}-key.pem")),
        })
        .unwrap()
    }

    /// How this cluster's `w` (gateway or DNS) follows its federation's catalog feed.
    pub fn watch_target(&self, addr: SocketAddr, w: Workload) -> WatchTarget {
        let cert = self.workload_cert(w);
        let tls =
            causeway_identity::client_config(cert, &self.trust(), Workload::Federation).unwrap();
        WatchTarget {
            addr: addr.to_string(),
            tls,
            trust_domain: self.td.to_string(),
        }
    }

    /// How a peer of this cluster is configured: its place, as the real config would say.
    pub fn policy(&self) -> causeway_federation::PeerPolicy {
        causeway_federation::PeerPolicy {
            region: Some(format!("region-{}", self.name)),
            zone: Some(format!("zone-{}", self.name)),
            ..Default::default()
        }
    }

    pub fn info(&self) -> ClusterInfo {
        ClusterInfo {
            name: self.name.clone(),
            region: format!("region-{}", self.name),
            zone: format!("zone-{}", self.name),
            trust_domain: self.td.to_string(),
            // One address per cluster: an address belongs to one cluster only.
            gateways: vec![std::net::SocketAddr::from((
                [127, 0, 0, 1],
                4400 + self.name.as_str().bytes().map(u16::from).sum::<u16>(),
            ))],
        }
    }
}

/// A free port on 127.0.0.1 (bound, read, released), so peers can be
/// configured before every federation of a full mesh is up.
mod ports;
pub use ports::free_addr;

pub fn test_config(listen: SocketAddr, state_dir: Option<PathBuf>) -> Config {
    Config {
        listen,
        watch_listen: Some("127.0.0.1:0".parse().unwrap()),
        state_dir,
        stale_after: STALE,
        expire_after: EXPIRE,
        heartbeat_interval: HEARTBEAT,
        idle_timeout: Duration::from_millis(250),
        connect_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(150),
        persist_debounce: Duration::from_millis(20),
        ..Config::default()
    }
}

pub struct Node {
    pub id: Identity,
    pub addr: SocketAddr,
    pub exports_file: PathBuf,
    pub state_dir: TempDir,
    pub fed: Option<Federation>,
    pub stop: CancellationToken,
    pub registry: Registry,
}

impl Node {
    /// A node not started yet, with a fresh state dir whose exports file holds `exports`.
    pub fn new(name: &str, exports: &str) -> Self {
        let state_dir = tempfile::tempdir().unwrap();
        let exports_file = state_dir.path().join("exports.yaml");
        write_file(&exports_file, exports);
        Node {
            id: Identity::new(name),
            addr: free_addr(),
            exports_file,
            state_dir,
            fed: None,
            stop: CancellationToken::new(),
            registry: Registry::default(),
        }
    }

    pub fn fed(&self) -> &Federation {
        self.fed.as_ref().expect("node is running")
    }

    pub fn catalog(&self) -> Arc<CatalogSnapshot> {
        self.fed().catalog().borrow().clone()
    }

    pub fn status(&self, peer: &str) -> PeerStatus {
        let all = self.fed().peers_status();
        all.into_iter().find(|p| p.name.as_str() == peer).unwrap()
    }

    pub fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).unwrap();
        out
    }

    pub fn write_exports(&self, yaml: &str) {
        write_file(&self.exports_file, yaml);
    }

    /// Cancels the node and waits until its listener and tasks are gone.
    pub async fn kill(&mut self) {
        self.stop.cancel();
        if let Some(f) = self.fed.take() {
            tokio::time::timeout(Duration::from_secs(10), f.closed())
                .await
                .unwrap();
        }
    }
}

/// Replaces a file in one step, so a poller never reads it half-written.
pub fn write_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub struct Mesh {
    pub nodes: Vec<Node>,
}

impl Mesh {
    /// Nodes named `names`, each subscribed to all others, each exporting `exports[i]`.
    pub async fn start(names: &[&str], exports: &[&str]) -> Self {
        let mut nodes = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let yaml = exports.get(i).copied().unwrap_or("exports: []\n");
            nodes.push(Node::new(n, yaml));
        }
        let mut mesh = Self { nodes };
        for i in 0..mesh.nodes.len() {
            mesh.boot(i, true).await;
        }
        mesh
    }

    pub fn peers_of(&self, i: usize) -> Vec<PeerEndpoint> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| PeerEndpoint {
                trust: n.id.trust(),
                addr: n.addr.to_string(),
                policy: n.id.policy(),
            })
            .collect()
    }

    /// (Re)starts node `i`, with its state dir or with a fresh, empty one.
    pub async fn boot(&mut self, i: usize, keep_state: bool) {
        if !keep_state {
            let fresh = tempfile::tempdir().unwrap();
            let file = fresh.path().join("exports.yaml");
            std::fs::copy(&self.nodes[i].exports_file, &file).unwrap();
            self.nodes[i].state_dir = fresh;
            self.nodes[i].exports_file = file;
        }
        let peers = self.peers_of(i);
        let node = &mut self.nodes[i];
        let inputs = inputs_for(node, peers);
        node.stop = inputs.shutdown.clone();
        node.registry = Registry::default();
        let fed = Federation::start(inputs, &mut node.registry).await.unwrap();
        node.fed = Some(fed);
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id.name.as_str() == name)
            .unwrap()
    }

    pub async fn shutdown(mut self) {
        for n in &mut self.nodes {
            n.kill().await;
        }
    }
}

pub fn inputs_for(node: &Node, peers: Vec<PeerEndpoint>) -> FederationInputs {
    FederationInputs {
        cfg: test_config(node.addr, Some(node.state_dir.path().join("state"))),
        source: SourceConfig::Static {
            exports: vec![],
            file: Some(node.exports_file.clone()),
            poll_interval: Duration::from_millis(20),
        },
        local: node.id.info(),
        cert: node.id.cert(),
        peers,
        own: Some(node.id.trust()),
        vip_ranges: vec!["127.77.0.0/24".parse().unwrap()],
        shutdown: CancellationToken::new(),
    }
}

/// Polls `cond` every 5 ms until it holds; panics after `limit` with `what`.
pub async fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn export_yaml(services: &[(&str, &str)]) -> String {
    let mut s = String::from("exports:\n");
    for (key, to) in services {
        s.push_str(&format!(
            "  - service: {key}\n    ports: [{{name: http, port: 80}}]\n    endpoints: [{{addr: 127.0.0.1:8080}}]\n    export_to: {to}\n"
        ));
    }
    s
}

pub fn has(cat: &CatalogSnapshot, key: &str) -> bool {
    cat.imports.keys().any(|k| k.to_string() == key)
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
