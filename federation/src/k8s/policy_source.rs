//! TrafficPolicy objects in every namespace: a reflector, and a task that
//! publishes the valid ones as [`Policies`] and writes each object's
//! `Accepted` condition. A bad object is logged, counted and refused alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use causeway_policy::Policies;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::KubeError;
use super::crd::Condition;
use super::policies::{Verdicts, at, policies_of, policy_conditions};
use super::source::{reflect, spawn_reflector};
use super::traffic_crd::TrafficPolicy;
use crate::metrics::Metrics;

/// How often failed status writes are retried without other changes.
const RETRY: Duration = Duration::from_secs(10);

/// A started TrafficPolicy reflector and its change signal.
pub struct PolicySource {
    client: Client,
    store: Store<TrafficPolicy>,
    changed: Arc<Notify>,
}

/// Where a running policy source publishes.
pub(crate) struct PolicyOutputs {
    pub tx: watch::Sender<Arc<Policies>>,
    pub metrics: Metrics,
}

impl PolicySource {
    /// Starts the reflector and waits for its first list. Without the CRD
    /// (a `helm upgrade` does not install new CRDs) it does not wait: no
    /// policies come from Kubernetes until the CRD is applied.
    pub(crate) async fn start(
        client: &Client,
        timeout: Duration,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<Self, KubeError> {
        let changed = Arc::new(Notify::new());
        let kind = "TrafficPolicies";
        let store = if crd_installed(client).await {
            reflect(client, kind, timeout, &changed, tasks, stop).await?
        } else {
            tracing::warn!(
                "the TrafficPolicy CRD (trafficpolicies.causeway.io) is not installed: no policies come from Kubernetes until it is; apply charts/causeway/crds/trafficpolicies.causeway.io.yaml (helm upgrade does not install new CRDs)"
            );
            spawn_reflector(client, kind, &changed, tasks, stop)
        };
        Ok(Self {
            client: client.clone(),
            store,
            changed,
        })
    }

    /// The valid policies now.
    pub fn load(&self) -> Policies {
        policies_of(&self.store.state()).0
    }

    /// Republishes the policies and writes status on every change until `stop`.
    pub(crate) async fn run(self, out: PolicyOutputs, stop: CancellationToken) {
        let mut retry = tokio::time::interval(RETRY);
        let mut logged = BTreeMap::new();
        loop {
            let (set, verdicts) = policies_of(&self.store.state());
            report(&verdicts, &out.metrics, &mut logged);
            out.tx.send_if_modified(|cur| {
                let changed = **cur != set;
                if changed {
                    tracing::info!(count = set.len(), "TrafficPolicies in force changed");
                    *cur = Arc::new(set);
                }
                changed
            });
            self.write_statuses(&verdicts).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.changed.notified() => {}
                _ = retry.tick() => {}
            }
        }
    }

    async fn write_statuses(&self, verdicts: &Verdicts) {
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        for (tp, verdict) in verdicts {
            let existing = tp
                .status
                .as_ref()
                .map(|s| s.conditions.clone())
                .unwrap_or_default();
            let want = policy_conditions(verdict, tp.metadata.generation, &existing, &now);
            if want != existing {
                self.patch_status(tp, want).await;
            }
        }
    }

    async fn patch_status(&self, tp: &TrafficPolicy, conditions: Vec<Condition>) {
        let api: Api<TrafficPolicy> = Api::namespaced(self.client.clone(), tp.namespace());
        let patch = serde_json::json!({ "status": { "conditions": conditions } });
        if let Err(e) = api
            .patch_status(tp.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(object = %at(tp), error = %e, "cannot write TrafficPolicy status; retrying");
        }
    }
}

/// Counts the objects by state and logs each refusal once (again when its
/// reason changes).
fn report(verdicts: &Verdicts, metrics: &Metrics, logged: &mut BTreeMap<String, String>) {
    let mut now = BTreeMap::new();
    for (tp, verdict) in verdicts {
        let Err(r) = verdict else { continue };
        let name = at(tp);
        if logged.get(&name) != Some(&r.message) {
            tracing::error!(object = %name, reason = r.reason, error = %r.message, "TrafficPolicy refused; the others stay in force");
        }
        now.insert(name, r.message.clone());
    }
    *logged = now;
    let refused = logged.len();
    metrics.set_traffic_policies(verdicts.len() - refused, refused);
}

/// False only when the API server says the resource does not exist.
async fn crd_installed(client: &Client) -> bool {
    let api: Api<TrafficPolicy> = Api::all(client.clone());
    !matches!(
        api.list(&ListParams::default().limit(1)).await,
        Err(kube::Error::Api(s)) if s.code == 404
    )
}
