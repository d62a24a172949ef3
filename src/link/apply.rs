//! Puts the linked peers in force in the running process: loaded with the
//! config at start, then followed while running (a peer linked by a
//! redemption on either side, unlinked, or whose CA rotation ended), without
//! a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_catalog::ClusterId;
use causeway_federation::{Federation, PeerEndpoint, PeerPolicy};
use causeway_identity::{PeerSet, PeerTrust};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::kube_store::SecretStore;
use super::store::{LinkedPeer, Store};
use super::token::now_unix;
use crate::config::{Config, PeerConfig};

/// Adds the linked peers to `cfg.peers` (a name already there by hand
/// wins); returns their names.
pub fn merge_at_start(cfg: &mut Config) -> anyhow::Result<BTreeSet<ClusterId>> {
    let Ok(store) = Store::new(cfg.federation.state_dir.as_deref()) else {
        return Ok(BTreeSet::new());
    };
    let mut merged = BTreeSet::new();
    for p in store.links()?.peers {
        if cfg.peers.iter().any(|q| q.name == p.name) || p.name == cfg.cluster.name {
            tracing::warn!(peer = %p.name, "linked peer is also in causeway.yaml; the config's entry wins");
            continue;
        }
        merged.insert(p.name.clone());
        cfg.peers.push(PeerConfig {
            ca: store.ca_path(&p.name),
            name: p.name,
            trust_domain: Some(p.trust_domain),
            federation: p.federation,
            region: None,
            zone: None,
            import: Default::default(),
            limits: Default::default(),
        });
    }
    Ok(merged)
}

/// Follows `links.yaml` and applies each change.
pub struct Linker {
    pub store: Store,
    /// The process's peer set (gateway and link endpoint).
    pub peers: Arc<PeerSet>,
    pub fed: Option<Arc<Federation>>,
    /// Linked peers in force.
    pub applied: BTreeSet<ClusterId>,
    /// Peers from causeway.yaml, never touched here.
    pub fixed: BTreeSet<ClusterId>,
    pub changed: Arc<Notify>,
    /// One change to the store at a time (shared with the link endpoint).
    pub busy: Arc<Mutex<()>>,
    /// Last error per peer (and for the file), logged once.
    pub errors: BTreeMap<String, String>,
    pub rotations: Rotations,
}

/// Who ends due CA rotations (writes the bundles).
pub enum Rotations {
    /// This process, in the Store's files.
    Here,
    /// This process, through the links Secret (Kubernetes mode, federation).
    Secret(Arc<SecretStore>),
    /// Another process (Kubernetes mode, gateway: the mount is read-only).
    Elsewhere,
}

impl Linker {
    pub async fn run(mut self, every: Duration, shutdown: CancellationToken) {
        loop {
            if let (Rotations::Secret(s), true) = (&self.rotations, self.rotation_due(now_unix())) {
                let done = s.write(|store| store.finish_rotations(now_unix())).await;
                let error = match done {
                    Ok(Ok(_)) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(e) => Some(e.to_string()),
                };
                self.report("rotation", error);
            }
            self.reconcile(now_unix());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Whether a rotation's overlap is over, as far as the mounted files say
    /// (checked before asking the API server).
    fn rotation_due(&self, now: u64) -> bool {
        let links = self.store.links().unwrap_or_default();
        links
            .peers
            .iter()
            .any(|p| p.rotation_until.is_some_and(|u| now >= u))
    }

    fn report(&mut self, key: &str, error: Option<String>) {
        match error {
            Some(e) if self.errors.get(key) != Some(&e) => {
                tracing::warn!("linked peers: {e}");
                self.errors.insert(key.to_owned(), e);
            }
            Some(_) => {}
            None => {
                self.errors.remove(key);
            }
        }
    }

    /// One pass: end due rotations, remove unlinked peers, add new ones.
    pub fn reconcile(&mut self, now: u64) {
        let busy = self.busy.clone();
        let guard = busy.lock().unwrap_or_else(|p| p.into_inner());
        let done = match self.rotations {
            Rotations::Here => self.store.finish_rotations(now),
            _ => Ok(Vec::new()),
        };
        drop(guard);
        if let Ok(names) = &done {
            for name in names {
                tracing::info!(peer = %name, "CA rotation overlap over: only the new bundle is trusted");
            }
            // The bundle watch would see it within a second; do it now.
            self.peers.reload_all();
        }
        self.report("rotation", done.err().map(|e| e.to_string()));
        let links = match self.store.links() {
            Ok(l) => l,
            Err(e) => return self.report("file", Some(e.to_string())),
        };
        self.report("file", None);
        let want: BTreeMap<ClusterId, LinkedPeer> = links
            .peers
            .into_iter()
            .filter(|p| !self.fixed.contains(&p.name))
            .map(|p| (p.name.clone(), p))
            .collect();
        let gone: Vec<ClusterId> = self
            .applied
            .iter()
            .filter(|n| !want.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            self.remove(&name);
        }
        for (name, p) in want {
            if !self.applied.contains(&name) {
                let result = self.add(&p);
                self.report(name.as_str(), result.err());
            }
        }
    }

    fn remove(&mut self, name: &ClusterId) {
        if let Some(fed) = &self.fed {
            fed.remove_peer(name);
        }
        self.peers.remove(name);
        self.applied.remove(name);
        tracing::info!(peer = %name, "unlinked");
    }

    fn add(&mut self, p: &LinkedPeer) -> Result<(), String> {
        let path = self.store.ca_path(&p.name);
        let trust = PeerTrust::load(p.name.clone(), p.trust_domain.clone(), &path)
            .map_err(|e| format!("{}: {e}", p.name))?;
        self.peers
            .add(trust.clone())
            .map_err(|e| format!("{}: {e}", p.name))?;
        if let Some(fed) = &self.fed {
            let endpoint = PeerEndpoint {
                trust,
                addr: p.federation.clone(),
                policy: PeerPolicy::default(),
            };
            if let Err(e) = fed.add_peer(endpoint) {
                self.peers.remove(&p.name);
                return Err(format!("{}: {e}", p.name));
            }
        }
        self.applied.insert(p.name.clone());
        tracing::info!(peer = %p.name, federation = %p.federation, "linked");
        Ok(())
    }
}
