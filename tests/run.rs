//! `causeway run` and the single-component commands as processes: components
//! start, the admin endpoint serves the catalog and peers, SIGTERM stops cleanly.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use causeway_catalog::ClusterId;
use causeway_identity::{Ca, TrustDomain, Validity, Workload};
use support::{BIN, Guard};

fn certs(dir: &Path, name: &str) {
    let td: TrustDomain = format!("{name}.test").parse().unwrap();
    let ca = Ca::generate(&ClusterId::new(name).unwrap(), &td).unwrap();
    let out = dir.join(name);
    ca.save(&out, false).unwrap();
    for w in Workload::ALL {
        let leaf = ca.issue(w, Validity::default()).unwrap();
        leaf.save(&out, w, false).unwrap();
    }
}

fn free_port() -> u16 {
    support::free_addr().port()
}

#[derive(Clone, Copy)]
struct Ports {
    admin: u16,
    metrics: u16,
    fed: u16,
    watch: u16,
    dns: u16,
    gw: u16,
    peer: u16,
}

impl Ports {
    fn new() -> Self {
        let p = || free_port();
        Ports {
            admin: p(),
            metrics: p(),
            fed: p(),
            watch: p(),
            dns: p(),
            gw: p(),
            peer: p(),
        }
    }
}

/// East's config, exporting demo/echo, with west (not running) as its peer.
fn config(dir: &Path, p: Ports, file: &str) -> PathBuf {
    let Ports {
        admin,
        metrics,
        fed,
        watch,
        dns,
        gw,
        peer,
    } = p;
    let cfg = format!(
        r#"
cluster: {{ name: east, region: r1, clusterset: test }}
identity:
  gateway: {{ cert: east/gateway.pem, key: east/gateway-key.pem }}
  federation: {{ cert: east/federation.pem, key: east/federation-key.pem }}
  dns: {{ cert: east/dns.pem, key: east/dns-key.pem }}
  ca: east/ca.pem
gateway: {{ listen: "127.0.0.1:{gw}", vip_ranges: [127.77.9.0/24] }}
federation: {{ listen: "127.0.0.1:{fed}", watch_listen: "127.0.0.1:{watch}", state_dir: state }}
dns: {{ listen: "127.0.0.1:{dns}" }}
admin: {{ listen: "127.0.0.1:{admin}", metrics_listen: "127.0.0.1:{metrics}" }}
source:
  static:
    exports:
      - {{ service: demo/echo, ports: [{{ name: tcp, port: 7 }}], endpoints: [{{ addr: "127.0.0.1:7" }}] }}
peers:
  - {{ name: west, ca: west/ca.pem, federation: "127.0.0.1:{peer}" }}
"#
    );
    let path = dir.join(file);
    std::fs::write(&path, cfg).unwrap();
    path
}

fn spawn(cmd: &str, config: &Path) -> Guard {
    let child = Command::new(BIN)
        .args([cmd, "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Guard(Some(child))
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
    body.filter(|_| resp.starts_with("HTTP/1.1 200"))
}

fn dig(port: u16, name: &str) -> Option<String> {
    let dns = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    support::clients::dig(None, dns, name).into_iter().next()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn run_serves_admin_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), "east");
    certs(dir.path(), "west");
    let ports = Ports::new();
    let mut child = spawn("run", &config(dir.path(), ports, "east.yaml"));
    let admin = ports.admin;

    wait_for("/readyz", || get(admin, "/readyz"));
    let catalog = wait_for("the export in /v1/catalog", || {
        get(admin, "/v1/catalog").filter(|c| c.contains("127.77.9."))
    });
    let catalog: serde_json::Value = serde_json::from_str(&catalog).unwrap();
    assert_eq!(
        catalog["imports"]["demo/echo"]["clusters"][0]["cluster"],
        "east"
    );
    // West is down: its session backs off and says why.
    let peers = wait_for("west's error in /v1/peers", || {
        get(admin, "/v1/peers").filter(|p| p.contains("last_error\":\"cannot connect"))
    });
    assert!(peers.contains("\"name\":\"west\""), "{peers}");
    let metrics = get(admin, "/metrics").unwrap();
    let has = |m: &str| metrics.lines().any(|l| l.starts_with(m));
    assert!(
        has("causeway_gateway_") && has("causeway_dns_") && has("causeway_federation_"),
        "{metrics}"
    );
    assert!(!metrics.contains("causeway_causeway_"), "{metrics}");
    // Finding 8: certificate expiry, for our own certificates and peer CAs.
    let expiry = |label: &str| {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "causeway_certificate_expiry_timestamp_seconds{{{label}}}"
                ))
            })
            .unwrap_or_else(|| panic!("no expiry for {label}: {metrics}"));
        line.rsplit(' ').next().unwrap().parse::<f64>().unwrap()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry("kind=\"workload\",name=\"gateway\"") > now);
    assert!(expiry("kind=\"workload\",name=\"federation\"") > now);
    assert!(expiry("kind=\"peer_ca\",name=\"west\"") > now);
    // Finding 9: the metrics port serves probes and metrics, nothing else.
    let m = ports.metrics;
    assert!(get(m, "/readyz").is_some() && get(m, "/healthz").is_some());
    assert!(get(m, "/metrics").unwrap().contains("causeway_federation_"));
    for secret in ["/v1/config", "/v1/catalog", "/v1/peers"] {
        assert!(
            get(m, secret).is_none(),
            "{secret} served on the metrics port"
        );
    }

    let pid = child.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let proc = child.0.as_mut().unwrap();
    let status = wait_for("exit after SIGTERM", || proc.try_wait().unwrap());
    assert!(status.success(), "exit status {status}");
    let mut log = String::new();
    let stderr = proc.stderr.as_mut().unwrap();
    stderr.read_to_string(&mut log).unwrap();
    assert!(log.contains("causeway stopped cleanly"), "{log}");
    assert!(
        dir.path().join("state").read_dir().unwrap().count() > 0,
        "state dir is empty"
    );
}

/// The chart runs the components apart: the federation serves WatchCatalog,
/// DNS and the gateway follow it. Each process gets its own admin port.
#[test]
fn components_run_apart() {
    if !support::have("dig") {
        support::skip(
            "components_run_apart",
            "dig is not installed (Debian: bind9-dnsutils)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), "east");
    certs(dir.path(), "west");
    let fed = Ports::new();
    let dns = Ports {
        admin: free_port(),
        metrics: free_port(),
        ..fed
    };
    let gw = Ports {
        admin: free_port(),
        metrics: free_port(),
        ..fed
    };
    let _dns = spawn("dns", &config(dir.path(), dns, "dns.yaml"));
    let _gw = spawn("gateway", &config(dir.path(), gw, "gw.yaml"));
    // Before the federation runs, nothing is ready.
    wait_for("the DNS admin endpoint", || get(dns.admin, "/healthz"));
    assert!(get(dns.admin, "/readyz").is_none());

    let _fed = spawn("federation", &config(dir.path(), fed, "fed.yaml"));
    let vip = wait_for("a DNS answer from the followed catalog", || {
        dig(dns.dns, "echo.demo.svc.clusterset.local")
    });
    assert!(vip.starts_with("127.77.9."), "{vip}");
    wait_for("the gateway's /readyz", || get(gw.admin, "/readyz"));
    let catalog = get(gw.admin, "/v1/catalog").unwrap();
    assert!(catalog.contains(&vip), "{catalog}");
    // Only the federation process has peers.
    assert!(get(gw.admin, "/v1/peers").is_none());
    assert!(get(fed.admin, "/v1/peers").is_some());
}

/// Echoes each connection's bytes back, on a thread; its address.
fn echo_listener() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    addr
}

/// One round trip through `addr`: Some(true) echoed, Some(false) refused or reset.
fn echoes(addr: std::net::SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 4];
    s.write_all(b"ping").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"ping"
}

fn metric(port: u16, sample: &str) -> Option<f64> {
    let text = get(port, "/metrics")?;
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

#[test]
fn run_applies_policy_edits_and_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path(), "east");
    certs(dir.path(), "west");
    let ports = Ports::new();
    let path = config(dir.path(), ports, "east.yaml");
    let echo = echo_listener();
    let base = std::fs::read_to_string(&path)
        .unwrap()
        .replace("port: 7 }", "port: 7070 }")
        .replace("127.0.0.1:7\"", &format!("{echo}\""));
    std::fs::write(&path, &base).unwrap();
    let _child = spawn("run", &path);
    let admin = ports.admin;
    let catalog = wait_for("the export's VIP", || {
        get(admin, "/v1/catalog").filter(|c| c.contains("127.77.9."))
    });
    let catalog: serde_json::Value = serde_json::from_str(&catalog).unwrap();
    let vip = catalog["imports"]["demo/echo"]["vips"][0].as_str().unwrap();
    let vip: std::net::SocketAddr = format!("{vip}:7070").parse().unwrap();
    wait_for("served before any policy", || echoes(vip).then_some(()));

    let edit =
        |policies: &str| std::fs::write(&path, format!("{base}policies: {policies}\n")).unwrap();
    edit("[{ service: demo/echo, fault: { abort_percent: 100 } }]");
    wait_for("the fault policy in force", || {
        (metric(admin, "causeway_policy_in_force") == Some(1.0)).then_some(())
    });
    assert!(!echoes(vip), "the fault resets new connections");
    edit("[{ service: demo/echo, fault: { abort_percent: 300 } }]");
    wait_for("the bad edit counted", || {
        (metric(admin, "causeway_policy_reloads_total{result=\"error\"}") == Some(1.0))
            .then_some(())
    });
    assert!(!echoes(vip), "the last good policy stays in force");
    edit("[]");
    wait_for("the policy lifted", || echoes(vip).then_some(()));
    let faults = metric(
        admin,
        "causeway_gateway_policy_faults_total{service=\"demo/echo\",fault=\"abort\"}",
    );
    assert!(faults >= Some(2.0), "{faults:?}");
}
