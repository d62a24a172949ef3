//! ServiceExport status conditions per the MCS API, pure: `Valid` from the
//! export's own checks, `Ready` once the export is in the merged catalog,
//! `Conflict` on every constituent export of a service whose exports
//! disagree (KEP-1645: "set on all ServiceExports for the conflicted service").

use causeway_catalog::{CatalogSnapshot, ClusterId, Condition as CatalogCondition, ServiceKey};

use super::crd::{Condition, ConditionStatus};
use super::exports::Invalid;

/// What the merged catalog says about one local export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Standing {
    /// The catalog serves it from this cluster.
    pub in_catalog: bool,
    /// `(reason, message)` of each conflict among the service's exports.
    pub conflicts: Vec<(&'static str, String)>,
}

/// How the catalog stands on `key` as exported by `local`.
pub fn standing(catalog: &CatalogSnapshot, key: &ServiceKey, local: &ClusterId) -> Standing {
    let Some(import) = catalog.imports.get(key) else {
        return Standing::default();
    };
    let in_catalog = import.clusters.iter().any(|c| c.cluster == *local);
    let conflicts = import
        .conditions
        .iter()
        .filter_map(|c| match c {
            CatalogCondition::Conflict { kind, .. } => Some((kind.reason(), c.message())),
            _ => None,
        })
        .collect();
    Standing {
        in_catalog,
        conflicts: if in_catalog { conflicts } else { Vec::new() },
    }
}

/// A condition's type, status, reason and message.
pub(super) type Row = (&'static str, ConditionStatus, String, String);

fn valid(validity: &Result<(), Invalid>) -> Row {
    match validity {
        Ok(()) => (
            "Valid",
            ConditionStatus::True,
            "Valid".into(),
            "the Service can be exported".into(),
        ),
        Err(i) => (
            "Valid",
            ConditionStatus::False,
            i.reason.into(),
            i.message.clone(),
        ),
    }
}

fn ready(validity: &Result<(), Invalid>, s: &Standing) -> Row {
    match (validity, s.in_catalog) {
        (Err(i), _) => (
            "Ready",
            ConditionStatus::False,
            "Failed".into(),
            format!("not exported: {}", i.message),
        ),
        (Ok(()), true) => (
            "Ready",
            ConditionStatus::True,
            "Exported".into(),
            "the service is offered to the clusterset's peers".into(),
        ),
        (Ok(()), false) => (
            "Ready",
            ConditionStatus::Unknown,
            "Pending".into(),
            "waiting for the federation to publish the export".into(),
        ),
    }
}

fn conflict(s: &Standing) -> Row {
    if s.conflicts.is_empty() {
        return (
            "Conflict",
            ConditionStatus::False,
            "NoConflicts".into(),
            "no conflicting exports in the clusterset".into(),
        );
    }
    let reasons: Vec<&str> = s.conflicts.iter().map(|(r, _)| *r).collect();
    let messages: Vec<&str> = s.conflicts.iter().map(|(_, m)| m.as_str()).collect();
    (
        "Conflict",
        ConditionStatus::True,
        reasons.join(","),
        messages.join(" "),
    )
}

/// The conditions a ServiceExport should carry. A condition whose status did
/// not change keeps its `lastTransitionTime`, so equal input gives equal output.
pub fn export_conditions(
    validity: &Result<(), Invalid>,
    standing: &Standing,
    generation: Option<i64>,
    existing: &[Condition],
    now: &str,
) -> Vec<Condition> {
    let rows = [
        valid(validity),
        ready(validity, standing),
        conflict(standing),
    ];
    stamp(rows, generation, existing, now)
}

/// `rows` as conditions; one whose status did not change keeps its
/// `lastTransitionTime`.
pub(super) fn stamp(
    rows: impl IntoIterator<Item = Row>,
    generation: Option<i64>,
    existing: &[Condition],
    now: &str,
) -> Vec<Condition> {
    rows.into_iter()
        .map(|(ty, status, reason, message)| {
            let since = existing
                .iter()
                .find(|c| c.type_ == ty && c.status == status)
                .map_or_else(|| now.to_owned(), |c| c.last_transition_time.clone());
            Condition {
                type_: ty.into(),
                status,
                reason,
                message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_catalog::{ConflictKind, Freshness, Import, ServingCluster};

    fn summary(c: &[Condition]) -> Vec<(String, ConditionStatus, String)> {
        c.iter()
            .map(|c| (c.type_.clone(), c.status, c.reason.clone()))
            .collect()
    }

    #[test]
    fn valid_ready_and_conflict_with_stable_transition_times() {
        let t0 = "2026-01-01T00:00:00Z";
        let pending = Standing::default();
        let c = export_conditions(&Ok(()), &pending, Some(3), &[], t0);
        use ConditionStatus::*;
        assert_eq!(
            summary(&c),
            [
                ("Valid".into(), True, "Valid".into()),
                ("Ready".into(), Unknown, "Pending".into()),
                ("Conflict".into(), False, "NoConflicts".into())
            ]
        );
        assert_eq!(c[0].observed_generation, Some(3));
        let t1 = "2026-01-01T00:01:00Z";
        let again = export_conditions(&Ok(()), &pending, Some(3), &c, t1);
        assert_eq!(again, c, "unchanged input must not rewrite the status");
        let bad = Err(Invalid {
            reason: "InvalidServiceType",
            message: "ExternalName".into(),
        });
        let conflicted = Standing {
            in_catalog: true,
            conflicts: vec![
                ("PortConflict", "ports".into()),
                ("TypeConflict", "type".into()),
            ],
        };
        let c2 = export_conditions(&bad, &conflicted, Some(3), &c, t1);
        assert_eq!(
            summary(&c2),
            [
                ("Valid".into(), False, "InvalidServiceType".into()),
                ("Ready".into(), False, "Failed".into()),
                ("Conflict".into(), True, "PortConflict,TypeConflict".into())
            ]
        );
        assert_eq!(c2[0].last_transition_time, t1);
    }

    #[test]
    fn every_constituent_export_sees_the_conflict() {
        let key: ServiceKey = "demo/web".parse().unwrap();
        let (east, west, north) = (
            ClusterId::new("east").unwrap(),
            ClusterId::new("west").unwrap(),
            ClusterId::new("north").unwrap(),
        );
        let serving = |c: &ClusterId| ServingCluster {
            cluster: c.clone(),
            region: "r".into(),
            zone: "z".into(),
            ready_endpoints: 1,
            freshness: Freshness::Fresh,
            ports: vec![],
        };
        let mut import = Import::new(key.clone());
        import.clusters = vec![serving(&east), serving(&west)];
        import.conditions = vec![CatalogCondition::Conflict {
            kind: ConflictKind::Port,
            winner: west.clone(),
            value: "http (80/tcp)".into(),
            disagreeing: vec![east.clone()],
            clusters: 2,
        }];
        let mut catalog = CatalogSnapshot::default();
        catalog.imports.insert(key.clone(), import);
        for c in [&east, &west] {
            let s = standing(&catalog, &key, c);
            assert!(s.in_catalog);
            assert_eq!(s.conflicts.len(), 1, "{c}");
            assert!(s.conflicts[0].1.contains("west"), "{:?}", s.conflicts);
        }
        assert_eq!(standing(&catalog, &key, &north), Standing::default());
        let other: ServiceKey = "demo/api".parse().unwrap();
        assert_eq!(standing(&catalog, &other, &east), Standing::default());
    }
}
