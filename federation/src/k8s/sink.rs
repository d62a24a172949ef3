//! The Kubernetes sink: while this replica leads, keeps ServiceImports,
//! derived Services and their EndpointSlices equal to the merged catalog.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use causeway_catalog::{CatalogSnapshot, Import, port_keys};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::apply::{Owned, apply_one};
use super::crd::ServiceImport;
use super::desired::{
    MANAGED_BY, MANAGED_BY_VALUE, derived_services, routing_slice, service_imports,
};
use super::leader::LeaderLease;
use super::leader_pod::LeaderPod;
use super::mcs_slices::mcs_slices;
use super::plan::{Action, diff_import, diff_service, diff_slice, plan};
use super::{KubeError, KubeSinkConfig, api_err};
use causeway_catalog::gateway_ports;

pub struct KubeSink {
    client: Client,
    cfg: KubeSinkConfig,
    lease: LeaderLease,
    pod: Option<LeaderPod>,
    /// Whether this replica leads (the catalog feed serves only then).
    leading: watch::Sender<bool>,
}

/// The catalog, and whether it is settled ([`crate::Federation::settled`]).
pub type SinkInputs = (watch::Receiver<Arc<CatalogSnapshot>>, watch::Receiver<bool>);

/// Starts the sink on `tasks`: elects, then reconciles on every catalog
/// change, once the catalog is settled (a replica that starts and leads at
/// once must not delete every import its peers have not sent yet).
pub async fn spawn_sink(
    cfg: &KubeSinkConfig,
    (catalog, settled): SinkInputs,
    leading: watch::Sender<bool>,
    tasks: &TaskTracker,
    stop: CancellationToken,
) -> Result<(), KubeError> {
    let client = super::client(cfg.api_url.as_deref()).await?;
    let me = match &cfg.identity {
        Some(id) => id.clone(),
        None => hostname()?,
    };
    let pod = cfg.label_leader_pod.then(|| LeaderPod {
        api: Api::namespaced(client.clone(), &cfg.namespace),
        name: me.clone(),
        labelled: None,
    });
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
        pod,
        leading,
    };
    tasks.spawn(sink.run(catalog, settled, stop));
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
        mut self,
        mut catalog: watch::Receiver<Arc<CatalogSnapshot>>,
        mut settled: watch::Receiver<bool>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.cfg.renew_interval);
        let (mut leading, mut synced_at) = (false, None::<Instant>);
        let mut pods = self.gateway_pod_events();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return self.step_down(leading).await,
                _ = tick.tick() => {}
                r = catalog.changed() => { if r.is_err() { return; } synced_at = None; }
                r = settled.changed(), if !*settled.borrow() => { if r.is_err() { return; } }
                // A gateway pod came, went or changed readiness: slices follow at once.
                Some(_) = pods.next() => synced_at = None,
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
            self.leading
                .send_if_modified(|l| std::mem::replace(l, leading) != leading);
            if let Some(pod) = &mut self.pod {
                pod.sync(leading).await;
            }
            let due = synced_at.is_none_or(|t| t.elapsed() >= self.cfg.resync_interval);
            if leading && due && *settled.borrow() {
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

    /// Events on the gateway pods (the watch retries with backoff on errors).
    fn gateway_pod_events(&self) -> futures::stream::BoxStream<'static, ()> {
        use kube::runtime::{WatchStreamExt, watcher};
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.cfg.namespace);
        let cfg = watcher::Config::default().labels(&self.gateway_labels());
        watcher(pods, cfg)
            .default_backoff()
            .filter_map(|e| std::future::ready(e.ok().map(|_| ())))
            .boxed()
    }

    fn gateway_labels(&self) -> String {
        let sel: Vec<String> = (self.cfg.gateway_selector.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        sel.join(",")
    }

    /// On shutdown: unlabel the pod, then hand the Lease back.
    async fn step_down(mut self, leading: bool) {
        self.leading.send_replace(false);
        if !leading {
            return;
        }
        if let Some(pod) = &mut self.pod {
            pod.sync(false).await;
        }
        self.lease.release().await;
    }

    /// One pass: ServiceImports, then Services (owned by them), then EndpointSlices.
    pub async fn reconcile(&self, catalog: &CatalogSnapshot) -> Result<(), KubeError> {
        let gw = gateway_ports(catalog, self.cfg.port_base, self.cfg.port_count);
        let wanted: usize = catalog.imports.values().map(|i| port_keys(i).len()).sum();
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
        let mut result = self.apply(actions).await;
        let sis = list(&imports, "ServiceImports").await?;
        let owner = |i: &Import| {
            sis.iter().find(|s| {
                s.metadata.name.as_deref() == Some(i.key.name())
                    && s.metadata.namespace.as_deref() == Some(i.key.namespace())
            })
        };
        let services: Api<Service> = Api::all(self.client.clone());
        let want = catalog
            .imports
            .values()
            .filter_map(|i| Some(derived_services(i, &gw, owner(i)?)))
            .flatten();
        let actions = plan(
            want.collect(),
            &list(&services, "Services").await?,
            diff_service,
        );
        result = result.and(self.apply(actions).await);
        let svcs = list(&services, "Services").await?;
        let gateways = self.gateway_ips().await?;
        let mut want: Vec<EndpointSlice> =
            svcs.iter().map(|s| routing_slice(s, &gateways)).collect();
        for i in catalog.imports.values() {
            want.extend(
                owner(i)
                    .map(|o| mcs_slices(i, &gateways, o))
                    .unwrap_or_default(),
            );
        }
        let slices: Api<EndpointSlice> = Api::all(self.client.clone());
        let actions = plan(want, &list(&slices, "EndpointSlices").await?, diff_slice);
        result.and(self.apply(actions).await)
    }

    async fn gateway_ips(&self) -> Result<Vec<IpAddr>, KubeError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.cfg.namespace);
        let list = pods
            .list(&ListParams::default().labels(&self.gateway_labels()))
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

    async fn apply<K: Owned>(&self, actions: Vec<Action<K>>) -> Result<(), KubeError> {
        let mut first = Ok(());
        for action in actions {
            // One bad object (say, a namespace missing here) must not hold up the others.
            if let Err(e) = apply_one(&self.client, action).await {
                tracing::warn!(error = %e, "kubernetes sink: write failed; retrying next round");
                first = first.and(Err(e));
            }
        }
        first
    }
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
