//! `causeway_certificate_expiry_timestamp_seconds`: when each certificate this
//! process holds, and each peer CA it trusts, stops being valid (Unix time),
//! read again on every scrape-sized tick so rotations show at once. The
//! chart's PrometheusRule alerts when one is under 7 days away.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use causeway_identity::{PeerSet, ReloadingCert};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CertLabel {
    /// `workload` (this process's own certificate) or `peer_ca`.
    pub kind: &'static str,
    /// The workload (gateway, federation, dns) or the peer's name.
    pub name: String,
}

type Expiry = Family<CertLabel, Gauge<f64, AtomicU64>>;

/// What to watch: our own certificates by workload, and the peers' bundles.
pub struct Watched {
    pub own: Vec<(String, Arc<ReloadingCert>)>,
    pub peers: Option<Arc<PeerSet>>,
}

pub fn register(registry: &mut Registry) -> Expiry {
    let family = Expiry::default();
    registry.register(
        "certificate_expiry_timestamp_seconds",
        "When a certificate in use (kind=workload) or a trusted peer CA (kind=peer_ca) expires, as Unix time",
        family.clone(),
    );
    family
}

fn unix(t: Option<SystemTime>) -> f64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sets every gauge from what is in force now.
pub fn update(family: &Expiry, w: &Watched) {
    for (name, cert) in &w.own {
        let label = CertLabel {
            kind: "workload",
            name: name.clone(),
        };
        family.get_or_create(&label).set(unix(cert.not_after()));
    }
    let peers = w.peers.as_ref().map(|p| p.snapshot()).unwrap_or_default();
    for peer in peers.iter() {
        let label = CertLabel {
            kind: "peer_ca",
            name: peer.name.to_string(),
        };
        family
            .get_or_create(&label)
            .set(unix(peer.roots.not_after()));
    }
}

/// Keeps the gauges current every `every` until `shutdown`.
pub fn spawn(
    family: Expiry,
    w: Watched,
    every: Duration,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) {
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => update(&family, &w),
            }
        }
    });
}
