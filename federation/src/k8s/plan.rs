//! Desired versus actual, pure: what to create, replace, recreate or delete.
//! `actual` holds only objects carrying the managed-by label, so objects
//! causeway does not own are never changed or deleted.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;

use super::crd::ServiceImport;

/// How an existing object differs from the wanted one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// A mutable field differs: replace it in place.
    Update,
    /// An immutable field differs (a Service's ClusterIP): delete, then create.
    Recreate,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action<K> {
    Create(K),
    /// Replace, with the actual object's resourceVersion filled in.
    Replace(K),
    Recreate(K),
    Delete {
        namespace: String,
        name: String,
    },
}

fn key<K: Resource>(k: &K) -> (String, String) {
    let m = k.meta();
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// The actions that turn `actual` into `desired`.
pub fn plan<K: Resource + Clone>(
    desired: Vec<K>,
    actual: &[K],
    diff: impl Fn(&K, &K) -> Change,
) -> Vec<Action<K>> {
    let mut have: BTreeMap<_, &K> = actual.iter().map(|k| (key(k), k)).collect();
    let mut out = Vec::new();
    for mut want in desired {
        match have.remove(&key(&want)) {
            None => out.push(Action::Create(want)),
            Some(cur) => match diff(&want, cur) {
                Change::None => {}
                Change::Update => {
                    want.meta_mut().resource_version = cur.meta().resource_version.clone();
                    out.push(Action::Replace(want));
                }
                Change::Recreate => out.push(Action::Recreate(want)),
            },
        }
    }
    out.extend(
        have.into_keys()
            .map(|(namespace, name)| Action::Delete { namespace, name }),
    );
    out
}

pub fn diff_import(want: &ServiceImport, have: &ServiceImport) -> Change {
    let same = want.spec() == have.spec()
        && want.status == have.status
        && want.metadata.annotations == have.metadata.annotations
        && want.metadata.labels == have.metadata.labels;
    if same { Change::None } else { Change::Update }
}

pub fn diff_service(want: &Service, have: &Service) -> Change {
    let (w, h) = (
        want.spec.clone().unwrap_or_default(),
        have.spec.clone().unwrap_or_default(),
    );
    if w.cluster_ip.is_some() && w.cluster_ip != h.cluster_ip {
        return Change::Recreate;
    }
    let same_ports = w.ports == h.ports;
    let same_owner = want.metadata.owner_references == have.metadata.owner_references;
    if same_ports && same_owner {
        Change::None
    } else {
        Change::Update
    }
}

pub fn diff_slice(want: &EndpointSlice, have: &EndpointSlice) -> Change {
    let same = want.endpoints == have.endpoints
        && want.ports == have.ports
        && want.metadata.owner_references == have.metadata.owner_references;
    if same { Change::None } else { Change::Update }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(name: &str, value: &str, rv: Option<&str>) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                resource_version: rv.map(Into::into),
                ..ObjectMeta::default()
            },
            data: Some([("v".to_owned(), value.to_owned())].into()),
            ..ConfigMap::default()
        }
    }

    fn diff(a: &ConfigMap, b: &ConfigMap) -> Change {
        match (
            a.data == b.data,
            a.data.as_ref().map(|d| d.contains_key("immutable")),
        ) {
            (true, _) => Change::None,
            (false, Some(true)) => Change::Recreate,
            (false, _) => Change::Update,
        }
    }

    #[test]
    fn creates_replaces_and_deletes_only_what_differs() {
        let actual = [
            cm("same", "1", Some("5")),
            cm("edit", "1", Some("6")),
            cm("gone", "1", Some("7")),
        ];
        let desired = vec![
            cm("same", "1", None),
            cm("edit", "2", None),
            cm("new", "1", None),
        ];
        let got = plan(desired, &actual, diff);
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], Action::Replace(cm("edit", "2", Some("6"))));
        assert_eq!(got[1], Action::Create(cm("new", "1", None)));
        assert_eq!(
            got[2],
            Action::Delete {
                namespace: "ns".into(),
                name: "gone".into()
            }
        );
        assert!(plan(vec![], &[], diff).is_empty());
    }

    fn svc(ip: Option<&str>, port: i32, rv: Option<&str>) -> Service {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-clusterset", "namespace": "demo", "resourceVersion": rv},
            "spec": {"clusterIP": ip, "ports": [{"port": port}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_changed_cluster_ip_recreates_and_a_changed_port_replaces() {
        let have = svc(Some("10.96.0.130"), 80, Some("3"));
        assert_eq!(
            diff_service(&svc(Some("10.96.0.130"), 80, None), &have),
            Change::None
        );
        assert_eq!(
            diff_service(&svc(Some("10.96.0.130"), 81, None), &have),
            Change::Update
        );
        assert_eq!(
            diff_service(&svc(Some("10.96.0.131"), 80, None), &have),
            Change::Recreate
        );
        // No ClusterSetIP wanted: keep whatever the API server gave it.
        assert_eq!(diff_service(&svc(None, 80, None), &have), Change::None);
        let got = plan(
            vec![svc(Some("10.96.0.131"), 80, None)],
            &[have],
            diff_service,
        );
        assert!(matches!(&got[..], [Action::Recreate(_)]), "{got:?}");
    }
}
