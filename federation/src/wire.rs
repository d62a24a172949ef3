//! Conversions between the catalog's types and their protobuf form.
//!
//! Everything decoded from a peer is validated here, so the rest of the crate
//! only ever sees well-formed exports: a peer that sends garbage is refused at
//! this edge with an error naming the bad field.

use std::collections::BTreeSet;

use causeway_catalog::{
    ClusterId, ClusterInfo, Endpoint, Export, ExportError, ExportTo, IpFamily, NameError, Port,
    Protocol, ServiceKey, ServiceProps, SessionAffinity, UnixMillis,
};

use crate::proto;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("{field}: {source}")]
    Name {
        field: &'static str,
        source: NameError,
    },
    #[error("{field}: {value:?} is not an address written ip:port")]
    Addr { field: &'static str, value: String },
    #[error("port {0} is out of range 1-65535")]
    PortRange(u32),
    #[error("port protocol {0} is unknown; expected TCP (1), UDP (2) or SCTP (3)")]
    Protocol(i32),
    #[error("IP family {0} is unknown; expected IPv4 (1) or IPv6 (2)")]
    IpFamily(i32),
    #[error("{0}")]
    Export(#[from] ExportError),
    #[error("message has no {0}")]
    Missing(&'static str),
    #[error("service {0} appears twice in one message")]
    Duplicate(ServiceKey),
}

fn name_err(field: &'static str) -> impl FnOnce(NameError) -> WireError {
    move |source| WireError::Name { field, source }
}

pub fn cluster_to_proto(c: &ClusterInfo) -> proto::ClusterInfo {
    proto::ClusterInfo {
        name: c.name.to_string(),
        region: c.region.clone(),
        zone: c.zone.clone(),
        trust_domain: c.trust_domain.clone(),
        gateways: c.gateways.iter().map(ToString::to_string).collect(),
    }
}

pub fn cluster_from_proto(c: Option<proto::ClusterInfo>) -> Result<ClusterInfo, WireError> {
    let c = c.ok_or(WireError::Missing("cluster"))?;
    let gateways = c
        .gateways
        .iter()
        .map(|g| {
            g.parse().map_err(|_| WireError::Addr {
                field: "cluster.gateways",
                value: g.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(ClusterInfo {
        name: ClusterId::new(c.name).map_err(name_err("cluster.name"))?,
        region: c.region,
        zone: c.zone,
        trust_domain: c.trust_domain,
        gateways,
    })
}

pub fn export_to_proto(e: &Export) -> proto::Export {
    proto::Export {
        namespace: e.key.namespace().to_owned(),
        name: e.key.name().to_owned(),
        ports: e.ports.iter().map(port_to_proto).collect(),
        endpoints: e
            .endpoints
            .iter()
            .map(|ep| proto::Endpoint {
                addr: ep.addr.to_string(),
                ready: ep.ready,
                hostname: ep.hostname.clone().unwrap_or_default(),
            })
            .collect(),
        export_to: match &e.export_to {
            ExportTo::All => Vec::new(),
            ExportTo::Only(set) => set.iter().map(ToString::to_string).collect(),
        },
        created_at_ms: e.created_at.0,
        serve_stale: e.serve_stale,
        headless: e.headless,
        session_affinity: affinity_to_proto(e.props.session_affinity),
        internal_traffic_policy: e.props.internal_traffic_policy.clone().unwrap_or_default(),
        traffic_distribution: e.props.traffic_distribution.clone().unwrap_or_default(),
        labels: e.props.labels.clone().into_iter().collect(),
        annotations: e.props.annotations.clone().into_iter().collect(),
        ip_families: e
            .props
            .ip_families
            .iter()
            .map(|f| match f {
                IpFamily::IPv4 => proto::IpFamily::Ipv4.into(),
                IpFamily::IPv6 => proto::IpFamily::Ipv6.into(),
            })
            .collect(),
    }
}

fn affinity_to_proto(a: SessionAffinity) -> Option<proto::SessionAffinity> {
    match a {
        SessionAffinity::None => None,
        SessionAffinity::ClientIp { timeout_seconds } => Some(proto::SessionAffinity {
            client_ip: true,
            timeout_seconds: timeout_seconds.unwrap_or(0),
        }),
    }
}

fn affinity_from_proto(a: Option<proto::SessionAffinity>) -> SessionAffinity {
    match a {
        Some(a) if a.client_ip => SessionAffinity::ClientIp {
            timeout_seconds: (a.timeout_seconds != 0).then_some(a.timeout_seconds),
        },
        _ => SessionAffinity::None,
    }
}

fn props_from_proto(e: &mut proto::Export) -> Result<ServiceProps, WireError> {
    let families = e
        .ip_families
        .iter()
        .map(|f| match proto::IpFamily::try_from(*f) {
            Ok(proto::IpFamily::Ipv4) => Ok(IpFamily::IPv4),
            Ok(proto::IpFamily::Ipv6) => Ok(IpFamily::IPv6),
            _ => Err(WireError::IpFamily(*f)),
        })
        .collect::<Result<_, _>>()?;
    let text = |s: &mut String| (!s.is_empty()).then(|| std::mem::take(s));
    Ok(ServiceProps {
        session_affinity: affinity_from_proto(e.session_affinity.take()),
        internal_traffic_policy: text(&mut e.internal_traffic_policy),
        traffic_distribution: text(&mut e.traffic_distribution),
        ip_families: families,
        labels: std::mem::take(&mut e.labels).into_iter().collect(),
        annotations: std::mem::take(&mut e.annotations).into_iter().collect(),
    })
}

fn port_to_proto(p: &Port) -> proto::Port {
    let protocol = match p.protocol {
        Protocol::Tcp => proto::Protocol::Tcp,
        Protocol::Udp => proto::Protocol::Udp,
        Protocol::Sctp => proto::Protocol::Sctp,
    };
    proto::Port {
        name: p.name.clone().unwrap_or_default(),
        number: u32::from(p.number),
        protocol: protocol.into(),
        app_protocol: p.app_protocol.clone().unwrap_or_default(),
    }
}

pub fn export_from_proto(mut e: proto::Export) -> Result<Export, WireError> {
    let props = props_from_proto(&mut e)?;
    let key = ServiceKey::new(e.namespace, e.name).map_err(name_err("export service"))?;
    let ports = e
        .ports
        .into_iter()
        .map(port_from_proto)
        .collect::<Result<_, _>>()?;
    let endpoints = e
        .endpoints
        .into_iter()
        .map(|ep| {
            let addr = ep.addr.parse().map_err(|_| WireError::Addr {
                field: "export.endpoints",
                value: ep.addr.clone(),
            })?;
            Ok(Endpoint {
                addr,
                ready: ep.ready,
                hostname: (!ep.hostname.is_empty()).then_some(ep.hostname),
            })
        })
        .collect::<Result<_, WireError>>()?;
    let export_to = if e.export_to.is_empty() {
        ExportTo::All
    } else {
        let set = e
            .export_to
            .into_iter()
            .map(|c| ClusterId::new(c).map_err(name_err("export.export_to")))
            .collect::<Result<BTreeSet<_>, _>>()?;
        ExportTo::Only(set)
    };
    let export = Export {
        key,
        ports,
        endpoints,
        export_to,
        created_at: UnixMillis(e.created_at_ms),
        serve_stale: e.serve_stale,
        headless: e.headless,
        props,
    };
    export.validate()?;
    Ok(export)
}

fn port_from_proto(p: proto::Port) -> Result<Port, WireError> {
    let number = u16::try_from(p.number).map_err(|_| WireError::PortRange(p.number))?;
    let protocol = match proto::Protocol::try_from(p.protocol) {
        Ok(proto::Protocol::Tcp) => Protocol::Tcp,
        Ok(proto::Protocol::Udp) => Protocol::Udp,
        Ok(proto::Protocol::Sctp) => Protocol::Sctp,
        _ => return Err(WireError::Protocol(p.protocol)),
    };
    Ok(Port {
        name: (!p.name.is_empty()).then_some(p.name),
        number,
        protocol,
        app_protocol: (!p.app_protocol.is_empty()).then_some(p.app_protocol),
    })
}

pub fn key_from_proto(k: &str) -> Result<ServiceKey, WireError> {
    k.parse().map_err(name_err("delta.removals"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Export {
        Export {
            key: "ns/web".parse().unwrap(),
            ports: vec![
                Port::tcp("http", 80),
                Port {
                    name: Some("dns".into()),
                    number: 53,
                    protocol: Protocol::Udp,
                    app_protocol: None,
                },
                Port {
                    name: Some("stcp".into()),
                    number: 142,
                    protocol: Protocol::Sctp,
                    app_protocol: Some("kubernetes.io/h2c".into()),
                },
            ],
            endpoints: vec![Endpoint {
                addr: "10.0.0.1:80".parse().unwrap(),
                ready: false,
                hostname: Some("web-0".into()),
            }],
            export_to: ExportTo::Only([ClusterId::new("b").unwrap()].into()),
            created_at: UnixMillis(42),
            serve_stale: true,
            headless: true,
            props: ServiceProps {
                session_affinity: SessionAffinity::ClientIp {
                    timeout_seconds: Some(10),
                },
                internal_traffic_policy: Some("Cluster".into()),
                traffic_distribution: Some("PreferClose".into()),
                ip_families: vec![IpFamily::IPv6, IpFamily::IPv4],
                labels: [("team".to_owned(), "db".to_owned())].into(),
                annotations: [("note".to_owned(), "x".to_owned())].into(),
            },
        }
    }

    #[test]
    fn export_round_trips() {
        let e = sample();
        assert_eq!(export_from_proto(export_to_proto(&e)).unwrap(), e);
        let mut all = sample();
        all.export_to = ExportTo::All;
        all.props = ServiceProps::default();
        assert_eq!(export_from_proto(export_to_proto(&all)).unwrap(), all);
    }

    #[test]
    fn garbage_is_refused_with_the_field() {
        let mut p = export_to_proto(&sample());
        p.name = "Bad_Name".into();
        let e = export_from_proto(p).unwrap_err().to_string();
        assert!(e.contains("export service"), "{e}");
        let mut p = export_to_proto(&sample());
        p.ports[0].number = 70000;
        assert_eq!(export_from_proto(p), Err(WireError::PortRange(70000)));
        let mut p = export_to_proto(&sample());
        p.ports[0].protocol = 9;
        assert_eq!(export_from_proto(p), Err(WireError::Protocol(9)));
        let mut p = export_to_proto(&sample());
        p.endpoints[0].addr = "nowhere".into();
        assert!(matches!(export_from_proto(p), Err(WireError::Addr { .. })));
        let mut p = export_to_proto(&sample());
        p.ip_families.push(7);
        assert_eq!(export_from_proto(p), Err(WireError::IpFamily(7)));
        let mut p = export_to_proto(&sample());
        p.endpoints[0].hostname = "a.b".into();
        assert!(matches!(export_from_proto(p), Err(WireError::Export(_))));
        let mut p = export_to_proto(&sample());
        p.ports.clear();
        assert!(matches!(export_from_proto(p), Err(WireError::Export(_))));
    }

    #[test]
    fn cluster_round_trips() {
        let c = ClusterInfo {
            name: ClusterId::new("east").unwrap(),
            region: "r".into(),
            zone: "z".into(),
            trust_domain: "east.demo".into(),
            gateways: vec!["127.0.0.1:4433".parse().unwrap()],
        };
        assert_eq!(cluster_from_proto(Some(cluster_to_proto(&c))).unwrap(), c);
        assert_eq!(cluster_from_proto(None), Err(WireError::Missing("cluster")));
    }
}
