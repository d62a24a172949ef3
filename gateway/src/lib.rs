//! causeway's east-west gateway: service traffic to peer clusters as QUIC streams.

mod config;
mod config_check;
mod eject;
mod lb;
pub mod protocol;
mod splice;

pub use config::{Config, Ejection, Limits, Locality, PeerSettings, Timeouts, Transport};
pub use config_check::ConfigError;
