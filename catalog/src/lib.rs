//! causeway's shared vocabulary: clusters, services, exports, imports.
//!
//! Pure: no I/O and no clocks. Time is always an argument, so every decision
//! here (merge, freshness, ClusterSetIP allocation) is a plain function that
//! tests drive without sockets or sleeps.

mod bounds;
mod conflict;
mod lease;
mod merge;
mod model;
mod names;
mod ports;
mod service;
mod vip;
mod vip_key;

pub use bounds::{OutOfRange, check_range};
pub use conflict::ConflictKind;
pub use lease::{Freshness, LeaseConfig, LeaseError};
pub use merge::{PeerView, merge};
pub use model::{
    CatalogSnapshot, ClusterInfo, Condition, Endpoint, Export, ExportError, ExportTo, Import, Port,
    Protocol, ServingCluster, UnixMillis,
};
pub use names::{ClusterId, NameError, ServiceKey};
pub use ports::{PortKey, gateway_ports, port_keys};
pub use service::{HeadlessEndpoint, IpFamily, ServiceProps, SessionAffinity, address_label};
pub use vip::{VipAllocator, VipClaims, VipError, VipState};
pub use vip_key::VipKey;
