//! causeway's east-west gateway: service traffic to peer clusters as QUIC streams.
//!
//! Wiring (what `causeway run` does): build a [`GatewayInputs`] (config section,
//! this cluster's `ClusterInfo`, the gateway certificate as a `ReloadingCert` whose
//! owner runs `spawn_watch`, the `PeerSet`, `watch` receivers for the catalog and
//! for this cluster's exports, and a `CancellationToken` cancelled on SIGTERM),
//! call [`Gateway::bind`] with the process's Prometheus registry, then await
//! [`Gateway::run`], which returns once drained. The data plane runs on worker
//! threads of its own (`workers`), never on the caller's runtime.
//!
//! Pure core: [`protocol`] (stream header codec), `lb` (cluster and endpoint
//! choice), `eject` (outlier ejection), `config`. I/O at the edges: `endpoint`
//! and `dial` (QUIC), `inbound`, `listeners` and `outbound`, `splice`, `workers`.

mod access_log;
mod admit;
mod attempt;
mod config;
mod config_check;
mod dial;
mod direct;
mod eject;
mod endpoint;
mod fallback;
mod gate;
mod gateway;
mod header;
mod headless;
mod inbound;
mod labels;
mod lb;
mod limits;
mod listeners;
mod liveness;
mod local;
mod metrics;
mod mirror;
mod observe;
mod otlp;
mod otlp_batch;
mod otlp_config;
mod outbound;
mod policy_metrics;
mod pool;
pub mod protocol;
mod quota;
mod rebind;
mod record;
mod rotate;
mod sample;
mod shared;
mod splice;
mod stats;
mod steer;
mod tls;
mod traffic;
mod udp;
mod workers;

pub use access_log::AccessLogConfig;
pub use config::{
    Config, Congestion, Connections, Ejection, KubernetesPorts, Limits, Locality, Timeouts,
    Transport,
};
pub use config_check::ConfigError;
pub use endpoint::{EndpointError, probe_client_config};
pub use fallback::{FallbackConfig, FallbackError};
pub use gateway::{Error, Gateway, GatewayInputs};
pub use observe::ObserveError;
pub use otlp_config::TracingConfig;
pub use rebind::Rebinder;
pub use sample::Ratio;
pub use tls::TlsError;
