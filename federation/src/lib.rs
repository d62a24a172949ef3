//! causeway's federation: catalog sync between clusters over gRPC.

mod config;
mod exporter;
mod metrics;
mod source;
mod view;
mod wire;
pub mod proto {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("causeway.federation.v1");
}

pub use config::{Config, ConfigError, SourceConfig};
