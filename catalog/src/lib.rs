//! causeway's shared vocabulary: clusters, services, exports, imports.
//!
//! Pure: no I/O and no clocks. Time is always an argument, so every decision
//! here (merge, freshness, ClusterSetIP allocation) is a plain function that
//! tests drive without sockets or sleeps.

mod lease;
mod merge;
mod model;
mod names;
mod ports;
mod vip;

pub use lease::{Freshness, LeaseConfig, LeaseError};
pub use merge::{PeerView, merge};
pub use model::{
    CatalogSnapshot, ClusterInfo, Condition, Endpoint, Export, ExportError, ExportTo, Import, Port,
    Protocol, ServingCluster, UnixMillis,
};
pub use names::{ClusterId, NameError, ServiceKey};
pub use ports::{PortKey, gateway_ports};
pub use vip::{VipAllocator, VipError, VipState};
