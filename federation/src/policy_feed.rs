//! The TrafficPolicies in force on the `WatchCatalog` feed, for a gateway
//! run apart: a JSON list of `{namespace, spec}` (`spec.service` is the
//! Service's name). The receiving side validates every entry again and
//! takes the list whole or not at all.

use causeway_catalog::ServiceKey;
use causeway_policy::{Policies, PolicyError, PolicySpec, Problem};
use serde::{Deserialize, Serialize};

use crate::k8s::MAX_POLICIES;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePolicy {
    namespace: String,
    spec: PolicySpec,
}

/// Why the policies on the feed were not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFeedError {
    #[error("the policies are not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{count} policies is more than the {max} allowed")]
    TooMany { count: usize, max: usize },
    #[error("{0}")]
    Invalid(#[from] PolicyError),
}

pub fn encode(policies: &Policies) -> Result<Vec<u8>, serde_json::Error> {
    let list: Vec<WirePolicy> = policies
        .iter()
        .map(|p| WirePolicy {
            namespace: p.key.namespace().to_owned(),
            spec: PolicySpec {
                service: p.key.name().to_owned(),
                ..p.spec.clone()
            },
        })
        .collect();
    serde_json::to_vec(&list)
}

/// The policies in `bytes`, each validated; none from a federation that
/// sends no policies (empty bytes).
pub fn decode(bytes: &[u8]) -> Result<Policies, PolicyFeedError> {
    if bytes.is_empty() {
        return Ok(Policies::default());
    }
    let list: Vec<WirePolicy> = serde_json::from_slice(bytes)?;
    if list.len() > MAX_POLICIES {
        return Err(PolicyFeedError::TooMany {
            count: list.len(),
            max: MAX_POLICIES,
        });
    }
    let mut set = Policies::default();
    for (i, p) in list.into_iter().enumerate() {
        let at = format!("feed policies[{i}] ({}/{})", p.namespace, p.spec.service);
        let key = ServiceKey::new(&p.namespace, &p.spec.service).map_err(|e| PolicyError {
            at: at.clone(),
            problem: Problem::Service {
                value: p.spec.service.clone(),
                expected: "a Service name",
                why: e.to_string(),
            },
        })?;
        set.insert(&at, key, p.spec)?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the Kubernetes source builds them: `service` is the name alone.
    fn policies(specs: serde_json::Value) -> Policies {
        let specs: Vec<PolicySpec> = serde_json::from_value(specs).unwrap();
        let mut set = Policies::default();
        for (i, spec) in specs.into_iter().enumerate() {
            let key = ServiceKey::new("demo", &spec.service).unwrap();
            set.insert(&i.to_string(), key, spec).unwrap();
        }
        set
    }

    #[test]
    fn policies_survive_the_trip_and_bad_ones_are_refused_whole() {
        let p = policies(serde_json::json!([
            {"service": "web", "split": {"east": 9, "west": 1}},
            {"service": "web", "port": 443, "attempts": 2},
        ]));
        let bytes = encode(&p).unwrap();
        assert_eq!(decode(&bytes).unwrap(), p);
        assert_eq!(decode(b"").unwrap(), Policies::default());
        let bad = br#"[{"namespace": "demo", "spec": {"service": "web", "split": {"east": 0}}}]"#;
        assert!(matches!(decode(bad), Err(PolicyFeedError::Invalid(_))));
        let slash = br#"[{"namespace": "demo", "spec": {"service": "a/b"}}]"#;
        assert!(matches!(decode(slash), Err(PolicyFeedError::Invalid(_))));
        assert!(matches!(decode(b"{"), Err(PolicyFeedError::Json(_))));
        let one = r#"{"namespace": "demo", "spec": {"service": "web"}}"#;
        let many = format!("[{}]", vec![one; MAX_POLICIES + 1].join(","));
        assert!(matches!(
            decode(many.as_bytes()),
            Err(PolicyFeedError::TooMany { .. })
        ));
    }
}
