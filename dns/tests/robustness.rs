//! 10,000 random and mutated packets over UDP (and some over TCP), then correct
//! queries must still get correct answers, with no panic anywhere in the server.

#![allow(clippy::unwrap_used)] // tests may unwrap (workspace lint policy)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{fixture, query, start, udp};
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const PACKETS: usize = 10_000;
const TCP_CONNECTIONS: usize = 200;
/// A liveness probe after every this many packets shows the server answering
/// throughout, and paces the load so the server's socket buffer (a few hundred
/// datagrams) never overflows: the mutants are all read, not dropped by the kernel.
const PROBE_EVERY: usize = 50;
const BUDGET: Duration = Duration::from_secs(60);

/// Valid queries that mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let names = [
        ("web.demo.svc.clusterset.local.", RecordType::A),
        ("_http._tcp.web.demo.svc.clusterset.local.", RecordType::SRV),
        ("10.0.96.10.in-addr.arpa.", RecordType::PTR),
        ("big.demo.svc.clusterset.local.", RecordType::A),
        ("clusterset.local.", RecordType::ANY),
    ];
    let mut out = Vec::new();
    for (name, t) in names {
        out.push(query(name, t, None).to_vec().unwrap());
        out.push(query(name, t, Some(4096)).to_vec().unwrap());
    }
    let mut m = query("dual.demo.svc.clusterset.local.", RecordType::AAAA, None);
    let mut e = Edns::new();
    e.set_max_payload(1232);
    m.set_edns(e);
    out.push(m.to_vec().unwrap());
    out
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut p = seed.to_vec();
    match rng.random_range(0..6) {
        // Pure noise of any length a UDP packet might have.
        0 => (0..rng.random_range(0..700))
            .map(|_| rng.random())
            .collect(),
        // Truncated query.
        1 => {
            p.truncate(rng.random_range(0..p.len()));
            p
        }
        // Flipped bytes anywhere, header included.
        2 => {
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(0..p.len());
                p[i] = rng.random();
            }
            p
        }
        // Absurd section counts.
        3 => {
            let i = 4 + 2 * rng.random_range(0..4);
            p[i] = rng.random();
            p[i + 1] = rng.random();
            p
        }
        // A compression pointer, possibly looping, spliced into the name.
        4 => {
            let i = rng.random_range(12..p.len());
            p[i] = 0xc0 | rng.random_range(0..0x3f);
            if i + 1 < p.len() {
                p[i + 1] = rng.random();
            }
            p
        }
        // Trailing garbage.
        _ => {
            p.extend((0..rng.random_range(1..300)).map(|_| rng.random::<u8>()));
            p
        }
    }
}

/// Counts replies on `sock` until the one with `id` (sent last) arrives.
async fn drain_until(sock: Arc<UdpSocket>, id: u16) -> usize {
    let mut buf = vec![0u8; 65535];
    let mut n = 0;
    loop {
        let got = tokio::time::timeout(common::DEADLINE, sock.recv(&mut buf)).await;
        let len = got.expect("the last probe is answered").unwrap();
        n += 1;
        if len >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return n;
        }
    }
}

async fn probe(addr: SocketAddr) {
    let m = udp(
        addr,
        &query("web.demo.svc.clusterset.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers[0].data.to_string(), "10.96.0.10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_random_and_mutated_packets() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let s = start(fixture()).await;
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(0x5eed_d115);
    let seeds = seeds();
    let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let probe_done = query("web.demo.svc.clusterset.local.", RecordType::TXT, None);
    let counter = tokio::spawn(drain_until(sock.clone(), probe_done.metadata.id));
    for i in 0..PACKETS {
        assert!(started.elapsed() < BUDGET, "load loop over its time budget");
        let seed = &seeds[rng.random_range(0..seeds.len())];
        sock.send_to(&mutate(&mut rng, seed), s.addr).await.unwrap();
        if i % PROBE_EVERY == 0 {
            probe(s.addr).await;
        }
    }
    // The mutants were parsed, not dropped unseen: some got (error) answers.
    sock.send_to(&probe_done.to_vec().unwrap(), s.addr)
        .await
        .unwrap();
    let replies = counter.await.unwrap();
    assert!(
        replies > PACKETS / 2,
        "only {replies} replies to {PACKETS} packets"
    );
    eprintln!("{replies} replies to {PACKETS} random/mutated UDP packets");
    for _ in 0..TCP_CONNECTIONS {
        let seed = &seeds[rng.random_range(0..seeds.len())];
        let body = mutate(&mut rng, seed);
        let mut c = TcpStream::connect(s.addr).await.unwrap();
        // A length prefix that may lie about the body.
        let len: u16 = if rng.random() {
            body.len() as u16
        } else {
            rng.random()
        };
        let _ = c.write_all(&len.to_be_bytes()).await;
        let _ = c.write_all(&body).await;
        drop(c);
    }

    // Correct queries still get correct answers, over both transports.
    probe(s.addr).await;
    let tcp = common::tcp(
        s.addr,
        &query("big.demo.svc.clusterset.local.", RecordType::A, None),
    )
    .await;
    assert_eq!(tcp.answers.len(), 60);
    let srv = query(
        "_https._tcp.web.demo.svc.clusterset.local.",
        RecordType::SRV,
        None,
    );
    let m: Message = udp(s.addr, &srv).await;
    assert_eq!(
        m.answers[0].data.to_string(),
        "0 100 443 web.demo.svc.clusterset.local."
    );
    assert!(
        !s.task.is_finished(),
        "the server task must still be running"
    );
    assert_eq!(
        panics.load(Ordering::SeqCst),
        0,
        "no panic in any server task"
    );
    s.stop().await;
}
