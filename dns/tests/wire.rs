//! Protocol edges, checked on the wire with hand-built messages: truncation,
//! EDNS sizes and versions, several questions, ANY, REFUSED, transfers.

#![allow(clippy::unwrap_used)] // tests may unwrap (workspace lint policy)

mod common;

use std::time::Duration;

use common::{fixture, query, start, tcp, udp, udp_raw};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio_util::sync::CancellationToken;

const BIG: &str = "big.demo.svc.clusterset.local.";

#[tokio::test]
async fn oversized_udp_answers_set_tc_and_are_complete_over_tcp() {
    let s = start(fixture()).await;
    let q = query(BIG, RecordType::A, None);
    let bytes = udp_raw(s.addr, &q.to_vec().unwrap(), common::DEADLINE)
        .await
        .unwrap();
    assert!(
        bytes.len() <= 512,
        "UDP answer without EDNS is {} bytes",
        bytes.len()
    );
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation, "TC must be set");
    assert!(m.answers.len() < 60);
    let full = tcp(s.addr, &q).await;
    assert!(!full.metadata.truncation);
    assert_eq!(full.answers.len(), 60);
    assert_eq!(full.metadata.response_code, ResponseCode::NoError);
    // A client advertising a large EDNS buffer gets it all over UDP.
    let m = udp(s.addr, &query(BIG, RecordType::A, Some(4096))).await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 60);
    s.stop().await;
}

#[tokio::test]
async fn extreme_edns_sizes() {
    let s = start(fixture()).await;
    // Below 512 is read as 512 (RFC 6891 6.2.5).
    for size in [0u16, 1, 511] {
        let m = udp(s.addr, &query(BIG, RecordType::A, Some(size))).await;
        assert!(m.metadata.truncation, "size {size}");
        let small = udp(
            s.addr,
            &query("web.demo.svc.clusterset.local.", RecordType::A, Some(size)),
        )
        .await;
        assert_eq!(small.answers.len(), 1, "size {size}");
        assert!(small.edns.is_some(), "an EDNS query gets an EDNS answer");
    }
    let m = udp(s.addr, &query(BIG, RecordType::A, Some(u16::MAX))).await;
    assert_eq!(m.answers.len(), 60);
    s.stop().await;
}

#[tokio::test]
async fn unknown_edns_version_is_badvers() {
    let s = start(fixture()).await;
    let mut q = query("web.demo.svc.clusterset.local.", RecordType::A, None);
    let mut e = Edns::new();
    e.set_version(1);
    q.set_edns(e);
    let m = udp(s.addr, &q).await;
    // BADVERS and BADSIG share code 16; the decoder names it BADSIG.
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.edns.is_some());
    s.stop().await;
}

#[tokio::test]
async fn zero_or_several_questions_are_formerr() {
    let s = start(fixture()).await;
    let mut two = query("web.demo.svc.clusterset.local.", RecordType::A, None);
    two.add_query(Query::query(
        Name::from_ascii("dual.demo.svc.clusterset.local.").unwrap(),
        RecordType::A,
    ));
    let m = udp(s.addr, &two).await;
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(m.answers.is_empty());
    let none = Message::new(7, MessageType::Query, OpCode::Query);
    let m = udp(s.addr, &none).await;
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    s.stop().await;
}

#[tokio::test]
async fn any_gets_a_minimal_answer() {
    let s = start(fixture()).await;
    let m = udp(
        s.addr,
        &query("dual.demo.svc.clusterset.local.", RecordType::ANY, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative);
    let types: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::A], "one RRset (RFC 8482)");
    s.stop().await;
}

#[tokio::test]
async fn negative_answers_carry_the_soa_and_are_authoritative() {
    let s = start(fixture()).await;
    let cases = [
        (
            "nope.demo.svc.clusterset.local.",
            ResponseCode::NXDomain,
            "clusterset.local.",
        ),
        (
            "svc.clusterset.local.",
            ResponseCode::NoError,
            "clusterset.local.",
        ),
        (
            "1.2.96.10.in-addr.arpa.",
            ResponseCode::NXDomain,
            "96.10.in-addr.arpa.",
        ),
    ];
    for (name, code, apex) in cases {
        let m = udp(s.addr, &query(name, RecordType::A, None)).await;
        assert_eq!(m.metadata.response_code, code, "{name}");
        assert!(m.metadata.authoritative, "{name}");
        assert!(m.answers.is_empty(), "{name}");
        let soa = m
            .authorities
            .iter()
            .find(|r| r.record_type() == RecordType::SOA);
        let soa = soa.unwrap_or_else(|| panic!("{name}: no SOA in {m:?}"));
        assert_eq!(soa.name.to_ascii(), apex);
        let RData::SOA(data) = &soa.data else {
            panic!()
        };
        assert_eq!(data.minimum, 5, "negative TTL follows dns.ttl");
    }
    s.stop().await;
}

#[tokio::test]
async fn outside_the_zone_other_classes_and_transfers_are_refused() {
    let s = start(fixture()).await;
    let m = udp(s.addr, &query("example.com.", RecordType::A, None)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    let mut ch = query("web.demo.svc.clusterset.local.", RecordType::A, None);
    let q = Query::query(
        Name::from_ascii("web.demo.svc.clusterset.local.").unwrap(),
        RecordType::A,
    );
    ch.queries = vec![{
        let mut q = q;
        q.set_query_class(DNSClass::CH);
        q
    }];
    assert_eq!(
        udp(s.addr, &ch).await.metadata.response_code,
        ResponseCode::Refused
    );
    for t in [RecordType::AXFR, RecordType::IXFR] {
        let m = tcp(s.addr, &query("clusterset.local.", t, None)).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{t}");
        assert!(m.answers.is_empty());
    }
    s.stop().await;
}

#[tokio::test]
async fn updates_and_other_opcodes_are_not_implemented() {
    let s = start(fixture()).await;
    for op in [OpCode::Update, OpCode::Notify, OpCode::Status] {
        let mut m = query("clusterset.local.", RecordType::SOA, None);
        m.metadata.op_code = op;
        let r = udp(s.addr, &m).await;
        assert_eq!(r.metadata.response_code, ResponseCode::NotImp, "{op:?}");
    }
    s.stop().await;
}

#[tokio::test]
async fn responses_and_runts_get_silence() {
    let s = start(fixture()).await;
    let mut m = query("web.demo.svc.clusterset.local.", RecordType::A, None);
    m.metadata.message_type = MessageType::Response;
    let short = Duration::from_millis(300);
    assert!(udp_raw(s.addr, &m.to_vec().unwrap(), short).await.is_none());
    assert!(udp_raw(s.addr, &[0x12, 0x34, 0x01], short).await.is_none());
    // The server is still there.
    let ok = udp(
        s.addr,
        &query("web.demo.svc.clusterset.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(ok.answers.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn echoes_the_question_as_asked() {
    let s = start(fixture()).await;
    let asked = "WEB.demo.SVC.clusterset.local.";
    let m = udp(s.addr, &query(asked, RecordType::A, None)).await;
    assert_eq!(m.queries[0].name().to_ascii(), asked);
    assert_eq!(m.answers[0].data.to_string(), "10.96.0.10");
    assert!(!m.metadata.recursion_available);
    s.stop().await;
}

#[tokio::test]
async fn a_closed_catalog_source_keeps_the_last_answers() {
    let common::Running {
        addr,
        catalog,
        shutdown,
        task,
        ..
    } = start(fixture()).await;
    drop(catalog);
    for _ in 0..3 {
        let m = udp(
            addr,
            &query("web.demo.svc.clusterset.local.", RecordType::A, None),
        )
        .await;
        assert_eq!(m.answers[0].data.to_string(), "10.96.0.10");
    }
    assert!(!task.is_finished());
    shutdown.cancel();
    let done = tokio::time::timeout(common::DEADLINE, task).await;
    done.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn serve_runs_until_shutdown_and_leaves_the_registry_free() {
    let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(fixture()));
    let mut registry = prometheus_client::registry::Registry::default();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let fut = causeway_dns::serve(&common::config(), rx, &mut registry, shutdown.clone());
    let task = tokio::spawn(fut);
    // The registry is usable (e.g. by /metrics) while DNS runs.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.contains("dns_responses_total"), "{text}");
    shutdown.cancel();
    let done = tokio::time::timeout(common::DEADLINE, task).await;
    done.unwrap().unwrap().unwrap();
    // A bad config is reported, naming the key.
    let bad = causeway_dns::Config {
        zone: "bad zone".into(),
        ..common::config()
    };
    let (_tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(fixture()));
    let err = causeway_dns::serve(&bad, rx, &mut registry, CancellationToken::new()).await;
    assert!(err.unwrap_err().to_string().contains("dns.zone"));
}
