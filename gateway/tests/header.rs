//! Hostile stream headers: silence, garbage and truncation get a status or a close, never a hang.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use causeway_gateway::protocol::{self, Request, Status};
use quinn::ReadError;
use support::*;

async fn setup(range: &str) -> (Mesh, quinn::Connection) {
    let mesh = Mesh::new(&[("a", "eu"), ("b", "eu")], range);
    mesh.set_exports(
        "b",
        vec![export(
            "demo/echo",
            7006,
            echo_server().await,
            ExportTo::All,
        )],
    );
    let conn = raw_connection(&mesh.pki[0], &mesh.pki[1], mesh.addrs[1]).await;
    (mesh, conn)
}

/// Sends `bytes` (then FIN if `fin`), and reads the answer to the end or a reset.
async fn exchange(conn: &quinn::Connection, bytes: &[u8], fin: bool) -> Result<Vec<u8>, ReadError> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    if fin {
        send.finish().unwrap();
    }
    let mut out = Vec::new();
    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
        out.extend_from_slice(&chunk.bytes);
    }
    Ok(out)
}

fn request() -> Vec<u8> {
    protocol::encode_request(&Request {
        service: key("demo/echo"),
        port: 7006,
        protocol: causeway_catalog::Protocol::Tcp,
        target: None,
        endpoint: None,
        traceparent: None,
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_stream_is_cut_off_at_the_header_timeout() {
    let (_mesh, conn) = setup("127.77.8.0/24").await;
    let t0 = Instant::now();
    // One byte makes the stream exist on the far side; the rest never comes.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        exchange(&conn, &[protocol::VERSION], false),
    )
    .await
    .unwrap();
    let took = t0.elapsed();
    println!("silent stream cut off after {took:?} (header timeout 2 s)");
    assert!(matches!(r, Err(ReadError::Reset(_))), "{r:?}");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_version_and_garbage_get_a_status_or_a_close() {
    let (mesh, conn) = setup("127.77.9.0/24").await;
    let mut v2 = request();
    v2[0] = 2;
    let out = exchange(&conn, &v2, true).await.unwrap();
    assert_eq!(
        out[..2],
        [protocol::VERSION, Status::UnsupportedVersion as u8]
    );

    let valid = request();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let t0 = Instant::now();
    const CASES: usize = 2000;
    for i in 0..CASES {
        let bytes: Vec<u8> = if i % 2 == 0 {
            // Truncated valid header.
            valid[..(next() as usize % valid.len())].to_vec()
        } else {
            // Random bytes behind a valid prefix, so the body parser sees garbage.
            let len = 1 + next() as usize % 64;
            let mut b = vec![protocol::VERSION, 0, len as u8];
            b.extend((0..len).map(|_| next() as u8));
            b
        };
        let r = tokio::time::timeout(Duration::from_secs(5), exchange(&conn, &bytes, true)).await;
        let r = r.unwrap_or_else(|_| panic!("case {i} hung: {bytes:?}"));
        if let Ok(out) = r {
            let status = out.get(1).copied();
            assert!(
                status.is_none() || status != Some(Status::Ok as u8),
                "case {i} was accepted: {bytes:?}"
            );
        }
    }
    println!("{CASES} hostile headers in {:?}", t0.elapsed());
    // The gateway still serves a valid request on the same connection, and nothing leaked.
    let mut ok = request();
    ok.extend_from_slice(b"hello");
    let out = exchange(&conn, &ok, true).await.unwrap();
    assert_eq!(out, [&[protocol::VERSION, 0, 0][..], b"hello"].concat());
    let b = mesh.node("b");
    wait_for(
        "every inbound stream ended",
        Duration::from_secs(5),
        || async { (b.metric("gateway_inbound_streams_open") == 0.0).then_some(()) },
    )
    .await;
    let handled = b.metric(
        "gateway_streams_total{cluster=\"a\",direction=\"inbound\",status=\"bad_request\"}",
    ) + b.metric(
        "gateway_streams_total{cluster=\"a\",direction=\"inbound\",status=\"header_error\"}",
    );
    assert_eq!(
        handled as usize, CASES,
        "every hostile stream was answered or cut off"
    );
}
