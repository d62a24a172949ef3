use super::*;

/// The smallest valid config (no files are read by `validate`).
pub(crate) const BASE: &str = r#"
cluster: { name: east, region: r1 }
identity:
  gateway: { cert: g.pem, key: g-key.pem }
  federation: { cert: f.pem, key: f-key.pem }
gateway: { listen: "127.0.0.1:15443" }
"#;

fn parse(extra: &str) -> Result<Config, String> {
    let cfg = Config::parse(&format!("{BASE}{extra}"))?;
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

fn err(extra: &str) -> String {
    match parse(extra) {
        Ok(_) => panic!("accepted: {extra}"),
        Err(e) => e,
    }
}

#[test]
fn minimal_config_gets_defaults() {
    let cfg = parse("").unwrap();
    assert_eq!(
        cfg.cluster.trust_domain().unwrap().as_str(),
        "east.causeway"
    );
    assert_eq!(cfg.dns.zone, "clusterset.local");
    assert_eq!(cfg.admin.listen.port(), 15000);
}

#[test]
fn unknown_key_is_named() {
    let e = err("dns: { zone: x.local, tll: 5s }");
    assert!(e.contains("tll"), "{e}");
    let e = err("bogus: 1");
    assert!(e.contains("bogus"), "{e}");
}

#[test]
fn bad_values_are_named() {
    let e = Config::parse(&BASE.replace("name: east", "name: East_1")).unwrap_err();
    assert!(e.contains("East_1"), "{e}");
    let e = err("dns: { ttl: 2h }");
    assert!(e.contains("dns.ttl"), "{e}");
    let e = err("peers: [{ name: west, ca: c.pem, federation: \"h:1\", trust_domain: Bad_TD }]");
    assert!(e.contains("Bad_TD"), "{e}");
    let e = Config::parse(&BASE.replace("region: r1", "region: r1, clusterset: \"bad set\""))
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cluster.trust_domain") && e.contains("east.bad set"),
        "{e}"
    );
    let e = err("dns: { ttl: 2h }");
    assert!(e.contains("dns.ttl"), "{e}");
}

#[test]
fn peers_are_checked() {
    let peer =
        |n: &str, addr: &str| format!("  - {{ name: {n}, ca: ca.pem, federation: \"{addr}\" }}\n");
    let e = err(&format!(
        "peers:\n{}{}",
        peer("west", "h:1"),
        peer("west", "h:2")
    ));
    assert!(e.contains("west is listed twice"), "{e}");
    let e = err(&format!("peers:\n{}", peer("east", "h:1")));
    assert!(e.contains("own name"), "{e}");
    let e = err(&format!("peers:\n{}", peer("west", "no-port")));
    assert!(
        e.contains("peers.west.federation") && e.contains("no-port"),
        "{e}"
    );
    let ok = parse(&format!("peers:\n{}", peer("west", "[::1]:15010"))).unwrap();
    assert_eq!(
        ok.peer_trust_domain(&ok.peers[0]).unwrap().as_str(),
        "west.causeway"
    );
}

#[test]
fn kubernetes_port_ranges_must_agree() {
    let text = BASE.replace(
        "gateway: { listen: \"127.0.0.1:15443\" }",
        "gateway: { listen: \"127.0.0.1:15443\", kubernetes: { port_base: 21000, port_count: 100 } }",
    ) + "federation: { kubernetes: { namespace: causeway, gateway_selector: { app: gw }, port_base: 20000, port_count: 100 } }";
    let e = Config::parse(&text)
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains("20000+100") && e.contains("21000+100"), "{e}");
    let same = text.replace("21000", "20000");
    Config::parse(&same).unwrap().validate().unwrap();
}

#[test]
fn the_links_secret_defaults_and_a_bad_name_is_named() {
    let k8s = "federation: { kubernetes: { namespace: causeway, gateway_selector: { app: gw } } }";
    let cfg = parse(k8s).unwrap();
    let links = cfg.federation.kubernetes.map(|k| k.links_secret);
    assert_eq!(links.as_deref(), Some("causeway-links"));
    let e = err(&k8s.replace("namespace:", "links_secret: Links/x, namespace:"));
    assert!(
        e.contains("federation.kubernetes.links_secret") && e.contains("Links/x"),
        "{e}"
    );
}

#[test]
fn watch_connect_is_host_port() {
    let e = err("federation: { watch_connect: nowhere }");
    assert!(
        e.contains("federation.watch_connect") && e.contains("nowhere"),
        "{e}"
    );
    let e = err("federation: { watch_listen: \"0.0.0.0:15011\" }");
    assert!(e.contains("identity.ca"), "{e}");
    let with_ca = BASE.replace("f-key.pem }", "f-key.pem }\n  ca: ca.pem");
    let cfg = Config::parse(&format!(
        "{with_ca}federation: {{ watch_listen: \"0.0.0.0:15011\" }}"
    ))
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(
        cfg.federation.watch_target().as_deref(),
        Some("127.0.0.1:15011")
    );
    let cfg = parse("federation: { watch_connect: \"fed.ns.svc:15011\" }").unwrap();
    assert_eq!(
        cfg.federation.watch_target().as_deref(),
        Some("fed.ns.svc:15011")
    );
}

#[test]
fn listen_conflicts_are_refused() {
    let e = err("admin: { listen: \"0.0.0.0:15010\" }");
    assert!(
        e.contains("federation.listen") && e.contains("admin.listen"),
        "{e}"
    );
    // The TCP fallback listens on the gateway's port unless told otherwise,
    // and the link endpoint on its own.
    let e = err("admin: { listen: \"127.0.0.1:15443\" }");
    assert!(
        e.contains("gateway.fallback.listen") && e.contains("tcp"),
        "{e}"
    );
    let off = BASE.replace(
        "gateway: { listen: \"127.0.0.1:15443\" }",
        "gateway: { listen: \"127.0.0.1:15443\", fallback: { enabled: false } }",
    );
    let cfg = Config::parse(&format!("{off}admin: {{ listen: \"127.0.0.1:15443\" }}")).unwrap();
    cfg.validate().unwrap();
    // dns and gateway share UDP.
    let cfg = Config::parse(&format!("{off}dns: {{ listen: \"127.0.0.1:15443\" }}")).unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("udp") && e.contains("dns.listen"), "{e}");
    let e = err("link: { listen: \"0.0.0.0:15010\" }");
    assert!(
        e.contains("link.listen") && e.contains("federation.listen"),
        "{e}"
    );
    // Same port on different specific addresses is fine.
    parse("admin: { listen: \"127.0.0.2:15010\" }\nfederation: { listen: \"127.0.0.1:15010\" }")
        .unwrap();
}

#[test]
fn overlapping_vip_ranges_are_refused() {
    let e = Config::parse(&BASE.replace(
        "gateway: { listen: \"127.0.0.1:15443\" }",
        "gateway: { listen: \"127.0.0.1:15443\", vip_ranges: [127.77.0.0/16, 127.77.1.0/24] }",
    ))
    .unwrap()
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("gateway.vip_ranges") && e.contains("overlap"),
        "{e}"
    );
}

#[test]
fn invalid_exports_are_refused() {
    let e = err("source:\n  static:\n    exports:\n      - { service: demo/echo, ports: [] }\n");
    assert!(e.contains("demo/echo") && e.contains("no ports"), "{e}");
    let e = err(
        "source:\n  static:\n    exports:\n      - { service: demo/echo, ports: [{port: 1}], export_to: some }\n",
    );
    assert!(e.contains("export_to"), "{e}");
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, BASE).unwrap();
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.identity.gateway.cert, dir.path().join("g.pem"));
    let e = Config::load(&dir.path().join("missing.yaml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.yaml"), "{e}");
}

#[test]
fn huge_timeouts_are_refused_before_they_overflow_the_clock() {
    let with = |idle: &str| {
        let text = BASE.replace(
            "gateway: { listen: \"127.0.0.1:15443\" }",
            &format!("gateway: {{ listen: \"127.0.0.1:15443\", timeouts: {{ idle: {idle} }} }}"),
        );
        let cfg = Config::parse(&text).unwrap();
        cfg.validate().map_err(|e| e.to_string())
    };
    let e = with("99999999999h").unwrap_err();
    assert!(
        e.contains("gateway.timeouts.idle") && e.contains("at most"),
        "{e}"
    );
    with("30days").unwrap();
}

#[test]
fn peer_policies_are_checked() {
    let peer =
        "peers: [{ name: west, ca: w.pem, federation: \"w:1\", limits: { max_exports: 0 } }]";
    let e = err(peer);
    assert!(e.contains("peers.west.limits.max_exports"), "{e}");
    let e =
        err("peers: [{ name: west, ca: w.pem, federation: \"w:1\", limits: { max_export: 5 } }]");
    assert!(e.contains("max_export"), "{e}");
    let ok = "peers: [{ name: west, ca: w.pem, federation: \"w:1\", region: far, import: { namespaces: [shop, kube-system] } }]";
    let cfg = parse(ok).unwrap();
    let policy = cfg.peers[0].policy();
    assert_eq!(policy.region.as_deref(), Some("far"));
    assert_eq!(policy.import.namespaces, ["shop", "kube-system"]);
}
