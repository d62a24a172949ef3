//! From TrafficPolicy objects to the policies in force, pure: each object is
//! validated on its own (`Policies::insert`), so a bad one is refused alone
//! while the others stay in force, and its `Accepted` condition says why.

use std::sync::Arc;

use causeway_catalog::ServiceKey;
use causeway_policy::{Policies, PolicyError, Problem};

use super::conditions::{Row, stamp};
use super::crd::{Condition, ConditionStatus};
use super::traffic_crd::TrafficPolicy;

/// Most TrafficPolicy objects in force at once; the rest are refused.
pub const MAX_POLICIES: usize = 4096;

/// Why an object is not in force: the `Accepted=False` reason and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub reason: &'static str,
    pub message: String,
}

/// Each object (sorted by namespace and name) with its verdict.
pub type Verdicts = Vec<(Arc<TrafficPolicy>, Result<(), Refused>)>;

/// Where errors name an object.
pub fn at(tp: &TrafficPolicy) -> String {
    format!("TrafficPolicy {}/{}", tp.namespace(), tp.name())
}

/// The policies in force and every object's verdict. Objects are taken in
/// namespace/name order, so of two for the same service and port the first
/// name wins, whatever order they arrived in.
pub fn policies_of(objects: &[Arc<TrafficPolicy>]) -> (Policies, Verdicts) {
    let mut sorted = objects.to_vec();
    sorted.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
    let mut set = Policies::default();
    let verdicts = sorted
        .into_iter()
        .map(|tp| {
            let verdict = admit(&mut set, &tp);
            (tp, verdict)
        })
        .collect();
    (set, verdicts)
}

fn admit(set: &mut Policies, tp: &TrafficPolicy) -> Result<(), Refused> {
    let at = at(tp);
    if set.len() >= MAX_POLICIES {
        return Err(Refused {
            reason: "TooMany",
            message: format!(
                "{at}: {MAX_POLICIES} TrafficPolicy objects are already in force; merge or delete some"
            ),
        });
    }
    let spec = tp.spec.0.clone();
    let key = ServiceKey::new(tp.namespace(), &spec.service).map_err(|e| {
        refused(PolicyError {
            at: at.clone(),
            problem: Problem::Service {
                value: spec.service.clone(),
                expected: "the name of a Service in the object's namespace",
                why: e.to_string(),
            },
        })
    })?;
    set.insert(&at, key, spec).map_err(refused)
}

fn refused(e: PolicyError) -> Refused {
    let reason = match e.problem {
        Problem::Duplicate { .. } => "Duplicate",
        _ => "Invalid",
    };
    Refused {
        reason,
        message: e.to_string(),
    }
}

/// The conditions an object should carry (`Accepted`), keeping the
/// transition time of one that did not change.
pub fn policy_conditions(
    verdict: &Result<(), Refused>,
    generation: Option<i64>,
    existing: &[Condition],
    now: &str,
) -> Vec<Condition> {
    let row: Row = match verdict {
        Ok(()) => (
            "Accepted",
            ConditionStatus::True,
            "Accepted".into(),
            "in force for new connections".into(),
        ),
        Err(r) => (
            "Accepted",
            ConditionStatus::False,
            r.reason.into(),
            r.message.clone(),
        ),
    };
    stamp([row], generation, existing, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::traffic_crd::TrafficPolicySpec;
    use causeway_policy::PolicySpec;

    fn tp(ns: &str, name: &str, spec: serde_json::Value) -> Arc<TrafficPolicy> {
        let spec: PolicySpec = serde_json::from_value(spec).unwrap();
        let mut tp = TrafficPolicy::new(name, TrafficPolicySpec(spec));
        tp.metadata.namespace = Some(ns.into());
        Arc::new(tp)
    }

    fn reasons(v: &Verdicts) -> Vec<(String, Option<&'static str>)> {
        v.iter()
            .map(|(tp, r)| (at(tp), r.as_ref().err().map(|r| r.reason)))
            .collect()
    }

    #[test]
    fn a_bad_object_is_refused_alone_and_the_first_name_wins_a_duplicate() {
        let objects = [
            tp("demo", "zz", serde_json::json!({"service": "web"})),
            tp(
                "demo",
                "bad",
                serde_json::json!({"service": "web", "port": 80, "fault": {"abort_percent": 150.0}}),
            ),
            tp(
                "demo",
                "aa",
                serde_json::json!({"service": "web", "split": {"east": 1}}),
            ),
            tp("other", "aa", serde_json::json!({"service": "web"})),
            tp("demo", "slash", serde_json::json!({"service": "x/web"})),
        ];
        let (set, verdicts) = policies_of(&objects);
        assert_eq!(
            reasons(&verdicts),
            [
                ("TrafficPolicy demo/aa".into(), None),
                ("TrafficPolicy demo/bad".into(), Some("Invalid")),
                ("TrafficPolicy demo/slash".into(), Some("Invalid")),
                ("TrafficPolicy demo/zz".into(), Some("Duplicate")),
                ("TrafficPolicy other/aa".into(), None),
            ]
        );
        assert_eq!(set.len(), 2);
        let web: ServiceKey = "demo/web".parse().unwrap();
        assert_eq!(set.find(&web, 80).unwrap().spec.split.len(), 1);
        let bad = verdicts[1].1.as_ref().unwrap_err();
        assert!(
            bad.message.contains("TrafficPolicy demo/bad") && bad.message.contains("abort_percent"),
            "{bad:?}"
        );
    }

    #[test]
    fn the_accepted_condition_keeps_its_time_while_unchanged() {
        let t0 = "2026-01-01T00:00:00Z";
        let ok = policy_conditions(&Ok(()), Some(1), &[], t0);
        assert_eq!(ok[0].status, ConditionStatus::True);
        let again = policy_conditions(&Ok(()), Some(1), &ok, "2026-01-01T00:01:00Z");
        assert_eq!(again, ok);
        let bad = Err(Refused {
            reason: "Invalid",
            message: "split: every weight is 0".into(),
        });
        let c = policy_conditions(&bad, Some(2), &ok, "2026-01-01T00:02:00Z");
        assert_eq!(
            (c[0].status, c[0].reason.as_str(), c[0].observed_generation),
            (ConditionStatus::False, "Invalid", Some(2))
        );
        assert_eq!(c[0].last_transition_time, "2026-01-01T00:02:00Z");
    }
}
