//! `causeway token redeem` run for a cluster in Kubernetes mode (as in its
//! federation pod): the issuer, a real `causeway run` in static mode, links it
//! and the redeemer records the issuer in its links Secret (the in-memory API
//! server of federation/tests/fake_kube), not under its state_dir.
#![allow(clippy::unwrap_used)]

#[path = "../federation/tests/fake_kube/mod.rs"]
mod fake_kube;
mod support;

use std::net::Ipv4Addr;

use base64::Engine;
use fake_kube::FakeKube;
use support::link::{cli, config, issue, unlinked, wait_peers};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_in_kubernetes_mode_redeems_a_token_into_its_links_secret() {
    let kube = FakeKube::start().await;
    let mesh = unlinked(2, 22600, Ipv4Addr::new(127, 104, 0, 0)).await;
    let token = issue(&mesh, 0, "1h");
    let bravo = mesh.c(1);
    let k8s = format!(
        "  state_dir: state\n  kubernetes: {{ api_url: \"{}\", namespace: causeway, gateway_selector: {{ app: gateway }} }}\n",
        kube.url("bravo")
    );
    let yaml = std::fs::read_to_string(bravo.config_path()).unwrap();
    assert!(yaml.contains("  state_dir: state\n"), "{yaml}");
    std::fs::write(
        bravo.config_path(),
        yaml.replace("  state_dir: state\n", &k8s),
    )
    .unwrap();

    let config = config(&mesh, 1);
    let out = tokio::task::spawn_blocking(move || {
        cli(&["token", "redeem", &token, "--config", &config, "--json"])
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redeem: {err}");

    let secret = kube
        .get("secrets", "causeway", "causeway-links")
        .expect("bravo's links Secret");
    let b64 = base64::engine::general_purpose::STANDARD;
    let text = |key: &str| {
        let v = secret["data"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key}: {secret}"));
        String::from_utf8(b64.decode(v).unwrap()).unwrap()
    };
    assert!(
        text("links.yaml").contains("name: alpha"),
        "{}",
        text("links.yaml")
    );
    let alpha_ca = std::fs::read_to_string(mesh.c(0).dir.join("ca.pem")).unwrap();
    assert_eq!(text("alpha-ca.pem"), alpha_ca);
    assert!(!bravo.dir.join("state/links/links.yaml").exists());
    assert_eq!(kube.writers("secrets"), ["bravo"]);
    wait_peers(&mesh, 0, &["bravo"]).await;
}
