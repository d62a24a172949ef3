//! The hub: one task that turns local exports and peer views into the
//! published catalog, re-evaluating leases exactly when one changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use causeway_catalog::{
    CatalogSnapshot, ClusterInfo, Export, LeaseConfig, VipAllocator, VipClaims,
};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::exporter::Exporter;
use crate::link_peers::Slots;
use crate::metrics::Metrics;
use crate::persist::{SavedLocal, State};
use crate::publish::{Built, GatewayOwners, PeerInput, build_catalog, next_lease_change};

pub struct Hub {
    pub local: ClusterInfo,
    pub lease: LeaseConfig,
    pub exporter: Arc<Mutex<Exporter>>,
    pub changes: watch::Sender<u64>,
    pub local_rx: watch::Receiver<Arc<Vec<Export>>>,
    /// Every peer's slot; peers may be linked and unlinked while running.
    pub peers: Slots,
    pub vips: VipAllocator,
    /// Addresses the cluster already holds (Kubernetes mode; empty otherwise).
    pub claims: watch::Receiver<Arc<VipClaims>>,
    pub dirty: Arc<Notify>,
    pub catalog_tx: watch::Sender<Arc<CatalogSnapshot>>,
    pub persist_tx: Option<watch::Sender<Arc<State>>>,
    pub metrics: Metrics,
    /// VIP errors last logged, so a full range is reported once, not per update.
    pub vip_errors: String,
    /// True once every peer was heard from (or restored from disk), or its
    /// lease would have expired since start: the catalog is then complete
    /// enough for the Kubernetes sink to delete what it lacks.
    pub settled: watch::Sender<bool>,
    pub started: Instant,
    /// Which cluster owns each gateway address (seeded from the persisted catalog).
    pub owners: GatewayOwners,
    /// Gateway addresses last refused per peer, to log each change once.
    pub taken: BTreeMap<causeway_catalog::ClusterId, usize>,
}

/// Gateway owners as a persisted catalog had them: each address under one cluster.
pub fn owners_of(catalog: &CatalogSnapshot) -> GatewayOwners {
    let mut owners = GatewayOwners::new();
    for (name, info) in &catalog.clusters {
        for addr in &info.gateways {
            owners.entry(*addr).or_insert_with(|| name.clone());
        }
    }
    owners
}

impl Hub {
    /// Takes the current local exports into the exporter; true if they changed.
    pub fn take_local(&mut self) -> bool {
        let exports = self.local_rx.borrow_and_update().clone();
        self.metrics.local_exports.set(exports.len() as i64);
        let mut x = self.exporter.lock().unwrap_or_else(|p| p.into_inner());
        let changed = x.set(exports.iter().cloned());
        if changed {
            self.changes.send_replace(x.version());
        }
        changed
    }

    /// Publishes the catalog as of `now`; returns when a lease next changes.
    pub fn recompute(&mut self, now: Instant) -> Option<Instant> {
        let mut inputs = Vec::new();
        let mut heard = Vec::new();
        let mut saved = BTreeMap::new();
        let peers = self.peers.all();
        for slot in &peers {
            let view = slot.view();
            let (Some(info), Some(freshness)) = (view.info(), view.freshness(&self.lease, now))
            else {
                continue;
            };
            inputs.push(PeerInput {
                info: info.clone(),
                freshness,
                exports: view.exports(),
            });
            heard.extend(view.last_heard());
            if self.persist_tx.is_some() {
                saved.extend(view.save().map(|s| (slot.trust.name.clone(), s)));
            }
        }
        let local = self.local_rx.borrow().clone();
        let claims = self.claims.borrow_and_update().clone();
        let Built {
            catalog,
            vip_errors,
            taken,
        } = build_catalog(
            &self.local,
            &local,
            &inputs,
            &mut self.vips,
            &claims,
            &mut self.owners,
        );
        self.report_vip_errors(&vip_errors);
        self.report_taken(taken);
        self.metrics
            .catalog_imports
            .set(catalog.imports.len() as i64);
        let catalog = Arc::new(catalog);
        self.catalog_tx.send_if_modified(|cur| {
            let changed = **cur != *catalog;
            if changed {
                *cur = catalog.clone();
            }
            changed
        });
        if let Some(tx) = &self.persist_tx {
            let x = self.exporter.lock().unwrap_or_else(|p| p.into_inner());
            let local = SavedLocal {
                epoch: x.epoch(),
                version: x.version(),
                exports: x.exports().cloned().collect(),
            };
            drop(x);
            tx.send_replace(Arc::new(State {
                local: Some(local),
                peers: saved,
                catalog,
                vips: self.vips.state(),
            }));
        }
        let settle_by = self.started + self.lease.expire_after();
        let settled = now >= settle_by || peers.iter().all(|s| s.view().info().is_some());
        self.settled
            .send_if_modified(|cur| std::mem::replace(cur, settled) != settled);
        let next = next_lease_change(&self.lease, heard, now);
        match settled {
            true => next,
            false => Some(next.map_or(settle_by, |n| n.min(settle_by))),
        }
    }

    fn report_taken(&mut self, taken: BTreeMap<causeway_catalog::ClusterId, usize>) {
        let reason = crate::admit::Reason::GatewayOwned.as_str();
        for slot in &self.peers.all() {
            let peer = &slot.trust.name;
            let count = taken.get(peer).copied().unwrap_or(0);
            self.metrics.set_refused(peer.as_str(), reason, count);
            if count > 0 && self.taken.get(peer) != Some(&count) {
                tracing::warn!(%peer, count, "peer {peer} advertises {count} gateway address(es) another cluster owns; ignoring them (a peer cannot take over another cluster's gateways)");
            }
        }
        self.taken = taken;
    }

    fn report_vip_errors(&mut self, errors: &[causeway_catalog::VipError]) {
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        if text != self.vip_errors && !text.is_empty() {
            tracing::error!("{text}");
        }
        self.vip_errors = text;
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let (mut source_open, mut claims_open) = (true, true);
        loop {
            let next = self.recompute(Instant::now());
            let at = next.map(tokio::time::Instant::from_std);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.dirty.notified() => {}
                r = self.local_rx.changed(), if source_open => match r {
                    Ok(()) => { self.take_local(); }
                    // The source is gone (shutting down): its last exports stay.
                    Err(_) => source_open = false,
                },
                r = self.claims.changed(), if claims_open => claims_open = r.is_ok(),
                _ = sleep_until(at) => {}
            }
        }
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
