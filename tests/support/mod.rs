//! Shared by the end-to-end tests: a clusterset laid out by the same
//! `causeway::dev::plan` that `causeway dev up` uses, run as real `causeway`
//! processes that are killed when the test ends, plus waits with deadlines and
//! real clients (dig, hickory-resolver).
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub mod clients;
pub mod link;
pub mod netns;
#[path = "../../federation/tests/common/ports.rs"]
mod ports;
pub mod webdriver;
pub use ports::free_addr;

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use causeway::dev::{ClusterPlan, Plan, PlanOptions};
use causeway_catalog::Import;

pub const BIN: &str = env!("CARGO_BIN_EXE_causeway");

/// Polls `cond` every 100 ms until it yields `Some` or `limit` passes (then panics naming `what`).
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A spawned process, killed (SIGKILL) and reaped on drop.
pub struct Guard(pub Option<Child>);

impl Guard {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }
    pub fn kill(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to run a command: directly, or inside a network namespace.
pub fn command(netns: Option<&str>, program: &str, args: &[&str]) -> Command {
    match netns {
        None => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]).args(args);
            c
        }
    }
}

/// A clusterset of `causeway run` processes and their demo services.
pub struct Mesh {
    pub plan: Plan,
    pub runs: Vec<Guard>,
    pub demos: Vec<Guard>,
    /// Per cluster, the network namespace it runs in.
    pub netns: Vec<Option<String>>,
    /// Helper processes (e.g. a WAN delay relay), killed with the mesh.
    pub extra: Vec<Guard>,
    _dir: tempfile::TempDir,
}

impl Mesh {
    /// Plans `n` clusters with ports from `base_port` (moved up past busy ones) and
    /// ClusterSetIPs under `vip_base`; `tweak` may change exports or addresses.
    pub async fn plan(
        n: usize,
        base_port: u16,
        vip_base: Ipv4Addr,
        tweak: impl FnOnce(&mut PlanOptions),
    ) -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = PlanOptions::new(n, dir.path());
        opts.vip_base = vip_base;
        opts.base_port = base_port;
        tweak(&mut opts);
        let mut plan = causeway::dev::plan(&opts).unwrap();
        for _ in 0..50 {
            if opts.ips.is_some() || causeway::dev::busy(&plan).await.is_empty() {
                break;
            }
            opts.base_port += 100;
            plan = causeway::dev::plan(&opts).unwrap();
        }
        Mesh {
            plan,
            runs: (0..n).map(|_| Guard(None)).collect(),
            demos: (0..n).map(|_| Guard(None)).collect(),
            netns: vec![None; n],
            extra: Vec::new(),
            _dir: dir,
        }
    }

    /// Two clusters where alpha exports only its own hello, so alpha's
    /// clients must cross to bravo for everything else.
    pub async fn alpha_calls_bravo(base_port: u16, vip_base: Ipv4Addr) -> Mesh {
        let mut mesh = Mesh::plan(2, base_port, vip_base, |_| {}).await;
        mesh.plan.clusters[0]
            .exports
            .retain(|e| e.key.name() == "hello-alpha");
        mesh
    }

    pub fn c(&self, i: usize) -> &ClusterPlan {
        &self.plan.clusters[i]
    }

    /// Writes certificates, configs and exports, then starts every demo and cluster.
    pub fn start_all(&mut self) {
        self.plan.write().unwrap();
        for i in 0..self.plan.clusters.len() {
            self.start_demo(i);
            self.start(i);
        }
    }

    pub fn start_demo(&mut self, i: usize) {
        let c = self.c(i).clone();
        let (http, echo) = (c.demo_http.to_string(), c.demo_echo.to_string());
        let args = [
            "dev",
            "demo",
            "--name",
            c.name.as_str(),
            "--http",
            &http,
            "--echo",
            &echo,
        ];
        let child = command(self.netns[i].as_deref(), BIN, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.demos[i] = Guard(Some(child));
    }

    /// Starts cluster i's `causeway run`, output appended to its log.
    pub fn start(&mut self, i: usize) {
        let c = self.c(i).clone();
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(c.log_path())
            .unwrap();
        let config = c.config_path();
        let args = ["run", "--config", config.to_str().unwrap()];
        let child = command(self.netns[i].as_deref(), BIN, &args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.runs[i] = Guard(Some(child));
    }

    /// SIGKILL: the process gets no chance to drain.
    pub fn kill(&mut self, i: usize) {
        self.runs[i].kill();
    }

    /// Cluster i's imports: over HTTP from here, or with `causeway status --json`
    /// run inside its network namespace.
    pub async fn imports(&self, i: usize) -> Option<Vec<Import>> {
        let c = self.c(i);
        let Some(ns) = self.netns[i].as_deref() else {
            let snap = causeway::dev::catalog(c).await.ok()?;
            return Some(snap.imports.into_values().collect());
        };
        let admin = c.admin.to_string();
        let out = command(Some(ns), BIN, &["status", "--json", "--admin", &admin])
            .output()
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        if let Some(e) = json[0]["error"].as_str() {
            eprintln!("status of {} in {ns}: {e}", c.name);
            return None;
        }
        serde_json::from_value(json.get(0)?.get("imports")?.clone()).ok()
    }

    /// Every running cluster imports every other running cluster's own service.
    pub async fn wait_linked(&self, limit: Duration) {
        let running: Vec<usize> = (0..self.runs.len())
            .filter(|i| self.runs[*i].0.is_some())
            .collect();
        wait_for("every cluster linked", limit, || async {
            for &i in &running {
                let imports = self.imports(i).await?;
                for &j in running.iter().filter(|j| **j != i) {
                    let own = causeway::dev::own_service(self.c(j))?;
                    let peer = &self.c(j).name;
                    imports.iter().find(|im| {
                        im.key == own
                            && !im.vips.is_empty()
                            && im.clusters.iter().any(|s| &s.cluster == peer)
                    })?;
                }
            }
            Some(())
        })
        .await;
    }

    /// Cluster i's ClusterSetIP for `demo/<name>`.
    pub async fn vip(&self, i: usize, name: &str) -> Option<Ipv4Addr> {
        let key = causeway::dev::demo_key(name);
        let imports = self.imports(i).await?;
        imports
            .iter()
            .find(|im| im.key == key)?
            .vips
            .iter()
            .find_map(|v| match v {
                std::net::IpAddr::V4(v) => Some(*v),
                std::net::IpAddr::V6(_) => None,
            })
    }

    /// Waits until cluster i has a ClusterSetIP for `demo/<name>`.
    pub async fn wait_vip(&self, i: usize, name: &str) -> Ipv4Addr {
        wait_for(
            &format!("a ClusterSetIP for demo/{name}"),
            Duration::from_secs(60),
            || self.vip(i, name),
        )
        .await
    }

    pub fn dns(&self, i: usize) -> SocketAddr {
        self.c(i).dns
    }

    /// The last lines of every cluster's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for c in &self.plan.clusters {
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                c.name,
                causeway::dev::tail(&c.log_path(), 30)
            ));
        }
        out
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Whether a program is on PATH; tests print why they skip when one is missing.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn skip(test: &str, why: &str) {
    eprintln!("SKIP {test}: {why}");
}
