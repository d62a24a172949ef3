//! Applying planned actions through the API: create, replace, recreate,
//! delete, then the status subresource (ignored by create and replace).

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::crd::ServiceImport;
use super::plan::Action;
use super::{KubeError, api_err};

/// Objects whose status is written separately (the ServiceImport).
pub trait HasStatus {
    fn status_json(&self) -> Option<serde_json::Value> {
        None
    }
}
impl HasStatus for Service {}
impl HasStatus for EndpointSlice {}
impl HasStatus for ServiceImport {
    fn status_json(&self) -> Option<serde_json::Value> {
        self.status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
    }
}

/// A namespaced object the sink creates, updates and deletes.
pub trait Owned:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + Serialize
    + DeserializeOwned
    + HasStatus
{
}

impl<K> Owned for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + HasStatus
{
}

pub async fn apply_one<K: Owned>(client: &Client, action: Action<K>) -> Result<(), KubeError> {
    let kind = K::kind(&());
    let pp = PostParams::default();
    let replacing = matches!(action, Action::Replace(_));
    let (want, result) = match action {
        Action::Delete { namespace, name } => {
            return delete::<K>(client, &kind, &namespace, &name).await;
        }
        Action::Create(k) => {
            tracing::info!(%kind, namespace = %ns_of(&k), name = %name_of(&k), "creating");
            let r = api_for::<K>(client, &k).create(&pp, &k).await;
            (k, r)
        }
        Action::Replace(k) => {
            let r = api_for::<K>(client, &k)
                .replace(&name_of(&k), &pp, &k)
                .await;
            (k, r)
        }
        Action::Recreate(k) => {
            tracing::info!(%kind, namespace = %ns_of(&k), name = %name_of(&k), "recreating (immutable field changed)");
            let api = api_for::<K>(client, &k);
            let _ = api.delete(&name_of(&k), &DeleteParams::default()).await;
            let r = api.create(&pp, &k).await;
            (k, r)
        }
    };
    match result {
        Ok(_) => write_status(&api_for::<K>(client, &want), &want, &kind).await,
        // Our own object changed since it was listed: the next round retries it.
        Err(kube::Error::Api(s)) if s.code == 409 && replacing => {
            Err(api_err(format!("replacing {kind} (changed since listed)"))(
                kube::Error::Api(s),
            ))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::warn!(%kind, error = %s.message, "not writing: the object changed or exists without the managed-by label (causeway never touches objects it does not own)");
            Ok(())
        }
        Err(e) => Err(api_err(format!("writing {kind}"))(e)),
    }
}

fn ns_of<K: Resource>(k: &K) -> String {
    k.meta().namespace.clone().unwrap_or_default()
}

fn name_of<K: Resource>(k: &K) -> String {
    k.meta().name.clone().unwrap_or_default()
}

fn api_for<K>(client: &Client, k: &K) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
{
    Api::namespaced(client.clone(), &ns_of(k))
}

async fn delete<K>(
    client: &Client,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<(), KubeError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    tracing::info!(%kind, %namespace, %name, "deleting");
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
        Err(e) => Err(api_err(format!("deleting {kind} {namespace}/{name}"))(e)),
    }
}

/// Writes `want`'s status (the API server ignores status on create and replace).
async fn write_status<K>(api: &Api<K>, want: &K, kind: &str) -> Result<(), KubeError>
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + DeserializeOwned + HasStatus,
{
    let Some(status) = want.status_json() else {
        return Ok(());
    };
    let name = name_of(want);
    let patch = serde_json::json!({ "status": status });
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(api_err(format!("writing {kind} {name} status")))
}
