//! The leader labels its own pod, so a Service can send the gateway and DNS
//! pods' catalog subscriptions to the leader alone: every consumer then sees
//! the ClusterSetIPs the leader wrote into the derived Services.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};

/// Label on the pod of the federation replica holding the Lease.
pub const LEADER_LABEL: &str = "causeway.io/federation-leader";

pub struct LeaderPod {
    pub api: Api<Pod>,
    pub name: String,
    /// What the pod carries now, as far as we know (`None`: unknown).
    pub labelled: Option<bool>,
}

impl LeaderPod {
    /// Sets or removes the label to match `leading`; retried on the next call after a failure.
    pub async fn sync(&mut self, leading: bool) {
        if self.labelled == Some(leading) {
            return;
        }
        let value = leading.then_some("true");
        let patch = serde_json::json!({ "metadata": { "labels": { LEADER_LABEL: value } } });
        let params = PatchParams::default();
        match self
            .api
            .patch(&self.name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.labelled = Some(leading),
            Err(e) => {
                tracing::warn!(pod = %self.name, error = %e, "cannot label this pod as leader (needs patch on pods); retrying")
            }
        }
    }
}
