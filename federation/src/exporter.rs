//! The exporter's side of the protocol, pure: this cluster's exports under an
//! epoch and a version, a bounded log of recent changes, and what each
//! subscriber may see of them.
//!
//! Filtering by `export_to` happens here, per subscriber, from the identity the
//! TLS layer verified. A log entry keeps each changed export before and after,
//! so a subscriber is told about a service only if it may see it before or
//! after the change: a service never exported to a cluster never reaches it,
//! not even as a removal of its name.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use causeway_catalog::{ClusterId, ClusterInfo, Export, ServiceKey};

use crate::proto;
use crate::wire::{cluster_to_proto, export_to_proto};

#[derive(Debug)]
struct Change {
    key: ServiceKey,
    before: Option<Export>,
    after: Option<Export>,
}

/// The changes that took the exports from `version - 1` to `version`.
#[derive(Debug)]
struct LogEntry {
    version: u64,
    changes: Vec<Change>,
}

/// What a subscriber at some resume point needs next.
#[derive(Debug, Clone, PartialEq)]
pub enum CatchUp {
    /// Its resume point is unknown here or too old: everything, afresh.
    Snapshot(proto::Snapshot),
    /// Its resume point is good: these deltas (maybe none) bring it up to date.
    Deltas(Vec<proto::Delta>),
}

#[derive(Debug)]
pub struct Exporter {
    info: ClusterInfo,
    epoch: u64,
    version: u64,
    exports: BTreeMap<ServiceKey, Export>,
    log: VecDeque<Arc<LogEntry>>,
    log_len: usize,
}

impl Exporter {
    /// `epoch` must not be 0 (0 is a subscriber's "nothing yet").
    pub fn new(info: ClusterInfo, epoch: u64, version: u64, log_len: usize) -> Self {
        Self {
            info,
            epoch: epoch.max(1),
            version,
            exports: BTreeMap::new(),
            log: VecDeque::new(),
            log_len: log_len.max(1),
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn exports(&self) -> impl Iterator<Item = &Export> {
        self.exports.values()
    }

    /// Takes back persisted exports as they were at the persisted version.
    pub fn restore(&mut self, exports: impl IntoIterator<Item = Export>) {
        self.exports = exports.into_iter().map(|e| (e.key.clone(), e)).collect();
        self.log.clear();
    }

    /// Replaces the exports; returns whether anything changed (then the version rose).
    pub fn set(&mut self, exports: impl IntoIterator<Item = Export>) -> bool {
        let mut next: BTreeMap<ServiceKey, Export> =
            exports.into_iter().map(|e| (e.key.clone(), e)).collect();
        let mut changes = Vec::new();
        for (key, before) in &self.exports {
            match next.get(key) {
                Some(after) if after == before => {}
                after => changes.push(Change {
                    key: key.clone(),
                    before: Some(before.clone()),
                    after: after.cloned(),
                }),
            }
        }
        for (key, after) in &next {
            if !self.exports.contains_key(key) {
                changes.push(Change {
                    key: key.clone(),
                    before: None,
                    after: Some(after.clone()),
                });
            }
        }
        if changes.is_empty() {
            return false;
        }
        std::mem::swap(&mut self.exports, &mut next);
        self.version += 1;
        self.log.push_back(Arc::new(LogEntry {
            version: self.version,
            changes,
        }));
        while self.log.len() > self.log_len {
            self.log.pop_front();
        }
        true
    }

    pub fn snapshot_for(&self, subscriber: &ClusterId) -> proto::Snapshot {
        proto::Snapshot {
            epoch: self.epoch,
            version: self.version,
            cluster: Some(cluster_to_proto(&self.info)),
            exports: self
                .exports
                .values()
                .filter(|e| e.export_to.allows(subscriber))
                .map(export_to_proto)
                .collect(),
        }
    }

    /// Accepts a subscriber's resume point at `version` of this epoch.
    pub fn resumed(&self, version: u64) -> proto::Resumed {
        proto::Resumed {
            epoch: self.epoch,
            version,
            cluster: Some(cluster_to_proto(&self.info)),
        }
    }

    /// What `subscriber`, having applied (`epoch`, `version`), needs next.
    pub fn catch_up(&self, subscriber: &ClusterId, epoch: u64, version: u64) -> CatchUp {
        if epoch != self.epoch || version > self.version {
            return CatchUp::Snapshot(self.snapshot_for(subscriber));
        }
        let oldest_from = self.log.front().map_or(self.version, |e| e.version - 1);
        if version < oldest_from {
            return CatchUp::Snapshot(self.snapshot_for(subscriber));
        }
        let deltas = self
            .log
            .iter()
            .filter(|e| e.version > version)
            .map(|e| self.delta_for(e, subscriber))
            .collect();
        CatchUp::Deltas(deltas)
    }

    fn delta_for(&self, entry: &LogEntry, subscriber: &ClusterId) -> proto::Delta {
        fn sees<'e>(e: &'e Option<Export>, sub: &ClusterId) -> Option<&'e Export> {
            e.as_ref().filter(|e| e.export_to.allows(sub))
        }
        let mut delta = proto::Delta {
            epoch: self.epoch,
            from_version: entry.version - 1,
            to_version: entry.version,
            upserts: Vec::new(),
            removals: Vec::new(),
        };
        for c in &entry.changes {
            match (sees(&c.before, subscriber), sees(&c.after, subscriber)) {
                (_, Some(after)) => delta.upserts.push(export_to_proto(after)),
                (Some(_), None) => delta.removals.push(c.key.to_string()),
                (None, None) => {}
            }
        }
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_catalog::{ExportTo, Port};

    fn id(s: &str) -> ClusterId {
        ClusterId::new(s).unwrap()
    }

    fn info() -> ClusterInfo {
        ClusterInfo {
            name: id("a"),
            region: "r".into(),
            zone: "z".into(),
            trust_domain: "a.test".into(),
            gateways: vec![],
        }
    }

    pub(crate) fn export(key: &str, to: &[&str]) -> Export {
        Export {
            key: key.parse().unwrap(),
            ports: vec![Port::tcp("http", 80)],
            endpoints: vec![],
            export_to: if to.is_empty() {
                ExportTo::All
            } else {
                ExportTo::Only(to.iter().map(|c| id(c)).collect())
            },
            created_at: Default::default(),
            serve_stale: false,
            headless: false,
            props: Default::default(),
        }
    }

    fn names(d: &proto::Delta) -> (Vec<String>, Vec<String>) {
        let up = d
            .upserts
            .iter()
            .map(|e| format!("{}/{}", e.namespace, e.name))
            .collect();
        (up, d.removals.clone())
    }

    #[test]
    fn versions_rise_only_on_change() {
        let mut x = Exporter::new(info(), 7, 0, 8);
        assert!(x.set([export("ns/a", &[])]));
        assert!(!x.set([export("ns/a", &[])]));
        assert!(x.set([export("ns/a", &[]), export("ns/b", &[])]));
        assert_eq!((x.epoch(), x.version()), (7, 2));
    }

    #[test]
    fn snapshot_filters_by_subscriber() {
        let mut x = Exporter::new(info(), 7, 0, 8);
        x.set([export("ns/all", &[]), export("ns/onlyb", &["b"])]);
        assert_eq!(x.snapshot_for(&id("b")).exports.len(), 2);
        let c = x.snapshot_for(&id("c"));
        assert_eq!(c.exports.len(), 1);
        assert_eq!(c.exports[0].name, "all");
    }

    #[test]
    fn catch_up_chooses_snapshot_or_deltas() {
        let mut x = Exporter::new(info(), 7, 0, 2);
        x.set([export("ns/a", &[])]); // v1
        x.set([export("ns/a", &[]), export("ns/b", &[])]); // v2
        x.set([export("ns/b", &[])]); // v3; log keeps v2, v3
        let b = id("b");
        let is_snap = |c: &CatchUp| matches!(c, CatchUp::Snapshot(_));
        assert!(is_snap(&x.catch_up(&b, 0, 0)), "no resume point");
        assert!(is_snap(&x.catch_up(&b, 6, 3)), "other epoch");
        assert!(is_snap(&x.catch_up(&b, 7, 9)), "from the future");
        assert!(is_snap(&x.catch_up(&b, 7, 0)), "older than the log");
        assert_eq!(x.catch_up(&b, 7, 3), CatchUp::Deltas(vec![]));
        let CatchUp::Deltas(d) = x.catch_up(&b, 7, 1) else {
            panic!("expected deltas")
        };
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].from_version, d[0].to_version), (1, 2));
        assert_eq!(names(&d[0]), (vec!["ns/b".into()], vec![]));
        assert_eq!(names(&d[1]), (vec![], vec!["ns/a".into()]));
    }

    #[test]
    fn deltas_never_name_a_hidden_service() {
        let mut x = Exporter::new(info(), 7, 0, 8);
        x.set([export("ns/s", &["b"])]); // v1: visible to b only
        x.set([export("ns/s", &["c"])]); // v2: moves to c
        x.set([]); // v3: gone
        let CatchUp::Deltas(for_d) = x.catch_up(&id("d"), 7, 0) else {
            panic!("expected deltas")
        };
        assert!(
            for_d
                .iter()
                .all(|d| d.upserts.is_empty() && d.removals.is_empty())
        );
        let CatchUp::Deltas(for_b) = x.catch_up(&id("b"), 7, 0) else {
            panic!("expected deltas")
        };
        assert_eq!(names(&for_b[0]).0, ["ns/s"]);
        assert_eq!(names(&for_b[1]).1, ["ns/s"], "withdrawn from b");
        assert!(for_b[2].removals.is_empty());
        let CatchUp::Deltas(for_c) = x.catch_up(&id("c"), 7, 0) else {
            panic!("expected deltas")
        };
        assert!(names(&for_c[0]).0.is_empty());
        assert_eq!(names(&for_c[1]).0, ["ns/s"]);
        assert_eq!(names(&for_c[2]).1, ["ns/s"]);
    }
}
