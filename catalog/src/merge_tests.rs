//! Unit tests of the merge over hand-written views; `props` checks order independence.

use super::*;
use crate::conflict::ConflictKind;
use crate::model::{Condition, Endpoint, ExportTo, Protocol, UnixMillis};

fn info(name: &str, region: &str) -> ClusterInfo {
    ClusterInfo {
        name: ClusterId::new(name).unwrap(),
        region: region.into(),
        zone: format!("{region}-a"),
        trust_domain: format!("{name}.test"),
        gateways: vec![],
    }
}

fn export(key: &str, ports: Vec<Port>, created: u64) -> Export {
    Export {
        key: key.parse().unwrap(),
        ports,
        endpoints: vec![Endpoint {
            addr: "10.0.0.1:80".parse().unwrap(),
            ready: true,
            hostname: None,
        }],
        export_to: ExportTo::All,
        created_at: UnixMillis(created),
        serve_stale: false,
        headless: false,
        props: Default::default(),
    }
}

fn two<'a>(
    a: (&'a ClusterInfo, &'a [Export]),
    b: (&'a ClusterInfo, &'a [Export]),
) -> [PeerView<'a>; 2] {
    [a, b].map(|(info, exports)| view(info, Freshness::Fresh, exports))
}

fn view<'a>(info: &'a ClusterInfo, freshness: Freshness, exports: &'a [Export]) -> PeerView<'a> {
    PeerView {
        info,
        freshness,
        exports,
    }
}

fn conflict_reasons(imp: &Import) -> Vec<&'static str> {
    imp.conditions
        .iter()
        .map(|c| match c {
            Condition::Conflict { kind, .. } => kind.reason(),
        })
        .collect()
}

fn id(s: &str) -> ClusterId {
    ClusterId::new(s).unwrap()
}

#[test]
fn union_of_ports_and_serving_clusters() {
    let (a, b) = (info("a", "r1"), info("b", "r2"));
    let ea = [export("ns/web", vec![Port::tcp("http", 80)], 1)];
    let eb = [export(
        "ns/web",
        vec![Port::tcp("http", 80), Port::tcp("grpc", 90)],
        2,
    )];
    let views = [
        view(&a, Freshness::Fresh, &ea),
        view(&b, Freshness::Stale, &eb),
    ];
    let out = merge(&id("a"), &views);
    let imp = &out[&"ns/web".parse().unwrap()];
    assert_eq!(
        imp.ports,
        vec![Port::tcp("http", 80), Port::tcp("grpc", 90)]
    );
    // The port sets differ: the union is served and the exports are told.
    assert_eq!(conflict_reasons(imp), ["PortConflict"]);
    assert!(imp.clusters[0].serves(80, Protocol::Tcp));
    assert!(
        !imp.clusters[0].serves(90, Protocol::Tcp),
        "a does not have grpc"
    );
    let names: Vec<_> = imp.clusters.iter().map(|c| c.cluster.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(imp.clusters[1].freshness, Freshness::Stale);
    assert_eq!(imp.clusters[1].region, "r2");
    assert_eq!(imp.clusters[1].ready_endpoints, 1);
}

#[test]
fn oldest_export_wins_port_conflicts() {
    let (a, b) = (info("a", "r"), info("b", "r"));
    let ea = [export("ns/web", vec![Port::tcp("http", 8080)], 20)];
    let eb = [export("ns/web", vec![Port::tcp("http", 80)], 10)];
    let imp = &merge(&id("a"), &two((&a, &ea), (&b, &eb)))[&"ns/web".parse().unwrap()];
    assert_eq!(imp.ports, vec![Port::tcp("http", 80)]);
    assert_eq!(
        imp.conditions,
        vec![Condition::Conflict {
            kind: ConflictKind::Port,
            winner: id("b"),
            value: "http (80/tcp)".into(),
            disagreeing: vec![id("a")],
            clusters: 2,
        }]
    );
    let msg = imp.conditions[0].message();
    assert!(msg.contains("\"b\"") && msg.contains("1/2"), "{msg}");
}

#[test]
fn two_unnamed_ports_clash_instead_of_both_being_kept() {
    let (a, b) = (info("a", "r"), info("b", "r"));
    let unnamed = |n| Port {
        name: None,
        ..Port::tcp("x", n)
    };
    let ea = [export("ns/web", vec![unnamed(80)], 1)];
    let eb = [export("ns/web", vec![unnamed(81)], 2)];
    let imp = &merge(&id("a"), &two((&a, &ea), (&b, &eb)))[&"ns/web".parse().unwrap()];
    assert_eq!(imp.ports, vec![unnamed(80)]);
    assert_eq!(conflict_reasons(imp), ["PortConflict"]);
}

#[test]
fn every_service_wide_property_conflicts_and_the_oldest_wins() {
    use crate::service::{IpFamily, SessionAffinity};
    let (a, b) = (info("a", "r"), info("b", "r"));
    let old = export("ns/web", vec![Port::tcp("http", 80)], 1);
    let mut young = old.clone();
    young.created_at = UnixMillis(2);
    young.headless = true;
    young.props.session_affinity = SessionAffinity::ClientIp {
        timeout_seconds: Some(10),
    };
    young.props.internal_traffic_policy = Some("Local".into());
    young.props.traffic_distribution = Some("PreferClose".into());
    young.props.ip_families = vec![IpFamily::IPv6];
    let (ea, eb) = ([old.clone()], [young.clone()]);
    let imp = &merge(&id("a"), &two((&a, &ea), (&b, &eb)))[&"ns/web".parse().unwrap()];
    assert_eq!(
        conflict_reasons(imp),
        [
            "TypeConflict",
            "SessionAffinityConflict",
            "InternalTrafficPolicyConflict",
            "TrafficDistributionConflict",
            "IPFamilyConflict"
        ]
    );
    assert!(!imp.headless && imp.props == old.props && imp.endpoints.is_empty());
    // Both ClientIP with different timeouts: only the config conflicts.
    let mut older = young.clone();
    older.created_at = UnixMillis(0);
    older.props.session_affinity = SessionAffinity::ClientIp {
        timeout_seconds: Some(20),
    };
    let ea = [older];
    let imp = &merge(&id("a"), &two((&a, &ea), (&b, &eb)))[&"ns/web".parse().unwrap()];
    assert_eq!(conflict_reasons(imp), ["SessionAffinityConfigConflict"]);
    assert!(imp.headless, "the oldest export is headless");
}

#[test]
fn a_headless_import_lists_ready_endpoints_by_cluster_and_hostname() {
    let (a, b) = (info("a", "r"), info("b", "r"));
    let ep = |addr: &str, host: Option<&str>, ready| Endpoint {
        addr: addr.parse().unwrap(),
        ready,
        hostname: host.map(Into::into),
    };
    let mut eb = export("ns/db", vec![Port::tcp("pg", 5432)], 1);
    eb.headless = true;
    eb.endpoints = vec![
        ep("10.1.0.1:5432", Some("db-0"), true),
        ep("[fd00::1]:5432", Some("db-0"), true),
        ep("10.1.0.2:5432", Some("db-1"), false),
        ep("10.1.0.3:5432", None, true),
    ];
    let (ea, eb) = ([], [eb]);
    let imp = &merge(&id("a"), &two((&a, &ea), (&b, &eb)))[&"ns/db".parse().unwrap()];
    assert!(imp.headless && imp.conditions.is_empty());
    let got: Vec<(String, String, usize)> = imp
        .endpoints
        .iter()
        .map(|e| (e.cluster.to_string(), e.hostname.clone(), e.addresses.len()))
        .collect();
    assert_eq!(
        got,
        [
            ("b".into(), "10-1-0-3".into(), 1),
            ("b".into(), "db-0".into(), 2)
        ]
    );
}

#[test]
fn export_to_and_expiry_filter() {
    let (a, b, c) = (info("a", "r"), info("b", "r"), info("c", "r"));
    let mut only_c = export("ns/secret", vec![Port::tcp("p", 1)], 1);
    only_c.export_to = ExportTo::Only([id("c")].into());
    let mut sticky = export("ns/sticky", vec![Port::tcp("p", 1)], 1);
    sticky.serve_stale = true;
    let eb = [
        only_c.clone(),
        sticky,
        export("ns/plain", vec![Port::tcp("p", 1)], 1),
    ];
    let ea = [only_c];
    let views = [
        view(&a, Freshness::Fresh, &ea),
        view(&b, Freshness::Expired, &eb),
        view(&c, Freshness::Fresh, &[]),
    ];
    let out = merge(&id("a"), &views);
    let keys: Vec<_> = out.keys().map(|k| k.to_string()).collect();
    // a sees its own export whatever export_to says, b's sticky one despite
    // expiry, and neither b's export to c nor b's expired plain export.
    assert_eq!(keys, ["ns/secret", "ns/sticky"]);
    let secret = &out[&"ns/secret".parse().unwrap()];
    assert_eq!(secret.clusters.len(), 1);
    assert!(out[&"ns/sticky".parse().unwrap()].serve_stale);
}

#[path = "merge_props.rs"]
mod props;
