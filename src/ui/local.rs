//! This process's own `ClusterStatus`, built in-process for `/v1/status`:
//! the federation's peers, the catalog, and per-peer figures from a sampler
//! that reads the metrics registry once per interval.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_catalog::CatalogSnapshot;
use causeway_federation::Federation;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::rates::{self, PeerRates, Reading};
use crate::status::{ClusterStatus, PeerRow};

/// How often the sampler reads the registry: rates are over this interval.
pub const SAMPLE: Duration = Duration::from_secs(1);

/// The sampler's latest reading and the rates since the one before.
#[derive(Debug, Default)]
pub struct Sampled {
    pub reading: Reading,
    pub rates: BTreeMap<String, PeerRates>,
}

pub type Shared = Arc<Mutex<Sampled>>;

/// What `/v1/status` is built from.
pub struct Local {
    pub cluster: String,
    pub admin: SocketAddr,
    pub federation: Arc<Federation>,
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    pub sampled: Shared,
}

impl Local {
    pub fn status(&self) -> ClusterStatus {
        let mut st = ClusterStatus {
            cluster: self.cluster.clone(),
            admin: self.admin,
            error: None,
            peers: Vec::new(),
            imports: self.catalog.borrow().imports.values().cloned().collect(),
        };
        // PeerRow is the JSON shape of the federation's PeerStatus plus gateway figures.
        let peers = serde_json::to_value(self.federation.peers_status())
            .and_then(serde_json::from_value::<Vec<PeerRow>>);
        match peers {
            Ok(peers) => st.peers = peers,
            Err(e) => st.error = Some(format!("reading the federation's peers: {e}")),
        }
        let sampled = lock(&self.sampled);
        for p in &mut st.peers {
            p.rtt_ms = sampled.reading.rtt.get(&p.name).map(|s| s * 1000.0);
            p.transport = sampled.reading.transport.get(&p.name).cloned();
            p.rates = sampled.rates.get(&p.name).copied();
        }
        st
    }
}

/// Starts the sampler: reads `registry` every [`SAMPLE`] until `shutdown`.
pub fn sample(registry: Arc<Registry>, tasks: &TaskTracker, shutdown: CancellationToken) -> Shared {
    let shared = Shared::default();
    let out = shared.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prev: Option<(Instant, Reading)> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let mut text = String::new();
            if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
                continue;
            }
            let (now, reading) = (Instant::now(), rates::read(&text));
            let mut s = lock(&shared);
            if let Some((then, old)) = &prev {
                s.rates = rates::rates(&old.totals, &reading.totals, now - *then);
            }
            s.reading = reading.clone();
            prev = Some((now, reading));
        }
    });
    out
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Sampled> {
    // Figures from a panicked sampler are still figures.
    s.lock().unwrap_or_else(|e| e.into_inner())
}
