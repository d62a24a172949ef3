//! Wiring: builds the federation from its inputs, starts its tasks, and hands
//! out what the rest of causeway follows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_catalog::{
    CatalogSnapshot, ClusterId, ClusterInfo, Export, LeaseConfig, VipAllocator,
};
use causeway_identity::{PeerSet, PeerTrust, ReloadingCert};
use causeway_policy::Policies;
use ipnet::IpNet;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admit::PeerPolicy;
use crate::error::Error;
use crate::exporter::Exporter;
use crate::hub::Hub;
use crate::k8s::{PolicyOutputs, spawn_sink};
use crate::link_peers::{Linked, Slots};
use crate::local_source::{LocalSource, SourceOutputs};
use crate::metrics::Metrics;
use crate::persist::{self, State};
use crate::serve::{self, ServeInputs};
use crate::session::SessionCtx;
use crate::slot::PeerSlot;
use crate::status::{PeerStatus, status_of};
use crate::view::{PeerView, SavedView};
use crate::{Config, SourceConfig};

/// A peer to subscribe to: who it is and where its federation listener is.
#[derive(Debug, Clone)]
pub struct PeerEndpoint {
    pub trust: PeerTrust,
    /// host:port of the peer's federation listener.
    pub addr: String,
    /// What this cluster accepts from the peer.
    pub policy: PeerPolicy,
}

/// Everything the federation needs, in one place.
pub struct FederationInputs {
    pub cfg: Config,
    pub source: SourceConfig,
    /// This cluster, as sent to peers.
    pub local: ClusterInfo,
    /// Our federation certificate (SPIFFE ID `spiffe://<td>/federation`).
    pub cert: Arc<ReloadingCert>,
    pub peers: Vec<PeerEndpoint>,
    /// This cluster's own CA and trust domain; needed for `watch_listen`
    /// (only this cluster's gateway and DNS may follow the catalog feed).
    pub own: Option<PeerTrust>,
    /// ClusterSetIP ranges; the federation allocates and persists VIPs.
    pub vip_ranges: Vec<IpNet>,
    pub shutdown: CancellationToken,
}

/// A running federation.
pub struct Federation {
    catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    settled: watch::Receiver<bool>,
    local_exports: watch::Receiver<Arc<Vec<Export>>>,
    policies: watch::Receiver<Arc<Policies>>,
    pub(crate) linked: Linked,
    pub(crate) rotation: watch::Sender<Option<Arc<crate::Rotation>>>,
    lease: LeaseConfig,
    listen: SocketAddr,
    watch_listen: Option<SocketAddr>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl Federation {
    /// Loads the exports and any persisted state, publishes the catalog they
    /// give (before anything listens: a restart serves at once), then starts
    /// listening and subscribing. Fails on bad config, exports, ranges or
    /// certificates, or a listen address in use.
    pub async fn start(inputs: FederationInputs, registry: &mut Registry) -> Result<Self, Error> {
        let cfg = inputs.cfg.clone();
        cfg.validate()?;
        tracing::info!(?cfg, source = ?inputs.source, "federation config");
        let lease = cfg.lease().map_err(crate::ConfigError::from)?;
        let (tasks, shutdown) = (TaskTracker::new(), inputs.shutdown.clone());
        let (source, exports) =
            LocalSource::open(&inputs.source, &inputs.local.name, &tasks, &shutdown).await?;
        let (claims_tx, claims_rx) = watch::channel(Arc::new(source.claims()));
        let (policies_tx, policies_rx) = watch::channel(Arc::new(source.policies()));
        let metrics = Metrics::default();
        metrics.register(registry);
        let names: Vec<ClusterId> = inputs.peers.iter().map(|p| p.trust.name.clone()).collect();
        let state = match &cfg.state_dir {
            Some(dir) => persist::load(dir, &names)?,
            None => State::default(),
        };
        let peer_set = Arc::new(PeerSet::new(
            inputs.peers.iter().map(|p| p.trust.clone()).collect(),
        )?);
        let mut vips = VipAllocator::new(inputs.vip_ranges.clone())?;
        vips.restore(state.vips.clone());
        let exporter = Arc::new(Mutex::new(restore_exporter(
            &inputs.local,
            &cfg,
            &state,
            &exports,
        )));
        let slots = Slots::new(peer_slots(
            &inputs.peers,
            state.peers,
            &lease,
            Instant::now(),
        ));
        let (local_tx, local_rx) = watch::channel(Arc::new(exports));
        let (changes, changes_rx) = watch::channel(0);
        let owners = crate::hub::owners_of(&state.catalog);
        // Without a Kubernetes sink this replica always serves the catalog feed;
        // with one, only while it leads (its ClusterSetIPs are the ones written).
        let (leading_tx, leading_rx) = watch::channel(cfg.kubernetes.is_none());
        let (catalog_tx, catalog_rx) = watch::channel(state.catalog);
        let (persist_tx, persist_rx) = watch::channel(Arc::new(State::default()));
        let dirty = Arc::new(Notify::new());
        let (settled_tx, settled_rx) = watch::channel(false);
        let mut hub = Hub {
            local: inputs.local.clone(),
            lease,
            exporter: exporter.clone(),
            changes,
            local_rx: local_rx.clone(),
            peers: slots.clone(),
            vips,
            claims: claims_rx,
            dirty: dirty.clone(),
            catalog_tx,
            persist_tx: cfg.state_dir.as_ref().map(|_| persist_tx),
            metrics: metrics.clone(),
            vip_errors: String::new(),
            settled: settled_tx,
            started: Instant::now(),
            owners,
            taken: BTreeMap::new(),
        };
        hub.take_local();
        hub.recompute(Instant::now());
        let (rotation, rotation_rx) = watch::channel(None);
        let (listen, watch_listen) = serve::spawn(ServeInputs {
            cfg: &cfg,
            cert: inputs.cert.clone(),
            peers: peer_set.clone(),
            own: inputs.own.clone(),
            leading: leading_rx,
            exporter,
            changes: changes_rx,
            catalog: catalog_rx.clone(),
            local_exports: local_rx.clone(),
            policies: policies_rx.clone(),
            rotation: rotation_rx,
            metrics: metrics.clone(),
            tasks: &tasks,
            shutdown: &shutdown,
        })
        .await?;
        let outputs = SourceOutputs {
            tx: local_tx,
            rejected: metrics.source_rejected.clone(),
            catalog: catalog_rx.clone(),
            local: inputs.local.name.clone(),
            claims: claims_tx,
        };
        let policies = PolicyOutputs {
            tx: policies_tx,
            metrics: metrics.clone(),
        };
        source.spawn(outputs, policies, &tasks, shutdown.clone());
        if let Some(sink) = &cfg.kubernetes {
            let inputs = (catalog_rx.clone(), settled_rx.clone());
            spawn_sink(sink, inputs, leading_tx, &tasks, shutdown.clone()).await?;
        }
        tasks.spawn(hub.run(shutdown.clone()));
        if let Some(dir) = cfg.state_dir.clone() {
            let (debounce, m, stop) = (cfg.persist_debounce, metrics.clone(), shutdown.clone());
            tasks.spawn(persist::run(dir, persist_rx, debounce, m, stop));
        }
        let ctx = Arc::new(SessionCtx {
            cfg: cfg.clone(),
            cert: inputs.cert.clone(),
            metrics,
            dirty: dirty.clone(),
            lease,
        });
        let linked = Linked {
            slots: slots.clone(),
            peer_set,
            ctx,
            sessions: Default::default(),
            dirty: dirty.clone(),
            tasks: tasks.clone(),
            shutdown: shutdown.clone(),
        };
        for slot in slots.all() {
            linked.spawn_session(slot);
        }
        tracing::info!(cluster = %inputs.local.name, %listen, peers = slots.all().len(), "federation started");
        Ok(Self {
            settled: settled_rx,
            catalog: catalog_rx,
            local_exports: local_rx,
            policies: policies_rx,
            linked,
            rotation,
            lease,
            listen,
            watch_listen,
            tasks,
            shutdown,
        })
    }

    /// The merged catalog (ClusterSetIPs filled in) and every known cluster.
    pub fn catalog(&self) -> watch::Receiver<Arc<CatalogSnapshot>> {
        self.catalog.clone()
    }

    /// True once every peer was heard from (or restored from disk), or would
    /// have expired since start: until then the catalog may lack imports.
    pub fn settled(&self) -> watch::Receiver<bool> {
        self.settled.clone()
    }

    /// This cluster's exports, for the gateway's inbound side.
    pub fn local_exports(&self) -> watch::Receiver<Arc<Vec<Export>>> {
        self.local_exports.clone()
    }

    /// The TrafficPolicy objects in force (Kubernetes source; each validated
    /// on its own, a refused one is left out). Never changes, and is empty,
    /// with the static source.
    pub fn policies(&self) -> watch::Receiver<Arc<Policies>> {
        self.policies.clone()
    }

    /// Every configured peer's session and lease, for `/v1/peers` and `causeway status`.
    pub fn peers_status(&self) -> Vec<PeerStatus> {
        let now = Instant::now();
        self.linked
            .slots
            .all()
            .iter()
            .map(|slot| status_of(slot, &self.lease, now))
            .collect()
    }

    /// The federation listener's bound address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }

    /// The local `WatchCatalog` listener's bound address, when configured.
    pub fn watch_addr(&self) -> Option<SocketAddr> {
        self.watch_listen
    }

    /// Completes once shutdown was triggered and every task has finished
    /// (giving up on stragglers after a grace period).
    pub async fn closed(&self) {
        self.shutdown.cancelled().await;
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "federation tasks still running {SHUTDOWN_GRACE:?} after shutdown; leaving them"
            );
        }
    }
}

/// One slot per configured peer, with its persisted view (stale) if any.
fn peer_slots(
    peers: &[PeerEndpoint],
    mut saved: BTreeMap<ClusterId, SavedView>,
    lease: &LeaseConfig,
    now: Instant,
) -> Vec<Arc<PeerSlot>> {
    peers
        .iter()
        .map(|p| {
            let name = p.trust.name.clone();
            let view = match saved.remove(&name) {
                Some(s) if s.info.name == name => PeerView::restore(name, s, lease, now),
                Some(s) => {
                    tracing::warn!(peer = %name, found = %s.info.name, "persisted view names another cluster; ignoring it");
                    PeerView::new(name)
                }
                None => PeerView::new(name),
            };
            let view = view.with_policy(Arc::new(p.policy.clone()));
            Arc::new(PeerSlot::new(p.trust.clone(), p.addr.clone(), view))
        })
        .collect()
}

/// The exporter at its persisted epoch and version, or at a new epoch.
///
/// The persisted exports must equal the current ones to keep the epoch: if
/// they differ, a change may have reached subscribers after the last write
/// (a crash inside the debounce), and reusing its version number for other
/// content would leave them silently wrong. A new epoch makes them take a snapshot.
fn restore_exporter(
    local: &ClusterInfo,
    cfg: &Config,
    state: &State,
    current: &[Export],
) -> Exporter {
    fn by_key(l: &[Export]) -> BTreeMap<&causeway_catalog::ServiceKey, &Export> {
        l.iter().map(|e| (&e.key, e)).collect()
    }
    let same = |saved: &[Export]| by_key(saved) == by_key(current);
    match &state.local {
        Some(saved) if same(&saved.exports) => {
            let mut x = Exporter::new(local.clone(), saved.epoch, saved.version, cfg.delta_log_len);
            x.restore(saved.exports.clone());
            x
        }
        _ => {
            let epoch = rand::random::<u64>().max(1);
            Exporter::new(local.clone(), epoch, 0, cfg.delta_log_len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::SavedLocal;

    fn export(key: &str) -> Export {
        Export {
            key: key.parse().unwrap(),
            ports: vec![causeway_catalog::Port::tcp("http", 80)],
            endpoints: vec![],
            export_to: Default::default(),
            created_at: Default::default(),
            serve_stale: false,
            headless: false,
            props: Default::default(),
        }
    }

    #[test]
    fn the_epoch_survives_a_restart_only_with_the_same_exports() {
        let local = ClusterInfo {
            name: ClusterId::new("a").unwrap(),
            region: "r".into(),
            zone: "z".into(),
            trust_domain: "a.test".into(),
            gateways: vec![],
        };
        let state = State {
            local: Some(SavedLocal {
                epoch: 42,
                version: 7,
                exports: vec![export("ns/a"), export("ns/b")],
            }),
            ..State::default()
        };
        let cfg = Config::default();
        let same = [export("ns/b"), export("ns/a")];
        let x = restore_exporter(&local, &cfg, &state, &same);
        assert_eq!((x.epoch(), x.version()), (42, 7));
        let x = restore_exporter(&local, &cfg, &state, &[export("ns/a")]);
        assert_ne!(x.epoch(), 42);
        let x = restore_exporter(&local, &cfg, &State::default(), &same);
        assert_ne!(x.epoch(), 42);
    }
}
