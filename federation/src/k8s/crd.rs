//! The MCS API objects, `multicluster.x-k8s.io/v1beta1`, field for field as
//! upstream (sigs.k8s.io/mcs-api v0.5.0, `pkg/apis/v1beta1`). The chart's
//! CRDs are generated from these types ([`super::crdgen`]); `spec` is
//! optional on both kinds, as upstream, so a ServiceExport without one parses.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "multicluster.x-k8s.io";
/// The version causeway reads and writes (the storage version).
pub const VERSION: &str = "v1beta1";
/// Also served, with the same schema (no conversion), as upstream does.
pub const OLD_VERSION: &str = "v1alpha1";
/// EndpointSlice label naming the multi-cluster service.
pub const LABEL_SERVICE_NAME: &str = "multicluster.kubernetes.io/service-name";
/// EndpointSlice label naming the cluster the endpoints are in.
pub const LABEL_SOURCE_CLUSTER: &str = "multicluster.kubernetes.io/source-cluster";

/// ServiceExport declares that the Service with the same name and namespace
/// as this export should be consumable from other clusters.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "multicluster.x-k8s.io",
    version = "v1beta1",
    kind = "ServiceExport",
    namespaced,
    no_spec,
    status = "ServiceExportStatus",
    shortname = "svcex",
    shortname = "svcexport",
    derive = "PartialEq",
    derive = "Default",
    doc = "ServiceExport declares that the Service with the same name and namespace as this export should be consumable from other clusters.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ServiceExportBody {
    /// spec defines the behavior of a ServiceExport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceExportSpec>,
}

/// What a ServiceExport asks for besides the Service itself.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExportSpec {
    /// exportedLabels describes the labels exported. It is optional for implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_labels: Option<BTreeMap<String, String>>,
    /// exportedAnnotations describes the annotations exported. It is optional for implementation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_annotations: Option<BTreeMap<String, String>>,
}

/// The current state of an exported service, written by the MCS controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServiceExportStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// ServiceImport describes a service imported from clusters in a ClusterSet.
// Two print columns of type string read as a duplicated attribute to clippy.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "multicluster.x-k8s.io",
    version = "v1beta1",
    kind = "ServiceImport",
    namespaced,
    no_spec,
    status = "ServiceImportStatus",
    shortname = "svcim",
    shortname = "svcimport",
    derive = "PartialEq",
    derive = "Default",
    doc = "ServiceImport describes a service imported from clusters in a ClusterSet.",
    printcolumn(
        name = "Type",
        type_ = "string",
        description = "The type of this ServiceImport",
        json_path = ".spec.type"
    ),
    printcolumn(
        name = "IP",
        type_ = "string",
        description = "The VIP for this ServiceImport",
        json_path = ".spec.ips"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ServiceImportBody {
    /// spec defines the behavior of a ServiceImport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceImportSpec>,
}

/// ClusterSetIP (reached through the clusterset IP) or Headless (endpoints addressed directly).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ServiceImportType {
    #[default]
    ClusterSetIP,
    Headless,
}

/// An imported service and what is needed to consume it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImportSpec {
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub ports: Vec<ServicePort>,
    /// ip will be used as the VIP for this service when type is ClusterSetIP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub ips: Vec<String>,
    /// type defines the type of this service. Must be ClusterSetIP or Headless.
    #[serde(rename = "type")]
    pub type_: ServiceImportType,
    /// ClientIP or None (the default); ignored when type is Headless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    /// sessionAffinityConfig contains session affinity configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// IPFamilies identifies all the IPFamilies assigned for this ServiceImport.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub ip_families: Vec<String>,
    /// How nodes distribute service traffic they receive on the ClusterIP: Cluster or Local.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    /// A preference for how traffic is distributed to endpoints, e.g. PreferClose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
}

/// A port on which the service is exposed.
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// A DNS_LABEL, unique within the service; optional when the service has one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// TCP, UDP or SCTP; default TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The application protocol for this port (a hint, in Kubernetes label syntax).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// The port that will be exposed by this service.
    pub port: i32,
}

/// Session affinity configuration, as on a Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SessionAffinityConfig {
    /// clientIP contains the configurations of Client IP based session affinity.
    #[serde(rename = "clientIP", default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

/// Client IP based session affinity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientIpConfig {
    /// Seconds of ClientIP session stickiness (0-86400; Kubernetes defaults it to 10800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// The derived state of an imported service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ServiceImportStatus {
    /// clusters is the list of exporting clusters from which this service was derived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["cluster"]))]
    pub clusters: Vec<ClusterStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Service configuration mapped to a specific source cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ClusterStatus {
    /// cluster is the name of the exporting cluster. Must be a valid RFC-1123 DNS label.
    pub cluster: String,
}

/// One aspect of the current state of an object (`metav1.Condition`, with
/// the API server's validation).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// When the condition last changed status (RFC 3339).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// A human readable message about the transition; may be empty.
    #[schemars(length(max = 32768))]
    pub message: String,
    /// The .metadata.generation the condition was set based upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// A CamelCase reason for the condition's last transition.
    #[schemars(
        length(min = 1, max = 1024),
        regex(pattern = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    )]
    pub reason: String,
    /// status of the condition, one of True, False, Unknown.
    pub status: ConditionStatus,
    /// type of condition in CamelCase or in foo.example.com/CamelCase.
    #[serde(rename = "type")]
    #[schemars(
        length(max = 316),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
        )
    )]
    pub type_: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ServiceImport {
    pub fn spec(&self) -> Option<&ServiceImportSpec> {
        self.spec.spec.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::Resource;

    #[test]
    fn an_export_without_spec_parses_and_paths_are_right() {
        let e: ServiceExport = serde_json::from_str(
            r#"{"apiVersion":"multicluster.x-k8s.io/v1beta1","kind":"ServiceExport","metadata":{"name":"web","namespace":"demo"}}"#,
        )
        .unwrap();
        assert_eq!(e.metadata.name.as_deref(), Some("web"));
        assert_eq!(e.spec.spec, None);
        let url = ServiceImport::url_path(&(), Some("demo"));
        assert_eq!(
            url,
            "/apis/multicluster.x-k8s.io/v1beta1/namespaces/demo/serviceimports"
        );
    }

    #[test]
    fn an_import_serializes_as_upstream_names_it() {
        let mut si = ServiceImport::new(
            "web",
            ServiceImportBody {
                spec: Some(ServiceImportSpec {
                    ports: vec![ServicePort {
                        port: 80,
                        ..ServicePort::default()
                    }],
                    session_affinity_config: Some(SessionAffinityConfig {
                        client_ip: Some(ClientIpConfig {
                            timeout_seconds: Some(10),
                        }),
                    }),
                    ..ServiceImportSpec::default()
                }),
            },
        );
        si.status = None;
        let v = serde_json::to_value(&si).unwrap();
        assert_eq!(v["apiVersion"], "multicluster.x-k8s.io/v1beta1");
        assert_eq!(v["spec"]["type"], "ClusterSetIP");
        assert_eq!(
            v["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10
        );
        assert!(v.get("status").is_none());
    }
}
