//! Moving the gateway's dialling sockets to a new address while it runs
//! (the node's address changed, or an operator asks): every peer connection
//! migrates with its streams (RFC 9000 section 9) instead of being re-dialled.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::endpoint::{self, EndpointError};
use crate::shared::Shared;

/// A handle that rebinds a running gateway's client endpoints.
#[derive(Clone)]
pub struct Rebinder(pub(crate) Arc<Shared>);

impl Rebinder {
    /// Each worker's client endpoint's local address now.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        let e = &self.0.endpoints;
        e.iter()
            .filter_map(|e| e.client.local_addr().ok())
            .collect()
    }

    /// Rebinds each worker's client endpoint to a new port on `ip` (default:
    /// the address it has now); returns the new local addresses.
    pub fn rebind(&self, ip: Option<IpAddr>) -> Result<Vec<SocketAddr>, EndpointError> {
        let s = &self.0;
        let mut out = Vec::with_capacity(s.endpoints.len());
        for (w, e) in s.endpoints.iter().enumerate() {
            let ip = match ip {
                Some(ip) => ip,
                None => e.client.local_addr().map_or(s.cfg.listen.ip(), |a| a.ip()),
            };
            // The new socket registers with the runtime that drives the endpoint.
            let _worker = s.workers.handle(w).enter();
            let addr = endpoint::rebind(&s.cfg, &e.client, ip, &s.metrics)?;
            tracing::info!(worker = w, %addr, "client endpoint rebound; peer connections migrate");
            out.push(addr);
        }
        s.metrics.rebinds.inc();
        Ok(out)
    }
}
