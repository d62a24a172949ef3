//! causeway's federation: catalog sync between clusters over gRPC.
//!
//! Pure cores ([`exporter`](crate::exporter), [`view`](crate::view),
//! [`publish`](crate::publish)) decide; the rest moves bytes: the static
//! source, the mutual-TLS transport, the gRPC servers, subscriber sessions,
//! the hub that publishes the merged catalog, and persistence.

mod accept_limit;
mod admit;
mod config;
mod error;
mod exporter;
mod federation;
#[doc(hidden)]
pub mod fuzzing;
mod hub;
mod k8s;
mod link_peers;
mod local_source;
mod metrics;
mod persist;
mod policy_feed;
mod publish;
mod rotation;
mod serve;
mod server;
mod session;
mod slot;
mod source;
mod status;
mod transport;
mod view;
mod watch_api;
mod wire;

pub mod proto {
    //! Generated from `proto/causeway/federation/v1/federation.proto`.
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("causeway.federation.v1");
}

pub use accept_limit::{AcceptLimit, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_SOURCE};
pub use admit::{ImportPolicy, PeerLimits, PeerPolicy, PolicyError, Reason, is_protected};
pub use config::{Config, ConfigError, SourceConfig};
pub use error::Error;
pub use federation::{Federation, FederationInputs, PeerEndpoint};
pub use k8s::client as kube_client;
pub use k8s::crd as mcs;
pub use k8s::crdgen::chart_crds;
pub use k8s::{
    KubeError, KubeSink, KubeSinkConfig, KubeSource, KubeSourceConfig, LEADER_LABEL, MANAGED_BY,
    MANAGED_BY_VALUE, MAX_POLICIES, PolicySource, SinkInputs, TrafficPolicy, TrafficPolicySpec,
    TrafficPolicyStatus, spawn_sink,
};
pub use metrics::SessionState;
pub use persist::PersistError;
pub use policy_feed::PolicyFeedError;
pub use rotation::Rotation;
pub use session::SessionError;
pub use source::{SourceError, StaticSource};
pub use status::PeerStatus;
pub use transport::{PeerConn, PeerConnector, PeerInfo, incoming, incoming_limited};
pub use view::ViewError;
pub use watch_api::{RemoteCatalog, WatchError, WatchTarget, watch_remote};
pub use wire::{WireError, export_from_proto, export_to_proto};
