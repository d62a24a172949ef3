//! A fake peer federation for hostile and broken-peer tests: a real gRPC
//! server over mutual TLS whose `Subscribe` sends what the test says, then
//! stays open and silent (no heartbeats).
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use causeway_federation::proto::{self, federation_server::FederationServer, update::Kind};
use causeway_identity::{PeerSet, PeerTrust, ReloadingCert, Workload};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

type Updates = Pin<Box<dyn Stream<Item = Result<proto::Update, Status>> + Send>>;

/// What the fake sends at the start of each session.
type Replies = Box<dyn Fn() -> Vec<proto::Update> + Send + Sync>;

struct Fake {
    replies: Replies,
    calls: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl proto::federation_server::Federation for Fake {
    type SubscribeStream = Updates;

    async fn subscribe(
        &self,
        _: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Updates>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let first = (self.replies)();
        let s = futures::stream::iter(first.into_iter().map(Ok)).chain(futures::stream::pending());
        Ok(Response::new(Box::pin(s)))
    }
}

/// A running fake: where it listens and how many sessions reached it.
pub struct FakePeer {
    pub addr: SocketAddr,
    pub calls: Arc<AtomicUsize>,
}

/// Serves a fake peer with `cert`, trusting `clients`, until `stop`; each
/// session gets `replies()` and then silence.
pub async fn serve(
    cert: Arc<ReloadingCert>,
    clients: Vec<PeerTrust>,
    handshake_timeout: Duration,
    stop: &CancellationToken,
    replies: impl Fn() -> Vec<proto::Update> + Send + Sync + 'static,
) -> FakePeer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(PeerSet::new(clients).unwrap());
    let tls = causeway_identity::server_config(cert, peers.clone(), Workload::Federation).unwrap();
    let t = TaskTracker::new();
    let incoming =
        causeway_federation::incoming(listener, tls, peers, handshake_timeout, t, stop.clone());
    let calls = Arc::new(AtomicUsize::new(0));
    let fake = Fake {
        replies: Box::new(replies),
        calls: calls.clone(),
    };
    let svc = FederationServer::new(fake).max_encoding_message_size(64 << 20);
    let stop = stop.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
            .unwrap();
    });
    FakePeer { addr, calls }
}

/// A snapshot from cluster `x` (trust domain `x.test.causeway`).
pub fn snapshot(
    region: &str,
    zone: &str,
    gateways: Vec<String>,
    exports: Vec<proto::Export>,
) -> proto::Update {
    let cluster = proto::ClusterInfo {
        name: "x".into(),
        region: region.into(),
        zone: zone.into(),
        trust_domain: "x.test.causeway".into(),
        gateways,
    };
    proto::Update {
        kind: Some(Kind::Snapshot(proto::Snapshot {
            epoch: 1,
            version: 1,
            cluster: Some(cluster),
            exports,
        })),
    }
}

/// A TCP port as the wire carries it.
pub fn port(name: &str, number: u32) -> proto::Port {
    proto::Port {
        name: name.into(),
        number,
        protocol: proto::Protocol::Tcp.into(),
        ..Default::default()
    }
}
