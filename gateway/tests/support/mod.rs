//! Test harness: gateways of several clusters in one process, each on its own
//! thread and current-thread runtime (so one can be killed abruptly), with
//! certificates generated here and TCP services on loopback.
#![allow(dead_code, clippy::unwrap_used)]

pub mod udp;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_catalog::{
    CatalogSnapshot, ClusterId, ClusterInfo, Endpoint, Export, ExportTo, Freshness, Import, Port,
    ServiceKey, ServingCluster,
};
use causeway_gateway::{Config, Gateway, GatewayInputs};
use causeway_identity::{
    Ca, CertPaths, PeerSet, PeerTrust, ReloadingCert, TrustDomain, Validity, Workload,
};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub fn id(s: &str) -> ClusterId {
    ClusterId::new(s).unwrap()
}

pub fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

/// One cluster's identity: its CA and a gateway certificate on disk.
pub struct Pki {
    pub name: ClusterId,
    pub td: TrustDomain,
    pub ca: Ca,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new(name: &str) -> Self {
        Self::with_domain(name, &format!("{name}.test"))
    }

    /// A CA for `name` that names trust domain `td` (used to forge identities).
    pub fn with_domain(name: &str, td: &str) -> Self {
        let td = TrustDomain::new(td).unwrap();
        let ca = Ca::generate(&id(name), &td).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let leaf = ca.issue(Workload::Gateway, Validity::default()).unwrap();
        leaf.save(dir.path(), Workload::Gateway, false).unwrap();
        std::fs::write(dir.path().join("bundle.pem"), ca.cert_pem()).unwrap();
        Pki {
            name: id(name),
            td,
            ca,
            dir,
        }
    }

    pub fn cert(&self) -> Arc<ReloadingCert> {
        let p = self.dir.path();
        ReloadingCert::load(CertPaths {
            cert: p.join("gateway.pem"),
            key: p.join("gateway-key.pem"),
        })
        .unwrap()
    }

    /// How others trust this cluster.
    pub fn trust(&self) -> PeerTrust {
        PeerTrust::load(
            self.name.clone(),
            self.td.clone(),
            &self.dir.path().join("bundle.pem"),
        )
        .unwrap()
    }
}

pub fn peer_set(all: &[&Pki], me: &ClusterId) -> Arc<PeerSet> {
    Arc::new(
        PeerSet::new(
            all.iter()
                .filter(|p| &p.name != me)
                .map(|p| p.trust())
                .collect(),
        )
        .unwrap(),
    )
}

/// Config for tests: loopback, fast backoff and ejection, small drain.
pub fn test_config(listen: SocketAddr, vip_range: &str) -> Config {
    let mut c = Config {
        listen,
        vip_ranges: vec![vip_range.parse().unwrap()],
        ..Config::default()
    };
    c.connections.backoff_initial = Duration::from_millis(20);
    c.connections.backoff_max = Duration::from_millis(200);
    c.ejection.base_time = Duration::from_millis(300);
    c.ejection.max_time = Duration::from_secs(1);
    c.drain_deadline = Duration::from_secs(2);
    c
}

pub struct NodeSpec {
    pub info: ClusterInfo,
    pub cfg: Config,
    pub cert: Arc<ReloadingCert>,
    pub peers: Arc<PeerSet>,
}

pub fn info(name: &str, region: &str) -> ClusterInfo {
    ClusterInfo {
        name: id(name),
        region: region.into(),
        zone: format!("{region}-1"),
        trust_domain: format!("{name}.test"),
        gateways: vec![],
    }
}

/// A running gateway on its own thread and runtime.
pub struct Node {
    pub name: ClusterId,
    pub addr: SocketAddr,
    pub catalog: watch::Sender<Arc<CatalogSnapshot>>,
    pub exports: watch::Sender<Arc<Vec<Export>>>,
    /// Traffic policy in force; send a new set to change it live.
    pub policies: watch::Sender<Arc<causeway_policy::Policies>>,
    pub shutdown: CancellationToken,
    /// The runtime the gateway was started on (catalog watch, drain): what
    /// federation and DNS share in `causeway run`, never a data-plane worker.
    pub control: tokio::runtime::Handle,
    /// Moves the gateway's dialling sockets to a new address.
    pub rebinder: causeway_gateway::Rebinder,
    kill: CancellationToken,
    registry: Arc<Mutex<Registry>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    pub fn start(spec: NodeSpec) -> Node {
        let (catalog, catalog_rx) = watch::channel(Arc::new(CatalogSnapshot::default()));
        let (exports, exports_rx) = watch::channel(Arc::new(Vec::new()));
        let (policies, policies_rx) = watch::channel(Arc::default());
        let (shutdown, kill) = (CancellationToken::new(), CancellationToken::new());
        let name = spec.info.name.clone();
        let inputs = GatewayInputs {
            cfg: spec.cfg,
            local: spec.info,
            cert: spec.cert,
            peers: spec.peers,
            catalog: catalog_rx,
            local_exports: exports_rx,
            policies: policies_rx,
            shutdown: shutdown.clone(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let k = kill.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let handle = rt.handle().clone();
            rt.block_on(async move {
                let mut reg = Registry::default();
                let gw = Gateway::bind(inputs, &mut reg).await.unwrap();
                let reg = Arc::new(Mutex::new(reg));
                tx.send((gw.local_addr().unwrap(), reg, handle, gw.rebinder()))
                    .unwrap();
                tokio::select! {
                    r = gw.run() => r.unwrap(),
                    () = k.cancelled() => {}
                }
            });
            // Dropping the runtime drops every task and socket: an abrupt death.
        });
        let (addr, registry, control, rebinder) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Node {
            name,
            addr,
            catalog,
            exports,
            policies,
            shutdown,
            control,
            rebinder,
            kill,
            registry,
            thread: Some(thread),
        }
    }

    /// Kills the gateway without a drain.
    pub fn kill(mut self) {
        self.kill.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// Drains and waits for `run` to return, within `limit`.
    pub fn drain_and_join(mut self, limit: Duration) -> Duration {
        let t0 = Instant::now();
        self.shutdown.cancel();
        let t = self.thread.take().unwrap();
        while !t.is_finished() {
            assert!(
                t0.elapsed() < limit,
                "gateway did not finish draining within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        t.join().unwrap();
        t0.elapsed()
    }

    pub fn metrics(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry.lock().unwrap())
            .unwrap();
        out
    }

    /// Addresses of `cluster`'s gateways with at least one pooled connection up.
    pub fn connected(&self, cluster: &str) -> std::collections::BTreeSet<String> {
        let prefix = format!("gateway_peer_connected{{cluster=\"{cluster}\",address=\"");
        self.metrics()
            .lines()
            .filter(|l| l.ends_with(" 1"))
            .filter_map(|l| {
                l.strip_prefix(&prefix)?
                    .split('"')
                    .next()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// The value of one sample, e.g. `gateway_streams_total{cluster="a",...}`; 0 if absent.
    pub fn metric(&self, sample: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The catalog every node sees: all clusters' gateways, and imports.
pub fn snapshot(
    nodes: &[(&ClusterInfo, SocketAddr)],
    imports: Vec<Import>,
) -> Arc<CatalogSnapshot> {
    let clusters = nodes
        .iter()
        .map(|(i, a)| {
            let mut i = (*i).clone();
            i.gateways = vec![*a];
            (i.name.clone(), i)
        })
        .collect::<BTreeMap<_, _>>();
    let imports = imports.into_iter().map(|i| (i.key.clone(), i)).collect();
    Arc::new(CatalogSnapshot { imports, clusters })
}

pub fn import(service: &str, port: u16, vip: &str, serving: &[&ClusterInfo]) -> Import {
    Import {
        key: key(service),
        ports: vec![Port::tcp("tcp", port)],
        clusters: serving
            .iter()
            .map(|c| ServingCluster {
                cluster: c.name.clone(),
                region: c.region.clone(),
                zone: c.zone.clone(),
                ready_endpoints: 1,
                freshness: Freshness::Fresh,
                ports: Vec::new(),
            })
            .collect(),
        vips: vec![vip.parse::<IpAddr>().unwrap()],
        serve_stale: false,
        conditions: vec![],
        endpoints: Vec::new(),
        headless: false,
        props: Default::default(),
    }
}

pub fn export(service: &str, port: u16, endpoint: SocketAddr, to: ExportTo) -> Export {
    Export {
        key: key(service),
        ports: vec![Port::tcp("tcp", port)],
        endpoints: vec![Endpoint {
            addr: endpoint,
            ready: true,
            hostname: None,
        }],
        export_to: to,
        created_at: Default::default(),
        serve_stale: false,
        headless: false,
        props: Default::default(),
    }
}

/// An echo server: copies input back, then half-closes when the client does.
pub async fn echo_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                if tokio::io::copy(&mut r, &mut w).await.is_ok() {
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    addr
}

/// A server that writes `tag` and closes: tells the client which cluster served it.
pub async fn tag_server(tag: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(tag.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

/// One "ping" echoed back through `addr` within a second, or None.
pub async fn ping(addr: SocketAddr) -> Option<()> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"ping").await.ok()?;
    let mut buf = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(1), s.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    (&buf == b"ping").then_some(())
}

/// Connects and reads to EOF within `limit`.
pub async fn fetch(addr: SocketAddr, limit: Duration) -> Result<String, String> {
    fetch_from(IpAddr::from([127, 0, 0, 1]), addr, limit).await
}

/// Polls `f` until it returns Some, or panics at the deadline.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free TCP port on loopback that refuses connections.
pub fn refusing_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}

/// Several clusters' gateways, each trusting all the others.
pub struct Mesh {
    pub pki: Vec<Pki>,
    pub infos: Vec<ClusterInfo>,
    pub nodes: Vec<Option<Node>>,
    pub addrs: Vec<SocketAddr>,
    range: String,
    client: String,
    imports: Vec<Import>,
    tweak: fn(&str, &mut Config),
}

impl Mesh {
    /// `clusters`: (name, region). Outbound listeners bind in `range`.
    pub fn new(clusters: &[(&str, &str)], range: &str) -> Mesh {
        Self::with_config(clusters, range, |_, _| {})
    }

    /// Like `new`, with `tweak(cluster, config)` applied to each gateway's config.
    pub fn with_config(
        clusters: &[(&str, &str)],
        range: &str,
        tweak: fn(&str, &mut Config),
    ) -> Mesh {
        let pki: Vec<Pki> = clusters.iter().map(|(n, _)| Pki::new(n)).collect();
        let infos: Vec<ClusterInfo> = clusters.iter().map(|(n, r)| info(n, r)).collect();
        let mut m = Mesh {
            pki,
            infos,
            nodes: vec![],
            addrs: vec![],
            range: range.into(),
            client: String::new(),
            imports: vec![],
            tweak,
        };
        for i in 0..clusters.len() {
            let node = Node::start(m.spec(i, any_port()));
            m.addrs.push(node.addr);
            m.nodes.push(Some(node));
        }
        m
    }

    pub fn spec(&self, i: usize, listen: SocketAddr) -> NodeSpec {
        let refs: Vec<&Pki> = self.pki.iter().collect();
        let mut cfg = test_config(listen, &self.range);
        (self.tweak)(self.infos[i].name.as_str(), &mut cfg);
        NodeSpec {
            info: self.infos[i].clone(),
            cfg,
            cert: self.pki[i].cert(),
            peers: peer_set(&refs, &self.pki[i].name),
        }
    }

    fn index(&self, name: &str) -> usize {
        self.infos
            .iter()
            .position(|i| i.name.as_str() == name)
            .unwrap()
    }

    pub fn info(&self, name: &str) -> &ClusterInfo {
        &self.infos[self.index(name)]
    }

    pub fn node(&self, name: &str) -> &Node {
        self.nodes[self.index(name)].as_ref().unwrap()
    }

    /// Sends the catalog: every node learns every gateway; `client` gets `imports`.
    pub fn publish(&mut self, client: &str, imports: Vec<Import>) {
        self.client = client.into();
        self.imports = imports;
        self.republish();
    }

    fn republish(&self) {
        let pairs: Vec<(&ClusterInfo, SocketAddr)> =
            self.infos.iter().zip(self.addrs.iter().copied()).collect();
        for (info, node) in self.infos.iter().zip(&self.nodes) {
            let Some(node) = node else { continue };
            let imports = if info.name.as_str() == self.client {
                self.imports.clone()
            } else {
                vec![]
            };
            node.catalog.send_replace(snapshot(&pairs, imports));
        }
    }

    pub fn set_exports(&self, name: &str, exports: Vec<Export>) {
        self.node(name).exports.send_replace(Arc::new(exports));
    }

    pub fn kill(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(n) = self.nodes[i].take() {
            n.kill();
        }
    }

    /// Takes the node out of the mesh (e.g. to drain it).
    pub fn take(&mut self, name: &str) -> Node {
        let i = self.index(name);
        self.nodes[i].take().unwrap()
    }

    /// Starts the cluster's gateway again on the same UDP address.
    pub fn restart(&mut self, name: &str, exports: Vec<Export>) {
        let i = self.index(name);
        let node = Node::start(self.spec(i, self.addrs[i]));
        node.exports.send_replace(Arc::new(exports));
        self.nodes[i] = Some(node);
        self.republish();
    }
}

/// A bare QUIC connection to `server`'s gateway with `me`'s certificate, for protocol tests.
pub async fn raw_connection(me: &Pki, server: &Pki, addr: SocketAddr) -> quinn::Connection {
    let mut rc =
        causeway_identity::client_config(me.cert(), &server.trust(), Workload::Gateway).unwrap();
    rc.alpn_protocols = vec![causeway_gateway::protocol::ALPN.to_vec()];
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(rc).unwrap();
    let mut ep = quinn::Endpoint::client(any_port()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(qc)));
    ep.connect(addr, server.td.as_str()).unwrap().await.unwrap()
}

/// Writes a leaf naming `spiffe` signed by `ca` (a forged identity) into `dir`.
pub fn forge_leaf(ca: &Ca, spiffe: &str, dir: &Path) -> CertPaths {
    ca.save(dir, true).unwrap();
    let ca_pem = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca-key.pem")).unwrap())
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![rcgen::SanType::URI(spiffe.try_into().unwrap())];
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let paths = CertPaths {
        cert: dir.join("forged.pem"),
        key: dir.join("forged-key.pem"),
    };
    std::fs::write(&paths.cert, format!("{}{ca_pem}", cert.pem())).unwrap();
    std::fs::write(&paths.key, key.serialize_pem()).unwrap();
    paths
}

/// Policies from `policies:` YAML, validated as causeway.yaml's are.
pub fn policies(yaml: &str) -> Arc<causeway_policy::Policies> {
    let specs: Vec<causeway_policy::PolicySpec> = serde_saphyr::from_str(yaml).unwrap();
    Arc::new(causeway_policy::Policies::from_config(&specs).unwrap())
}

impl Node {
    /// Puts `yaml` (a `policies:` list) in force on this gateway.
    pub fn set_policies(&self, yaml: &str) {
        self.policies.send_replace(policies(yaml));
    }
}

/// Connects from `from` (any loopback address: each is a distinct client) and reads to EOF.
pub async fn fetch_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    limit: Duration,
) -> Result<String, String> {
    let go = async {
        let sock = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        sock.bind(SocketAddr::new(from, 0))
            .map_err(|e| e.to_string())?;
        let mut s = sock.connect(addr).await.map_err(|e| e.to_string())?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .await
            .map_err(|e| e.to_string())?;
        Ok(out)
    };
    tokio::time::timeout(limit, go)
        .await
        .map_err(|_| "timeout".to_string())?
}

/// Runs `n` calls of `f(i)` with at most `width` in flight; results in order of `i`.
pub async fn run_many<T, F, Fut>(n: usize, width: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    use futures::StreamExt;
    futures::stream::iter((0..n).map(f))
        .buffered(width)
        .collect()
        .await
}

/// Accepts connections and never reads from them (a stuck backend, a hung collector).
pub async fn silent_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    addr
}

/// Sends `data` while reading the echo at the same time, then half-closes;
/// returns what came back before a clean end.
pub async fn echo_through(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut r, mut w) = s.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.unwrap();
        w.shutdown().await.unwrap();
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.unwrap();
    writer.await.unwrap();
    got
}

impl Node {
    /// Waits until every pooled connection to `cluster` is marked silent.
    pub async fn wait_silent(&self, cluster: &str, limit: Duration) {
        let prefix = format!("gateway_peer_suspect{{cluster=\"{cluster}\"");
        wait_for(
            &format!("every connection to {cluster} silent"),
            limit,
            || async {
                let text = self.metrics();
                let mut lines = text.lines().filter(|l| l.starts_with(&prefix)).peekable();
                (lines.peek().is_some() && lines.all(|l| l.ends_with(" 1"))).then_some(())
            },
        )
        .await;
    }
}
