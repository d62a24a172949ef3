//! The layout of a local clusterset: names, regions, addresses, ports, VIP
//! ranges and demo exports for N clusters. Pure: nothing is written or bound
//! here, so `dev up` and the end-to-end tests share one description.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use causeway_catalog::{ClusterId, Endpoint, Export, ExportTo, Port, ServiceKey, UnixMillis};
use ipnet::Ipv4Net;

/// Cluster names in order; `dev up` supports as many clusters as there are names.
pub const NAMES: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "foxtrot", "golf", "hotel", "india",
];
/// The clusterset every dev cluster belongs to (trust domains `<name>.dev.causeway`).
pub const CLUSTERSET: &str = "dev.causeway";
/// Service ports the demo exports use (on each ClusterSetIP).
pub const HELLO_PORT: u16 = 8080;
pub const ECHO_PORT: u16 = 7000;
/// Ports each cluster takes from its block of ten: base + 10*i + offset.
pub const PORTS_PER_CLUSTER: u16 = 10;
/// `dev up`'s clusterset page: base + 9 (cluster 0 uses offsets 0 to 5).
const UI_PORT_OFFSET: u16 = 9;

/// What to lay out.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub clusters: usize,
    pub dir: PathBuf,
    pub base_port: u16,
    /// One address per cluster (network namespaces); `None` puts every cluster on 127.0.0.1.
    pub ips: Option<Vec<Ipv4Addr>>,
    /// Cluster i's ClusterSetIPs come from `a.b.(c+i+1).0/24` of this address.
    pub vip_base: Ipv4Addr,
    pub leases: Leases,
}

/// Federation timing written into every config.
#[derive(Debug, Clone, Copy)]
pub struct Leases {
    pub heartbeat: Duration,
    pub idle: Duration,
    pub stale_after: Duration,
    pub expire_after: Duration,
}

impl Default for Leases {
    /// Faster than production defaults so a dev clusterset reacts within seconds.
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(500),
            idle: Duration::from_millis(1500),
            stale_after: Duration::from_secs(2),
            expire_after: Duration::from_secs(30),
        }
    }
}

impl PlanOptions {
    pub fn new(clusters: usize, dir: &Path) -> Self {
        Self {
            clusters,
            dir: dir.to_owned(),
            base_port: 17000,
            ips: None,
            vip_base: Ipv4Addr::new(127, 77, 0, 0),
            leases: Leases::default(),
        }
    }
}

/// One cluster's place in the plan.
#[derive(Debug, Clone)]
pub struct ClusterPlan {
    pub name: ClusterId,
    pub region: String,
    pub ip: Ipv4Addr,
    /// DIR/<name>: certificates, config, exports, state and log.
    pub dir: PathBuf,
    pub admin: SocketAddr,
    pub federation: SocketAddr,
    /// Where peers dial this cluster's federation (a relay may stand in between).
    pub federation_dial: SocketAddr,
    /// What peers dial for this cluster's gateway, when not `gateway` itself.
    pub gateway_advertise: Option<SocketAddr>,
    pub dns: SocketAddr,
    /// UDP.
    pub gateway: SocketAddr,
    pub demo_http: SocketAddr,
    pub demo_echo: SocketAddr,
    pub vip_range: Ipv4Net,
    /// Written to exports.yaml; edit before [`Plan::write`](super::Plan::write) to change them.
    pub exports: Vec<Export>,
}

impl ClusterPlan {
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("causeway.yaml")
    }
    pub fn exports_path(&self) -> PathBuf {
        self.dir.join("exports.yaml")
    }
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("causeway.log")
    }
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// Every socket this cluster binds, with what it is and its protocol.
    pub fn sockets(&self) -> Vec<(&'static str, SocketAddr, Proto)> {
        vec![
            ("admin", self.admin, Proto::Tcp),
            ("federation", self.federation, Proto::Tcp),
            ("dns", self.dns, Proto::Tcp),
            ("dns", self.dns, Proto::Udp),
            ("gateway", self.gateway, Proto::Udp),
            // The TCP fallback listens on the gateway's port too.
            ("gateway fallback", self.gateway, Proto::Tcp),
            ("demo http", self.demo_http, Proto::Tcp),
            ("demo echo", self.demo_echo, Proto::Tcp),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// The whole clusterset.
#[derive(Debug, Clone)]
pub struct Plan {
    pub dir: PathBuf,
    pub leases: Leases,
    pub clusters: Vec<ClusterPlan>,
    /// `dev up`'s page for the whole clusterset: loopback, the last port of cluster 0's block.
    pub ui: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    #[error("--clusters {0}: use 1 to {max} clusters", max = NAMES.len())]
    Count(usize),
    #[error(
        "--base-port {base}: {n} clusters need ports up to {need}; use a base port of at most {max}"
    )]
    Ports {
        base: u16,
        n: usize,
        need: u32,
        max: u32,
    },
    #[error("{n} clusters need {n} addresses; {given} were given")]
    Ips { n: usize, given: usize },
    #[error("VIP base {0}: cluster ranges would pass x.y.255.0; use a lower third octet")]
    VipBase(Ipv4Addr),
}

/// Lays out `opts.clusters` clusters. Pure: see [`Plan::write`](super::Plan::write).
pub fn plan(opts: &PlanOptions) -> Result<Plan, PlanError> {
    let n = opts.clusters;
    if n == 0 || n > NAMES.len() {
        return Err(PlanError::Count(n));
    }
    let need = u32::from(opts.base_port) + u32::from(PORTS_PER_CLUSTER) * n as u32;
    if opts.base_port < 1024 || need > 65535 {
        let max = 65535 - u32::from(PORTS_PER_CLUSTER) * n as u32;
        return Err(PlanError::Ports {
            base: opts.base_port,
            n,
            need,
            max,
        });
    }
    if let Some(ips) = &opts.ips.as_ref().filter(|ips| ips.len() != n) {
        return Err(PlanError::Ips {
            n,
            given: ips.len(),
        });
    }
    if usize::from(opts.vip_base.octets()[2]) + n > 255 {
        return Err(PlanError::VipBase(opts.vip_base));
    }
    let mut clusters: Vec<ClusterPlan> = (0..n).map(|i| cluster(opts, i)).collect();
    for c in &mut clusters {
        c.exports = demo_exports(c);
    }
    Ok(Plan {
        dir: opts.dir.clone(),
        leases: opts.leases,
        clusters,
        ui: SocketAddr::from(([127, 0, 0, 1], opts.base_port + UI_PORT_OFFSET)),
    })
}

fn cluster(opts: &PlanOptions, i: usize) -> ClusterPlan {
    let name = cluster_id(NAMES[i]);
    let ip = opts.ips.as_ref().map_or(Ipv4Addr::LOCALHOST, |ips| ips[i]);
    let base = opts.base_port + PORTS_PER_CLUSTER * i as u16;
    let at = |off: u16| SocketAddr::new(IpAddr::V4(ip), base + off);
    let [a, b, c, _] = opts.vip_base.octets();
    let vip = Ipv4Addr::new(a, b, c + i as u8 + 1, 0);
    ClusterPlan {
        region: region(i),
        ip,
        dir: opts.dir.join(name.as_str()),
        admin: at(0),
        federation: at(1),
        federation_dial: at(1),
        gateway_advertise: None,
        dns: at(2),
        gateway: at(3),
        // Demo endpoints stay on loopback: only the cluster's own gateway reaches them.
        demo_http: SocketAddr::from(([127, 0, 0, 1], base + 4)),
        demo_echo: SocketAddr::from(([127, 0, 0, 1], base + 5)),
        vip_range: Ipv4Net::new(vip, 24).unwrap_or_default(),
        exports: Vec::new(),
        name,
    }
}

/// The first two clusters share a region; each other cluster has its own.
pub fn region(i: usize) -> String {
    let letter = (b'a' + i.saturating_sub(1) as u8) as char;
    format!("region-{letter}")
}

fn cluster_id(name: &str) -> ClusterId {
    // NAMES are valid DNS labels; a test guards that.
    ClusterId::new(name).unwrap_or_else(|_| unreachable!("{name} is a valid cluster name"))
}

/// `demo/hello` and `demo/echo` in every cluster (served locally first), plus
/// `demo/hello-<name>`, served only by that cluster, so peers reach it by
/// name, and `demo/dns-<name>`: the cluster's own DNS server as a UDP service
/// (a peer's view of the clusterset, asked over UDP through the tunnel).
fn demo_exports(c: &ClusterPlan) -> Vec<Export> {
    let own = format!("hello-{}", c.name);
    let mut dns = export(&format!("dns-{}", c.name), c.dns.port(), "dns", c.dns);
    dns.ports[0].protocol = causeway_catalog::Protocol::Udp;
    vec![
        export("hello", HELLO_PORT, "http", c.demo_http),
        export("echo", ECHO_PORT, "tcp-echo", c.demo_echo),
        export(&own, HELLO_PORT, "http", c.demo_http),
        dns,
    ]
}

/// A single-port TCP export in namespace `demo`, exported to all clusters.
pub fn export(name: &str, port: u16, port_name: &str, endpoint: SocketAddr) -> Export {
    service_export(demo_key(name), port, port_name, endpoint)
}

pub fn demo_key(name: &str) -> ServiceKey {
    ServiceKey::new("demo", name).unwrap_or_else(|_| unreachable!("demo/{name} is a valid key"))
}

pub fn service_export(key: ServiceKey, port: u16, port_name: &str, endpoint: SocketAddr) -> Export {
    Export {
        key,
        ports: vec![Port::tcp(port_name, port)],
        endpoints: vec![Endpoint {
            addr: endpoint,
            ready: true,
            hostname: None,
        }],
        export_to: ExportTo::All,
        created_at: UnixMillis(0),
        serve_stale: false,
        headless: false,
        props: Default::default(),
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
