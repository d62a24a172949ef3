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
mod tcp_gate;
mod udp;
mod wire;
mod zone;
mod zones;

pub use config::{Config, ConfigError};
pub use index::SCHEMA_VERSION;
pub use names::NameError;
pub use server::{DnsError, DnsServer, serve};
pub use tcp_gate::{MAX_TCP, MAX_TCP_PER_SOURCE};

/// Entry points for the fuzz targets in `fuzz/` (not a stable API).
#[doc(hidden)]
pub mod fuzzing {
    use causeway_catalog::CatalogSnapshot;

    use crate::{Config, NameError, fast, index, zones::Zones};

    /// The UDP fast path over one catalog: parse a query, answer it from the wire index.
    pub struct FastPath {
        index: index::Index,
    }

    impl FastPath {
        pub fn new(cfg: &Config, catalog: &CatalogSnapshot) -> Result<Self, NameError> {
            let zones = Zones::from_config(cfg)?;
            Ok(Self {
                index: index::build(&zones, catalog, 1),
            })
        }

        /// The fast path's answer to `req` in `out`; false when hickory would answer.
        pub fn respond(&self, req: &[u8], out: &mut Vec<u8>) -> bool {
            fast::respond(&self.index.wire, req, out).is_some()
        }
    }
}
