//! Traffic policy for connections that cross clusters: the types users
//! write (`policies:` in causeway.yaml, or a `TrafficPolicy` object), their
//! validation, and the decisions taken per connection. Pure: no I/O, no
//! clock, no randomness of its own; callers pass time and dice rolls in, so
//! every decision has exhaustive and property tests (as catalog/ does).
//!
//! Importer side (where the client connects): [`route`] (weighted split,
//! consistent hash), [`Fault`] (delay, abort), [`Mirror`], and per-service
//! connect timeout, attempts and failover order. Exporter side (the cluster
//! that owns the service), keyed by the verified source cluster: [`Limits`]
//! with [`TokenBucket`] (new connections), a concurrency cap and [`Shaper`]
//! (bytes per second).

mod bucket;
mod error;
mod route;
mod set;
mod spec;

pub use bucket::{Shaper, TokenBucket};
pub use error::{PolicyError, Problem};
pub use route::{Rule, client_key, hash_pick, route, split_pick};
pub use set::{Policies, ServicePolicy};
pub use spec::{Fault, FaultAction, HashKey, LimitSet, Limits, Mirror, PolicySpec};
