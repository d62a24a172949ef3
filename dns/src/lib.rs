//! causeway's DNS: a `clusterset.local` authority per the Kubernetes MCS DNS
//! specification v1.0.0, fed by the merged catalog.
//!
//! Layout: `names` (MCS owner names), `zones` (what config makes us
//! authoritative for), `index` (catalog snapshot -> precomputed RRsets),
//! `answer` (pure NXDOMAIN/NODATA/records decisions), `zone` (hickory
//! `ZoneHandler`), `metrics` and `server` (sockets, catalog follower). The UDP
//! fast path: `wire` (answers pre-encoded at index build), `fast` (one query to
//! one response from them), `udp` (worker threads) and `fallback` (hickory for
//! everything else, on the worker thread).

mod answer;
mod config;
mod fallback;
mod fast;
mod index;
mod metrics;
mod names;
mod server;
mod udp;
mod wire;
mod zone;
mod zones;

pub use config::{Config, ConfigError};
pub use index::SCHEMA_VERSION;
pub use names::NameError;
pub use server::{DnsError, DnsServer, serve};
