//! Attacks on the federation's listeners over real sockets (docs/security.md):
//! reading or feeding the local catalog feed without this cluster's
//! identity (finding 1), and holding the federation listener with idle
//! connections (finding 2).

#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use causeway_federation::PeerConnector;
use causeway_federation::proto::{self, catalog_watch_client::CatalogWatchClient};
use causeway_identity::{Ca, ReloadingCert, Validity, Workload};
use common::*;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(15);

/// Opens the feed at `addr` with `tls` (trusting the server per `tls`) and
/// reads the first message.
async fn read_feed(addr: SocketAddr, tls: rustls::ClientConfig, td: &str) -> Result<(), String> {
    let connector = PeerConnector::new(addr.to_string(), tls, td, LIMIT).unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(connector)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = CatalogWatchClient::new(channel);
    let mut stream = client
        .watch_catalog(proto::WatchRequest {})
        .await
        .map_err(|e| format!("watch: {e}"))?
        .into_inner();
    match stream.message().await {
        Ok(Some(_)) => Ok(()),
        other => Err(format!("read: {other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_feed_is_readable_only_by_this_clusters_gateway_and_dns() {
    init_tracing();
    let mesh = Mesh::start(&["a"], &[&export_yaml(&[("demo/web", "all")])]).await;
    let a = mesh.node("a");
    let addr = a.fed().watch_addr().unwrap();
    let td = a.id.td.to_string();
    // Plaintext, as every pod in the cluster could before.
    let plain = CatalogWatchClient::connect(format!("http://{addr}")).await;
    let refused = match plain {
        Err(_) => true,
        Ok(mut c) => c.watch_catalog(proto::WatchRequest {}).await.is_err(),
    };
    assert!(refused, "a plaintext client read the catalog feed");
    // Another cluster's gateway certificate, trusting a's federation.
    let evil = Identity::new("evil");
    let tls = |cert| causeway_identity::client_config(cert, &a.id.trust(), Workload::Federation);
    let foreign = tls(evil.workload_cert(Workload::Gateway)).unwrap();
    let err = read_feed(addr, foreign, &td).await.unwrap_err();
    assert!(!err.is_empty());
    // A certificate from a rogue CA that names a's own trust domain.
    let rogue = Ca::generate(&a.id.name, &a.id.td).unwrap();
    let rogue_cert = issue(&rogue, &evil, Workload::Gateway);
    assert!(
        read_feed(addr, tls(rogue_cert).unwrap(), &td)
            .await
            .is_err()
    );
    // a's own federation certificate is not a gateway or DNS.
    assert!(
        read_feed(addr, tls(a.id.cert()).unwrap(), &td)
            .await
            .is_err()
    );
    // This cluster's gateway and DNS can.
    for w in [Workload::Gateway, Workload::Dns] {
        let ok = tls(a.id.workload_cert(w)).unwrap();
        read_feed(addr, ok, &td).await.unwrap();
    }
    mesh.shutdown().await;
}

fn issue(ca: &Ca, dir_of: &Identity, w: Workload) -> Arc<ReloadingCert> {
    let dir = dir_of.dir.path().join("rogue");
    std::fs::create_dir_all(&dir).unwrap();
    ca.issue(w, Validity::default())
        .unwrap()
        .save(&dir, w, true)
        .unwrap();
    ReloadingCert::load(causeway_identity::CertPaths {
        cert: dir.join(format!("{w}.pem")),
        key: dir.join(format!("{w}-key.pem")),
    })
    .unwrap()
}

/// A server on the feed's address that is not this cluster's federation:
/// its certificate comes from a rogue CA naming this cluster's trust domain
/// and the federation workload. It reports each handshake's outcome.
async fn rogue_feed(cert: Arc<ReloadingCert>) -> (SocketAddr, mpsc::Receiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(causeway_identity::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let ok = acceptor.accept(tcp).await.is_ok();
            if tx.send(ok).await.is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rogue_server_cannot_feed_the_gateway() {
    init_tracing();
    let a = Identity::new("a");
    let rogue = Ca::generate(&a.name, &a.td).unwrap();
    let (addr, mut handshakes) = rogue_feed(issue(&rogue, &a, Workload::Federation)).await;
    let stop = CancellationToken::new();
    let followed =
        causeway_federation::watch_remote(a.watch_target(addr, Workload::Gateway), stop.clone());
    // The gateway dials, sees the rogue certificate and aborts, three times.
    for _ in 0..3 {
        let ok = tokio::time::timeout(LIMIT, handshakes.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(!ok, "the gateway completed a handshake with a rogue feed");
    }
    assert!(!followed.catalog.has_changed().unwrap());
    assert!(!followed.local_exports.has_changed().unwrap());
    assert!(followed.local_exports.borrow().is_empty());
    stop.cancel();
}

/// What the attacker has done so far.
#[derive(Default)]
struct Held {
    open: AtomicUsize,
    closed_by_server: AtomicUsize,
}

/// Keeps `n` idle connections (no byte sent) open to `target` from the
/// loopback addresses 127.0.0.2..=127.0.0.41 until `stop`, reopening any the
/// server closes. Each holder is bounded in reconnects and in time.
fn hold_idle(target: SocketAddr, n: usize, held: Arc<Held>, stop: CancellationToken) {
    for i in 0..n {
        let src = IpAddr::from([127, 0, 0, 2 + (i % 40) as u8]);
        let (held, stop) = (held.clone(), stop.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..1000 {
                if stop.is_cancelled() || started.elapsed() > 3 * LIMIT {
                    return;
                }
                let sock = TcpSocket::new_v4().unwrap();
                sock.bind(SocketAddr::new(src, 0)).unwrap();
                let Ok(mut conn) = sock.connect(target).await else {
                    continue;
                };
                held.open.fetch_add(1, Ordering::SeqCst);
                let mut b = [0u8; 1];
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = conn.read(&mut b) => {}
                }
                held.open.fetch_sub(1, Ordering::SeqCst);
                held.closed_by_server.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_idle_connections_do_not_keep_a_real_peer_out() {
    init_tracing();
    let mut mesh = Mesh::start(&["a", "b"], &[&export_yaml(&[("demo/web", "all")])]).await;
    mesh.nodes[1].kill().await;
    let target = mesh.nodes[0].addr;
    let (held, stop) = (Arc::new(Held::default()), CancellationToken::new());
    hold_idle(target, 600, held.clone(), stop.clone());
    wait_until("the attacker holds 600 idle connections", LIMIT, || {
        held.open.load(Ordering::SeqCst) >= 600
    })
    .await;
    mesh.boot(1, false).await;
    let b = mesh.node("b");
    wait_until("b imports a's export through the attack", LIMIT, || {
        has(&b.catalog(), "demo/web")
    })
    .await;
    // Idle connections are shed at the first-byte deadline, not held.
    wait_until("the server closes idle connections", LIMIT, || {
        held.closed_by_server.load(Ordering::SeqCst) >= 100
    })
    .await;
    stop.cancel();
    mesh.shutdown().await;
}
