//! causeway's DNS: a `clusterset.local` authority per the MCS DNS specification.

mod answer;
mod config;
mod index;
mod names;
mod zones;

pub use config::{Config, ConfigError};
pub use names::NameError;
