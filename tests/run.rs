//! `causeway run` as a process: every component starts, the admin endpoint
//! serves the catalog and peers, and SIGTERM stops it cleanly.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use causeway_catalog::ClusterId;
use causeway_identity::{Ca, TrustDomain, Validity, Workload};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn certs(dir: &Path, name: &str) {
    let td: TrustDomain = format!("{name}.test").parse().unwrap();
    let ca = Ca::generate(&ClusterId::new(name).unwrap(), &td).unwrap();
    let out = dir.join(name);
    ca.save(&out, false).unwrap();
    for w in [Workload::Gateway, Workload::Federation] {
        ca.issue(w, Validity::default())
            .unwrap()
            .save(&out, w, false)
            .unwrap();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
    resp.starts_with("HTTP/1.1 200")
        .then(|| resp.split_once("\r\n\r\n").unwrap().1.to_owned())
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
    let (admin, fed, dns, gw, peer) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let cfg = format!(
        r#"
cluster: {{ name: east, region: r1, clusterset: test }}
identity:
  gateway: {{ cert: east/gateway.pem, key: east/gateway-key.pem }}
  federation: {{ cert: east/federation.pem, key: east/federation-key.pem }}
gateway: {{ listen: "127.0.0.1:{gw}", vip_ranges: [127.77.9.0/24] }}
federation: {{ listen: "127.0.0.1:{fed}", state_dir: state }}
dns: {{ listen: "127.0.0.1:{dns}" }}
admin: {{ listen: "127.0.0.1:{admin}" }}
source:
  static:
    exports:
      - {{ service: demo/echo, ports: [{{ name: tcp, port: 7 }}], endpoints: [{{ addr: "127.0.0.1:7" }}] }}
peers:
  - {{ name: west, ca: west/ca.pem, federation: "127.0.0.1:{peer}" }}
"#
    );
    let path = dir.path().join("east.yaml");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(["run", "--config", path.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Kill(child);

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
    assert!(
        metrics.contains("causeway_gateway_") && metrics.contains("causeway_dns_"),
        "{metrics}"
    );

    let pid = child.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = wait_for("exit after SIGTERM", || child.0.try_wait().unwrap());
    assert!(status.success(), "exit status {status}");
    let mut log = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("causeway stopped cleanly"), "{log}");
    assert!(
        dir.path().join("state").read_dir().unwrap().count() > 0,
        "state dir is empty"
    );
}
