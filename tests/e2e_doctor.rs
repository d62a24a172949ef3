//! `causeway doctor` against a real two-cluster clusterset: healthy first,
//! then one fault at a time, each asserted on the JSON report and the exit
//! code: the first failing check names the right layer and cause, later
//! layers are not run, and the answer comes within 10 s. Most faults live in
//! a copy of alpha's config (another CA, an expired certificate, a closed
//! port), so one running clusterset serves them all; bravo's extra exports
//! (not exported to alpha, an endpoint that refuses) are set up at start.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use causeway::dev::{ClustersFile, HELLO_PORT, export};
use causeway_catalog::{ClusterId, ExportTo};
use causeway_identity::{Ca, TrustDomain, Validity, Workload};
use serde_json::Value;
use support::netns::Solo;
use support::{BIN, Mesh, command, have, skip};

const LINK: Duration = Duration::from_secs(60);
const ANSWER: Duration = Duration::from_secs(10);
const DAY: Duration = Duration::from_secs(86400);

/// One doctor run: exit code and checks.
struct Run {
    code: Option<i32>,
    checks: Vec<Value>,
    text: String,
}

impl Run {
    fn first_failure(&self) -> &Value {
        let failed = self.checks.iter().find(|c| c["ok"] == false);
        failed.unwrap_or_else(|| panic!("no failing check:\n{}", self.text))
    }

    /// The first failure is at `layer`, its cause says each of `says`, and
    /// nothing after that layer ran.
    fn assert_broken(&self, layer: &str, says: &[&str]) {
        assert_eq!(self.code, Some(1), "{}", self.text);
        let f = self.first_failure();
        assert_eq!(f["layer"], layer, "{}", self.text);
        let cause = f["cause"].as_str().unwrap_or_default();
        for s in says {
            assert!(cause.contains(s), "cause lacks {s:?}:\n{}", self.text);
        }
        assert!(!f["fix"].as_str().unwrap_or_default().is_empty());
        let last = self.checks.last().unwrap();
        assert_eq!(
            last["layer"], layer,
            "layers ran past the broken one:\n{}",
            self.text
        );
    }
}

fn doctor(netns: Option<&str>, config: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["doctor", "--json", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_doctor(command(netns, BIN, &args))
}

fn run_doctor(mut cmd: Command) -> Run {
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let took = start.elapsed();
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < ANSWER, "doctor took {took:?}:\n{text}");
    let checks = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    Run {
        code: out.status.code(),
        checks,
        text,
    }
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Two clusters; bravo also exports demo/secret to charlie only and
/// demo/broken, whose endpoint is a closed port.
async fn mesh(netns: Option<&str>, base_port: u16, vip_base: Ipv4Addr) -> Mesh {
    let mut mesh = Mesh::plan(2, base_port, vip_base, |_| {}).await;
    mesh.netns = vec![netns.map(str::to_owned); 2];
    let b = &mut mesh.plan.clusters[1];
    let mut secret = export("secret", HELLO_PORT, "http", b.demo_http);
    secret.export_to = ExportTo::Only([ClusterId::new("charlie").unwrap()].into());
    let refused = SocketAddr::from(([127, 0, 0, 1], closed_port()));
    b.exports.push(secret);
    b.exports
        .push(export("broken", HELLO_PORT, "http", refused));
    mesh.start_all();
    mesh.wait_linked(LINK).await;
    mesh.wait_vip(0, "broken").await;
    mesh
}

/// Alpha's config with `edit` applied, written beside it (relative paths hold).
fn variant(mesh: &Mesh, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let c = mesh.c(0);
    let text = edit(mesh.plan.config_yaml(c));
    let path = c.dir.join(format!("doctor-{name}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A federation certificate for alpha with `validity`, from alpha's own CA, in alpha/<name>/.
fn alpha_cert(mesh: &Mesh, name: &str, validity: Validity) -> PathBuf {
    let dir = mesh.c(0).dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let ca = Ca::load(&mesh.c(0).dir).unwrap();
    let leaf = ca.issue(Workload::Federation, validity).unwrap();
    leaf.save(&dir, Workload::Federation, true).unwrap();
    dir
}

fn with_federation_cert(text: String, dir: &str) -> String {
    let from = "federation: { cert: federation.pem, key: federation-key.pem }";
    assert!(text.contains(from));
    text.replace(
        from,
        &format!("federation: {{ cert: {dir}/federation.pem, key: {dir}/federation-key.pem }}"),
    )
}

/// A fresh CA for `cluster` (same trust domain as the real one), saved in `dir`.
fn other_ca(cluster: &str, dir: &Path) {
    let td = TrustDomain::new(format!("{cluster}.{}", causeway::dev::CLUSTERSET)).unwrap();
    let ca = Ca::generate(&ClusterId::new(cluster).unwrap(), &td).unwrap();
    ca.save(dir, true).unwrap();
}

#[tokio::test]
async fn doctor_names_the_broken_layer() {
    let mesh = mesh(None, 25600, Ipv4Addr::new(127, 93, 0, 0)).await;
    let alpha = mesh.c(0).config_path();

    // Healthy: every layer passes, exit 0.
    let run = doctor(None, &alpha, &["--service", "demo/hello-bravo"]);
    assert_eq!(run.code, Some(0), "{}", run.text);
    let layers: Vec<&str> = run
        .checks
        .iter()
        .map(|c| c["layer"].as_str().unwrap())
        .collect();
    for l in [
        "config",
        "certificates",
        "federation",
        "lease",
        "gateway",
        "mtu",
        "service",
        "dns",
        "connection",
    ] {
        assert!(layers.contains(&l), "{l} missing:\n{}", run.text);
    }
    assert!(
        run.checks
            .iter()
            .all(|c| c["cluster"] == "alpha" && c["cause"].is_null())
    );

    // --dir: every cluster of a `dev up` directory.
    let catalogs = vec![Default::default(); 2];
    ClustersFile::new(&mesh.plan, &[None, None], &catalogs)
        .save()
        .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["doctor", "--json", "--dir"]).arg(&mesh.plan.dir);
    let run = run_doctor(cmd);
    assert_eq!(run.code, Some(0), "{}", run.text);
    assert!(
        run.checks
            .iter()
            .any(|c| c["cluster"] == "bravo" && c["layer"] == "gateway")
    );

    // A wrong CA: our bundle for bravo is another CA (same trust domain).
    let wrong = mesh.c(0).dir.join("wrong-ca");
    other_ca("bravo", &wrong);
    let cfg = variant(&mesh, "wrong-ca", |t| {
        t.replace("../bravo/ca.pem", "wrong-ca/ca.pem")
    });
    doctor(None, &cfg, &[]).assert_broken("federation", &["our CA bundle for bravo", "wrong CA"]);

    // The other side: bravo's bundle for alpha does not accept our certificate.
    let theirs = mesh.c(0).dir.join("foreign");
    other_ca("alpha", &theirs);
    let leaf = Ca::load(&theirs)
        .unwrap()
        .issue(Workload::Federation, Validity::default())
        .unwrap();
    leaf.save(&theirs, Workload::Federation, true).unwrap();
    let cfg = variant(&mesh, "foreign", |t| with_federation_cert(t, "foreign"));
    doctor(None, &cfg, &[])
        .assert_broken("federation", &["bravo rejected our federation certificate"]);

    // An expired certificate of ours.
    let now = SystemTime::now();
    alpha_cert(
        &mesh,
        "expired",
        Validity {
            not_before: now - 2 * DAY,
            not_after: now - DAY,
        },
    );
    let cfg = variant(&mesh, "expired", |t| with_federation_cert(t, "expired"));
    let run = doctor(None, &cfg, &[]);
    run.assert_broken("certificates", &["expired at"]);
    assert_eq!(run.first_failure()["target"], "federation");

    // Clock skew beyond the certificate's validity: a notBefore in the future
    // is what a host whose clock runs behind sees (the checker compares the
    // same two times either way).
    alpha_cert(
        &mesh,
        "future",
        Validity {
            not_before: now + DAY,
            not_after: now + 2 * DAY,
        },
    );
    let cfg = variant(&mesh, "future", |t| with_federation_cert(t, "future"));
    doctor(None, &cfg, &[]).assert_broken("certificates", &["not valid until", "clock skew"]);

    // The peer's federation port closed.
    let fed = mesh.c(1).federation_dial.to_string();
    let closed = format!("127.0.0.1:{}", closed_port());
    let cfg = variant(&mesh, "fed-closed", |t| t.replace(&fed, &closed));
    doctor(None, &cfg, &[])
        .assert_broken("federation", &["nothing listens on", "federation is down"]);

    // A service bravo exports, but not to alpha.
    let run = doctor(
        None,
        &alpha,
        &["--service", &format!("demo/secret:{HELLO_PORT}")],
    );
    run.assert_broken(
        "service",
        &["bravo exports demo/secret but its export_to excludes alpha"],
    );

    // Our DNS server down: the config points DNS at a port nothing serves.
    let dns = mesh.c(0).dns.to_string();
    let cfg = variant(&mesh, "dns-down", |t| {
        t.replace(&dns, &format!("127.0.0.1:{}", closed_port()))
    });
    doctor(None, &cfg, &[]).assert_broken("dns", &["DNS server is down"]);
    doctor(None, &cfg, &["--service", "demo/hello-bravo"])
        .assert_broken("dns", &["DNS server is down"]);

    // The service's endpoint refuses connections.
    let run = doctor(None, &alpha, &["--service", "demo/broken"]);
    run.assert_broken(
        "connection",
        &["could not connect to any endpoint of demo/broken"],
    );
    assert!(
        run.first_failure()["detail"]
            .as_str()
            .unwrap()
            .contains("connect_failed"),
        "{}",
        run.text
    );
}

/// Bravo's gateway UDP blocked by nftables: federation (TCP) and the lease
/// stay healthy, the QUIC handshake times out, and doctor says both possible
/// causes. Needs root, `ip` and `nft`; prints why it skips otherwise.
#[tokio::test]
async fn doctor_reports_blocked_gateway_udp() {
    const TEST: &str = "doctor_reports_blocked_gateway_udp";
    if !rustix::process::geteuid().is_root() || !have("ip") || !have("nft") {
        skip(
            TEST,
            "needs root, `ip` (iproute2) and `nft` (nftables) for a network namespace",
        );
        return;
    }
    let solo = match Solo::create("cwdoctor") {
        Ok(s) => s,
        Err(e) => {
            return skip(
                TEST,
                &format!("cannot create a network namespace here: {e}"),
            );
        }
    };
    let ns = Some(solo.name.as_str());
    let mesh = mesh(ns, 25800, Ipv4Addr::new(127, 94, 0, 0)).await;
    let alpha = mesh.c(0).config_path();
    assert_eq!(doctor(ns, &alpha, &[]).code, Some(0));

    solo.drop_udp(mesh.c(1).gateway.port()).unwrap();
    let run = doctor(ns, &alpha, &[]);
    run.assert_broken(
        "gateway",
        &["no QUIC answer", "UDP", "blocked", "gateway is down"],
    );
    assert!(
        run.checks
            .iter()
            .any(|c| c["layer"] == "lease" && c["ok"] == true),
        "{}",
        run.text
    );
}
