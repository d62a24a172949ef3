//! The exporter side: serves `Subscribe` to peers, each stream filtered by the
//! subscriber's verified identity.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_catalog::ClusterId;
use causeway_identity::PeerSet;
use futures::Stream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

use crate::exporter::{CatchUp, Exporter};
use crate::metrics::{Kind, Metrics};
use crate::proto::{self, update};
use crate::rotation::Rotation;
use crate::transport::PeerInfo;

/// Messages buffered per subscriber before its stream counts as stalled.
const STREAM_BUFFER: usize = 8;

pub struct FederationService {
    pub exporter: Arc<Mutex<Exporter>>,
    /// The exporter's version, bumped after each change.
    pub changes: watch::Receiver<u64>,
    pub heartbeat: Duration,
    /// A subscriber that does not take a message within this long is dropped.
    pub send_timeout: Duration,
    pub metrics: Metrics,
    /// Who is a peer now: a subscriber unlinked while subscribed is cut off
    /// at its next heartbeat.
    pub peers: Arc<PeerSet>,
    /// This cluster's CA rotation in progress, told to every subscriber.
    pub rotation: watch::Receiver<Option<Arc<Rotation>>>,
    pub tasks: TaskTracker,
    pub shutdown: CancellationToken,
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<proto::Update, Status>> + Send>>;

#[tonic::async_trait]
impl proto::federation_server::Federation for FederationService {
    type SubscribeStream = UpdateStream;

    async fn subscribe(
        &self,
        request: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        if self.shutdown.is_cancelled() {
            return Err(Status::unavailable("this federation is shutting down"));
        }
        // Only the TLS layer's verdict counts: nothing in the request names the caller.
        let Some(peer) = request.extensions().get::<PeerInfo>().cloned() else {
            return Err(Status::unauthenticated(
                "no verified peer certificate on this connection",
            ));
        };
        let req = request.into_inner();
        tracing::info!(peer = %peer.cluster, remote = %peer.remote, epoch = req.epoch, version = req.version, "subscriber connected");
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let feed = Feed {
            exporter: self.exporter.clone(),
            changes: self.changes.clone(),
            subscriber: peer.cluster,
            tx,
            send_timeout: self.send_timeout,
            metrics: self.metrics.clone(),
            peers: self.peers.clone(),
            rotation: self.rotation.clone(),
        };
        let (heartbeat, shutdown) = (self.heartbeat, self.shutdown.clone());
        self.tasks
            .spawn(feed.run(req.epoch, req.version, heartbeat, shutdown));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One subscriber's stream.
struct Feed {
    exporter: Arc<Mutex<Exporter>>,
    changes: watch::Receiver<u64>,
    subscriber: ClusterId,
    tx: mpsc::Sender<Result<proto::Update, Status>>,
    send_timeout: Duration,
    metrics: Metrics,
    peers: Arc<PeerSet>,
    rotation: watch::Receiver<Option<Arc<Rotation>>>,
}

/// Where a subscriber's stream is: the epoch and version it has been sent.
#[derive(Clone, Copy)]
struct Sent {
    epoch: u64,
    version: u64,
}

impl Feed {
    async fn run(mut self, epoch: u64, version: u64, every: Duration, shutdown: CancellationToken) {
        let Some(mut sent) = self.open(epoch, version).await else {
            return;
        };
        let announced = self.rotation.borrow_and_update().is_some();
        if announced && !self.announce().await {
            return;
        }
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ok = tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.tx.closed() => return,
                r = self.changes.changed() => match r {
                    Ok(()) => self.follow(&mut sent).await,
                    Err(_) => return,
                },
                r = self.rotation.changed() => match r {
                    Ok(()) => self.announce().await,
                    Err(_) => return,
                },
                _ = tick.tick() => {
                    if !self.peers.contains(&self.subscriber) {
                        return self.unlinked().await;
                    }
                    let hb = proto::Heartbeat { epoch: sent.epoch, version: sent.version };
                    self.send(update::Kind::Heartbeat(hb), Kind::Heartbeat).await
                }
            };
            if !ok {
                return;
            }
        }
    }

    /// Tells the subscriber this cluster's CA rotation (or its withdrawal).
    async fn announce(&mut self) -> bool {
        let b = self
            .rotation
            .borrow_and_update()
            .as_deref()
            .map(Rotation::to_proto)
            .unwrap_or_default();
        self.send(update::Kind::TrustBundle(b), Kind::TrustBundle)
            .await
    }

    /// Ends the stream of a subscriber that is no longer a peer.
    async fn unlinked(&self) {
        tracing::info!(peer = %self.subscriber, "subscriber is no longer a peer; ending its stream");
        let status = Status::permission_denied(format!(
            "{} is no longer a peer of this cluster (unlinked)",
            self.subscriber
        ));
        let _ = tokio::time::timeout(self.send_timeout, self.tx.send(Err(status))).await;
    }

    /// The first message: a snapshot, or an acceptance of the resume point plus deltas.
    async fn open(&mut self, epoch: u64, version: u64) -> Option<Sent> {
        self.changes.borrow_and_update();
        let (catch_up, resumed) = {
            let x = self.exporter.lock().unwrap_or_else(|p| p.into_inner());
            (
                x.catch_up(&self.subscriber, epoch, version),
                x.resumed(version),
            )
        };
        let mut sent = Sent { epoch, version };
        if let CatchUp::Deltas(_) = catch_up
            && !self
                .send(update::Kind::Resumed(resumed), Kind::Resumed)
                .await
        {
            return None;
        }
        self.deliver(catch_up, &mut sent).await.then_some(sent)
    }

    /// Sends whatever changed since `sent`.
    async fn follow(&mut self, sent: &mut Sent) -> bool {
        self.changes.borrow_and_update();
        let catch_up = {
            let x = self.exporter.lock().unwrap_or_else(|p| p.into_inner());
            x.catch_up(&self.subscriber, sent.epoch, sent.version)
        };
        self.deliver(catch_up, sent).await
    }

    async fn deliver(&mut self, catch_up: CatchUp, sent: &mut Sent) -> bool {
        match catch_up {
            CatchUp::Snapshot(s) => {
                *sent = Sent {
                    epoch: s.epoch,
                    version: s.version,
                };
                self.send(update::Kind::Snapshot(s), Kind::Snapshot).await
            }
            CatchUp::Deltas(deltas) => {
                for d in deltas {
                    sent.version = d.to_version;
                    if !self.send(update::Kind::Delta(d), Kind::Delta).await {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// False when the subscriber is gone or stalled: the feed then ends.
    async fn send(&self, kind: update::Kind, metric: Kind) -> bool {
        let msg = Ok(proto::Update { kind: Some(kind) });
        match tokio::time::timeout(self.send_timeout, self.tx.send(msg)).await {
            Ok(Ok(())) => {
                Metrics::count(&self.metrics.sent, self.subscriber.as_str(), metric);
                true
            }
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::warn!(peer = %self.subscriber, "subscriber stalled for {:?}; dropping its stream", self.send_timeout);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_catalog::{ClusterInfo, Export, Port};

    fn exporter() -> Arc<Mutex<Exporter>> {
        let info = ClusterInfo {
            name: ClusterId::new("a").unwrap(),
            region: "r".into(),
            zone: "z".into(),
            trust_domain: "a.test".into(),
            gateways: vec![],
        };
        Arc::new(Mutex::new(Exporter::new(info, 9, 0, 16)))
    }

    fn export(key: &str) -> Export {
        Export {
            key: key.parse().unwrap(),
            ports: vec![Port::tcp("http", 80)],
            endpoints: vec![],
            export_to: Default::default(),
            created_at: Default::default(),
            serve_stale: false,
            headless: false,
            props: Default::default(),
        }
    }

    struct Harness {
        x: Arc<Mutex<Exporter>>,
        changes: watch::Sender<u64>,
        rotation: watch::Sender<Option<Arc<Rotation>>>,
        rx: mpsc::Receiver<Result<proto::Update, Status>>,
        task: tokio::task::JoinHandle<()>,
    }

    /// A peer set holding b, the subscriber (its CA written to a temp dir).
    fn peers_with_b() -> Arc<PeerSet> {
        let (b, td) = (ClusterId::new("b").unwrap(), "b.test".parse().unwrap());
        let dir = tempfile::tempdir().unwrap();
        let ca = causeway_identity::Ca::generate(&b, &td).unwrap();
        ca.save(dir.path(), true).unwrap();
        let path = dir.path().join(causeway_identity::CA_CERT_FILE);
        let trust = causeway_identity::PeerTrust::load(b, td, &path).unwrap();
        Arc::new(PeerSet::one(trust))
    }

    fn start(x: Arc<Mutex<Exporter>>, epoch: u64, version: u64) -> Harness {
        let v = x.lock().unwrap().version();
        let (changes, changes_rx) = watch::channel(v);
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let (rotation, rotation_rx) = watch::channel(None);
        let feed = Feed {
            exporter: x.clone(),
            changes: changes_rx,
            subscriber: ClusterId::new("b").unwrap(),
            tx,
            send_timeout: Duration::from_secs(6),
            metrics: Metrics::default(),
            peers: peers_with_b(),
            rotation: rotation_rx,
        };
        let every = Duration::from_secs(2);
        let task = tokio::spawn(feed.run(epoch, version, every, CancellationToken::new()));
        Harness {
            x,
            changes,
            rotation,
            rx,
            task,
        }
    }

    async fn next(rx: &mut mpsc::Receiver<Result<proto::Update, Status>>) -> update::Kind {
        rx.recv().await.unwrap().unwrap().kind.unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn snapshot_then_deltas_and_heartbeats_at_the_sent_version() {
        let mut h = start(exporter(), 0, 0);
        assert!(matches!(next(&mut h.rx).await, update::Kind::Snapshot(s) if s.epoch == 9));
        let t0 = tokio::time::Instant::now();
        let update::Kind::Heartbeat(hb) = next(&mut h.rx).await else {
            panic!("expected a heartbeat")
        };
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert_eq!((hb.epoch, hb.version), (9, 0));
        let v = {
            let mut x = h.x.lock().unwrap();
            x.set([export("ns/a")]);
            x.version()
        };
        h.changes.send_replace(v);
        let update::Kind::Delta(d) = next(&mut h.rx).await else {
            panic!("expected a delta")
        };
        assert_eq!((d.from_version, d.to_version, d.upserts.len()), (0, 1, 1));
        let update::Kind::Heartbeat(hb) = next(&mut h.rx).await else {
            panic!("expected a heartbeat")
        };
        assert_eq!(hb.version, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ca_rotation_is_told_at_once_and_on_each_change() {
        let mut h = start(exporter(), 0, 0);
        assert!(matches!(next(&mut h.rx).await, update::Kind::Snapshot(_)));
        let r = Rotation {
            next_ca_bundle: "PEM".into(),
            overlap_until: 99,
        };
        h.rotation.send_replace(Some(Arc::new(r.clone())));
        let update::Kind::TrustBundle(b) = next(&mut h.rx).await else {
            panic!("expected the rotation")
        };
        assert_eq!(Rotation::from_proto(b), Some(r.clone()));
        h.rotation.send_replace(None);
        let update::Kind::TrustBundle(b) = next(&mut h.rx).await else {
            panic!("expected the withdrawal")
        };
        assert_eq!(Rotation::from_proto(b), None);
        // A new subscriber during a rotation hears it right after its snapshot.
        let mut late = start(exporter(), 0, 0);
        late.rotation.send_replace(Some(Arc::new(r.clone())));
        assert!(matches!(
            next(&mut late.rx).await,
            update::Kind::Snapshot(_)
        ));
        let update::Kind::TrustBundle(b) = next(&mut late.rx).await else {
            panic!("expected the rotation after the snapshot")
        };
        assert_eq!(Rotation::from_proto(b), Some(r));
    }

    #[tokio::test(start_paused = true)]
    async fn a_good_resume_point_gets_resumed_then_deltas() {
        let x = exporter();
        x.lock().unwrap().set([export("ns/a")]);
        let mut h = start(x, 9, 0);
        assert!(matches!(next(&mut h.rx).await, update::Kind::Resumed(r) if r.version == 0));
        assert!(matches!(next(&mut h.rx).await, update::Kind::Delta(d) if d.to_version == 1));
        assert!(matches!(next(&mut h.rx).await, update::Kind::Heartbeat(b) if b.version == 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_subscriber_that_stops_reading_is_dropped() {
        let h = start(exporter(), 0, 0);
        // Nothing reads: the buffer fills with heartbeats, then a send times out.
        let ended = tokio::time::timeout(Duration::from_secs(120), h.task).await;
        assert!(ended.is_ok(), "the feed must end by itself");
        drop(h.changes);
    }
}
