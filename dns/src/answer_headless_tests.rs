//! Headless imports: per-endpoint names and records (MCS DNS spec 2.4).

use causeway_catalog::{CatalogSnapshot, Port};
use hickory_proto::rr::RecordType;

use super::Answer;
use super::fixtures::{ask, import, sorted, zones};
use crate::index::{Index, build};

fn headless_fixture() -> Index {
    use causeway_catalog::{ClusterId, HeadlessEndpoint};
    let ep = |cluster: &str, host: &str, local: &[&str]| HeadlessEndpoint {
        cluster: ClusterId::new(cluster).unwrap(),
        hostname: host.into(),
        addresses: vec!["10.1.0.1".parse().unwrap()],
        local: local.iter().map(|a| a.parse().unwrap()).collect(),
    };
    let mut db = import(
        "demo/db",
        &[],
        vec![Port::tcp("pg", 5432), Port::tcp("metrics", 9187)],
    );
    db.headless = true;
    db.endpoints = vec![
        ep("a", "db-0", &["10.1.0.1"]),
        ep("b", "db-0", &["10.96.5.1", "fd00:77::5:1"]),
        ep("b", "db-1", &["10.96.5.2"]),
    ];
    let mut empty = import("demo/none", &[], vec![Port::tcp("pg", 5432)]);
    empty.headless = true;
    let mut cat = CatalogSnapshot::default();
    for i in [db, empty] {
        cat.imports.insert(i.key.clone(), i);
    }
    build(&zones(), &cat, 1)
}

#[test]
fn headless_services_answer_the_ready_endpoints_per_mcs_dns_2_4() {
    let idx = headless_fixture();
    let q = |n: &str, t| sorted(ask(&idx, n, t));
    assert_eq!(
        q("db.demo.svc.clusterset.local.", RecordType::A),
        ["A 10.1.0.1", "A 10.96.5.1", "A 10.96.5.2"]
    );
    assert_eq!(
        q("db.demo.svc.clusterset.local.", RecordType::AAAA),
        ["AAAA fd00:77::5:1"]
    );
    assert_eq!(
        q("db-0.b.db.demo.svc.clusterset.local.", RecordType::A),
        ["A 10.96.5.1"]
    );
    assert_eq!(
        q("db-0.a.db.demo.svc.clusterset.local.", RecordType::A),
        ["A 10.1.0.1"]
    );
    // N x M: three endpoints, pg's SRV names each of them.
    assert_eq!(
        q("_pg._tcp.db.demo.svc.clusterset.local.", RecordType::SRV),
        [
            "SRV 0 100 5432 db-0.a.db.demo.svc.clusterset.local.",
            "SRV 0 100 5432 db-0.b.db.demo.svc.clusterset.local.",
            "SRV 0 100 5432 db-1.b.db.demo.svc.clusterset.local."
        ]
    );
    assert_eq!(
        q("db.demo.svc.clusterset.local.", RecordType::SRV).len(),
        6,
        "3 endpoints x 2 ports"
    );
    // 2.4.4: no record disambiguating to one cluster's backends.
    let a = ask(&idx, "b.db.demo.svc.clusterset.local.", RecordType::A);
    assert!(matches!(a, Answer::NoData), "{a:?}");
    // No ready endpoint: NXDOMAIN, not an empty answer.
    let a = ask(&idx, "none.demo.svc.clusterset.local.", RecordType::A);
    assert!(matches!(a, Answer::NxDomain), "{a:?}");
}
