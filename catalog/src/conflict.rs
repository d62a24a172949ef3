//! MCS conflicts, pure: which service-wide properties the exports of one
//! service disagree on. The oldest export wins each (KEP-1645 "Constraints
//! and Conflict Resolution"); the condition goes on every constituent export.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::{Condition, Export};
use crate::names::ClusterId;
use crate::service::SessionAffinity;

/// What the exports disagree on; `reason` is the MCS API's condition reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ConflictKind {
    Port,
    Type,
    SessionAffinity,
    SessionAffinityConfig,
    InternalTrafficPolicy,
    TrafficDistribution,
    IpFamily,
    Labels,
    Annotations,
}

impl ConflictKind {
    pub const ALL: [ConflictKind; 9] = [
        ConflictKind::Port,
        ConflictKind::Type,
        ConflictKind::SessionAffinity,
        ConflictKind::SessionAffinityConfig,
        ConflictKind::InternalTrafficPolicy,
        ConflictKind::TrafficDistribution,
        ConflictKind::IpFamily,
        ConflictKind::Labels,
        ConflictKind::Annotations,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            ConflictKind::Port => "PortConflict",
            ConflictKind::Type => "TypeConflict",
            ConflictKind::SessionAffinity => "SessionAffinityConflict",
            ConflictKind::SessionAffinityConfig => "SessionAffinityConfigConflict",
            ConflictKind::InternalTrafficPolicy => "InternalTrafficPolicyConflict",
            ConflictKind::TrafficDistribution => "TrafficDistributionConflict",
            ConflictKind::IpFamily => "IPFamilyConflict",
            ConflictKind::Labels => "LabelsConflict",
            ConflictKind::Annotations => "AnnotationsConflict",
        }
    }

    fn what(self) -> &'static str {
        match self {
            ConflictKind::Port => "ports",
            ConflictKind::Type => "type",
            ConflictKind::SessionAffinity => "session affinity",
            ConflictKind::SessionAffinityConfig => "session affinity config",
            ConflictKind::InternalTrafficPolicy => "internal traffic policy",
            ConflictKind::TrafficDistribution => "traffic distribution",
            ConflictKind::IpFamily => "IP families",
            ConflictKind::Labels => "exported labels",
            ConflictKind::Annotations => "exported annotations",
        }
    }

    /// The property as text, or None where it does not apply to this export.
    fn value(self, e: &Export) -> Option<String> {
        let p = &e.props;
        Some(match self {
            ConflictKind::Port => {
                let labels: BTreeSet<String> = e.ports.iter().map(|p| p.label()).collect();
                labels.into_iter().collect::<Vec<_>>().join(", ")
            }
            ConflictKind::Type => if e.headless {
                "Headless"
            } else {
                "ClusterSetIP"
            }
            .into(),
            ConflictKind::SessionAffinity => p.session_affinity.kube_name().into(),
            ConflictKind::SessionAffinityConfig => match p.session_affinity {
                SessionAffinity::ClientIp { timeout_seconds } => match timeout_seconds {
                    Some(t) => format!("timeoutSeconds {t}"),
                    None => "no timeout".into(),
                },
                SessionAffinity::None => return None,
            },
            ConflictKind::InternalTrafficPolicy => opt(&p.internal_traffic_policy),
            ConflictKind::TrafficDistribution => opt(&p.traffic_distribution),
            ConflictKind::IpFamily => {
                let f: Vec<&str> = p.ip_families.iter().map(|f| f.as_str()).collect();
                if f.is_empty() {
                    "unset".into()
                } else {
                    f.join(",")
                }
            }
            ConflictKind::Labels => pairs(&p.labels),
            ConflictKind::Annotations => pairs(&p.annotations),
        })
    }
}

fn pairs(m: &std::collections::BTreeMap<String, String>) -> String {
    let kv: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    kv.join(",")
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "unset".into())
}

/// The conflicts among `exports` (oldest first, each with its cluster).
pub(crate) fn find(exports: &[(&Export, &ClusterId)]) -> Vec<Condition> {
    ConflictKind::ALL
        .into_iter()
        .filter_map(|kind| conflict(kind, exports))
        .collect()
}

fn conflict(kind: ConflictKind, exports: &[(&Export, &ClusterId)]) -> Option<Condition> {
    let mut values = exports
        .iter()
        .filter_map(|(e, c)| kind.value(e).map(|v| (v, *c)));
    let (value, winner) = values.next()?;
    let disagreeing: Vec<ClusterId> = values
        .filter(|(v, _)| *v != value)
        .map(|(_, c)| c.clone())
        .collect();
    (!disagreeing.is_empty()).then(|| Condition::Conflict {
        kind,
        winner: winner.clone(),
        value,
        disagreeing,
        clusters: exports.len(),
    })
}

impl Condition {
    /// The message of the MCS `Conflict` condition, as the KEP's example words it.
    pub fn message(&self) -> String {
        match self {
            Condition::Conflict {
                kind,
                winner,
                value,
                disagreeing,
                clusters,
            } => {
                let names: Vec<&str> = disagreeing.iter().map(ClusterId::as_str).collect();
                let using = match kind {
                    ConflictKind::Port => format!(
                        "Using the union of the ports; where ports clash, \"{value}\" of the oldest export, in cluster \"{winner}\""
                    ),
                    _ => {
                        format!("Using \"{value}\" from the oldest export, in cluster \"{winner}\"")
                    }
                };
                format!(
                    "Conflicting {}. {using}. {}/{clusters} clusters disagree ({}).",
                    kind.what(),
                    names.len(),
                    names.join(", ")
                )
            }
        }
    }
}
