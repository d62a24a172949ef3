//! What `dev up` hands to people and scripts once the clusterset is ready:
//! `DIR/clusters.json` and a short printed guide.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use causeway_catalog::{CatalogSnapshot, Port};
use serde::{Deserialize, Serialize};

use super::plan::{ClusterPlan, ECHO_PORT, HELLO_PORT, Plan};
use super::ready::{own_service, vip_of};

/// `DIR/clusters.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClustersFile {
    pub dir: PathBuf,
    pub clusters: Vec<ClusterEntry>,
    pub services: Vec<ServiceEntry>,
    /// The page showing every cluster, served by `dev up` while it runs.
    #[serde(default)]
    pub ui: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterEntry {
    pub name: String,
    pub region: String,
    pub pid: Option<u32>,
    pub config: PathBuf,
    pub log: PathBuf,
    pub dns: SocketAddr,
    pub admin: SocketAddr,
    pub federation: SocketAddr,
    pub gateway: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// `namespace/name`.
    pub name: String,
    /// `<name>.<namespace>.svc.clusterset.local`.
    pub dns_name: String,
    pub ports: Vec<Port>,
    /// Clusters exporting it.
    pub served_by: Vec<String>,
    /// The ClusterSetIP each cluster assigned to it.
    pub cluster_set_ips: BTreeMap<String, IpAddr>,
}

impl ClustersFile {
    /// Describes `plan` with its pids and each cluster's catalog (same order as `plan.clusters`).
    pub fn new(plan: &Plan, pids: &[Option<u32>], catalogs: &[CatalogSnapshot]) -> Self {
        let clusters = plan
            .clusters
            .iter()
            .zip(pids)
            .map(|(c, pid)| entry(c, *pid))
            .collect();
        Self {
            dir: plan.dir.clone(),
            clusters,
            services: services(plan, catalogs),
            ui: Some(ui_url(plan)),
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join("clusters.json")
    }

    pub fn load(dir: &Path) -> Result<Self, std::io::Error> {
        let text = std::fs::read_to_string(Self::path(dir))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }

    pub fn save(&self) -> Result<(), std::io::Error> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(Self::path(&self.dir), text + "\n")
    }
}

/// Where `dev up` serves the clusterset page.
pub fn ui_url(plan: &Plan) -> String {
    format!("http://{}/ui", plan.ui)
}

fn entry(c: &ClusterPlan, pid: Option<u32>) -> ClusterEntry {
    ClusterEntry {
        name: c.name.to_string(),
        region: c.region.clone(),
        pid,
        config: c.config_path(),
        log: c.log_path(),
        dns: c.dns,
        admin: c.admin,
        federation: c.federation,
        gateway: c.gateway,
    }
}

fn services(plan: &Plan, catalogs: &[CatalogSnapshot]) -> Vec<ServiceEntry> {
    let mut out: BTreeMap<String, ServiceEntry> = BTreeMap::new();
    for c in &plan.clusters {
        for e in &c.exports {
            let s = out
                .entry(e.key.to_string())
                .or_insert_with(|| ServiceEntry {
                    name: e.key.to_string(),
                    dns_name: format!(
                        "{}.{}.svc.clusterset.local",
                        e.key.name(),
                        e.key.namespace()
                    ),
                    ports: e.ports.clone(),
                    served_by: Vec::new(),
                    cluster_set_ips: BTreeMap::new(),
                });
            s.served_by.push(c.name.to_string());
        }
    }
    for (c, snap) in plan.clusters.iter().zip(catalogs) {
        for s in out.values_mut() {
            let vip = s.name.parse().ok().and_then(|k| vip_of(snap, &k));
            if let Some(vip) = vip {
                s.cluster_set_ips.insert(c.name.to_string(), vip);
            }
        }
    }
    out.into_values().collect()
}

/// The printed guide: a table of clusters, then per cluster a `dig` and a
/// `curl` line that reach the next cluster's own service by name.
pub fn guide(plan: &Plan, exe: &str) -> String {
    let mut g = format!(
        "\n{} clusters up in {}\n\n",
        plan.clusters.len(),
        plan.dir.display()
    );
    table(&mut g, plan);
    let n = plan.clusters.len();
    for (i, c) in plan.clusters.iter().enumerate() {
        remote_lines(&mut g, c, &plan.clusters[(i + 1) % n]);
    }
    footer(&mut g, plan, exe);
    g
}

fn table(g: &mut String, plan: &Plan) {
    let row = |g: &mut String, cells: [&dyn std::fmt::Display; 5]| {
        let [a, b, c, d, e] = cells.map(ToString::to_string);
        let _ = writeln!(g, "  {a:<9} {b:<10} {c:<17} {d:<17} {e:<17}");
    };
    row(
        g,
        [&"cluster", &"region", &"dns", &"admin", &"gateway (udp)"],
    );
    for c in &plan.clusters {
        row(g, [&c.name, &c.region, &c.dns, &c.admin, &c.gateway]);
    }
}

/// How `from`'s clients reach `to`'s own service by name (nothing when they are the same).
fn remote_lines(g: &mut String, from: &ClusterPlan, to: &ClusterPlan) {
    let Some(key) = own_service(to).filter(|_| from.name != to.name) else {
        return;
    };
    let name = format!("{}.{}.svc.clusterset.local", key.name(), key.namespace());
    let dig = format!(
        "dig @{} -p {} +short {name}",
        from.dns.ip(),
        from.dns.port()
    );
    let _ = writeln!(
        g,
        "\nFrom {} to {}'s demo service, by name:",
        from.name, to.name
    );
    let _ = writeln!(g, "  {dig}");
    let _ = writeln!(
        g,
        "  curl -s http://$({dig}):{HELLO_PORT}/    # hello from {}",
        to.name
    );
    let udp = format!(
        "dig @{} -p {} +short dns-{}.demo.svc.clusterset.local",
        from.dns.ip(),
        from.dns.port(),
        to.name
    );
    let _ = writeln!(
        g,
        "  dig @$({udp}) -p {} +short {name}    # {}'s own DNS, over UDP through the tunnel",
        to.dns.port(),
        to.name
    );
}

fn footer(g: &mut String, plan: &Plan, exe: &str) {
    let dir = plan.dir.display();
    let _ = writeln!(
        g,
        "\nEvery cluster also serves demo/hello (port {HELLO_PORT}) and demo/echo (port {ECHO_PORT}, raw TCP echo);\n\
         each is answered by the caller's own cluster first, then its region, then the others."
    );
    let _ = writeln!(
        g,
        "\nUI:       {}   (every cluster, live; each admin serves its own at /ui)",
        ui_url(plan)
    );
    let _ = writeln!(g, "Status:   {exe} status --dir {dir}");
    let _ = writeln!(
        g,
        "Doctor:   {exe} doctor --dir {dir} [--service demo/hello]"
    );
    let _ = writeln!(g, "Scripts:  {}", ClustersFile::path(&plan.dir).display());
    let _ = writeln!(g, "Logs:     {dir}/<cluster>/causeway.log");
    let _ = writeln!(g, "Ctrl-C stops every cluster.");
}
