//! Exhaustive tests of the answer decisions over an index built from a fixture catalog.

use std::net::IpAddr;
use std::str::FromStr;

use causeway_catalog::{CatalogSnapshot, Port};
use hickory_proto::rr::{DNSClass, LowerName, Name, RecordType};

use super::fixtures::{ask, fixture, import, index, rdata, records, sorted, zones};
use super::{Answer, answer};
use crate::index::build;

#[test]
fn addresses() {
    use RecordType::{A, AAAA};
    assert_eq!(
        records("web.demo.svc.clusterset.local.", A),
        ["A 10.96.0.10"]
    );
    assert_eq!(
        records("v6only.demo.svc.clusterset.local.", AAAA),
        ["AAAA fd00:77::20"]
    );
    assert_eq!(
        records("dual.demo.svc.clusterset.local.", A),
        ["A 10.96.0.30"]
    );
    assert_eq!(
        records("dual.demo.svc.clusterset.local.", AAAA),
        ["AAAA fd00:77::30"]
    );
}

#[test]
fn names_match_case_insensitively() {
    let a = records("WEB.Demo.SVC.ClusterSet.LOCAL.", RecordType::A);
    assert_eq!(a, ["A 10.96.0.10"]);
}

#[test]
fn records_carry_the_ttl() {
    let Answer::Records { answer, .. } =
        ask(&index(), "web.demo.svc.clusterset.local.", RecordType::A)
    else {
        panic!()
    };
    assert_eq!(answer.ttl(), 5);
}

#[test]
fn srv_for_named_ports_with_additionals() {
    let a = ask(
        &index(),
        "_https._tcp.web.demo.svc.clusterset.local.",
        RecordType::SRV,
    );
    assert_eq!(rdata(&a), ["SRV 0 100 443 web.demo.svc.clusterset.local."]);
    let Answer::Records { additionals, .. } = &a else {
        panic!()
    };
    let extra: Vec<RecordType> = additionals.iter().map(|s| s.record_type()).collect();
    assert_eq!(extra, [RecordType::A]);
    let dual = ask(
        &index(),
        "_grpc._tcp.dual.demo.svc.clusterset.local.",
        RecordType::SRV,
    );
    let Answer::Records { additionals, .. } = &dual else {
        panic!()
    };
    assert_eq!(additionals.len(), 2, "A and AAAA of a dual-stack target");
    let udp = records(
        "_dns._udp.v6only.demo.svc.clusterset.local.",
        RecordType::SRV,
    );
    assert_eq!(udp, ["SRV 0 100 53 v6only.demo.svc.clusterset.local."]);
}

#[test]
fn srv_protocol_must_match() {
    let a = ask(
        &index(),
        "_dns._tcp.v6only.demo.svc.clusterset.local.",
        RecordType::SRV,
    );
    assert!(matches!(a, Answer::NxDomain), "{a:?}");
}

#[test]
fn no_srv_for_unnamed_ports() {
    let idx = index();
    let a = ask(&idx, "single.other.svc.clusterset.local.", RecordType::SRV);
    assert!(matches!(a, Answer::NoData), "{a:?}");
    let a = ask(
        &idx,
        "_tcp.single.other.svc.clusterset.local.",
        RecordType::SRV,
    );
    assert!(matches!(a, Answer::NxDomain), "{a:?}");
}

#[test]
fn schema_version() {
    let t = records("dns-version.clusterset.local.", RecordType::TXT);
    assert_eq!(t, ["TXT 1.0.0"]);
}

#[test]
fn ptr_records() {
    let p = records("10.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        p,
        ["PTR alias.demo.svc.clusterset.local."],
        "first key wins"
    );
    let v6 = "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.7.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(
        records(v6, RecordType::PTR),
        ["PTR dual.demo.svc.clusterset.local."]
    );
    let a = ask(&index(), "99.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert!(matches!(a, Answer::NxDomain), "{a:?}");
    let a = ask(&index(), "0.96.10.in-addr.arpa.", RecordType::PTR);
    assert!(matches!(a, Answer::NoData), "empty non-terminal: {a:?}");
}

#[test]
fn soa_and_ns_at_every_apex() {
    for apex in [
        "clusterset.local.",
        "96.10.in-addr.arpa.",
        "0.0.0.0.0.0.0.0.7.7.0.0.0.0.d.f.ip6.arpa.",
    ] {
        let soa = records(apex, RecordType::SOA);
        assert_eq!(soa.len(), 1, "{apex}");
        assert!(
            soa[0].starts_with("SOA ns.dns.clusterset.local. hostmaster.clusterset.local. 42 ")
        );
        assert_eq!(
            records(apex, RecordType::NS),
            ["NS ns.dns.clusterset.local."]
        );
    }
    let ns = records("ns.dns.clusterset.local.", RecordType::A);
    assert_eq!(ns, ["A 10.96.0.53"]);
}

#[test]
fn nodata_versus_nxdomain() {
    let idx = index();
    let nodata = [
        ("web.demo.svc.clusterset.local.", RecordType::AAAA),
        ("v6only.demo.svc.clusterset.local.", RecordType::A),
        ("web.demo.svc.clusterset.local.", RecordType::TXT),
        ("svc.clusterset.local.", RecordType::A),
        ("demo.svc.clusterset.local.", RecordType::A),
        ("other.svc.clusterset.local.", RecordType::SRV),
        ("_tcp.web.demo.svc.clusterset.local.", RecordType::SRV),
        ("clusterset.local.", RecordType::A),
        ("dns-version.clusterset.local.", RecordType::A),
        ("pending.demo.svc.clusterset.local.", RecordType::A),
    ];
    for (name, t) in nodata {
        assert!(matches!(ask(&idx, name, t), Answer::NoData), "{name} {t}");
    }
    let nx = [
        "nope.demo.svc.clusterset.local.",
        "web.nope.svc.clusterset.local.",
        "x.clusterset.local.",
        "_http._udp.web.demo.svc.clusterset.local.",
        "_ftp._tcp.web.demo.svc.clusterset.local.",
        "a.web.demo.svc.clusterset.local.",
    ];
    for name in nx {
        assert!(
            matches!(ask(&idx, name, RecordType::A), Answer::NxDomain),
            "{name}"
        );
    }
}

#[test]
fn no_cluster_specific_names() {
    let a = ask(
        &index(),
        "east.web.demo.svc.clusterset.local.",
        RecordType::A,
    );
    assert!(matches!(a, Answer::NxDomain), "{a:?}");
}

#[test]
fn pending_import_keeps_its_srv() {
    let s = records(
        "_http._tcp.pending.demo.svc.clusterset.local.",
        RecordType::SRV,
    );
    assert_eq!(s, ["SRV 0 100 80 pending.demo.svc.clusterset.local."]);
}

#[test]
fn vip_outside_reverse_zones_has_no_ptr() {
    let a = records("far.demo.svc.clusterset.local.", RecordType::A);
    assert_eq!(a, ["A 192.0.2.1"]);
    let idx = index();
    let n = LowerName::new(&Name::from(IpAddr::from([192, 0, 2, 1])));
    assert!(idx.node(&n).is_none());
}

#[test]
fn any_is_minimal() {
    let a = records("dual.demo.svc.clusterset.local.", RecordType::ANY);
    assert_eq!(a, ["A 10.96.0.30"], "one RRset only (RFC 8482)");
    let apex = records("clusterset.local.", RecordType::ANY);
    assert_eq!(apex.len(), 1);
    assert!(apex[0].starts_with("SOA "));
    let ent = ask(&index(), "svc.clusterset.local.", RecordType::ANY);
    assert!(matches!(ent, Answer::NoData));
}

#[test]
fn transfers_and_other_classes_are_refused() {
    let idx = index();
    for t in [RecordType::AXFR, RecordType::IXFR] {
        assert!(matches!(ask(&idx, "clusterset.local.", t), Answer::Refused));
    }
    let name = LowerName::new(&Name::from_str("web.demo.svc.clusterset.local.").unwrap());
    let ch = answer(&idx, &name, RecordType::A, DNSClass::CH);
    assert!(matches!(ch, Answer::Refused));
}

#[test]
fn bad_catalog_labels_skip_only_that_import() {
    let mut snap = fixture();
    let mut bad = import("demo/bad", &["10.96.9.9"], vec![Port::tcp("a.b", 1)]);
    bad.ports.push(Port::tcp("ok", 2));
    snap.imports.insert(bad.key.clone(), bad);
    let idx = build(&zones(), &snap, 1);
    assert_eq!(idx.skipped, 1);
    let a = ask(&idx, "bad.demo.svc.clusterset.local.", RecordType::A);
    assert!(matches!(a, Answer::NxDomain), "{a:?}");
    let a = ask(&idx, "web.demo.svc.clusterset.local.", RecordType::A);
    assert_eq!(rdata(&a), ["A 10.96.0.10"]);
}

#[test]
fn memory_follows_imports() {
    let empty = build(&zones(), &CatalogSnapshot::default(), 1);
    let full = index();
    assert!(empty.name_count() < full.name_count());
    // A withdrawn import leaves nothing behind.
    let mut snap = fixture();
    snap.imports.retain(|k, _| k.name() == "web");
    let one = build(&zones(), &snap, 2);
    let a = ask(&one, "dual.demo.svc.clusterset.local.", RecordType::A);
    assert!(matches!(a, Answer::NxDomain));
    let a = ask(&one, "30.0.96.10.in-addr.arpa.", RecordType::PTR);
    assert!(matches!(a, Answer::NxDomain));
}

#[test]
fn a_clusterset_ip_service_has_srv_records_at_its_own_name() {
    let idx = index();
    assert_eq!(
        sorted(ask(&idx, "web.demo.svc.clusterset.local.", RecordType::SRV)),
        [
            "SRV 0 100 443 web.demo.svc.clusterset.local.",
            "SRV 0 100 80 web.demo.svc.clusterset.local."
        ]
    );
    // dns and dns-tcp are both port 53: one record.
    assert_eq!(
        sorted(ask(
            &idx,
            "v6only.demo.svc.clusterset.local.",
            RecordType::SRV
        ))
        .len(),
        1
    );
}
