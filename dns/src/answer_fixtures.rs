//! The fixture catalog and zones the answer tests (and the fast path's) run on,
//! and helpers to ask the index and read its answers as text.

use std::str::FromStr;

use causeway_catalog::{CatalogSnapshot, Import, Port, Protocol, ServiceKey};
use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};

use super::{Answer, answer};
use crate::config::Config;
use crate::index::{Index, build};
use crate::zones::Zones;

pub(crate) fn import(key: &str, vips: &[&str], ports: Vec<Port>) -> Import {
    Import {
        key: ServiceKey::from_str(key).unwrap(),
        ports,
        clusters: Vec::new(),
        vips: vips.iter().map(|v| v.parse().unwrap()).collect(),
        serve_stale: false,
        conditions: Vec::new(),
        endpoints: Vec::new(),
        headless: false,
        props: Default::default(),
    }
}

fn udp(name: &str, number: u16) -> Port {
    Port {
        name: Some(name.into()),
        number,
        protocol: Protocol::Udp,
        app_protocol: None,
    }
}

pub(crate) fn fixture() -> CatalogSnapshot {
    let unnamed = Port {
        name: None,
        number: 8080,
        protocol: Protocol::Tcp,
        app_protocol: None,
    };
    let imports = [
        import(
            "demo/web",
            &["10.96.0.10"],
            vec![Port::tcp("http", 80), Port::tcp("https", 443)],
        ),
        import(
            "demo/v6only",
            &["fd00:77::20"],
            vec![udp("dns", 53), Port::tcp("dns-tcp", 53)],
        ),
        import(
            "demo/dual",
            &["10.96.0.30", "fd00:77::30"],
            vec![Port::tcp("grpc", 9090)],
        ),
        import("other/single", &["10.96.1.5"], vec![unnamed]),
        import("demo/pending", &[], vec![Port::tcp("http", 80)]),
        // Shares web's ClusterSetIP: only the first service (by key) gets the PTR.
        import("demo/alias", &["10.96.0.10"], vec![Port::tcp("http", 80)]),
        // Outside every reverse zone: A record but no PTR.
        import("demo/far", &["192.0.2.1"], vec![Port::tcp("http", 80)]),
    ];
    CatalogSnapshot {
        imports: imports.into_iter().map(|i| (i.key.clone(), i)).collect(),
        ..CatalogSnapshot::default()
    }
}

pub(crate) fn zones() -> Zones {
    let cfg = Config {
        reverse_zones: vec![
            "10.96.0.0/16".parse().unwrap(),
            "fd00:77::/64".parse().unwrap(),
        ],
        nameserver_addresses: vec!["10.96.0.53".parse().unwrap()],
        ..Config::default()
    };
    Zones::from_config(&cfg).unwrap()
}

pub(crate) fn index() -> Index {
    build(&zones(), &fixture(), 42)
}

pub(crate) fn ask(index: &Index, name: &str, qtype: RecordType) -> Answer {
    let name = LowerName::new(&Name::from_str(name).unwrap());
    answer(index, &name, qtype, DNSClass::IN)
}

/// The answer's records as text, e.g. `["A 10.96.0.10"]`; panics on a negative answer.
pub(crate) fn rdata(a: &Answer) -> Vec<String> {
    let Answer::Records { answer, .. } = a else {
        panic!("expected records, got {a:?}");
    };
    answer
        .records_without_rrsigs()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect()
}

pub(crate) fn records(name: &str, qtype: RecordType) -> Vec<String> {
    rdata(&ask(&index(), name, qtype))
}

/// Like [`rdata`], sorted.
pub(crate) fn sorted(a: Answer) -> Vec<String> {
    let mut v = rdata(&a);
    v.sort();
    v
}
