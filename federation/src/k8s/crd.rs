//! The MCS API objects (`multicluster.x-k8s.io/v1alpha1`): ServiceExport and
//! ServiceImport, written by hand so a ServiceExport without `spec` (the
//! usual case) still parses. The CRDs themselves ship in the Helm chart.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::core::{NamespaceResourceScope, Resource};
use serde::{Deserialize, Serialize};

const GROUP: &str = "multicluster.x-k8s.io";
const VERSION: &str = "v1alpha1";

/// Implements [`Resource`] for a namespaced MCS kind.
macro_rules! mcs_resource {
    ($ty:ident, $kind:literal, $plural:literal) => {
        impl Resource for $ty {
            type DynamicType = ();
            type Scope = NamespaceResourceScope;
            fn kind(_: &()) -> Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> Cow<'_, str> {
                GROUP.into()
            }
            fn version(_: &()) -> Cow<'_, str> {
                VERSION.into()
            }
            fn plural(_: &()) -> Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// Marks the Service of the same namespace and name as exported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExport {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceExportStatus>,
}
mcs_resource!(ServiceExport, "ServiceExport", "serviceexports");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExportStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// A service imported from the clusterset, as this cluster sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImport {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceImportSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ServiceImportStatus>,
}
mcs_resource!(ServiceImport, "ServiceImport", "serviceimports");

impl ServiceImport {
    /// A ServiceImport with apiVersion and kind filled in.
    pub fn new(metadata: ObjectMeta, spec: ServiceImportSpec, status: ServiceImportStatus) -> Self {
        Self {
            api_version: format!("{GROUP}/{VERSION}"),
            kind: "ServiceImport".into(),
            metadata,
            spec,
            status: Some(status),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImportSpec {
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// `ClusterSetIP` or `Headless`; causeway writes `ClusterSetIP`.
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: String,
    pub port: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImportStatus {
    #[serde(default)]
    pub clusters: Vec<ClusterStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub cluster: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_without_spec_parses_and_paths_are_right() {
        let e: ServiceExport = serde_json::from_str(
            r#"{"apiVersion":"multicluster.x-k8s.io/v1alpha1","kind":"ServiceExport","metadata":{"name":"web","namespace":"demo"}}"#,
        )
        .unwrap();
        assert_eq!(e.metadata.name.as_deref(), Some("web"));
        let url = ServiceImport::url_path(&(), Some("demo"));
        assert_eq!(
            url,
            "/apis/multicluster.x-k8s.io/v1alpha1/namespaces/demo/serviceimports"
        );
    }
}
