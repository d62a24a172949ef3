use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use super::*;
use crate::status::PeerRow;

/// A stand-in admin endpoint serving a fixed `/v1/status`.
async fn admin(st: ClusterStatus) -> (SocketAddr, CancellationToken) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let stop = CancellationToken::new();
    let app = Router::new().route("/v1/status", get(move || async move { axum::Json(st) }));
    let s = stop.clone();
    tokio::spawn(async move {
        let serve =
            axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await });
        let _ = serve.await;
    });
    (addr, stop)
}

#[tokio::test]
async fn polls_every_cluster_and_marks_the_silent_one_down() {
    let row = PeerRow {
        name: "bravo".into(),
        state: "connected".into(),
        freshness: None,
        last_heard_ms_ago: Some(10),
        reconnects: 0,
        last_error: None,
        rtt_ms: None,
        transport: None,
        rates: None,
    };
    let alpha = ClusterStatus {
        cluster: "alpha".into(),
        admin: SocketAddr::from(([127, 0, 0, 1], 9)),
        error: None,
        peers: vec![row],
        imports: Vec::new(),
    };
    let (a, stop) = admin(alpha).await;
    // bravo's admin: an address nothing listens on any more.
    let gone = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = gone.local_addr().unwrap_or_else(|e| panic!("{e}"));
    drop(gone);
    let clusters = vec![("alpha".to_owned(), a), ("bravo".to_owned(), b)];
    let polled = poll(&clusters).await;
    assert_eq!(
        polled[0].admin, a,
        "the address polled, not the one reported"
    );
    assert!(polled[0].error.is_none(), "{:?}", polled[0].error);
    assert!(
        polled[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("/v1/status")),
        "{:?}",
        polled[1].error
    );
    let v = super::super::topology::view(polled);
    assert_eq!(v.links.len(), 1);
    assert_eq!(v.links[0].state, "down");
    stop.cancel();
}
