//! Headless services across clusters: each remote endpoint of a headless
//! import has local addresses (allocated by the federation, or in Kubernetes
//! mode a gateway port behind that endpoint's derived Service); a connection
//! there is tunnelled to the endpoint's cluster with the stream header's
//! target naming that endpoint (`<cluster>/<hostname>`), and the far gateway
//! connects to that endpoint only.

use std::net::{IpAddr, SocketAddr};

use causeway_catalog::{CatalogSnapshot, ClusterId, Export, Import, Protocol, gateway_ports};

use crate::config::Config;

/// The endpoint a listener's connections go to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointTarget {
    pub cluster: ClusterId,
    pub hostname: String,
}

/// `(address, service, port, endpoint)` of each listener for remote headless
/// endpoints: on their local addresses inside `vip_ranges`, or in Kubernetes
/// mode on the gateway's address at their gateway ports.
pub fn listeners(
    cfg: &Config,
    snap: &CatalogSnapshot,
    in_ranges: impl Fn(&IpAddr) -> bool,
) -> Vec<(SocketAddr, &'static str, Listener)> {
    let mut out = Vec::new();
    if let Some(k) = &cfg.kubernetes {
        for (key, port) in gateway_ports(snap, k.port_base, k.port_count) {
            let (Some((cluster, hostname)), Protocol::Tcp) = (key.endpoint, key.protocol) else {
                continue;
            };
            let l = Listener {
                service: key.service,
                port: key.port,
                endpoint: EndpointTarget { cluster, hostname },
            };
            out.push((SocketAddr::new(cfg.listen.ip(), port), "kubernetes", l));
        }
        return out;
    }
    for import in snap.imports.values().filter(|i| i.headless) {
        for (ip, l) in vip_listeners(import) {
            if in_ranges(&ip) {
                out.push((SocketAddr::new(ip, l.port), "vip", l));
            }
        }
    }
    out
}

/// A listener for one port of one remote endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub service: causeway_catalog::ServiceKey,
    pub port: u16,
    pub endpoint: EndpointTarget,
}

fn vip_listeners(import: &Import) -> impl Iterator<Item = (IpAddr, Listener)> + '_ {
    let tcp = import.ports.iter().filter(|p| p.protocol == Protocol::Tcp);
    let remote = import.endpoints.iter().filter(|e| e.tunnelled());
    remote.flat_map(move |e| {
        tcp.clone().flat_map(move |p| {
            e.local.iter().map(move |ip| {
                let l = Listener {
                    service: import.key.clone(),
                    port: p.number,
                    endpoint: EndpointTarget {
                        cluster: e.cluster.clone(),
                        hostname: e.hostname.clone(),
                    },
                };
                (*ip, l)
            })
        })
    })
}

/// Where to connect for `port` of the endpoint named `hostname`: its ready
/// addresses, with the port chosen as for any endpoint of the export.
pub fn targets(export: &Export, port: u16, hostname: &str) -> Vec<SocketAddr> {
    let single = export.ports.len() == 1;
    export
        .endpoints
        .iter()
        .filter(|e| e.ready && e.dns_label() == hostname)
        .map(|e| {
            if single {
                e.addr
            } else {
                SocketAddr::new(e.addr.ip(), port)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_catalog::{Endpoint, HeadlessEndpoint, Port};

    fn snapshot() -> CatalogSnapshot {
        let mut i = Import::new("demo/db".parse().unwrap());
        i.headless = true;
        i.ports = vec![Port::tcp("pg", 5432)];
        let ep = |c: &str, h: &str, addr: &str, local: &str| HeadlessEndpoint {
            cluster: ClusterId::new(c).unwrap(),
            hostname: h.into(),
            addresses: vec![addr.parse().unwrap()],
            local: vec![local.parse().unwrap()],
        };
        i.endpoints = vec![
            ep("a", "db-0", "127.0.0.1", "127.0.0.1"),
            ep("b", "db-0", "10.2.0.1", "127.77.1.40"),
            ep("b", "db-1", "10.2.0.2", "127.77.1.41"),
        ];
        let mut snap = CatalogSnapshot::default();
        snap.imports.insert(i.key.clone(), i);
        snap
    }

    #[test]
    fn each_remote_endpoint_gets_a_listener_on_its_local_address() {
        let cfg = Config::default();
        let got: Vec<(String, String)> = listeners(&cfg, &snapshot(), |_| true)
            .into_iter()
            .map(|(a, _, l)| {
                (
                    a.to_string(),
                    format!("{}/{}", l.endpoint.cluster, l.endpoint.hostname),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("127.77.1.40:5432".into(), "b/db-0".into()),
                ("127.77.1.41:5432".into(), "b/db-1".into())
            ]
        );
    }

    #[test]
    fn the_far_side_connects_to_the_named_endpoint_only() {
        let mut e = Export::new("demo/db".parse().unwrap(), vec![Port::tcp("pg", 5432)]);
        let ep = |addr: &str, h: Option<&str>| Endpoint {
            addr: addr.parse().unwrap(),
            ready: true,
            hostname: h.map(Into::into),
        };
        e.endpoints = vec![
            ep("10.2.0.1:15432", Some("db-0")),
            ep("10.2.0.2:15432", Some("db-1")),
            ep("10.2.0.3:15432", None),
        ];
        assert_eq!(
            targets(&e, 5432, "db-1"),
            ["10.2.0.2:15432".parse().unwrap()]
        );
        assert_eq!(
            targets(&e, 5432, "10-2-0-3"),
            ["10.2.0.3:15432".parse().unwrap()]
        );
        assert!(targets(&e, 5432, "db-9").is_empty());
    }
}
