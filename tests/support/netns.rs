//! Clusters in Linux network namespaces, each linked by a veth pair to a
//! bridge in a "wan" namespace; every link delays 25 ms and drops 1% each way
//! (tc netem; kernels without it get the loss from nftables and the delay from
//! a relay, see [`impair`] and [`Wan::relay`]). Addresses 10.200.<subnet>.x exist only inside these namespaces.
//! Everything is deleted on drop, and leftovers with the same prefix at start.

use std::net::Ipv4Addr;
use std::process::Command;

/// Why namespace tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)".into());
    }
    for tool in ["ip", "tc"] {
        if !super::have(tool) {
            return Some(format!("`{tool}` is missing (apt-get install iproute2)"));
        }
    }
    None
}

/// Runs `ip ARGS` (or `ip netns exec NS tc ...` through `args`), failing with its stderr.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

pub struct Wan {
    prefix: String,
    wan: String,
    /// Per cluster: its namespace.
    pub namespaces: Vec<String>,
    pub ips: Vec<Ipv4Addr>,
    /// Whether the links delay with tc netem; if not, [`Wan::relay`] adds the delay.
    pub netem: bool,
}

impl Wan {
    /// `n` cluster namespaces `<prefix>-<i>` and `<prefix>-wan`, addresses 10.200.<subnet>.(i+2).
    pub fn create(prefix: &str, n: usize, subnet: u8) -> Result<Wan, String> {
        delete_leftovers(prefix);
        let mut wan = Wan {
            netem: true,
            prefix: prefix.to_owned(),
            wan: format!("{prefix}-wan"),
            namespaces: (0..n).map(|i| format!("{prefix}-{i}")).collect(),
            ips: (0..n)
                .map(|i| Ipv4Addr::new(10, 200, subnet, i as u8 + 2))
                .collect(),
        };
        wan.build()?;
        Ok(wan)
    }

    fn build(&mut self) -> Result<(), String> {
        let w = self.wan.as_str();
        run("ip", &["netns", "add", w])?;
        run("ip", &["-n", w, "link", "add", "br0", "type", "bridge"])?;
        run("ip", &["-n", w, "link", "set", "br0", "up"])?;
        for i in 0..self.namespaces.len() {
            self.netem &= self.link(i)?;
        }
        Ok(())
    }

    /// Returns whether netem carries the delay.
    fn link(&self, i: usize) -> Result<bool, String> {
        let (ns, w) = (self.namespaces[i].as_str(), self.wan.as_str());
        let (inner, outer) = (format!("v{i}"), self.outer(i));
        let addr = format!("{}/24", self.ips[i]);
        run("ip", &["netns", "add", ns])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &[
                "link", "add", &inner, "netns", ns, "type", "veth", "peer", "name", &outer,
                "netns", w,
            ],
        )?;
        run("ip", &["-n", ns, "addr", "add", &addr, "dev", &inner])?;
        run("ip", &["-n", ns, "link", "set", &inner, "up"])?;
        run("ip", &["-n", w, "link", "set", &outer, "master", "br0"])?;
        run("ip", &["-n", w, "link", "set", &outer, "up"])?;
        impair(ns, &inner, w, &outer)
    }

    /// Without netem: a `causeway dev delay` relay in the wan namespace stands in
    /// front of every cluster's federation (TCP) and gateway (UDP), 25 ms each
    /// way, and peers dial the relay. Call before the plan is written.
    pub fn relay(&self, plan: &mut causeway::dev::Plan) -> super::Guard {
        let mut args = vec![
            "netns".to_owned(),
            "exec".into(),
            self.wan.clone(),
            super::BIN.into(),
            "dev".into(),
            "delay".into(),
        ];
        for (i, c) in plan.clusters.iter_mut().enumerate() {
            let [a, b, s, _] = self.ips[i].octets();
            let relay = Ipv4Addr::new(a, b, s, 100 + i as u8);
            run(
                "ip",
                &[
                    "-n",
                    &self.wan,
                    "addr",
                    "add",
                    &format!("{relay}/24"),
                    "dev",
                    "br0",
                ],
            )
            .unwrap();
            c.federation_dial = (relay, c.federation.port()).into();
            c.gateway_advertise = Some((relay, c.gateway.port()).into());
            args.extend([
                "--tcp".into(),
                format!("{}={}", c.federation_dial, c.federation),
            ]);
            args.extend([
                "--udp".into(),
                format!("{}={}", c.gateway_advertise.unwrap(), c.gateway),
            ]);
        }
        args.extend(["--delay-ms".into(), "25".into()]);
        let child = Command::new("ip")
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        super::Guard(Some(child))
    }

    /// Cluster i's link as the wan namespace names it.
    fn outer(&self, i: usize) -> String {
        format!("w{i}")
    }

    /// Cuts cluster i off the wan.
    pub fn cut(&self, i: usize) {
        run(
            "ip",
            &["-n", &self.wan, "link", "set", &self.outer(i), "down"],
        )
        .unwrap();
    }

    pub fn restore(&self, i: usize) {
        run(
            "ip",
            &["-n", &self.wan, "link", "set", &self.outer(i), "up"],
        )
        .unwrap();
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        delete_leftovers(&self.prefix);
    }
}

/// 25 ms delay and 1% loss each way with tc netem. Kernels built without netem
/// (CONFIG_NET_SCH_NETEM) get the loss from nftables instead, and no delay; the
/// test says so.
fn impair(ns: &str, inner: &str, wan: &str, outer: &str) -> Result<bool, String> {
    let netem = |space: &str, dev: &str| {
        let tc = [
            "netns", "exec", space, "tc", "qdisc", "add", "dev", dev, "root", "netem", "delay",
            "25ms", "loss", "1%",
        ];
        run("ip", &tc)
    };
    match netem(ns, inner) {
        Ok(()) => return netem(wan, outer).map(|()| true),
        Err(e) if e.contains("qdisc kind is unknown") => {}
        Err(e) => return Err(e),
    }
    if !super::have("nft") {
        return Err("this kernel has no tc netem and `nft` is missing for the loss (apt-get install nftables)".into());
    }
    eprintln!(
        "note: this kernel has no tc netem (CONFIG_NET_SCH_NETEM): link {inner} in {ns} drops 1% each way with nftables; the 25 ms delay each way comes from a relay in the wan namespace"
    );
    let rules = format!(
        "table inet wan {{\n chain out {{ type filter hook output priority 0; oifname \"{inner}\" numgen random mod 100 < 1 drop; }}\n \
         chain inp {{ type filter hook input priority 0; iifname \"{inner}\" numgen random mod 100 < 1 drop; }}\n}}\n"
    );
    let file = std::env::temp_dir().join(format!("causeway-{ns}.nft"));
    std::fs::write(&file, rules).map_err(|e| e.to_string())?;
    let r = run(
        "ip",
        &[
            "netns",
            "exec",
            ns,
            "nft",
            "-f",
            file.to_str().unwrap_or_default(),
        ],
    );
    let _ = std::fs::remove_file(&file);
    r.map(|()| false)
}

/// Deletes every namespace named `<prefix>-*` (processes in them die with them only
/// when killed; the tests' guards kill theirs first).
fn delete_leftovers(prefix: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let list = String::from_utf8_lossy(&out.stdout);
    let start = format!("{prefix}-");
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if name.starts_with(&start) {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}

/// One bare network namespace (loopback only) holding a whole clusterset, so
/// firewall rules (nftables) in it touch no other test. Deleted on drop.
pub struct Solo {
    pub name: String,
}

impl Solo {
    pub fn create(name: &str) -> Result<Solo, String> {
        let _ = run("ip", &["netns", "del", name]);
        run("ip", &["netns", "add", name])?;
        let solo = Solo { name: name.into() };
        run("ip", &["-n", name, "link", "set", "lo", "up"])?;
        Ok(solo)
    }

    /// Drops UDP to `port` on the namespace's loopback (nftables).
    pub fn drop_udp(&self, port: u16) -> Result<(), String> {
        if !super::have("nft") {
            return Err("`nft` is missing (apt-get install nftables)".into());
        }
        let rules = format!(
            "table inet doctor {{\n chain inp {{ type filter hook input priority 0; udp dport {port} drop; }}\n}}\n"
        );
        let file = std::env::temp_dir().join(format!("causeway-{}.nft", self.name));
        std::fs::write(&file, rules).map_err(|e| e.to_string())?;
        let path = file.to_str().unwrap_or_default().to_owned();
        let r = run("ip", &["netns", "exec", &self.name, "nft", "-f", &path]);
        let _ = std::fs::remove_file(&file);
        r
    }
}

impl Solo {
    /// Removes the rules `drop_udp` added.
    pub fn allow_udp(&self) -> Result<(), String> {
        let args = [
            "netns", "exec", &self.name, "nft", "delete", "table", "inet", "doctor",
        ];
        run("ip", &args)
    }
}

impl Drop for Solo {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}
