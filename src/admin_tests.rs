use super::*;
use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET over a real socket: (status, body).
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp.split_once("\r\n\r\n").unwrap().1.to_owned();
    (status, body)
}

async fn start() -> (SocketAddr, ReadyHandle, Counter, CancellationToken) {
    let mut registry = Registry::with_prefix("causeway");
    let counter = Counter::default();
    registry.register("test_events", "Events seen by the test", counter.clone());
    let ready = Readiness::default();
    let handle = ready.register("gateway");
    let admin = Admin::new(
        Arc::new(registry),
        serde_json::json!({"cluster": "east"}),
        ready,
    )
    .route("/v1/extra", get(|| async { "extra\n" }));
    let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    tokio::spawn(admin.serve(listener, stop.clone()));
    (addr, handle, counter, stop)
}

#[tokio::test]
async fn endpoints() {
    let (addr, ready, counter, stop) = start().await;
    assert_eq!(http_get(addr, "/healthz").await, (200, "ok\n".into()));

    let (code, body) = http_get(addr, "/readyz").await;
    assert_eq!((code, body.as_str()), (503, "not ready: gateway\n"));
    ready.set(true);
    assert_eq!(http_get(addr, "/readyz").await.0, 200);

    counter.inc_by(3);
    let (code, body) = http_get(addr, "/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("causeway_test_events_total 3"), "{body}");

    let (code, body) = http_get(addr, "/v1/config").await;
    assert_eq!((code, body.as_str()), (200, r#"{"cluster":"east"}"#));
    assert_eq!(http_get(addr, "/v1/extra").await.1, "extra\n");
    assert_eq!(http_get(addr, "/nope").await.0, 404);
    assert_eq!(http_get(addr, "/../../etc/passwd").await.0, 404);
    stop.cancel();
}

#[tokio::test]
async fn garbage_gets_an_error_not_a_crash() {
    let (addr, _ready, _c, stop) = start().await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"\x00\x01garbage\r\n\r\n").await.unwrap();
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp).await;
    assert!(
        resp.is_empty() || resp.starts_with(b"HTTP/1.1 400"),
        "{resp:?}"
    );
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    stop.cancel();
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let e = bind(addr).await.unwrap_err().to_string();
    assert!(e.contains(&format!("admin.listen {addr}")), "{e}");
}
