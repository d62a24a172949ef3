//! causeway's DNS: a `clusterset.local` authority per the MCS DNS specification.

mod config;

pub use config::{Config, ConfigError};
