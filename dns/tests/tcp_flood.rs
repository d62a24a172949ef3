//! Finding 10 (docs/security.md): idle TCP connections from one source
//! cannot pile up without bound; over the cap they are closed at once, and
//! other clients still get answers over TCP.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::RecordType;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const FLOOD: usize = causeway_dns::MAX_TCP_PER_SOURCE + 100;

async fn connect_from(src: [u8; 4], to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::from((src, 0))).unwrap();
    sock.connect(to).await.unwrap()
}

/// True when the server closed `c` (EOF or reset) within `wait`.
async fn closed(c: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, c.read(&mut b)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_from_one_source_are_capped() {
    let s = start(fixture()).await;
    let mut held = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        held.push(connect_from([127, 0, 0, 2], s.addr).await);
    }
    // Those over the cap are closed at once (well before the 10 s idle timeout).
    let started = Instant::now();
    let mut shut = 0;
    for c in held.iter_mut().rev().take(100) {
        if closed(c, Duration::from_secs(5)).await {
            shut += 1;
        }
    }
    assert_eq!(shut, 100, "connections over the per-source cap were kept");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    // The first ones are still open, and another client is answered over TCP.
    assert!(!closed(&mut held[0], Duration::from_millis(50)).await);
    let q = query("web.demo.svc.clusterset.local.", RecordType::A, None);
    let answer = tcp(s.addr, &q).await;
    assert!(!answer.answers.is_empty());
    drop(held);
    s.stop().await;
}
