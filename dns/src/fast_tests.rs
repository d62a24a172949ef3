//! The fast path against hickory's handler, byte for byte, without sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use causeway_catalog::Port;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, LowerName, Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::zone_handler::Catalog;
use prometheus_client::registry::Registry;

use super::respond;
use crate::answer::fixtures::{fixture, import, zones};
use crate::fallback::Fallback;
use crate::index::{Index, build};
use crate::metrics::{Handler, Metrics};
use crate::zone::Zone;

fn index() -> Index {
    build(&zones(), &fixture_with_big(), 42)
}

fn fallback(index: Index) -> Fallback {
    let index = Arc::new(ArcSwap::from_pointee(index));
    let mut catalog = Catalog::new();
    for apex in zones().apexes() {
        let origin = LowerName::new(apex);
        let zone = Zone::new(origin.clone(), index.clone());
        catalog.upsert(origin, vec![Arc::new(zone)]);
    }
    let metrics = Metrics::register(&mut Registry::default());
    let handler = Handler {
        catalog: Arc::new(catalog),
        metrics,
    };
    Fallback::new(handler).unwrap()
}

fn request(name: &str, qtype: RecordType, edns: Option<u16>, id: u16) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m.metadata.recursion_desired = id.is_multiple_of(2);
    m.metadata.checking_disabled = id.is_multiple_of(3);
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

/// Every indexed name, as asked in lower, upper and mixed case, plus misses.
fn names(index: &Index) -> Vec<String> {
    let mut out = Vec::new();
    for (name, _) in index.nodes() {
        let s = name.to_string();
        let mixed: String = s
            .chars()
            .enumerate()
            .map(|(i, c)| match i % 2 {
                0 => c.to_ascii_uppercase(),
                _ => c,
            })
            .collect();
        out.extend([s.to_ascii_uppercase(), mixed, s]);
    }
    out.extend(
        [
            "nope.demo.svc.clusterset.local.",
            "a.b.c.nope.clusterset.local.",
            "9.9.96.10.in-addr.arpa.",
            "example.com.",
            "clusterset.localx.",
            ".",
            "_x._tcp.web.demo.svc.clusterset.local.",
        ]
        .map(String::from),
    );
    out
}

const TYPES: [RecordType; 16] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::NS,
    RecordType::TXT,
    RecordType::ANY,
    RecordType::MX,
    RecordType::CNAME,
    RecordType::HTTPS,
    RecordType::CAA,
    RecordType::NULL,
    RecordType::AXFR,
    RecordType::IXFR,
    RecordType::OPT,
];

#[test]
fn fast_answers_equal_hickorys_bytes() {
    let index = index();
    let names = names(&index);
    let hickory = fallback(self::index());
    let src: SocketAddr = "127.0.0.1:5300".parse().unwrap();
    let (mut fast, mut slow, mut id) = (0, 0, 0u16);
    let mut out = Vec::new();
    for name in &names {
        for qtype in TYPES {
            for edns in [None, Some(0), Some(512), Some(1232), Some(4096)] {
                id = id.wrapping_add(1);
                let req = request(name, qtype, edns, id);
                let expected = hickory.respond(&req, src).unwrap();
                match respond(&index.wire, &req, &mut out) {
                    Some(_) => {
                        fast += 1;
                        assert_eq!(out, expected, "{name} {qtype} {edns:?}");
                    }
                    None => slow += 1,
                }
            }
        }
    }
    assert!(
        fast > names.len() * 8 * 5 / 2,
        "{fast} fast, {slow} to hickory"
    );
    assert!(slow > 0);
}

fn fixture_with_big() -> causeway_catalog::CatalogSnapshot {
    let mut snap = fixture();
    let big: Vec<String> = (1..=60).map(|i| format!("10.96.9.{i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let big = import("demo/big", &big, vec![Port::tcp("http", 80)]);
    snap.imports.insert(big.key.clone(), big);
    snap
}

fn fast(req: &[u8]) -> bool {
    respond(&index().wire, req, &mut Vec::new()).is_some()
}

const WEB: &str = "web.demo.svc.clusterset.local.";

#[test]
fn plain_queries_take_the_fast_path() {
    assert!(fast(&request(WEB, RecordType::A, None, 1)));
    assert!(fast(&request(WEB, RecordType::A, Some(1232), 1)));
    assert!(fast(&request(
        "nope.clusterset.local.",
        RecordType::A,
        None,
        1
    )));
    assert!(fast(&request("example.org.", RecordType::A, None, 1)));
}

#[test]
fn anything_unusual_goes_to_hickory() {
    let base = request(WEB, RecordType::A, None, 1);
    let with = |f: &dyn Fn(&mut Message)| {
        let mut m = Message::from_vec(&base).unwrap();
        f(&mut m);
        m.to_vec().unwrap()
    };
    let edns = |f: &dyn Fn(&mut Edns)| {
        with(&|m: &mut Message| {
            let mut e = Edns::new();
            f(&mut e);
            m.set_edns(e);
        })
    };
    let cases = [
        (
            "two questions",
            with(&|m| {
                m.add_query(m.queries[0].clone());
            }),
        ),
        ("notify", with(&|m| m.metadata.op_code = OpCode::Notify)),
        (
            "response",
            with(&|m| m.metadata.message_type = MessageType::Response),
        ),
        (
            "class CH",
            with(&|m| {
                m.queries[0].set_query_class(DNSClass::CH);
            }),
        ),
        (
            "EDNS version 1",
            edns(&|e| {
                e.set_version(1);
            }),
        ),
        (
            "DNSSEC OK",
            edns(&|e| {
                e.set_dnssec_ok(true);
            }),
        ),
        (
            "big answer",
            request("big.demo.svc.clusterset.local.", RecordType::A, None, 1),
        ),
        (
            "AXFR",
            request("clusterset.local.", RecordType::AXFR, None, 1),
        ),
    ];
    for (what, req) in cases {
        assert!(!fast(&req), "{what}");
    }
    let mut trailing = base.clone();
    trailing.push(0);
    assert!(!fast(&trailing), "trailing byte");
    assert!(!fast(&base[..base.len() - 1]), "cut short");
    // The name as a compression pointer to itself.
    let mut pointer = base[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert!(!fast(&pointer), "compressed name");
    let mut odd = base.clone();
    odd[13] = b'*';
    assert!(!fast(&odd), "wildcard character");
}

#[test]
fn the_opt_record_is_hickorys() {
    for size in [0u16, 511, 512, 1232, 4096, u16::MAX] {
        let mut e = Edns::new();
        e.set_max_payload(size);
        let mut want = Vec::new();
        Record::from(&e)
            .emit(&mut BinEncoder::new(&mut want))
            .unwrap();
        let req = request(WEB, RecordType::A, Some(size), 7);
        let mut out = Vec::new();
        respond(&index().wire, &req, &mut out).unwrap();
        assert_eq!(out[out.len() - want.len()..], want[..], "size {size}");
    }
}
