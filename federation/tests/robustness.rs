//! Misbehaving peers: garbage, oversized messages, stalls and untrusted
//! certificates cost only their own session; other peers are unaffected.

#![allow(clippy::unwrap_used)]

mod common;
mod fake_peer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use causeway_catalog::Freshness;
use causeway_federation::proto;
use causeway_federation::{Federation, PeerConnector, PeerEndpoint};
use causeway_identity::{PeerSet, ReloadingCert, Workload};
use common::*;
use fake_peer::port;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy)]
enum Mode {
    Garbage,
    Oversized,
    Stall,
    Good,
    Junk,
}

fn export(name: &str, port_number: u32) -> proto::Export {
    proto::Export {
        namespace: "fake".into(),
        name: name.into(),
        ports: vec![port("http", port_number)],
        ..Default::default()
    }
}

impl Mode {
    /// What the fake X sends at the start of each session.
    fn replies(self) -> Vec<proto::Update> {
        let snapshot = |exports| fake_peer::snapshot("rx", "zx", vec![], exports);
        match self {
            Mode::Garbage => vec![snapshot(vec![export("ok", 80), export("Not_A_Name", 0)])],
            Mode::Oversized => {
                let many = (0..5000).map(|i| export(&format!("svc{i}"), 80)).collect();
                vec![snapshot(many)]
            }
            Mode::Stall => vec![],
            Mode::Good | Mode::Junk => vec![snapshot(vec![export("ok", 80)])],
        }
    }
}

/// A TLS server (with X's real certificate) that answers HTTP/2 with junk bytes.
async fn serve_junk(
    cert: Arc<ReloadingCert>,
    clients: Vec<causeway_identity::PeerTrust>,
    stop: &CancellationToken,
) -> (SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(PeerSet::new(clients).unwrap());
    let mut tls = causeway_identity::server_config(cert, peers, Workload::Federation).unwrap();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let accepted = Arc::new(AtomicUsize::new(0));
    let (count, stop) = (accepted.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a.unwrap(),
            };
            let Ok(mut conn) = acceptor.accept(tcp).await else {
                continue;
            };
            count.fetch_add(1, Ordering::SeqCst);
            let _ = conn.write_all(&[0xde, 0xad, 0xbe, 0xef].repeat(64)).await;
            let _ = conn.flush().await;
            // Keep it open: the client must notice on its own.
            tokio::spawn(async move {
                tokio::time::sleep(LIMIT).await;
                drop(conn);
            });
        }
    });
    (addr, accepted)
}

struct Setup {
    a: Node,
    b: Node,
    calls: Arc<AtomicUsize>,
    stop: CancellationToken,
}

async fn boot(n: &mut Node, peers: Vec<PeerEndpoint>, max_message: usize) {
    let mut inputs = inputs_for(n, peers);
    inputs.cfg.max_message_size = max_message;
    n.stop = inputs.shutdown.clone();
    n.fed = Some(Federation::start(inputs, &mut n.registry).await.unwrap());
}

/// A with peers B (real) and X (a fake server in `mode`); X's server
/// certificate comes from X's CA, or from an impostor CA if `impostor`.
async fn setup(mode: Mode, impostor: bool) -> Setup {
    init_tracing();
    let (mut a, mut b) = (
        Node::new("a", "exports: []\n"),
        Node::new("b", &export_yaml(&[("demo/web", "all")])),
    );
    let x = Identity::new("x");
    let stop = CancellationToken::new();
    let x_cert = if impostor {
        Identity::new("x").cert()
    } else {
        x.cert()
    };
    let (x_addr, calls) = match mode {
        Mode::Junk => serve_junk(x_cert, vec![a.id.trust()], &stop).await,
        _ => {
            let replies = move || mode.replies();
            let x = fake_peer::serve(x_cert, vec![a.id.trust()], LIMIT, &stop, replies).await;
            (x.addr, x.calls)
        }
    };
    let a_peers = vec![
        PeerEndpoint {
            trust: b.id.trust(),
            addr: b.addr.to_string(),
            policy: Default::default(),
        },
        PeerEndpoint {
            trust: x.trust(),
            addr: x_addr.to_string(),
            policy: Default::default(),
        },
    ];
    let b_peers = vec![PeerEndpoint {
        trust: a.id.trust(),
        addr: a.addr.to_string(),
        policy: Default::default(),
    }];
    boot(&mut a, a_peers, 64 * 1024).await;
    boot(&mut b, b_peers, 64 * 1024).await;
    Setup { a, b, calls, stop }
}

impl Setup {
    /// X is retried (at least `n` sessions) while B stays fresh and imported.
    async fn assert_x_retried_b_unaffected(&self, n: usize, error: &str) {
        let a = &self.a;
        wait_until("a imports b's export", LIMIT, || {
            has(&a.catalog(), "demo/web")
        })
        .await;
        wait_until("a retried x", LIMIT, || {
            self.calls.load(Ordering::SeqCst) >= n
        })
        .await;
        let hb = a.status("b").heartbeats;
        wait_until("b keeps sending heartbeats", LIMIT, || {
            a.status("b").heartbeats >= hb + 2
        })
        .await;
        let x = a.status("x");
        let err = x.last_error.clone().unwrap_or_default();
        assert!(
            err.contains(error),
            "x's last error {err:?} should mention {error:?}"
        );
        assert!(x.reconnects >= 1, "{x:?}");
        assert_eq!(a.status("b").freshness, Some(Freshness::Fresh));
        assert_eq!(
            a.status("b").snapshots,
            1,
            "b's session was never disturbed"
        );
        assert!(
            !a.catalog().imports.keys().any(|k| k.namespace() == "fake"),
            "nothing of x's is imported"
        );
    }

    async fn shutdown(mut self) {
        self.stop.cancel();
        self.a.kill().await;
        self.b.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_garbage_is_dropped_and_retried() {
    let s = setup(Mode::Garbage, false).await;
    s.assert_x_retried_b_unaffected(3, "sent an invalid message")
        .await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_sending_junk_bytes_is_dropped_and_retried() {
    let s = setup(Mode::Junk, false).await;
    // The junk reads as an HTTP/2 frame far over the size limit: the connection dies.
    s.assert_x_retried_b_unaffected(3, "subscribe failed").await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_and_retried() {
    let s = setup(Mode::Oversized, false).await;
    s.assert_x_retried_b_unaffected(3, "message length too large")
        .await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_peer_is_dropped_and_retried() {
    let s = setup(Mode::Stall, false).await;
    s.assert_x_retried_b_unaffected(3, "sent nothing for").await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_after_its_snapshot_is_dropped_and_retried() {
    // A good snapshot, then no heartbeats: the lease runs, the session is retried.
    let s = setup(Mode::Good, false).await;
    wait_until("a imports x's export", LIMIT, || {
        has(&s.a.catalog(), "fake/ok")
    })
    .await;
    wait_until("a retried x", LIMIT, || s.calls.load(Ordering::SeqCst) >= 3).await;
    let err = s.a.status("x").last_error.unwrap_or_default();
    assert!(err.contains("sent nothing for"), "{err}");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_an_untrusted_server_certificate_is_refused() {
    let s = setup(Mode::Good, true).await;
    let a = &s.a;
    wait_until("a imports b's export", LIMIT, || {
        has(&a.catalog(), "demo/web")
    })
    .await;
    wait_until("a tried x twice", LIMIT, || a.status("x").reconnects >= 2).await;
    let x = a.status("x");
    assert_eq!(
        s.calls.load(Ordering::SeqCst),
        0,
        "no request reached the impostor"
    );
    assert!(x.freshness.is_none(), "{x:?}");
    let err = x.last_error.unwrap_or_default();
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_an_untrusted_certificate_is_refused_at_tls() {
    let s = setup(Mode::Good, false).await;
    let a = &s.a;
    // An impostor CA that claims b's name and trust domain: not b's bundle, refused.
    let impostor = Identity::new("b");
    let tls =
        causeway_identity::client_config(impostor.cert(), &a.id.trust(), Workload::Federation)
            .unwrap();
    let connector = PeerConnector::new(a.addr.to_string(), tls, a.id.td.as_str(), LIMIT).unwrap();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", a.addr)).unwrap();
    let refused = match endpoint.connect_with_connector(connector).await {
        Err(_) => true,
        Ok(channel) => {
            let mut client = proto::federation_client::FederationClient::new(channel);
            let req = proto::SubscribeRequest {
                epoch: 0,
                version: 0,
            };
            match client.subscribe(req).await {
                Err(_) => true,
                // TLS 1.3 clients learn of a refused certificate on their first read.
                Ok(r) => r.into_inner().message().await.is_err(),
            }
        }
    };
    assert!(
        refused,
        "a's listener must refuse a certificate outside b's bundle"
    );
    // The real b is still served.
    wait_until("b imports from a", LIMIT, || {
        s.b.status("a").freshness == Some(Freshness::Fresh)
    })
    .await;
    s.shutdown().await;
}
