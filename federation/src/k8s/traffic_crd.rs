//! The `TrafficPolicy` resource, `causeway.io/v1alpha1`: a namespaced object
//! whose `spec` is [`causeway_policy::PolicySpec`] itself (one set of fields
//! for causeway.yaml and Kubernetes), with `service` naming a Service in the
//! object's own namespace. The chart's CRD is generated from this type
//! ([`super::crdgen`]); the federation writes the `Accepted` condition.

use causeway_policy::PolicySpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::crd::Condition;

/// Traffic policy for one Service (and optionally one port) in this namespace.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "causeway.io",
    version = "v1alpha1",
    kind = "TrafficPolicy",
    namespaced,
    status = "TrafficPolicyStatus",
    shortname = "tp",
    derive = "PartialEq",
    doc = "Traffic policy for connections to a Service of this namespace that cross clusters: split, hash, faults, mirroring, timeouts and failover on the importing side; rate, concurrency and bandwidth limits on the exporting side.",
    printcolumn(name = "Service", type_ = "string", json_path = ".spec.service"),
    printcolumn(
        name = "Accepted",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Accepted\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(transparent)]
pub struct TrafficPolicySpec(pub PolicySpec);

/// What the federation made of the object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct TrafficPolicyStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl TrafficPolicy {
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}
