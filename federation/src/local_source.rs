//! The seam between the federation and where local exports come from: the
//! static file or Kubernetes. Both give the exports at start and then
//! publish changes on the same watch channel.

use std::sync::Arc;

use causeway_catalog::{CatalogSnapshot, ClusterId, Export, VipClaims};
use causeway_policy::Policies;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::SourceConfig;
use crate::error::Error;
use crate::k8s::{KubeSource, PolicyOutputs, PolicySource};
use crate::source::StaticSource;

pub(crate) enum LocalSource {
    Static {
        source: StaticSource,
        text: Option<String>,
    },
    Kubernetes {
        exports: KubeSource,
        policies: PolicySource,
    },
}

/// What a running source needs besides its own state.
pub(crate) struct SourceOutputs {
    pub tx: watch::Sender<Arc<Vec<Export>>>,
    pub rejected: Counter,
    pub catalog: watch::Receiver<Arc<CatalogSnapshot>>,
    pub local: ClusterId,
    /// Addresses the cluster's Services hold, for the VIP allocator.
    pub claims: watch::Sender<Arc<VipClaims>>,
}

impl LocalSource {
    /// Opens the configured source and reads the exports it starts with.
    pub async fn open(
        cfg: &SourceConfig,
        local: &ClusterId,
        tasks: &TaskTracker,
        stop: &CancellationToken,
    ) -> Result<(Self, Vec<Export>), Error> {
        match cfg {
            SourceConfig::Static { .. } => {
                let source = StaticSource::new(cfg)?;
                let (exports, text) = source.load_with_text()?;
                Ok((Self::Static { source, text }, exports))
            }
            SourceConfig::Kubernetes(k) => {
                k.validate()?;
                let source = KubeSource::start(k, local, tasks, stop).await?;
                let policies =
                    PolicySource::start(source.client(), k.sync_timeout, tasks, stop).await?;
                let exports = source.load();
                let source = Self::Kubernetes {
                    exports: source,
                    policies,
                };
                Ok((source, exports))
            }
        }
    }

    /// The addresses the cluster holds now (none for the static source).
    pub fn claims(&self) -> VipClaims {
        match self {
            Self::Static { .. } => VipClaims::default(),
            Self::Kubernetes { exports, .. } => exports.claims(),
        }
    }

    /// The TrafficPolicies in force now (none for the static source).
    pub fn policies(&self) -> Policies {
        match self {
            Self::Static { .. } => Policies::default(),
            Self::Kubernetes { policies, .. } => policies.load(),
        }
    }

    /// Publishes changes until `stop`: exports to `out`, TrafficPolicies in
    /// force to `policies` (the static source keeps that sender, unchanged:
    /// no policies, until `stop`).
    pub fn spawn(
        self,
        out: SourceOutputs,
        policies: PolicyOutputs,
        tasks: &TaskTracker,
        stop: CancellationToken,
    ) {
        match self {
            Self::Static { source, text } => {
                let (keep, until) = (policies.tx, stop.clone());
                tasks.spawn(async move {
                    until.cancelled().await;
                    drop(keep);
                });
                tasks.spawn(source.watch(text, out.tx, out.rejected, stop));
            }
            Self::Kubernetes {
                exports,
                policies: source,
            } => {
                tasks.spawn(source.run(policies, stop.clone()));
                tasks.spawn(exports.run(out, stop));
            }
        }
    }
}
