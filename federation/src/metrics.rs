//! Federation metrics, registered under `federation_` in the
//! registry the caller passes in (`causeway run` serves them as `causeway_federation_*`).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Connecting,
    Connected,
    Backoff,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PeerStateLabel {
    pub peer: String,
    pub state: SessionState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RefusedLabel {
    pub peer: String,
    pub reason: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum Kind {
    Snapshot,
    Resumed,
    Delta,
    Heartbeat,
    TrustBundle,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MessageLabel {
    pub peer: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// 1 for the state each peer's session is in, 0 for the others.
    pub session_state: Family<PeerStateLabel, Gauge>,
    pub received: Family<MessageLabel, Counter>,
    pub sent: Family<MessageLabel, Counter>,
    pub reconnects: Family<PeerLabel, Counter>,
    pub session_errors: Family<PeerLabel, Counter>,
    pub catalog_imports: Gauge,
    pub local_exports: Gauge,
    pub persist_writes: Counter,
    pub persist_errors: Counter,
    pub source_rejected: Counter,
    /// Services (or gateway addresses) of a peer left out by its policy, per reason.
    pub peer_refused: Family<RefusedLabel, Gauge>,
    /// TrafficPolicy objects by state (accepted, refused).
    pub traffic_policies: Family<StateLabel, Gauge>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct StateLabel {
    pub state: &'static str,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("federation");
        r.register(
            "peer_session_state",
            "Subscriber session state per peer (1 = current)",
            self.session_state.clone(),
        );
        r.register(
            "messages_received",
            "Snapshots, deltas and heartbeats received per peer",
            self.received.clone(),
        );
        r.register(
            "messages_sent",
            "Snapshots, deltas and heartbeats sent per subscriber",
            self.sent.clone(),
        );
        r.register(
            "reconnects",
            "Subscriber sessions started again",
            self.reconnects.clone(),
        );
        r.register(
            "session_errors",
            "Subscriber sessions ended by an error",
            self.session_errors.clone(),
        );
        r.register(
            "catalog_imports",
            "Services in the merged catalog",
            self.catalog_imports.clone(),
        );
        r.register(
            "local_exports",
            "Services this cluster exports",
            self.local_exports.clone(),
        );
        r.register(
            "persist_writes",
            "State files written",
            self.persist_writes.clone(),
        );
        r.register(
            "persist_errors",
            "State files that could not be written",
            self.persist_errors.clone(),
        );
        r.register(
            "peer_refused",
            "Services (or gateway addresses) of a peer left out by its import policy or quotas, per reason",
            self.peer_refused.clone(),
        );
        r.register(
            "traffic_policies",
            "TrafficPolicy objects: accepted (in force) or refused (the object's Accepted condition says why)",
            self.traffic_policies.clone(),
        );
        r.register(
            "source_rejected",
            "Edits of the export file rejected as invalid",
            self.source_rejected.clone(),
        );
    }

    /// The current count left out of `peer`'s catalog for `reason`.
    pub fn set_refused(&self, peer: &str, reason: &'static str, count: usize) {
        let label = RefusedLabel {
            peer: peer.to_owned(),
            reason,
        };
        self.peer_refused
            .get_or_create(&label)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn set_traffic_policies(&self, accepted: usize, refused: usize) {
        for (state, n) in [("accepted", accepted), ("refused", refused)] {
            self.traffic_policies
                .get_or_create(&StateLabel { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn set_state(&self, peer: &str, state: SessionState) {
        for s in [
            SessionState::Connecting,
            SessionState::Connected,
            SessionState::Backoff,
        ] {
            let label = PeerStateLabel {
                peer: peer.to_owned(),
                state: s,
            };
            self.session_state
                .get_or_create(&label)
                .set(i64::from(s == state));
        }
    }

    pub fn count(family: &Family<MessageLabel, Counter>, peer: &str, kind: Kind) {
        family
            .get_or_create(&MessageLabel {
                peer: peer.to_owned(),
                kind,
            })
            .inc();
    }
}
