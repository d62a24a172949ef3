//! ServiceExport status conditions per the MCS API, pure: `Valid` from the
//! export's own checks, `Conflict` from the merged catalog's port conflicts.

use causeway_catalog::{CatalogSnapshot, ClusterId, Condition as CatalogCondition, ServiceKey};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::exports::Invalid;

/// The conditions a ServiceExport should carry. A condition whose status did
/// not change keeps its `lastTransitionTime`, so equal input gives equal output.
pub fn export_conditions(
    validity: &Result<(), Invalid>,
    conflict: Option<String>,
    generation: Option<i64>,
    existing: &[Condition],
    now: Time,
) -> Vec<Condition> {
    let valid = match validity {
        Ok(()) => (
            "True",
            "Valid",
            "the Service is exported to the clusterset".to_owned(),
        ),
        Err(i) => ("False", i.reason, i.message.clone()),
    };
    let conflict = match conflict {
        Some(m) => ("True", "PortConflict", m),
        None => (
            "False",
            "NoConflicts",
            "no conflicting exports in the clusterset".to_owned(),
        ),
    };
    [("Valid", valid), ("Conflict", conflict)]
        .into_iter()
        .map(|(ty, (status, reason, message))| {
            let since = existing
                .iter()
                .find(|c| c.type_ == ty && c.status == status)
                .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
            Condition {
                type_: ty.into(),
                status: status.into(),
                reason: reason.into(),
                message,
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// The catalog's complaint about `key` as exported by `local`, if any.
pub fn conflict_for(
    catalog: &CatalogSnapshot,
    key: &ServiceKey,
    local: &ClusterId,
) -> Option<String> {
    let import = catalog.imports.get(key)?;
    import.conditions.iter().find_map(|c| match c {
        CatalogCondition::PortConflict {
            port,
            kept_from,
            ignored_from,
        } if ignored_from == local => Some(format!(
            "port {port} conflicts with the export from {kept_from}, which is older and wins"
        )),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn valid_and_invalid_with_stable_transition_times() {
        let t0 = at("2026-01-01T00:00:00Z");
        let c = export_conditions(&Ok(()), None, Some(3), &[], t0.clone());
        assert_eq!(
            (c[0].type_.as_str(), c[0].status.as_str()),
            ("Valid", "True")
        );
        assert_eq!(
            (c[1].type_.as_str(), c[1].status.as_str()),
            ("Conflict", "False")
        );
        assert_eq!(c[0].observed_generation, Some(3));
        let t1 = at("2026-01-01T00:01:00Z");
        let again = export_conditions(&Ok(()), None, Some(3), &c, t1.clone());
        assert_eq!(again, c, "unchanged input must not rewrite the status");
        let bad = Err(Invalid {
            reason: "InvalidServiceType",
            message: "ExternalName".into(),
        });
        let c2 = export_conditions(&bad, Some("port http".into()), Some(3), &c, t1.clone());
        assert_eq!(
            (c2[0].status.as_str(), c2[0].reason.as_str()),
            ("False", "InvalidServiceType")
        );
        assert_eq!(c2[0].last_transition_time, t1);
        assert_eq!(
            (c2[1].status.as_str(), c2[1].reason.as_str()),
            ("True", "PortConflict")
        );
    }

    #[test]
    fn only_the_losing_cluster_sees_the_conflict() {
        use causeway_catalog::{Import, ServiceKey};
        let key: ServiceKey = "demo/web".parse().unwrap();
        let (east, west) = (
            ClusterId::new("east").unwrap(),
            ClusterId::new("west").unwrap(),
        );
        let mut catalog = CatalogSnapshot::default();
        let import = Import {
            key: key.clone(),
            ports: vec![],
            clusters: vec![],
            vips: vec![],
            serve_stale: false,
            conditions: vec![CatalogCondition::PortConflict {
                port: "http".into(),
                kept_from: west.clone(),
                ignored_from: east.clone(),
            }],
        };
        catalog.imports.insert(key.clone(), import);
        let msg = conflict_for(&catalog, &key, &east).unwrap();
        assert!(msg.contains("http") && msg.contains("west"), "{msg}");
        assert_eq!(conflict_for(&catalog, &key, &west), None);
        let other: ServiceKey = "demo/api".parse().unwrap();
        assert_eq!(conflict_for(&catalog, &other, &east), None);
    }
}
