//! The server as a real resolver (hickory-resolver) sees it, over UDP and TCP.

#![allow(clippy::unwrap_used)] // tests may unwrap (workspace lint policy)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Running, fixture, import, snapshot, start};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};

type R = Resolver<TokioRuntimeProvider>;

fn resolver(addr: SocketAddr, tcp: bool) -> R {
    let mut conn = if tcp {
        ConnectionConfig::tcp()
    } else {
        ConnectionConfig::udp()
    };
    conn.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![conn]);
    let cfg = ResolverConfig::from_parts(None, vec![], vec![ns]);
    let mut b = Resolver::builder_with_config(cfg, TokioRuntimeProvider::default());
    let o = b.options_mut();
    o.cache_size = 0; // every lookup must reach the server: updates are under test
    o.attempts = 3; // a loaded host may drop a datagram; a resolver retries
    o.timeout = Duration::from_secs(2);
    b.build().unwrap()
}

/// The answer records as "TYPE rdata" strings, sorted.
async fn lookup(r: &R, name: &str, t: RecordType) -> Vec<String> {
    let l = r
        .lookup(name, t)
        .await
        .unwrap_or_else(|e| panic!("{name} {t}: {e}"));
    let mut v: Vec<String> = l
        .answers()
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect();
    v.sort();
    v
}

/// The negative answer's response code and whether it carried the zone's SOA.
async fn negative(r: &R, name: &str, t: RecordType) -> (ResponseCode, bool) {
    match r.lookup(name, t).await {
        Ok(l) => panic!(
            "{name} {t}: expected a negative answer, got {:?}",
            l.answers()
        ),
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => (nr.response_code, nr.soa.is_some()),
        Err(e) => panic!("{name} {t}: unexpected error {e}"),
    }
}

async fn check_records(r: &R) {
    use RecordType::*;
    let web = "web.demo.svc.clusterset.local.";
    assert_eq!(lookup(r, web, A).await, ["A 10.96.0.10"]);
    let v6 = "v6only.demo.svc.clusterset.local.";
    assert_eq!(lookup(r, v6, AAAA).await, ["AAAA fd00:77::20"]);
    let dual = "dual.demo.svc.clusterset.local.";
    assert_eq!(lookup(r, dual, A).await, ["A 10.96.0.30"]);
    assert_eq!(lookup(r, dual, AAAA).await, ["AAAA fd00:77::30"]);
    let srv = lookup(r, "_https._tcp.web.demo.svc.clusterset.local.", SRV).await;
    assert_eq!(srv, ["SRV 0 100 443 web.demo.svc.clusterset.local."]);
    let srv = lookup(r, "_metrics._tcp.dual.demo.svc.clusterset.local.", SRV).await;
    assert_eq!(srv, ["SRV 0 100 9100 dual.demo.svc.clusterset.local."]);
    let srv = lookup(r, "_dns._udp.v6only.demo.svc.clusterset.local.", SRV).await;
    assert_eq!(srv, ["SRV 0 100 53 v6only.demo.svc.clusterset.local."]);
    let txt = lookup(r, "dns-version.clusterset.local.", TXT).await;
    assert_eq!(txt, ["TXT 1.0.0"]);
    let ptr = lookup(r, "10.0.96.10.in-addr.arpa.", PTR).await;
    assert_eq!(ptr, ["PTR web.demo.svc.clusterset.local."]);
    let v6ptr = "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.7.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(
        lookup(r, v6ptr, PTR).await,
        ["PTR v6only.demo.svc.clusterset.local."]
    );
    let ns = lookup(r, "clusterset.local.", NS).await;
    assert_eq!(ns, ["NS ns.dns.clusterset.local."]);
    let soa = lookup(r, "clusterset.local.", SOA).await;
    assert!(
        soa[0].starts_with("SOA ns.dns.clusterset.local. hostmaster.clusterset.local. "),
        "{soa:?}"
    );
}

#[tokio::test]
async fn every_record_kind_over_udp_and_tcp() {
    let s = start(fixture()).await;
    check_records(&resolver(s.addr, false)).await;
    check_records(&resolver(s.addr, true)).await;
    s.stop().await;
}

#[tokio::test]
async fn srv_answers_carry_target_addresses() {
    let s = start(fixture()).await;
    let r = resolver(s.addr, false);
    let name = "_grpc._tcp.dual.demo.svc.clusterset.local.";
    let l = r.lookup(name, RecordType::SRV).await.unwrap();
    let mut extra: Vec<String> = l.additionals().iter().map(|r| r.data.to_string()).collect();
    extra.sort();
    assert_eq!(extra, ["10.96.0.30", "fd00:77::30"]);
    s.stop().await;
}

#[tokio::test]
async fn nxdomain_versus_nodata() {
    let s = start(fixture()).await;
    let r = resolver(s.addr, false);
    use RecordType::*;
    let nodata = [
        ("web.demo.svc.clusterset.local.", AAAA),
        ("v6only.demo.svc.clusterset.local.", A),
        ("svc.clusterset.local.", A),
        ("demo.svc.clusterset.local.", A),
        ("_tcp.web.demo.svc.clusterset.local.", SRV),
    ];
    for (name, t) in nodata {
        assert_eq!(
            negative(&r, name, t).await,
            (ResponseCode::NoError, true),
            "{name} {t}"
        );
    }
    let nx = [
        ("nope.demo.svc.clusterset.local.", A),
        ("web.other.svc.clusterset.local.", A),
        ("east.web.demo.svc.clusterset.local.", A),
        ("_http._udp.web.demo.svc.clusterset.local.", SRV),
        ("99.0.96.10.in-addr.arpa.", PTR),
    ];
    for (name, t) in nx {
        assert_eq!(
            negative(&r, name, t).await,
            (ResponseCode::NXDomain, true),
            "{name} {t}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn outside_the_zone_is_refused() {
    let s = start(fixture()).await;
    let r = resolver(s.addr, false);
    for name in ["example.com.", "cluster.local.", "1.0.0.10.in-addr.arpa."] {
        match r.lookup(name, RecordType::A).await {
            Err(NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused))) => {}
            other => panic!("{name}: expected REFUSED, got {other:?}"),
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn names_are_case_insensitive() {
    let s = start(fixture()).await;
    let r = resolver(s.addr, false);
    let a = lookup(&r, "WeB.DEMO.Svc.ClusterSet.Local.", RecordType::A).await;
    assert_eq!(a, ["A 10.96.0.10"]);
    let srv = lookup(
        &r,
        "_HTTP._TCP.web.demo.svc.clusterset.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(srv, ["SRV 0 100 80 web.demo.svc.clusterset.local."]);
    s.stop().await;
}

#[tokio::test]
async fn large_answers_arrive_complete_over_tcp() {
    let s = start(fixture()).await;
    // The resolver retries over TCP when the UDP answer comes back truncated.
    for tcp in [false, true] {
        let r = resolver_with_fallback(s.addr, tcp);
        let a = lookup(&r, "big.demo.svc.clusterset.local.", RecordType::A).await;
        assert_eq!(a.len(), 60, "tcp={tcp}");
    }
    s.stop().await;
}

fn resolver_with_fallback(addr: SocketAddr, tcp_only: bool) -> R {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let conns = if tcp_only { vec![tcp] } else { vec![udp, tcp] };
    let ns = NameServerConfig::new(addr.ip(), true, conns);
    let cfg = ResolverConfig::from_parts(None, vec![], vec![ns]);
    let mut b = Resolver::builder_with_config(cfg, TokioRuntimeProvider::default());
    b.options_mut().cache_size = 0;
    b.options_mut().edns0 = false; // 512-byte UDP limit: forces TC
    b.build().unwrap()
}

#[tokio::test]
async fn updates_and_withdrawals_follow_the_catalog() {
    let s = start(fixture()).await;
    let r = Arc::new(resolver(s.addr, false));
    let name = "web.demo.svc.clusterset.local.";
    // Update: web moves to a new ClusterSetIP; a new service appears.
    let mut snap = fixture();
    snap.imports.values_mut().for_each(|i| {
        if i.key.name() == "web" {
            i.vips = vec!["10.96.0.11".parse().unwrap()];
        }
    });
    let fresh = import("demo/fresh", &["10.96.5.5"], vec![]);
    snap.imports.insert(fresh.key.clone(), fresh);
    s.catalog.send_replace(Arc::new(snap));
    let r2 = r.clone();
    common::eventually("web's new ClusterSetIP", move || {
        let r = r2.clone();
        async move { lookup(&r, name, RecordType::A).await == ["A 10.96.0.11"] }
    })
    .await;
    let fresh = lookup(&r, "fresh.demo.svc.clusterset.local.", RecordType::A).await;
    assert_eq!(fresh, ["A 10.96.5.5"]);
    let ptr = lookup(&r, "11.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(ptr, ["PTR web.demo.svc.clusterset.local."]);
    // Withdrawal: only v6only remains.
    s.catalog.send_replace(Arc::new(snapshot([import(
        "demo/v6only",
        &["fd00:77::20"],
        vec![],
    )])));
    let r2 = r.clone();
    common::eventually("web withdrawn", move || {
        let r = r2.clone();
        async move { negative_or_none(&r, name).await == Some(ResponseCode::NXDomain) }
    })
    .await;
    let (code, soa) = negative(&r, "11.0.96.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!((code, soa), (ResponseCode::NXDomain, true));
    s.stop().await;
}

async fn negative_or_none(r: &R, name: &str) -> Option<ResponseCode> {
    match r.lookup(name, RecordType::A).await {
        Err(NetError::Dns(DnsError::NoRecordsFound(nr))) => Some(nr.response_code),
        _ => None,
    }
}

#[tokio::test]
async fn metrics_count_responses() {
    let s = start(fixture()).await;
    let r = resolver(s.addr, false);
    lookup(&r, "web.demo.svc.clusterset.local.", RecordType::A).await;
    negative(&r, "nope.demo.svc.clusterset.local.", RecordType::A).await;
    let Running { registry, .. } = &s;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let line = |l: &str| text.lines().any(|x| x == l);
    assert!(
        line("dns_responses_total{transport=\"udp\",rcode=\"NOERROR\"} 1"),
        "{text}"
    );
    assert!(
        line("dns_responses_total{transport=\"udp\",rcode=\"NXDOMAIN\"} 1"),
        "{text}"
    );
    assert!(line("dns_catalog_updates_total 1"), "{text}");
    s.stop().await;
}
