//! causeway's DNS: a `clusterset.local` authority per the Kubernetes MCS DNS
//! specification v1.0.0, fed by the merged catalog.
//!
//! Layout: `names` (MCS owner names), `zones` (what config makes us
//! authoritative for), `index` (catalog snapshot -> precomputed RRsets),
//! `answer` (pure NXDOMAIN/NODATA/records decisions), `zone` (hickory
//! `ZoneHandler`), `metrics` and `server` (sockets, catalog follower).

mod answer;
mod config;
mod index;
mod metrics;
mod names;
mod server;
mod zone;
mod zones;

pub use config::{Config, ConfigError};
pub use index::SCHEMA_VERSION;
pub use names::NameError;
pub use server::{DnsError, DnsServer, serve};
