//! The Kubernetes sink: while this replica leads, keeps ServiceImports,
//! derived Services and their EndpointSlices equal to the merged catalog.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use causeway_catalog::CatalogSnapshot;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::crd::ServiceImport;
use super::desired::{
    MANAGED_BY, MANAGED_BY_VALUE, derived_service, derived_slice, service_imports,
};
use super::leader::LeaderLease;
use super::plan::{Action, Change, plan};
use super::{KubeError, KubeSinkConfig, api_err};
use causeway_catalog::gateway_ports;

pub struct KubeSink {
    client: Client,
    cfg: KubeSinkConfig,
    lease: LeaderLease,
}

/// Starts the sink on `tasks`: elects, then reconciles on every catalog change.
pub async fn spawn_sink(
    cfg: &KubeSinkConfig,
    catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<(), KubeError> {
    let client = super::client(cfg.api_url.as_deref()).await?;
    let me = match &cfg.identity {
        Some(id) => id.clone(),
        None => hostname()?,
    };
    let lease = LeaderLease {
        api: Api::namespaced(client.clone(), &cfg.namespace),
        name: cfg.lease_name.clone(),
        me,
        duration: cfg.lease_duration,
    };
    let sink = KubeSink {
        client,
        cfg: cfg.clone(),
        lease,
    };
    tasks.spawn(sink.run(catalog, stop));
    Ok(())
}

fn hostname() -> Result<String, KubeError> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .map_err(|e| KubeError::Config(format!("cannot read the host name for the Lease identity ({e}); set federation.kubernetes.identity")))
}

fn owned() -> ListParams {
    ListParams::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"))
}

impl KubeSink {
    async fn run(
        self,
        mut catalog: watch::Receiver<Arc<CatalogSnapshot>>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.cfg.renew_interval);
        let (mut leading, mut synced_at) = (false, None::<Instant>);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
                r = catalog.changed() => { if r.is_err() { return; } synced_at = None; }
            }
            let was = leading;
            leading = self.lease.try_lead().await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "leader election failed; not writing");
                false
            });
            if leading != was {
                tracing::info!(identity = %self.lease.me, leading, "kubernetes sink leadership changed");
                synced_at = None;
            }
            let due = synced_at.is_none_or(|t| t.elapsed() >= self.cfg.resync_interval);
            if leading && due {
                let snapshot = catalog.borrow_and_update().clone();
                match self.reconcile(&snapshot).await {
                    Ok(()) => synced_at = Some(Instant::now()),
                    Err(e) => {
                        tracing::warn!(error = %e, "kubernetes sink reconcile failed; retrying")
                    }
                }
            }
        }
    }

    /// One pass: ServiceImports, then Services (owned by them), then EndpointSlices.
    pub async fn reconcile(&self, catalog: &CatalogSnapshot) -> Result<(), KubeError> {
        let gw = gateway_ports(catalog, self.cfg.port_base, self.cfg.port_count);
        let wanted: usize = catalog.imports.values().map(|i| i.ports.len()).sum();
        if gw.len() < wanted {
            tracing::error!(
                placed = gw.len(),
                wanted,
                "not every imported port got a gateway port; raise federation.kubernetes.port_count (and gateway.kubernetes.port_count)"
            );
        }
        let imports: Api<ServiceImport> = Api::all(self.client.clone());
        let have = list(&imports, "ServiceImports").await?;
        let actions = plan(service_imports(catalog, &gw), &have, diff_import);
        self.apply(actions).await?;
        let sis = list(&imports, "ServiceImports").await?;
        let services: Api<Service> = Api::all(self.client.clone());
        let want = catalog.imports.values().filter_map(|i| {
            let si = sis.iter().find(|s| {
                s.metadata.name.as_deref() == Some(i.key.name())
                    && s.metadata.namespace.as_deref() == Some(i.key.namespace())
            })?;
            Some(derived_service(i, &gw, si))
        });
        let actions = plan(
            want.collect(),
            &list(&services, "Services").await?,
            diff_service,
        );
        self.apply(actions).await?;
        let svcs = list(&services, "Services").await?;
        let gateways = self.gateway_ips().await?;
        let want = catalog.imports.values().filter_map(|i| {
            let name = super::desired::derived_name(i.key.name());
            let svc = svcs.iter().find(|s| {
                s.metadata.name.as_deref() == Some(&name)
                    && s.metadata.namespace.as_deref() == Some(i.key.namespace())
            })?;
            Some(derived_slice(i, &gw, &gateways, svc))
        });
        let slices: Api<EndpointSlice> = Api::all(self.client.clone());
        let actions = plan(
            want.collect(),
            &list(&slices, "EndpointSlices").await?,
            diff_slice,
        );
        self.apply(actions).await
    }

    async fn gateway_ips(&self) -> Result<Vec<IpAddr>, KubeError> {
        let sel: Vec<String> = self
            .cfg
            .gateway_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.cfg.namespace);
        let list = pods
            .list(&ListParams::default().labels(&sel.join(",")))
            .await
            .map_err(api_err("gateway Pods"))?;
        let ready = |p: &Pod| {
            let conds = p.status.as_ref().and_then(|s| s.conditions.as_ref());
            conds.is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        let mut ips: Vec<IpAddr> = list
            .items
            .iter()
            .filter(|p| ready(p))
            .filter_map(|p| p.status.as_ref()?.pod_ip.as_ref()?.parse().ok())
            .collect();
        ips.sort();
        Ok(ips)
    }

    async fn apply<K>(&self, actions: Vec<Action<K>>) -> Result<(), KubeError>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned
            + HasStatus,
    {
        for action in actions {
            apply_one(&self.client, action).await?;
        }
        Ok(())
    }
}

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

async fn apply_one<K>(client: &Client, action: Action<K>) -> Result<(), KubeError>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + HasStatus,
{
    let kind = K::kind(&());
    let pp = PostParams::default();
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

async fn list<K>(api: &Api<K>, what: &str) -> Result<Vec<K>, KubeError>
where
    K: Resource + Clone + std::fmt::Debug + DeserializeOwned,
{
    Ok(api
        .list(&owned())
        .await
        .map_err(api_err(format!("listing {what}")))?
        .items)
}

fn diff_import(want: &ServiceImport, have: &ServiceImport) -> Change {
    let same = want.spec == have.spec
        && want.status == have.status
        && want.metadata.annotations == have.metadata.annotations;
    if same { Change::None } else { Change::Update }
}

fn diff_service(want: &Service, have: &Service) -> Change {
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

fn diff_slice(want: &EndpointSlice, have: &EndpointSlice) -> Change {
    let same = want.endpoints == have.endpoints
        && want.ports == have.ports
        && want.metadata.owner_references == have.metadata.owner_references;
    if same { Change::None } else { Change::Update }
}
