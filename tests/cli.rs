#![allow(clippy::unwrap_used)]
//! The `causeway` binary as a user runs it: `ca init`, `ca issue`, `config check`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn causeway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(args)
        .output()
        .expect("run causeway")
}

fn ok(args: &[&str]) -> String {
    let out = causeway(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "causeway {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = causeway(args);
    assert_eq!(out.status.code(), Some(1), "causeway {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// CA and gateway/federation certs for `name` under dir/name.
fn make_cluster(dir: &Path, name: &str) {
    let out = dir.join(name);
    let td = format!("{name}.demo.causeway");
    ok(&[
        "ca",
        "init",
        "--cluster",
        name,
        "--trust-domain",
        &td,
        "--out",
        s(&out),
    ]);
    for w in ["gateway", "federation"] {
        ok(&[
            "ca",
            "issue",
            "--ca",
            s(&out),
            "--workload",
            w,
            "--out",
            s(&out),
        ]);
    }
}

const CONFIG: &str = r#"
cluster: { name: east, region: r1, clusterset: demo.causeway }
identity:
  gateway: { cert: east/gateway.pem, key: east/gateway-key.pem }
  federation: { cert: east/federation.pem, key: east/federation-key.pem }
gateway: { listen: "127.0.0.1:15443", vip_ranges: [127.77.1.0/24] }
peers:
  - { name: west, ca: west/ca.pem, federation: "127.0.0.1:15110" }
"#;

#[test]
fn ca_init_issue_and_config_check() {
    let dir = tempfile::tempdir().unwrap();
    make_cluster(dir.path(), "east");
    make_cluster(dir.path(), "west");
    let mode = |f: &str| {
        let m = std::fs::metadata(dir.path().join("east").join(f)).unwrap();
        m.permissions().mode() & 0o777
    };
    assert_eq!(mode("ca-key.pem"), 0o600);
    assert_eq!(mode("gateway-key.pem"), 0o600);
    assert_eq!(mode("gateway.pem"), 0o644);

    let cfg = dir.path().join("causeway.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let printed = ok(&["config", "check", s(&cfg)]);
    assert!(
        printed.contains("name: east") && printed.contains("127.77.1.0/24"),
        "{printed}"
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    make_cluster(dir.path(), "east");
    let out = dir.path().join("east");
    let before = std::fs::read(out.join("ca-key.pem")).unwrap();
    let args = [
        "ca",
        "init",
        "--cluster",
        "east",
        "--trust-domain",
        "east.x",
        "--out",
        s(&out),
    ];
    let err = fails(&args);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(out.join("ca-key.pem")).unwrap(), before);
    let err = fails(&[
        "ca",
        "issue",
        "--ca",
        s(&out),
        "--workload",
        "gateway",
        "--out",
        s(&out),
    ]);
    assert!(err.contains("--force"), "{err}");
    let mut forced = args.to_vec();
    forced.push("--force");
    ok(&forced);
    assert_ne!(std::fs::read(out.join("ca-key.pem")).unwrap(), before);
}

#[test]
fn config_check_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    make_cluster(dir.path(), "east");
    make_cluster(dir.path(), "west");
    let cfg = dir.path().join("causeway.yaml");

    std::fs::write(
        &cfg,
        CONFIG.replace("region: r1", "region: r1, colour: blue"),
    )
    .unwrap();
    let err = fails(&["config", "check", s(&cfg)]);
    assert!(err.contains("colour"), "{err}");

    // The federation certificate where the gateway's belongs.
    let swapped = CONFIG
        .replace("east/gateway.pem", "east/federation.pem")
        .replace("east/gateway-key.pem", "east/federation-key.pem");
    std::fs::write(&cfg, swapped).unwrap();
    let err = fails(&["config", "check", s(&cfg)]);
    assert!(
        err.contains("identity.gateway") && err.contains("spiffe://east.demo.causeway/federation"),
        "{err}"
    );

    // West's CA configured under another trust domain.
    std::fs::write(&cfg, CONFIG.replace("west/ca.pem", "east/ca.pem")).unwrap();
    let err = fails(&["config", "check", s(&cfg)]);
    assert!(err.contains("peers.west.ca"), "{err}");

    let err = fails(&["config", "check", s(&dir.path().join("nope.yaml"))]);
    assert!(err.contains("nope.yaml"), "{err}");
}

#[test]
fn bad_arguments_are_refused() {
    let err = String::from_utf8_lossy(
        &causeway(&[
            "ca",
            "init",
            "--cluster",
            "Bad_Name",
            "--trust-domain",
            "x.y",
            "--out",
            "/tmp/x",
        ])
        .stderr,
    )
    .into_owned();
    assert!(err.contains("Bad_Name"), "{err}");
    let err = String::from_utf8_lossy(
        &causeway(&[
            "ca",
            "issue",
            "--ca",
            "/nonexistent",
            "--workload",
            "web",
            "--out",
            "/tmp/x",
        ])
        .stderr,
    )
    .into_owned();
    assert!(err.contains("web"), "{err}");
}

/// `--json` on ca init, ca issue and config check: exit 0 and the documented fields.
#[test]
fn json_output_of_ca_and_config_check() {
    let dir = tempfile::tempdir().unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let out = ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    };
    let east = dir.path().join("east");
    let init = json(&[
        "ca",
        "init",
        "--cluster",
        "east",
        "--trust-domain",
        "east.demo.causeway",
        "--out",
        s(&east),
        "--json",
    ]);
    assert_eq!(init["cluster"], "east");
    assert_eq!(init["trust_domain"], "east.demo.causeway");
    assert_eq!(init["spiffe_id"], serde_json::Value::Null);
    assert_eq!(init["cert"], s(&east.join("ca.pem")));
    assert_eq!(init["key"], s(&east.join("ca-key.pem")));
    let text = init.to_string();
    assert!(
        !text.contains("PRIVATE KEY"),
        "key material printed: {text}"
    );
    for w in ["gateway", "federation"] {
        let issued = json(&[
            "ca",
            "issue",
            "--ca",
            s(&east),
            "--workload",
            w,
            "--out",
            s(&east),
            "--json",
        ]);
        assert_eq!(
            issued["spiffe_id"],
            format!("spiffe://east.demo.causeway/{w}")
        );
        assert_eq!(issued["cert"], s(&east.join(format!("{w}.pem"))));
        assert_eq!(issued["key"], s(&east.join(format!("{w}-key.pem"))));
        assert!(std::fs::metadata(east.join(format!("{w}-key.pem"))).is_ok());
    }
    make_cluster(dir.path(), "west");
    let cfg = dir.path().join("causeway.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let checked = json(&["config", "check", s(&cfg), "--json"]);
    assert_eq!(checked["cluster"]["name"], "east");
    assert_eq!(checked["gateway"]["vip_ranges"][0], "127.77.1.0/24");
    assert_eq!(checked["peers"][0]["name"], "west");
    // A bad config still fails with exit 1 and a message, not JSON.
    std::fs::write(&cfg, CONFIG.replace("west/ca.pem", "nowhere/ca.pem")).unwrap();
    let err = fails(&["config", "check", s(&cfg), "--json"]);
    assert!(err.contains("peers.west.ca"), "{err}");
}
