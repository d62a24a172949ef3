//! DNS names of the MCS schema: service, SRV, reverse and zone names.
//!
//! Every name is lowercase and fully qualified, so the index can be keyed by it directly.

use std::net::IpAddr;

use causeway_catalog::{ClusterId, Port, ServiceKey};
use hickory_proto::ProtoError;
use hickory_proto::rr::{LowerName, Name};
use ipnet::IpNet;

/// A name that could not be built from catalog or config data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    #[error("{what} {value:?} is not a valid DNS label (letters, digits and '-', 1-63 long)")]
    Label { what: &'static str, value: String },
    #[error("{what} {value:?} is not a valid DNS name: {source}")]
    Name {
        what: &'static str,
        value: String,
        source: ProtoError,
    },
}

/// Parses a configured name (`clusterset.local`) into a lowercase FQDN.
pub fn fqdn(what: &'static str, value: &str) -> Result<Name, NameError> {
    let mut name = Name::from_ascii(value).map_err(|source| NameError::Name {
        what,
        value: value.to_owned(),
        source,
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

/// Checks a label that came from the catalog, so a peer cannot smuggle dots into a name.
fn label<'a>(what: &'static str, value: &'a str) -> Result<&'a str, NameError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    match ok {
        true => Ok(value),
        false => Err(NameError::Label {
            what,
            value: value.to_owned(),
        }),
    }
}

fn join(what: &'static str, relative: &str, zone: &Name) -> Result<Name, NameError> {
    let err = |source| NameError::Name {
        what,
        value: relative.to_owned(),
        source,
    };
    let name = Name::from_ascii(relative).map_err(err)?;
    Ok(name.append_domain(zone).map_err(err)?.to_lowercase())
}

/// `<svc>.<ns>.svc.<zone>.`
pub fn service(key: &ServiceKey, zone: &Name) -> Result<Name, NameError> {
    let svc = label("service name", key.name())?;
    let ns = label("namespace", key.namespace())?;
    join("service name", &format!("{svc}.{ns}.svc"), zone)
}

/// `<hostname>.<clusterid>.<service>.`, an endpoint of a headless service.
pub fn endpoint(hostname: &str, cluster: &ClusterId, service: &Name) -> Result<Name, NameError> {
    let host = label("endpoint hostname", hostname)?;
    let cluster = label("cluster id", cluster.as_str())?;
    join("endpoint name", &format!("{host}.{cluster}"), service)
}

/// `_<port>._<proto>.<service>.`, or `None` for an unnamed port (MCS: no SRV record).
pub fn srv(port: &Port, service: &Name) -> Option<Result<Name, NameError>> {
    let name = port.name.as_deref()?;
    Some(label("port name", name).and_then(|n| {
        let rel = format!("_{n}._{}", port.protocol.as_str());
        join("port name", &rel, service)
    }))
}

/// `d.c.b.a.in-addr.arpa.` or the 32-nibble `ip6.arpa.` name of an address.
pub fn reverse(ip: IpAddr) -> Name {
    let mut name = Name::from(ip);
    name.set_fqdn(true);
    name
}

/// The reverse zone of a network on a label boundary: `96.10.in-addr.arpa.` for 10.96.0.0/16.
pub fn reverse_zone(net: IpNet) -> Name {
    // The arpa suffix is two labels; each further label covers 8 (v4) or 4 (v6) prefix bits.
    let step = match net {
        IpNet::V4(_) => 8,
        IpNet::V6(_) => 4,
    };
    let labels = usize::from(net.prefix_len() / step) + 2;
    reverse(net.network()).trim_to(labels)
}

/// The ancestors of `name` strictly below `apex`, nearest first: the empty non-terminals.
pub fn between(name: &Name, apex: &Name) -> Vec<LowerName> {
    let mut out = Vec::new();
    let mut cur = name.base_name();
    while cur.num_labels() > apex.num_labels() && apex.zone_of(&cur) {
        out.push(LowerName::new(&cur));
        cur = cur.base_name();
    }
    out
}

#[cfg(test)]
mod tests {
    use causeway_catalog::Protocol;

    use super::*;

    fn zone() -> Name {
        fqdn("zone", "ClusterSet.Local").unwrap()
    }

    #[test]
    fn service_and_srv_names() {
        let key: ServiceKey = "demo/echo".parse().unwrap();
        let svc = service(&key, &zone()).unwrap();
        assert_eq!(svc.to_ascii(), "echo.demo.svc.clusterset.local.");
        let p = Port {
            name: Some("http".into()),
            number: 80,
            protocol: Protocol::Udp,
            app_protocol: None,
        };
        let s = srv(&p, &svc).unwrap().unwrap();
        assert_eq!(s.to_ascii(), "_http._udp.echo.demo.svc.clusterset.local.");
        let unnamed = Port { name: None, ..p };
        assert!(srv(&unnamed, &svc).is_none());
    }

    #[test]
    fn catalog_labels_cannot_inject_dots() {
        let svc = service(&"demo/echo".parse().unwrap(), &zone()).unwrap();
        for bad in ["a.b", "", "x y", &"p".repeat(64)] {
            let p = Port::tcp(bad, 1);
            assert!(srv(&p, &svc).unwrap().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reverse_names() {
        let v4 = reverse("10.96.0.7".parse().unwrap());
        assert_eq!(v4.to_ascii(), "7.0.96.10.in-addr.arpa.");
        let v6 = reverse("2001:db8::1".parse().unwrap());
        assert_eq!(
            v6.to_ascii(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
    }

    #[test]
    fn reverse_zones() {
        let z = |s: &str| reverse_zone(s.parse().unwrap()).to_ascii();
        assert_eq!(z("10.96.0.0/16"), "96.10.in-addr.arpa.");
        assert_eq!(z("10.0.0.0/8"), "10.in-addr.arpa.");
        assert_eq!(z("192.168.7.0/24"), "7.168.192.in-addr.arpa.");
        assert_eq!(z("fd00:77::/32"), "7.7.0.0.0.0.d.f.ip6.arpa.");
        assert_eq!(z("2001:db8::/36"), "0.8.b.d.0.1.0.0.2.ip6.arpa.");
    }

    #[test]
    fn empty_non_terminals() {
        let svc = service(&"demo/echo".parse().unwrap(), &zone()).unwrap();
        let ents: Vec<String> = between(&svc, &zone())
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            ents,
            ["demo.svc.clusterset.local.", "svc.clusterset.local."]
        );
        assert!(between(&zone(), &zone()).is_empty());
    }
}
