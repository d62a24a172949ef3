//! The subscriber's side of the protocol, pure: one peer's view, changed only
//! by whole, checked updates.
//!
//! An update is validated completely before anything is applied, so a view is
//! always some version the exporter really had; a message that does not follow
//! from the current (epoch, version) is an error and the session is dropped
//! (the next one resumes from the last good point).
//!
//! What the peer sent is kept as it arrived (after [`intake`]); what the
//! merge takes is that, admitted by the peer's [`PeerPolicy`] (allow lists,
//! quotas, region from local config).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use causeway_catalog::{
    ClusterId, ClusterInfo, Export, Freshness, LeaseConfig, ServiceKey, UnixMillis,
};
use serde::{Deserialize, Serialize};

use crate::admit::{PeerPolicy, Refused, admit_exports, admit_info, intake};
use crate::proto::{self, update::Kind};
use crate::wire::{WireError, cluster_from_proto, export_from_proto, key_from_proto};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    #[error("peer {peer} sent an invalid message: {source}")]
    Wire {
        peer: ClusterId,
        source: Box<WireError>,
    },
    #[error("peer {peer} sent an empty update")]
    Empty { peer: ClusterId },
    #[error("peer {expected} describes itself as cluster {got}; check that peer's configured name")]
    WrongCluster { expected: ClusterId, got: ClusterId },
    #[error(
        "peer {peer} sent {what} for epoch {epoch} version {version} while this view is at epoch {have_epoch} version {have_version}; resyncing"
    )]
    OutOfOrder {
        peer: ClusterId,
        what: &'static str,
        epoch: u64,
        version: u64,
        have_epoch: u64,
        have_version: u64,
    },
}

/// What an applied update did, for metrics and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Snapshot,
    Resumed,
    Delta {
        changed: bool,
    },
    Heartbeat,
    /// A CA rotation: the session hands it on (`rotation.rs`); no catalog change.
    TrustBundle,
}

/// A peer's view as persisted: enough to serve it stale and to resume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedView {
    pub info: ClusterInfo,
    pub epoch: u64,
    pub version: u64,
    pub exports: Vec<Export>,
}

#[derive(Debug)]
pub struct PeerView {
    name: ClusterId,
    policy: Arc<PeerPolicy>,
    /// As the peer described itself.
    raw_info: Option<ClusterInfo>,
    /// `raw_info` admitted: region and zone from local config, gateways capped.
    info: Option<ClusterInfo>,
    epoch: u64,
    version: u64,
    /// As received (after `intake`), so a removal can let a refused export in.
    exports: BTreeMap<ServiceKey, Export>,
    /// `exports` admitted, as the merge takes them; rebuilt once per applied change.
    list: Arc<Vec<Export>>,
    /// What admission left out of `info` and `list`.
    refused: Refused,
    last_heard: Option<Instant>,
    /// A session has started with a Snapshot or Resumed.
    in_session: bool,
}

impl PeerView {
    pub fn new(name: ClusterId) -> Self {
        Self {
            name,
            policy: Arc::default(),
            raw_info: None,
            info: None,
            epoch: 0,
            version: 0,
            exports: BTreeMap::new(),
            list: Arc::default(),
            refused: Refused::new(),
            last_heard: None,
            in_session: false,
        }
    }

    /// The same view admitted under `policy`.
    pub fn with_policy(mut self, policy: Arc<PeerPolicy>) -> Self {
        self.policy = policy;
        self.readmit();
        self
    }

    /// A view loaded from disk: stale at once, expiring `expire - stale` later
    /// unless the peer confirms it first.
    ///
    /// A state file is input too (it may be damaged or edited): exports that
    /// would be refused on the wire are left out, as the peer's session would.
    pub fn restore(name: ClusterId, saved: SavedView, lease: &LeaseConfig, now: Instant) -> Self {
        let mut v = Self::new(name);
        v.raw_info = Some(saved.info);
        v.epoch = saved.epoch;
        v.version = saved.version;
        let (valid, invalid): (Vec<Export>, Vec<Export>) = saved
            .exports
            .into_iter()
            .partition(|e| e.validate().is_ok());
        if let Some(bad) = invalid.first() {
            let error = bad.validate().err().map(|e| e.to_string());
            tracing::warn!(peer = %v.name, count = invalid.len(), ?error, "persisted view holds invalid exports; leaving them out");
        }
        v.replace(valid);
        v.last_heard = Some(now.checked_sub(lease.stale_after()).unwrap_or(now));
        v
    }

    pub fn save(&self) -> Option<SavedView> {
        Some(SavedView {
            info: self.raw_info.clone()?,
            epoch: self.epoch,
            version: self.version,
            exports: self.exports.values().cloned().collect(),
        })
    }

    pub fn resume_point(&self) -> (u64, u64) {
        (self.epoch, self.version)
    }

    pub fn info(&self) -> Option<&ClusterInfo> {
        self.info.as_ref()
    }

    pub fn exports(&self) -> Arc<Vec<Export>> {
        self.list.clone()
    }

    /// What the policy left out, by reason.
    pub fn refused(&self) -> &Refused {
        &self.refused
    }

    pub fn last_heard(&self) -> Option<Instant> {
        self.last_heard
    }

    /// None until the peer was heard from (or loaded from disk).
    pub fn freshness(&self, lease: &LeaseConfig, now: Instant) -> Option<Freshness> {
        Some(lease.freshness(self.last_heard?, now))
    }

    pub fn silent_for(&self, now: Instant) -> Option<Duration> {
        Some(now.saturating_duration_since(self.last_heard?))
    }

    /// A new session starts: it must open with a Snapshot or Resumed.
    pub fn begin_session(&mut self) {
        self.in_session = false;
    }

    pub fn apply(&mut self, update: proto::Update, now: Instant) -> Result<Applied, ViewError> {
        self.apply_at(update, now, wall_now())
    }

    /// [`apply`](Self::apply) at wall time `wall` (new exports' first-seen time).
    pub fn apply_at(
        &mut self,
        update: proto::Update,
        now: Instant,
        wall: UnixMillis,
    ) -> Result<Applied, ViewError> {
        let kind = update.kind.ok_or_else(|| ViewError::Empty {
            peer: self.name.clone(),
        })?;
        let applied = match kind {
            Kind::Snapshot(s) => self.apply_snapshot(s, wall)?,
            Kind::Resumed(r) => self.apply_resumed(r)?,
            Kind::Delta(d) => self.apply_delta(d, wall)?,
            Kind::Heartbeat(h) => {
                self.check("heartbeat", h.epoch, h.version, self.version)?;
                Applied::Heartbeat
            }
            Kind::TrustBundle(_) => Applied::TrustBundle,
        };
        self.last_heard = Some(now);
        Ok(applied)
    }

    fn apply_snapshot(
        &mut self,
        s: proto::Snapshot,
        wall: UnixMillis,
    ) -> Result<Applied, ViewError> {
        let info = self.check_cluster(s.cluster)?;
        let exports = self.decode_all(s.exports, wall)?;
        self.raw_info = Some(info);
        (self.epoch, self.version) = (s.epoch, s.version);
        self.replace(exports);
        self.in_session = true;
        Ok(Applied::Snapshot)
    }

    fn apply_resumed(&mut self, r: proto::Resumed) -> Result<Applied, ViewError> {
        let info = self.check_cluster(r.cluster)?;
        self.in_session = true;
        self.check("resumed", r.epoch, r.version, self.version)?;
        self.raw_info = Some(info);
        self.readmit();
        Ok(Applied::Resumed)
    }

    fn apply_delta(&mut self, d: proto::Delta, wall: UnixMillis) -> Result<Applied, ViewError> {
        self.check("delta", d.epoch, d.from_version, self.version)?;
        if d.to_version <= d.from_version {
            return Err(self.out_of_order("delta", d.epoch, d.to_version));
        }
        let upserts = self.decode_all(d.upserts, wall)?;
        let removals = d
            .removals
            .iter()
            .map(|k| key_from_proto(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| self.wire(source))?;
        let changed = !upserts.is_empty() || !removals.is_empty();
        let mut exports = std::mem::take(&mut self.exports);
        for key in removals {
            exports.remove(&key);
        }
        exports.extend(upserts.into_iter().map(|e| (e.key.clone(), e)));
        self.replace(exports.into_values());
        self.version = d.to_version;
        Ok(Applied::Delta { changed })
    }

    /// Checks a message that must follow on from where this view is.
    fn check(&self, what: &'static str, epoch: u64, from: u64, have: u64) -> Result<(), ViewError> {
        if !self.in_session || epoch != self.epoch || from != have {
            return Err(self.out_of_order(what, epoch, from));
        }
        Ok(())
    }

    fn check_cluster(&self, c: Option<proto::ClusterInfo>) -> Result<ClusterInfo, ViewError> {
        let info = cluster_from_proto(c).map_err(|e| self.wire(e))?;
        if info.name != self.name {
            return Err(ViewError::WrongCluster {
                expected: self.name.clone(),
                got: info.name,
            });
        }
        Ok(info)
    }

    fn decode_all(
        &self,
        exports: Vec<proto::Export>,
        wall: UnixMillis,
    ) -> Result<Vec<Export>, ViewError> {
        let mut out: Vec<Export> = Vec::with_capacity(exports.len());
        let mut seen = std::collections::BTreeSet::new();
        for e in exports {
            let e = export_from_proto(e).map_err(|err| self.wire(err))?;
            if !seen.insert(e.key.clone()) {
                return Err(self.wire(WireError::Duplicate(e.key)));
            }
            let first_seen = self.exports.get(&e.key).map(|old| old.created_at);
            out.push(intake(&self.policy, e, first_seen, wall));
        }
        Ok(out)
    }

    fn replace(&mut self, exports: impl IntoIterator<Item = Export>) {
        self.exports = exports.into_iter().map(|e| (e.key.clone(), e)).collect();
        self.readmit();
    }

    /// Rebuilds what the merge takes from what the peer sent.
    fn readmit(&mut self) {
        let mut refused = Refused::new();
        self.info = (self.raw_info.clone()).map(|i| admit_info(&self.policy, i, &mut refused));
        let list = admit_exports(&self.policy, self.exports.values(), &mut refused);
        self.list = Arc::new(list);
        self.refused = refused;
    }

    fn wire(&self, source: WireError) -> ViewError {
        ViewError::Wire {
            peer: self.name.clone(),
            source: Box::new(source),
        }
    }

    fn out_of_order(&self, what: &'static str, epoch: u64, version: u64) -> ViewError {
        ViewError::OutOfOrder {
            peer: self.name.clone(),
            what,
            epoch,
            version,
            have_epoch: self.epoch,
            have_version: self.version,
        }
    }
}

fn wall_now() -> UnixMillis {
    let since = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    UnixMillis(since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)))
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
