//! The UDP fast path against hickory-server's own UDP path, on real sockets: the
//! same corpus of queries to a server with `udp_fast_path: false` and to one with
//! the fast path (two workers) must get the same responses. Plus: several
//! workers really share the load, and their answers are counted.

#![allow(clippy::unwrap_used)] // tests may unwrap (workspace lint policy)

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{DEADLINE, config, fixture, query, start_with};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::net::UdpSocket;

/// Every name the fixture serves (services, SRV, PTR, apexes, empty non-terminals)
/// and some it does not (misses in and outside the zones).
const NAMES: [&str; 27] = [
    "web.demo.svc.clusterset.local.",
    "v6only.demo.svc.clusterset.local.",
    "dual.demo.svc.clusterset.local.",
    "big.demo.svc.clusterset.local.",
    "_http._tcp.web.demo.svc.clusterset.local.",
    "_https._tcp.web.demo.svc.clusterset.local.",
    "_dns._udp.v6only.demo.svc.clusterset.local.",
    "_dns-tcp._tcp.v6only.demo.svc.clusterset.local.",
    "_grpc._tcp.dual.demo.svc.clusterset.local.",
    "_metrics._tcp.dual.demo.svc.clusterset.local.",
    "_http._tcp.big.demo.svc.clusterset.local.",
    "10.0.96.10.in-addr.arpa.",
    "30.0.96.10.in-addr.arpa.",
    "0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.7.7.0.0.0.0.d.f.ip6.arpa.",
    "clusterset.local.",
    "96.10.in-addr.arpa.",
    "0.0.0.0.7.7.0.0.0.0.d.f.ip6.arpa.",
    "svc.clusterset.local.",
    "demo.svc.clusterset.local.",
    "dns-version.clusterset.local.",
    "ns.dns.clusterset.local.",
    "nope.demo.svc.clusterset.local.",
    "_x._tcp.web.demo.svc.clusterset.local.",
    "1.2.96.10.in-addr.arpa.",
    "example.com.",
    "xclusterset.local.",
    "a-very-long-label-that-is-not-there.x.y.z.svc.clusterset.local.",
];

const TYPES: [RecordType; 12] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::NS,
    RecordType::TXT,
    RecordType::ANY,
    RecordType::MX,
    RecordType::CAA,
    RecordType::NULL,
    RecordType::AXFR,
];

/// No EDNS, small sizes that force truncation, common and large ones.
const EDNS: [Option<u16>; 6] = [None, Some(0), Some(512), Some(600), Some(1232), Some(4096)];

fn cases(name: &str) -> [String; 3] {
    let mixed: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 3 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    [name.to_owned(), name.to_ascii_uppercase(), mixed]
}

/// Requests that must all go to hickory on the fast server too.
fn odd_requests() -> Vec<Vec<u8>> {
    let web = "web.demo.svc.clusterset.local.";
    let mut out = Vec::new();
    let edit = |f: &dyn Fn(&mut Message)| {
        let mut m = query(web, RecordType::A, None);
        f(&mut m);
        m.to_vec().unwrap()
    };
    out.push(edit(&|m| {
        m.add_query(Query::query(
            Name::from_ascii(web).unwrap(),
            RecordType::AAAA,
        ));
    }));
    out.push(edit(&|m| m.metadata.op_code = OpCode::Notify));
    out.push(edit(&|m| {
        m.queries[0].set_query_class(DNSClass::CH);
    }));
    out.push(edit(&|m| {
        let mut e = Edns::new();
        e.set_version(1);
        m.set_edns(e);
    }));
    out.push(edit(&|m| {
        let mut e = Edns::new();
        e.set_dnssec_ok(true);
        m.set_edns(e);
    }));
    out.push(edit(&|m| {
        let mut e = Edns::new();
        let cookie = EdnsOption::Unknown(u16::from(EdnsCode::Cookie), vec![7; 8]);
        e.options_mut().insert(cookie);
        m.set_edns(e);
    }));
    out.push(
        Message::new(9, MessageType::Query, OpCode::Query)
            .to_vec()
            .unwrap(),
    );
    let whole = query(web, RecordType::A, None).to_vec().unwrap();
    out.push(whole[..whole.len() - 2].to_vec());
    out
}

/// One socket per server, so each exchange is a plain send and receive.
struct Client {
    sock: UdpSocket,
}

impl Client {
    async fn new(server: SocketAddr) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sock.connect(server).await.unwrap();
        Self { sock }
    }

    /// The response to `req` (matched by id), retried like a resolver would.
    async fn ask(&self, req: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 65535];
        for _ in 0..10 {
            self.sock.send(req).await.unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
            while let Ok(got) = tokio::time::timeout_at(deadline, self.sock.recv(&mut buf)).await {
                let n = got.unwrap();
                if n >= 2 && buf[..2] == req[..2] {
                    return buf[..n].to_vec();
                }
            }
        }
        panic!("no answer to {req:?}");
    }
}

/// SOA serials start at the Unix time of each server's start; nothing else may differ.
fn normalized(bytes: &[u8]) -> Message {
    let mut m = Message::from_vec(bytes).unwrap();
    for r in m.answers.iter_mut().chain(m.authorities.iter_mut()) {
        if let RData::SOA(soa) = &mut r.data {
            soa.serial = 0;
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_answers_as_hickory_does() {
    let hickory_cfg = causeway_dns::Config {
        udp_fast_path: false,
        ..config()
    };
    let fast_cfg = causeway_dns::Config {
        udp_workers: Some(2),
        ..config()
    };
    let reference = start_with(hickory_cfg, fixture()).await;
    let fast = start_with(fast_cfg, fixture()).await;
    let (a, b) = (
        Client::new(reference.addr).await,
        Client::new(fast.addr).await,
    );
    let mut requests = odd_requests();
    for name in NAMES {
        for asked in cases(name) {
            for t in TYPES {
                for edns in EDNS {
                    let mut q = query(&asked, t, edns);
                    // Flags the response copies: RD and CD.
                    q.metadata.recursion_desired = requests.len().is_multiple_of(2);
                    q.metadata.checking_disabled = requests.len().is_multiple_of(3);
                    requests.push(q.to_vec().unwrap());
                }
            }
        }
    }
    for req in &requests {
        let (want, got) = (a.ask(req).await, b.ask(req).await);
        assert_eq!(got.len(), want.len(), "{:?}", normalized(&want));
        assert_eq!(normalized(&got), normalized(&want));
    }
    eprintln!("{} requests compared", requests.len());
    let text = metrics_text(&fast);
    let fast_noerror = counter(
        &text,
        "dns_responses_total{transport=\"udp\",rcode=\"NOERROR\"}",
    );
    let ref_noerror = counter(
        &metrics_text(&reference),
        "dns_responses_total{transport=\"udp\",rcode=\"NOERROR\"}",
    );
    assert_eq!(fast_noerror, ref_noerror, "NOERROR counted alike");
    reference.stop().await;
    fast.stop().await;
}

fn metrics_text(s: &common::Running) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &s.registry).unwrap();
    text
}

fn counter(text: &str, series: &str) -> u64 {
    let value = text.lines().find_map(|l| l.strip_prefix(series));
    value.map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_load_and_count_answers() {
    let cfg = causeway_dns::Config {
        udp_workers: Some(2),
        ..config()
    };
    let s = start_with(cfg, fixture()).await;
    const CLIENTS: u64 = 64;
    for i in 0..CLIENTS {
        // A new socket (source port) per query: SO_REUSEPORT hashes on it.
        let c = Client::new(s.addr).await;
        let mut q = query("web.demo.svc.clusterset.local.", RecordType::A, None);
        q.metadata.id = i as u16;
        let m = Message::from_vec(&c.ask(&q.to_vec().unwrap()).await).unwrap();
        assert_eq!(m.answers[0].data.to_string(), "10.96.0.10");
    }
    let text = metrics_text(&s);
    let per_worker: Vec<u64> = (0..2)
        .map(|w| {
            counter(
                &text,
                &format!("dns_udp_worker_packets_total{{worker=\"{w}\"}}"),
            )
        })
        .collect();
    assert!(per_worker.iter().all(|n| *n > 0), "{per_worker:?}\n{text}");
    assert!(per_worker.iter().sum::<u64>() >= CLIENTS, "{per_worker:?}");
    let noerror = "dns_responses_total{transport=\"udp\",rcode=\"NOERROR\"}";
    assert!(counter(&text, noerror) >= CLIENTS, "{text}");
    tokio::time::timeout(DEADLINE, s.stop()).await.unwrap();
}
