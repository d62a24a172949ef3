//! causeway's east-west gateway: service traffic to peer clusters as QUIC streams.
//!
//! Pure core: [`protocol`] (stream header codec), `lb` (cluster and endpoint
//! choice), `eject` (outlier ejection), `config`. I/O at the edges: `endpoint`
//! and `dial` (QUIC), `inbound`, `listeners` and `outbound`, `splice`.

mod attempt;
mod config;
mod config_check;
mod dial;
mod direct;
mod eject;
mod endpoint;
mod gateway;
mod header;
mod inbound;
mod lb;
mod listeners;
mod local;
mod metrics;
mod outbound;
mod pool;
pub mod protocol;
mod shared;
mod splice;
mod stats;
mod tls;

pub use config::{Config, Ejection, Limits, Locality, PeerSettings, Timeouts, Transport};
pub use config_check::ConfigError;
pub use endpoint::EndpointError;
pub use gateway::{Error, Gateway, GatewayInputs};
pub use tls::TlsError;
