use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

const LIMIT: Duration = Duration::from_secs(10);

fn alpha() -> ClusterStatus {
    ClusterStatus {
        cluster: "alpha".into(),
        admin: SocketAddr::from(([127, 0, 0, 1], 1)),
        error: None,
        peers: Vec::new(),
        imports: Vec::new(),
    }
}

async fn serve(stop: CancellationToken) -> SocketAddr {
    let source: Source = Arc::new(|| Box::pin(async { vec![alpha()] }));
    let app =
        axum::Router::new().route_service("/ui/events", Events::new(source, stop.clone()).route());
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await });
        let _ = serve.await;
    });
    addr
}

/// Opens `/ui/events` and reads until `until` shows up: (stream, text read).
async fn open(addr: SocketAddr, until: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let req = "GET /ui/events HTTP/1.1\r\nHost: x\r\n\r\n";
    s.write_all(req.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = read_until(&mut s, until).await;
    (s, text)
}

async fn read_until(s: &mut TcpStream, until: &str) -> String {
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let read = async {
        while !text.contains(until) {
            let n = s.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    let _ = tokio::time::timeout(LIMIT, read).await;
    text
}

#[tokio::test]
async fn pushes_views_to_a_bounded_number_of_viewers_and_ends_at_shutdown() {
    let stop = CancellationToken::new();
    let addr = serve(stop.clone()).await;
    let mut open_streams = Vec::new();
    for _ in 0..MAX_VIEWERS {
        let (s, text) = open(addr, "\"cluster\":\"alpha\"").await;
        assert!(
            text.starts_with("HTTP/1.1 200") && text.contains("text/event-stream"),
            "{text}"
        );
        assert!(
            text.contains("data: {\"status\":[{\"cluster\":\"alpha\""),
            "{text}"
        );
        assert!(
            text.contains("\"nodes\":[{\"name\":\"alpha\",\"state\":\"up\"}]"),
            "{text}"
        );
        open_streams.push(s);
    }
    let (_, refused) = open(addr, "close another tab").await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");

    // A viewer that leaves frees its slot (noticed at the next push).
    drop(open_streams.pop());
    let start = std::time::Instant::now();
    loop {
        let (s, text) = open(addr, "\r\n\r\n").await;
        if text.starts_with("HTTP/1.1 200") {
            open_streams.push(s);
            break;
        }
        assert!(start.elapsed() < LIMIT, "the slot was never freed: {text}");
        tokio::time::sleep(EVERY).await;
    }

    // Shutdown ends every stream, so the server can drain.
    stop.cancel();
    for s in &mut open_streams {
        let rest = read_until(s, "\u{0}never").await;
        assert!(rest.ends_with("0\r\n\r\n"), "stream not ended: {rest:?}");
    }
}
