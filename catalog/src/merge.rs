//! Merging every cluster's exports into this cluster's imports (MCS rules).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::lease::Freshness;
use crate::model::{ClusterInfo, Export, Import, Port, ServingCluster};
use crate::names::{ClusterId, ServiceKey};
use crate::service::HeadlessEndpoint;

/// One cluster's contribution to the merge: who it is, how fresh, what it exports.
#[derive(Debug, Clone, Copy)]
pub struct PeerView<'a> {
    pub info: &'a ClusterInfo,
    pub freshness: Freshness,
    pub exports: &'a [Export],
}

/// Merges the views (the local cluster's included) into the imports `local` sees.
///
/// Exports not exported to `local`, and exports of expired clusters that are not
/// serve-stale, are left out. Ports are the union over clusters; on a clash,
/// and for every service-wide property (type, session affinity, traffic
/// policies, IP families), the oldest export wins (ties broken by cluster
/// name), and each disagreement is recorded as a `Conflict` condition. The
/// result does not depend on the order of `views` or exports. ClusterSetIPs
/// and headless endpoints' local addresses are left empty: the
/// `VipAllocator` assigns them.
pub fn merge(local: &ClusterId, views: &[PeerView<'_>]) -> BTreeMap<ServiceKey, Import> {
    let mut by_key: BTreeMap<&ServiceKey, Vec<(&Export, &PeerView<'_>)>> = BTreeMap::new();
    for view in views {
        for export in view.exports.iter().filter(|e| visible(local, view, e)) {
            by_key.entry(&export.key).or_default().push((export, view));
        }
    }
    by_key
        .into_iter()
        .map(|(key, mut contributions)| {
            contributions.sort_by(|a, b| {
                (a.0.created_at, &a.1.info.name).cmp(&(b.0.created_at, &b.1.info.name))
            });
            (key.clone(), merge_one(key, &contributions))
        })
        .collect()
}

fn visible(local: &ClusterId, view: &PeerView<'_>, export: &Export) -> bool {
    let allowed = view.info.name == *local || export.export_to.allows(local);
    let alive = view.freshness != Freshness::Expired || export.serve_stale;
    allowed && alive
}

/// `contributions` are sorted oldest first.
fn merge_one(key: &ServiceKey, contributions: &[(&Export, &PeerView<'_>)]) -> Import {
    let named: Vec<(&Export, &ClusterId)> = contributions
        .iter()
        .map(|(e, v)| (*e, &v.info.name))
        .collect();
    let ports = union_of_ports(&named);
    let mut clusters: Vec<ServingCluster> = contributions
        .iter()
        .map(|(export, view)| ServingCluster {
            cluster: view.info.name.clone(),
            region: view.info.region.clone(),
            zone: view.info.zone.clone(),
            ready_endpoints: export.ready_endpoints(),
            freshness: view.freshness,
            ports: export.ports.clone(),
        })
        .collect();
    clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    let oldest = contributions.first().map(|(e, _)| *e);
    let headless = oldest.is_some_and(|e| e.headless);
    Import {
        key: key.clone(),
        ports,
        clusters,
        vips: Vec::new(),
        serve_stale: oldest.is_some_and(|e| e.serve_stale),
        conditions: crate::conflict::find(&named),
        headless,
        props: oldest.map(|e| e.props.clone()).unwrap_or_default(),
        endpoints: if headless {
            headless_endpoints(&named)
        } else {
            Vec::new()
        },
    }
}

/// KEP-1645 "Service Port": the union, merged by name first, then by
/// number and protocol; where two ports clash the older export's wins.
fn union_of_ports(exports: &[(&Export, &ClusterId)]) -> Vec<Port> {
    let mut ports: Vec<Port> = Vec::new();
    for (export, _) in exports {
        for port in &export.ports {
            if !ports.iter().any(|p| p == port || p.clashes_with(port)) {
                ports.push(port.clone());
            }
        }
    }
    ports
}

/// The ready endpoints of every constituent export, one entry per cluster
/// and hostname (a dual-stack pod has an address of each family).
/// `local` is left empty: the VIP allocation fills it.
fn headless_endpoints(exports: &[(&Export, &ClusterId)]) -> Vec<HeadlessEndpoint> {
    let mut by: BTreeMap<(&ClusterId, String), BTreeSet<IpAddr>> = BTreeMap::new();
    for (export, cluster) in exports {
        for ep in export.endpoints.iter().filter(|e| e.ready) {
            by.entry((*cluster, ep.dns_label()))
                .or_default()
                .insert(ep.addr.ip());
        }
    }
    by.into_iter()
        .map(|((cluster, hostname), addresses)| HeadlessEndpoint {
            cluster: cluster.clone(),
            hostname,
            addresses: addresses.into_iter().collect(),
            local: Vec::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conflict::ConflictKind;
    use crate::model::{Condition, Endpoint, ExportTo, Protocol, UnixMillis};
    use proptest::prelude::*;

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
        [a, b].map(|(info, exports)| PeerView {
            info,
            freshness: Freshness::Fresh,
            exports,
        })
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
            PeerView {
                info: &a,
                freshness: Freshness::Fresh,
                exports: &ea,
            },
            PeerView {
                info: &b,
                freshness: Freshness::Stale,
                exports: &eb,
            },
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
        let views = [
            PeerView {
                info: &a,
                freshness: Freshness::Fresh,
                exports: &ea,
            },
            PeerView {
                info: &b,
                freshness: Freshness::Fresh,
                exports: &eb,
            },
        ];
        let imp = &merge(&id("a"), &views)[&"ns/web".parse().unwrap()];
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
            PeerView {
                info: &a,
                freshness: Freshness::Fresh,
                exports: &ea,
            },
            PeerView {
                info: &b,
                freshness: Freshness::Expired,
                exports: &eb,
            },
            PeerView {
                info: &c,
                freshness: Freshness::Fresh,
                exports: &[],
            },
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

    fn arb_export() -> impl Strategy<Value = Export> {
        let port = (
            prop::sample::select(vec!["a", "b", "c"]),
            1u16..4,
            any::<bool>(),
        )
            .prop_map(|(n, num, udp)| Port {
                name: Some(n.into()),
                number: num,
                protocol: if udp {
                    crate::Protocol::Udp
                } else {
                    crate::Protocol::Tcp
                },
                app_protocol: None,
            });
        (
            prop::sample::select(vec!["ns/x", "ns/y", "other/x"]),
            prop::collection::vec(port, 1..4),
            0u64..4,
            any::<bool>(),
        )
            .prop_map(|(k, ports, t, stale)| {
                let mut e = export(k, ports, t);
                e.serve_stale = stale;
                e
            })
    }

    fn arb_views() -> impl Strategy<Value = Vec<(ClusterInfo, Freshness, Vec<Export>)>> {
        let fresh =
            prop::sample::select(vec![Freshness::Fresh, Freshness::Stale, Freshness::Expired]);
        prop::collection::vec((fresh, prop::collection::vec(arb_export(), 0..4)), 1..5).prop_map(
            |v| {
                v.into_iter()
                    .enumerate()
                    .map(|(i, (f, e))| {
                        // A cluster exports each service at most once.
                        let unique: BTreeMap<_, _> =
                            e.into_iter().map(|x| (x.key.clone(), x)).collect();
                        (
                            info(&format!("c{i}"), "r"),
                            f,
                            unique.into_values().collect(),
                        )
                    })
                    .collect()
            },
        )
    }

    fn as_views(vs: &[(ClusterInfo, Freshness, Vec<Export>)]) -> Vec<PeerView<'_>> {
        vs.iter()
            .map(|(i, f, e)| PeerView {
                info: i,
                freshness: *f,
                exports: e,
            })
            .collect()
    }

    proptest! {
        #[test]
        fn merge_is_independent_of_input_order(
            views in arb_views(),
            seed in any::<u64>(),
        ) {
            let local = id("c0");
            let expected = merge(&local, &as_views(&views));
            let mut shuffled = views.clone();
            // A deterministic shuffle of views and of each view's exports.
            let n = shuffled.len();
            shuffled.rotate_left((seed as usize) % n);
            if seed & 1 == 1 { shuffled.reverse(); }
            for (_, _, e) in &mut shuffled {
                e.reverse();
                let m = e.len().max(1);
                e.rotate_left((seed as usize >> 8) % m);
            }
            prop_assert_eq!(merge(&local, &as_views(&shuffled)), expected);
        }
    }
}
