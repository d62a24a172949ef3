//! The Kubernetes source: reflectors over ServiceExports, Services and
//! EndpointSlices; every change rebuilds the exports (published like the
//! static source's) and the ServiceExports' status conditions.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, ClusterId, Export, ServiceKey, VipClaims};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::conditions::{export_conditions, standing};
use super::crd::{Condition, ServiceExport};
use super::exports::{Invalid, SERVICE_NAME_LABEL, build_export, se_namespace};
use super::{KubeError, KubeSourceConfig};
use crate::local_source::SourceOutputs;

/// How often failed status writes are retried without other changes.
const RETRY: Duration = Duration::from_secs(10);

/// A started Kubernetes source: the three caches and their change signal.
pub struct KubeSource {
    client: Client,
    exports: Store<ServiceExport>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    changed: Arc<Notify>,
}

type Verdicts = Vec<(ServiceExport, Result<Export, Invalid>)>;

impl KubeSource {
    /// Checks the cluster's id (About API), starts the reflectors and waits
    /// until each has listed its kind once.
    pub async fn start(
        cfg: &KubeSourceConfig,
        local: &ClusterId,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<Self, KubeError> {
        let client = super::client(cfg.api_url.as_deref()).await?;
        let id = super::about::cluster_id(&client).await?;
        super::about::check(id.as_deref(), local)?;
        let changed = Arc::new(Notify::new());
        let exports = reflect::<ServiceExport>(
            &client,
            "ServiceExports",
            cfg.sync_timeout,
            &changed,
            tasks,
            stop,
        )
        .await?;
        let services =
            reflect::<Service>(&client, "Services", cfg.sync_timeout, &changed, tasks, stop)
                .await?;
        let slices = reflect::<EndpointSlice>(
            &client,
            "EndpointSlices",
            cfg.sync_timeout,
            &changed,
            tasks,
            stop,
        )
        .await?;
        Ok(Self {
            client,
            exports,
            services,
            slices,
            changed,
        })
    }

    /// The client the reflectors use.
    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Every ServiceExport with its export or the reason it is not one.
    fn verdicts(&self) -> Verdicts {
        let slices = self.slices_by_service();
        let none = Vec::new();
        let mut out: Verdicts = self
            .exports
            .state()
            .iter()
            .map(|se| {
                let key = (
                    se_namespace(se).to_owned(),
                    se.metadata.name.clone().unwrap_or_default(),
                );
                let svc = self.services.get(&ObjectRef::new(&key.1).within(&key.0));
                let mine: Vec<&EndpointSlice> = slices
                    .get(&key)
                    .unwrap_or(&none)
                    .iter()
                    .map(AsRef::as_ref)
                    .collect();
                ((**se).clone(), build_export(se, svc.as_deref(), &mine))
            })
            .collect();
        out.sort_by(|a, b| {
            (se_namespace(&a.0), &a.0.metadata.name).cmp(&(se_namespace(&b.0), &b.0.metadata.name))
        });
        out
    }

    /// EndpointSlices by (namespace, Service name): one pass, not one per export.
    fn slices_by_service(&self) -> HashMap<(String, String), Vec<Arc<EndpointSlice>>> {
        let mut by: HashMap<(String, String), Vec<Arc<EndpointSlice>>> = HashMap::new();
        for slice in self.slices.state() {
            let m = &slice.metadata;
            let Some(svc) = m.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
                continue;
            };
            let key = (m.namespace.clone().unwrap_or_default(), svc.clone());
            by.entry(key).or_default().push(slice);
        }
        by
    }

    /// The valid exports now.
    pub fn load(&self) -> Vec<Export> {
        exports_of(&self.verdicts())
    }

    /// The addresses the cluster's Services hold now.
    pub fn claims(&self) -> VipClaims {
        let services = self.services.state();
        super::claims::claims(services.iter().map(AsRef::as_ref))
    }

    /// Republishes exports, claims and status on every change until `stop`.
    pub(crate) async fn run(self, out: SourceOutputs, stop: CancellationToken) {
        let SourceOutputs {
            tx,
            mut catalog,
            local,
            claims,
            ..
        } = out;
        let mut retry = tokio::time::interval(RETRY);
        loop {
            let verdicts = self.verdicts();
            let exports = exports_of(&verdicts);
            let now_claims = self.claims();
            claims.send_if_modified(|cur| {
                let changed = **cur != now_claims;
                if changed {
                    *cur = Arc::new(now_claims);
                }
                changed
            });
            tx.send_if_modified(|cur| {
                let changed = **cur != exports;
                if changed {
                    tracing::info!(count = exports.len(), "kubernetes exports changed");
                    *cur = Arc::new(exports);
                }
                changed
            });
            let snapshot = catalog.borrow_and_update().clone();
            self.write_statuses(&verdicts, &snapshot, &local).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.changed.notified() => {}
                _ = catalog.changed() => {}
                _ = retry.tick() => {}
            }
        }
    }

    async fn write_statuses(
        &self,
        verdicts: &Verdicts,
        catalog: &CatalogSnapshot,
        local: &ClusterId,
    ) {
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        for (se, verdict) in verdicts {
            let existing = se
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let standing = verdict
                .as_ref()
                .map(|e| standing(catalog, &e.key, local))
                .unwrap_or_default();
            let validity = verdict.as_ref().map(|_| ()).map_err(Clone::clone);
            let want = export_conditions(
                &validity,
                &standing,
                se.metadata.generation,
                &existing,
                &now,
            );
            if want != existing {
                self.patch_status(se, want).await;
            }
        }
    }

    async fn patch_status(&self, se: &ServiceExport, conditions: Vec<Condition>) {
        let (ns, name) = (
            se_namespace(se),
            se.metadata.name.clone().unwrap_or_default(),
        );
        let api: Api<ServiceExport> = Api::namespaced(self.client.clone(), ns);
        let patch = serde_json::json!({ "status": { "conditions": conditions } });
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(service = %format!("{ns}/{name}"), error = %e, "cannot write ServiceExport status; retrying");
        }
    }
}

fn exports_of(verdicts: &Verdicts) -> Vec<Export> {
    let mut seen: BTreeMap<ServiceKey, Export> = BTreeMap::new();
    for e in verdicts.iter().filter_map(|(_, v)| v.as_ref().ok()) {
        seen.insert(e.key.clone(), e.clone());
    }
    seen.into_values().collect()
}

/// A reflector for `K` in every namespace, driven by a task until `stop`;
/// returns its store once the first list is in.
pub(super) async fn reflect<K>(
    client: &Client,
    kind: &'static str,
    timeout: Duration,
    changed: &Arc<Notify>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Result<Store<K>, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let store = spawn_reflector(client, kind, changed, tasks, stop);
    match tokio::time::timeout(timeout, store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(store),
        _ => Err(KubeError::SyncTimeout {
            kind,
            secs: timeout.as_secs(),
        }),
    }
}

/// A reflector for `K` in every namespace, driven by a task until `stop`
/// (retrying with backoff while the API server refuses); its store fills in
/// once the first list is in.
pub(super) fn spawn_reflector<K>(
    client: &Client,
    kind: &'static str,
    changed: &Arc<Notify>,
    tasks: &TaskTracker,
    stop: &CancellationToken,
) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    );
    let (changed, stop) = (changed.clone(), stop.clone());
    tasks.spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(_)) => changed.notify_one(),
                Some(Err(e)) => {
                    tracing::warn!(kind, error = %e, "kubernetes watch failed; retrying")
                }
                None => return,
            }
        }
    });
    store
}
