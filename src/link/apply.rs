//! Puts the linked peers in force in the running process: loaded with the
//! config at start, then followed while running (a peer linked by a
//! redemption on either side, unlinked, rotating its CA or whose CA rotation
//! ended), without a restart; and tells the peers this cluster's own CA
//! rotation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_catalog::ClusterId;
use causeway_federation::{Federation, PeerEndpoint, PeerPolicy, Rotation};
use causeway_identity::{PeerSet, PeerTrust};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::kube_store::SecretStore;
use super::store::{LinkedPeer, Links, Store};
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
            self.reconcile(now_unix()).await;
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
        links.peers.iter().any(|p| p.rotation_due(now))
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
    pub async fn reconcile(&mut self, now: u64) {
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
        self.rotations(now, &links).await;
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

    /// Tells the peers this cluster's CA rotation, and starts the rotations
    /// linked peers announced over the federation channel.
    async fn rotations(&mut self, now: u64, links: &Links) {
        let Some(fed) = self.fed.clone() else {
            return;
        };
        let own = self.store.announcement(now);
        if let Ok(r) = &own {
            fed.announce_rotation(r.clone().map(|(next_ca_bundle, overlap_until)| Rotation {
                next_ca_bundle,
                overlap_until,
            }));
        }
        self.report("own rotation", own.err().map(|e| e.to_string()));
        for (name, r) in fed.announced_rotations() {
            let key = format!("rotation of {name}");
            if self.fixed.contains(&name) {
                let hint = format!(
                    "{name} announced a CA rotation; it is configured in causeway.yaml: add its new bundle to peers.{name}.ca by hand"
                );
                self.report(&key, (r.overlap_until > now).then_some(hint));
                continue;
            }
            let Some(peer) = links.peers.iter().find(|p| p.name == name) else {
                continue;
            };
            if !self.applied.contains(&name)
                || r.overlap_until <= now
                || self.store.rotating_to(&name, &r.next_ca_bundle)
            {
                continue;
            }
            let result = self.start_rotation(peer, &r, now).await;
            self.report(&key, result.err());
        }
    }

    async fn start_rotation(
        &self,
        peer: &LinkedPeer,
        r: &Rotation,
        now: u64,
    ) -> Result<(), String> {
        let name = &peer.name;
        super::usable_bundle(name, &peer.trust_domain, r.next_ca_bundle.as_bytes())
            .map_err(|e| format!("{name} announced a CA bundle that is not usable: {e}"))?;
        let until = r
            .overlap_until
            .min(now.saturating_add(super::MAX_OVERLAP.as_secs()));
        let next = r.next_ca_bundle.as_bytes();
        let done = match &self.rotations {
            Rotations::Here => {
                let _busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
                self.store.rotate(name, next, until)
            }
            // Through the Secret; the mount shows it here once the kubelet has.
            Rotations::Secret(s) => s
                .write(|st| st.rotate(name, next, until))
                .await
                .map_err(|e| format!("{name}: {e}"))?,
            Rotations::Elsewhere => return Ok(()),
        };
        done.map_err(|e| format!("{name}: {e}"))?;
        self.peers.reload_all();
        tracing::info!(peer = %name, until, "{name} announced a CA rotation: both bundles trusted until the overlap ends");
        Ok(())
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
