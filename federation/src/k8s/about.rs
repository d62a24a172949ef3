//! The About API (KEP-2149): the cluster's id in the `ClusterProperty`
//! named `cluster.clusterset.k8s.io`, when the cluster has one, must be the
//! configured cluster name.

use causeway_catalog::ClusterId;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};

use super::KubeError;

pub const CLUSTER_ID_PROPERTY: &str = "cluster.clusterset.k8s.io";
/// Served versions of `about.k8s.io`, newest first.
const VERSIONS: [&str; 2] = ["v1beta1", "v1alpha1"];

/// The cluster id the About API gives, if the cluster has one.
pub async fn cluster_id(client: &Client) -> Result<Option<String>, KubeError> {
    for version in VERSIONS {
        let gvk = GroupVersionKind::gvk("about.k8s.io", version, "ClusterProperty");
        let ar = ApiResource::from_gvk_with_plural(&gvk, "clusterproperties");
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        match api.get_opt(CLUSTER_ID_PROPERTY).await {
            Ok(Some(obj)) => {
                let value = obj.data["spec"]["value"].as_str().map(str::to_owned);
                return Ok(value);
            }
            Ok(None) => continue,
            Err(kube::Error::Api(s)) if s.code == 403 => {
                tracing::warn!(
                    "cannot read ClusterProperty {CLUSTER_ID_PROPERTY} (forbidden); using the configured cluster name"
                );
                return Ok(None);
            }
            Err(e) => {
                return Err(KubeError::Api {
                    what: format!("reading ClusterProperty {CLUSTER_ID_PROPERTY}"),
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(None)
}

/// Refuses a cluster whose About API id differs from `configured`.
pub fn check(property: Option<&str>, configured: &ClusterId) -> Result<(), KubeError> {
    match property {
        Some(id) if id != configured.as_str() => Err(KubeError::ClusterIdMismatch {
            property: id.to_owned(),
            configured: configured.to_string(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_both_and_the_fix() {
        let east = ClusterId::new("east").unwrap();
        assert!(check(None, &east).is_ok());
        assert!(check(Some("east"), &east).is_ok());
        let e = check(Some("721ab723-13bc-11e5"), &east)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("721ab723-13bc-11e5") && e.contains("east"),
            "{e}"
        );
        assert!(e.contains("cluster.name"), "{e}");
    }
}
