//! Kubernetes mode: exports from MCS ServiceExports (the source) and
//! ServiceImports plus derived Services from the merged catalog (the sink),
//! the latter written only by the replica holding a coordination Lease.
//!
//! Pure decisions live in [`exports`], [`conditions`], [`desired`], [`plan`]
//! and [`leader`] (gateway ports: `causeway_catalog::gateway_ports`); the rest talks to the API server through `kube::Client`.

mod about;
mod apply;
mod claims;
mod conditions;
mod config;
pub mod crd;
pub mod crdgen;
mod desired;
pub(crate) mod exports;
mod leader;
mod leader_pod;
mod mcs_slices;
mod plan;
mod policies;
mod policy_source;
mod sink;
mod source;
pub mod traffic_crd;

pub use config::{KubeSinkConfig, KubeSourceConfig};
pub use desired::{MANAGED_BY, MANAGED_BY_VALUE};
pub use leader_pod::LEADER_LABEL;
pub use policies::MAX_POLICIES;
pub(crate) use policy_source::PolicyOutputs;
pub use policy_source::PolicySource;
pub use sink::{KubeSink, SinkInputs, spawn_sink};
pub use source::KubeSource;
pub use traffic_crd::{TrafficPolicy, TrafficPolicySpec, TrafficPolicyStatus};

/// A problem talking to the Kubernetes API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    #[error(
        "kubernetes: cannot configure a client ({0}); run in a pod with a service account, set KUBECONFIG, or set api_url"
    )]
    Config(String),
    #[error("kubernetes: {what}: {source}")]
    Api {
        what: String,
        source: Box<kube::Error>,
    },
    #[error(
        "kubernetes: {kind} not listed within {secs}s; check RBAC (list/watch {kind}) and that the MCS CRDs are installed"
    )]
    SyncTimeout { kind: &'static str, secs: u64 },
    #[error(
        "kubernetes: the cluster's id (ClusterProperty cluster.clusterset.k8s.io) is {property:?} but cluster.name is {configured:?}; set cluster.name to {property:?} (certificates and peers use that name) or fix the ClusterProperty"
    )]
    ClusterIdMismatch {
        property: String,
        configured: String,
    },
}

pub(crate) fn api_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
    let what = what.into();
    move |source| KubeError::Api {
        what,
        source: Box::new(source),
    }
}

/// A client for `api_url`, or the inferred one (in-cluster, else kubeconfig).
pub async fn client(api_url: Option<&str>) -> Result<kube::Client, KubeError> {
    let cfg = match api_url {
        Some(url) => {
            let uri = url.parse().map_err(|e: http::uri::InvalidUri| {
                KubeError::Config(format!("api_url {url:?}: {e}"))
            })?;
            kube::Config::new(uri)
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
    };
    kube::Client::try_from(cfg).map_err(|e| KubeError::Config(e.to_string()))
}
