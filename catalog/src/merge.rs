//! Merging every cluster's exports into this cluster's imports (MCS rules).

use std::collections::BTreeMap;

use crate::lease::Freshness;
use crate::model::{ClusterInfo, Condition, Export, Import, Port, ServingCluster};
use crate::names::{ClusterId, ServiceKey};

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
/// serve-stale, are left out. Ports are the union over clusters; on a clash the
/// oldest export wins (ties broken by cluster name) and a `PortConflict` is
/// recorded. The result does not depend on the order of `views` or exports.
/// ClusterSetIPs are left empty: the `VipAllocator` assigns them.
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
    let mut ports: Vec<(Port, &ClusterId)> = Vec::new();
    let mut conditions = Vec::new();
    for (export, view) in contributions {
        for port in &export.ports {
            match ports.iter().find(|(p, _)| p.clashes_with(port)) {
                None if !ports.iter().any(|(p, _)| p == port) => {
                    ports.push((port.clone(), &view.info.name));
                }
                None => {}
                Some((_, kept_from)) => conditions.push(Condition::PortConflict {
                    port: port.label(),
                    kept_from: (*kept_from).clone(),
                    ignored_from: view.info.name.clone(),
                }),
            }
        }
    }
    let mut clusters: Vec<ServingCluster> = contributions
        .iter()
        .map(|(export, view)| ServingCluster {
            cluster: view.info.name.clone(),
            region: view.info.region.clone(),
            zone: view.info.zone.clone(),
            ready_endpoints: export.ready_endpoints(),
            freshness: view.freshness,
        })
        .collect();
    clusters.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    Import {
        key: key.clone(),
        ports: ports.into_iter().map(|(p, _)| p).collect(),
        clusters,
        vips: Vec::new(),
        serve_stale: contributions.first().is_some_and(|(e, _)| e.serve_stale),
        conditions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, ExportTo, UnixMillis};
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
            }],
            export_to: ExportTo::All,
            created_at: UnixMillis(created),
            serve_stale: false,
        }
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
        assert!(imp.conditions.is_empty());
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
            vec![Condition::PortConflict {
                port: "http (8080/tcp)".into(),
                kept_from: id("b"),
                ignored_from: id("a"),
            }]
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
