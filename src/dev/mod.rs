//! `causeway dev`: a local clusterset for development and the end-to-end tests.
//!
//! [`plan`] lays out N clusters (pure), [`Plan::write`] puts certificates and
//! configs on disk, [`up`] runs them as `causeway run` children with a demo
//! service each. The tests in `tests/` use the same plan.

mod children;
pub mod cli;
pub mod delay;
mod demo;
mod guide;
pub mod http;
mod plan;
mod ports;
pub mod probe;
mod progress;
mod ready;
mod up;
mod write;

pub use children::{ChildError, Death, Proc, Stopped, stop_all, tail};
pub use demo::{Demo, DemoError};
pub use guide::{ClusterEntry, ClustersFile, ServiceEntry, guide};
pub use plan::{
    CLUSTERSET, ClusterPlan, ECHO_PORT, HELLO_PORT, Leases, NAMES, Plan, PlanError, PlanOptions,
    Proto, demo_key, export, plan, region, service_export,
};
pub use ports::{Busy, busy};
pub use ready::{Stage, catalog, own_service, stage, vip_of};
pub use up::{UpArgs, up};
pub use write::WriteError;

/// `causeway dev demo`: serves the demo service until SIGINT/SIGTERM (used by tests
/// that run clusters in network namespaces).
pub fn demo(
    cluster: &str,
    http: std::net::SocketAddr,
    echo: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let shutdown = tokio_util::sync::CancellationToken::new();
        crate::run::cancel_on_signal(shutdown.clone())?;
        let demo = Demo::bind(cluster, http, echo).await?;
        eprintln!("demo for {cluster}: http {http}, echo {echo}");
        demo.serve(shutdown).await;
        Ok(())
    })
}
