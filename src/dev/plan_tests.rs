use super::*;
use crate::config::Config;
use crate::identities::Identities;

#[test]
fn names_are_cluster_ids() {
    for n in NAMES {
        assert!(ClusterId::new(n).is_ok(), "{n}");
    }
}

#[test]
fn layout_of_three() {
    let p = plan(&PlanOptions::new(3, Path::new("/tmp/x"))).unwrap();
    let regions: Vec<_> = p.clusters.iter().map(|c| c.region.as_str()).collect();
    assert_eq!(regions, ["region-a", "region-a", "region-b"]);
    assert_eq!(p.clusters[0].vip_range.to_string(), "127.77.1.0/24");
    assert_eq!(p.clusters[2].vip_range.to_string(), "127.77.3.0/24");
    assert_eq!(p.clusters[1].dns.to_string(), "127.0.0.1:17012");
    let mut all: Vec<_> = p
        .clusters
        .iter()
        .flat_map(|c| c.sockets())
        .map(|(_, a, proto)| (a, proto == Proto::Udp))
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "every socket is distinct");
    let keys: Vec<_> = p.clusters[1]
        .exports
        .iter()
        .map(|e| e.key.to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "demo/hello",
            "demo/echo",
            "demo/hello-bravo",
            "demo/dns-bravo"
        ]
    );
    let dns = &p.clusters[1].exports[3].ports[0];
    assert_eq!(dns.protocol, causeway_catalog::Protocol::Udp);
    assert_eq!(dns.number, p.clusters[1].dns.port());
}

#[test]
fn bad_options_are_refused() {
    let dir = Path::new("/tmp/x");
    let e = plan(&PlanOptions::new(9, dir)).unwrap_err().to_string();
    assert!(e.contains("--clusters 9") && e.contains("1 to 8"), "{e}");
    assert!(plan(&PlanOptions::new(0, dir)).is_err());
    let mut o = PlanOptions::new(8, dir);
    o.base_port = 65500;
    let e = plan(&o).unwrap_err().to_string();
    assert!(e.contains("--base-port 65500"), "{e}");
    let mut o = PlanOptions::new(2, dir);
    o.ips = Some(vec![Ipv4Addr::new(10, 200, 1, 2)]);
    assert!(plan(&o).unwrap_err().to_string().contains("2 addresses"));
}

#[test]
fn namespaced_addresses() {
    let mut o = PlanOptions::new(2, Path::new("/tmp/x"));
    o.ips = Some(vec![
        Ipv4Addr::new(10, 200, 1, 2),
        Ipv4Addr::new(10, 200, 2, 2),
    ]);
    let p = plan(&o).unwrap();
    assert_eq!(p.clusters[1].federation.to_string(), "10.200.2.2:17011");
    assert_eq!(p.clusters[1].demo_http.ip(), Ipv4Addr::LOCALHOST);
}

/// What `dev up` writes is what `causeway run` loads: configs, certificates, trust.
#[test]
fn written_configs_load_and_certs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let p = plan(&PlanOptions::new(3, dir.path())).unwrap();
    p.write().unwrap();
    for c in &p.clusters {
        let cfg = Config::load(&c.config_path()).unwrap();
        assert_eq!(cfg.cluster.name, c.name);
        assert_eq!(cfg.peers.len(), 2);
        Identities::load(&cfg).unwrap();
        let causeway_federation::SourceConfig::Static { file, .. } = &cfg.source else {
            panic!("dev configs use the static source")
        };
        let text = std::fs::read_to_string(file.as_ref().unwrap()).unwrap();
        assert!(text.contains(&format!("hello-{}", c.name)), "{text}");
    }
    let ca = std::fs::read(p.clusters[0].dir.join("ca.pem")).unwrap();
    p.write().unwrap();
    assert_eq!(std::fs::read(p.clusters[0].dir.join("ca.pem")).unwrap(), ca);
}

/// A relay between clusters: peers dial `federation_dial` and the advertised gateway.
#[test]
fn relayed_addresses_reach_the_configs() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = plan(&PlanOptions::new(2, dir.path())).unwrap();
    let relay: SocketAddr = "127.0.0.9:17001".parse().unwrap();
    p.clusters[0].federation_dial = relay;
    p.clusters[0].gateway_advertise = Some("127.0.0.9:17003".parse().unwrap());
    p.write().unwrap();
    let alpha = Config::load(&p.clusters[0].config_path()).unwrap();
    assert_eq!(
        alpha.gateway.advertised(),
        ["127.0.0.9:17003".parse().unwrap()]
    );
    let bravo = Config::load(&p.clusters[1].config_path()).unwrap();
    assert_eq!(bravo.peers[0].federation, "127.0.0.9:17001");
}
