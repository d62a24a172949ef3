//! Certificate rotation: new handshakes use the new files, open connections
//! carry on, and bad new files never replace a good certificate.
// Test helpers: a panic is how a test fails (clippy.toml only covers #[test] fns).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use causeway_identity::{
    CertPaths, Leaf, LoadError, PeerSet, ReloadingCert, Validity, Workload, client_config,
    server_config,
};
use common::{Cluster, DAY, handshake, peer_leaf};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const LIMIT: Duration = Duration::from_secs(5);

fn leaf_der(leaf: &Leaf) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()
}

fn gateway_paths(dir: &Path) -> CertPaths {
    CertPaths {
        cert: dir.join("gateway.pem"),
        key: dir.join("gateway-key.pem"),
    }
}

/// A TLS echo server on loopback.
async fn echo_server(config: rustls::ServerConfig) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = tls.read(&mut buf).await {
                    if tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

async fn dial(addr: SocketAddr, config: rustls::ClientConfig, name: &str) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let connector = TlsConnector::from(Arc::new(config));
    timeout(LIMIT, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap()
}

async fn echo(stream: &mut TlsStream<TcpStream>, msg: &[u8]) {
    stream.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    timeout(LIMIT, stream.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf, msg);
}

fn presented(stream: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    peer_leaf(stream.get_ref().1)
}

/// east serves a gateway certificate from `dir`; west connects to it.
struct Setup {
    east: Cluster,
    west: Cluster,
    dir: TempDir,
    first: Leaf,
    server_cert: Arc<ReloadingCert>,
}

impl Setup {
    fn new() -> Self {
        let (east, west) = (Cluster::new("east"), Cluster::new("west"));
        let dir = TempDir::new().unwrap();
        let first = east
            .ca
            .issue(Workload::Gateway, Validity::for_duration(10 * DAY))
            .unwrap();
        first.save(dir.path(), Workload::Gateway, false).unwrap();
        let server_cert = ReloadingCert::load(gateway_paths(dir.path())).unwrap();
        Setup {
            east,
            west,
            dir,
            first,
            server_cert,
        }
    }

    fn server(&self) -> rustls::ServerConfig {
        let peers = Arc::new(PeerSet::new(vec![self.west.trust()]).unwrap());
        server_config(self.server_cert.clone(), peers, Workload::Gateway).unwrap()
    }

    fn client(&self) -> rustls::ClientConfig {
        let cert = self.west.cert(Workload::Gateway);
        client_config(cert, &self.east.trust(), Workload::Gateway).unwrap()
    }

    /// What a new in-memory handshake with east presents.
    fn presented_now(&self) -> CertificateDer<'static> {
        let (client, _) = handshake(self.client(), self.server(), &self.east.td).unwrap();
        peer_leaf(&client)
    }

    fn rotate(&self, lifetime: Duration) -> Leaf {
        let next = self
            .east
            .ca
            .issue(Workload::Gateway, Validity::for_duration(lifetime))
            .unwrap();
        next.save(self.dir.path(), Workload::Gateway, true).unwrap();
        next
    }

    fn write(&self, file: &str, contents: &str) {
        std::fs::write(self.dir.path().join(file), contents).unwrap();
    }
}

#[tokio::test]
async fn new_handshakes_use_the_rotated_certificate_and_open_connections_survive() {
    let setup = Setup::new();
    let addr = echo_server(setup.server()).await;
    let mut old = dial(addr, setup.client(), setup.east.td.as_str()).await;
    echo(&mut old, b"before rotation").await;
    assert_eq!(presented(&old), leaf_der(&setup.first));

    let second = setup.rotate(20 * DAY);
    assert!(setup.server_cert.reload_if_changed().unwrap());
    assert!(
        !setup.server_cert.reload_if_changed().unwrap(),
        "unchanged files reload again"
    );

    let mut new = dial(addr, setup.client(), setup.east.td.as_str()).await;
    echo(&mut new, b"after rotation").await;
    assert_eq!(presented(&new), leaf_der(&second));
    let extra = common::not_after(&presented(&new)) - common::not_after(&presented(&old));
    assert!(
        (9 * 86400..=11 * 86400).contains(&extra),
        "not_after moved by {extra}s"
    );

    // The connection made before the rotation still works on its old certificate.
    echo(&mut old, b"still here").await;
    assert_eq!(presented(&old), leaf_der(&setup.first));
}

#[tokio::test]
async fn spawn_watch_picks_up_a_rotated_certificate() {
    let setup = Setup::new();
    let watch = setup.server_cert.spawn_watch(Duration::from_millis(20));
    let addr = echo_server(setup.server()).await;
    let second = setup.rotate(20 * DAY);
    let expected = leaf_der(&second);

    let deadline = Instant::now() + LIMIT;
    while setup.server_cert.certified_key().cert[0] != expected {
        assert!(
            Instant::now() < deadline,
            "the watcher never loaded the new certificate"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut conn = dial(addr, setup.client(), setup.east.td.as_str()).await;
    echo(&mut conn, b"hello").await;
    assert_eq!(presented(&conn), expected);
    let left = setup
        .server_cert
        .not_after()
        .unwrap()
        .duration_since(std::time::SystemTime::now());
    assert!(left.unwrap() > 19 * DAY);
    watch.abort();
}

#[tokio::test]
async fn the_watcher_stops_once_nobody_holds_the_certificate() {
    let setup = Setup::new();
    let watch = setup.server_cert.spawn_watch(Duration::from_millis(10));
    drop(setup);
    timeout(LIMIT, watch).await.unwrap().unwrap();
}

#[test]
fn bad_rotated_files_keep_the_old_certificate_in_force() {
    let setup = Setup::new();
    let first = leaf_der(&setup.first);
    let cert = &setup.server_cert;

    setup.write("gateway.pem", "garbage");
    let err = cert.reload_if_changed().unwrap_err();
    assert!(err.to_string().contains("holds no PEM data"), "{err}");
    assert_eq!(setup.presented_now(), first);
    // The same bad files are reported once, not on every poll.
    assert!(!cert.reload_if_changed().unwrap());

    setup.write("gateway-key.pem", "");
    let err = cert.reload_if_changed().unwrap_err();
    assert!(matches!(err, LoadError::Empty { .. }), "{err}");
    assert_eq!(setup.presented_now(), first);

    // A rotation caught half-way (new certificate, old key) is refused...
    let next = setup
        .east
        .ca
        .issue(Workload::Gateway, Validity::default())
        .unwrap();
    setup.write("gateway.pem", &next.cert_pem);
    setup.write("gateway-key.pem", &setup.first.key_pem);
    let err = cert.reload_if_changed().unwrap_err();
    assert!(matches!(err, LoadError::KeyMismatch { .. }), "{err}");
    assert_eq!(setup.presented_now(), first);
    // ...and completes once the key arrives.
    setup.write("gateway-key.pem", &next.key_pem);
    assert!(cert.reload_if_changed().unwrap());
    assert_eq!(setup.presented_now(), leaf_der(&next));
}

#[test]
fn a_rotation_may_not_change_the_identity() {
    let setup = Setup::new();
    let other = setup
        .east
        .ca
        .issue(Workload::Federation, Validity::default())
        .unwrap();
    setup.write("gateway.pem", &other.cert_pem);
    setup.write("gateway-key.pem", &other.key_pem);
    let err = setup
        .server_cert
        .reload_if_changed()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("now names spiffe://east.demo.causeway/federation, but this process runs as spiffe://east.demo.causeway/gateway"),
        "{err}"
    );
    assert_eq!(setup.presented_now(), leaf_der(&setup.first));
    assert_eq!(
        setup.server_cert.spiffe_id().to_string(),
        "spiffe://east.demo.causeway/gateway"
    );
}

#[test]
fn a_briefly_missing_file_keeps_the_old_certificate() {
    let setup = Setup::new();
    std::fs::remove_file(setup.dir.path().join("gateway-key.pem")).unwrap();
    let err = setup.server_cert.reload_if_changed().unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
    assert_eq!(setup.presented_now(), leaf_der(&setup.first));
}
