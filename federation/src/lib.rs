//! causeway's federation: catalog sync between clusters over gRPC.

mod config;

pub use config::{Config, ConfigError, SourceConfig};
