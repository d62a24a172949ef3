//! causeway's east-west gateway: service traffic to peer clusters as QUIC streams.

mod config;

pub use config::{Config, ConfigError};
