//! CA rotations in the link store: a linked peer's (its next bundle beside
//! the current one until the overlap ends) and this cluster's own
//! (`rotation.yaml`, told to the peers over the federation channel).

use std::path::PathBuf;

use causeway_catalog::ClusterId;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, io, write_atomic};

/// This cluster's CA rotation, as `rotation.yaml` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnRotation {
    next_ca_bundle: String,
    overlap_until: u64,
}

impl Store {
    fn rotation_path(&self) -> PathBuf {
        self.dir.join("rotation.yaml")
    }

    /// Records this cluster's CA rotation: `next` trusted by peers at once
    /// beside the current bundle, and alone from `until` on.
    pub fn announce(&self, next: &str, until: u64) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        let r = OwnRotation {
            next_ca_bundle: next.to_owned(),
            overlap_until: until,
        };
        let text = serde_saphyr::to_string(&r).map_err(|e| StoreError::Parse {
            path: self.rotation_path(),
            message: e.to_string(),
        })?;
        write_atomic(&self.rotation_path(), text.as_bytes())
    }

    /// This cluster's CA rotation, while its overlap lasts.
    pub fn announcement(&self, now: u64) -> Result<Option<(String, u64)>, StoreError> {
        let path = self.rotation_path();
        let text = match std::fs::read_to_string(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            other => other.map_err(io(&path))?,
        };
        let r: OwnRotation = serde_saphyr::from_str(&text).map_err(|e| StoreError::Parse {
            path,
            message: e.to_string(),
        })?;
        Ok((now < r.overlap_until).then_some((r.next_ca_bundle, r.overlap_until)))
    }

    /// Whether `name`'s rotation to `next` is already in force here.
    pub fn rotating_to(&self, name: &ClusterId, next: &str) -> bool {
        std::fs::read_to_string(self.next_ca_path(name)).is_ok_and(|n| n == next)
            || std::fs::read_to_string(self.ca_path(name)).is_ok_and(|c| c == next)
    }

    /// Starts a CA rotation for `name`: `next` is trusted at once beside the
    /// bundle in force, and alone from `until` on.
    pub fn rotate(&self, name: &ClusterId, next: &[u8], until: u64) -> Result<(), StoreError> {
        let _lock = self.lock()?;
        if std::fs::read(self.next_ca_path(name)).is_ok_and(|n| n == next) {
            return Ok(()); // already under way: told again on every stream
        }
        let mut links = self.links()?;
        let Some(peer) = links.peers.iter_mut().find(|p| p.name == *name) else {
            return Ok(());
        };
        let current_path = self.ca_path(name);
        let mut both = std::fs::read(&current_path).map_err(io(&current_path))?;
        if !both.ends_with(b"\n") {
            both.push(b'\n');
        }
        both.extend_from_slice(next);
        write_atomic(&self.next_ca_path(name), next)?;
        write_atomic(&current_path, &both)?;
        peer.rotation_until = Some(until);
        self.save(&links)
    }

    /// Ends every rotation whose overlap is over: the next bundle alone is
    /// put in force. Returns the peers whose bundle changed.
    pub fn finish_rotations(&self, now: u64) -> Result<Vec<ClusterId>, StoreError> {
        if !self.links()?.peers.iter().any(|p| p.rotation_due(now)) {
            return Ok(Vec::new()); // the common case, polled every second: no lock, no write
        }
        let _lock = self.lock()?;
        let mut links = self.links()?;
        let mut done = Vec::new();
        for peer in links.peers.iter_mut() {
            if peer.rotation_due(now) {
                let next = self.next_ca_path(&peer.name);
                let bytes = std::fs::read(&next).map_err(io(&next))?;
                write_atomic(&self.ca_path(&peer.name), &bytes)?;
                let _ = std::fs::remove_file(&next);
                peer.rotation_until = None;
                done.push(peer.name.clone());
            }
        }
        if !done.is_empty() {
            self.save(&links)?;
        }
        Ok(done)
    }
}
