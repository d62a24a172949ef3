//! Importer side of traffic policy, applied to one client connection: which
//! cluster goes first (split, hash), faults, and per-service overrides of
//! timeout, attempts and failover order. The decisions themselves are pure
//! (`causeway_policy`); this module rolls the dice and counts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{ClusterId, ServiceKey};
use causeway_policy::{ServicePolicy, client_key, route};
use rand::Rng;

use crate::shared::Shared;

/// Notes a decision for the connection's record (`split:east`, `fault:abort`).
fn decided(d: &mut Vec<String>, kind: &str, value: impl std::fmt::Display) {
    d.push(format!("{kind}:{value}"));
}

/// The policy in force for `service` on `port`, if any.
pub fn lookup(shared: &Shared, service: &ServiceKey, port: u16) -> Option<Arc<ServicePolicy>> {
    shared.policies.borrow().find(service, port).cloned()
}

/// Moves the cluster the policy picks to the front of `order` (the usual
/// order, unhealthy clusters already left out); the rest stay behind it as
/// failover.
pub fn pick_first(
    shared: &Shared,
    p: &ServicePolicy,
    order: &mut [ClusterId],
    client: SocketAddr,
    d: &mut Vec<String>,
) {
    let key = p.spec.hash.map_or(0, |k| client_key(k, client));
    let roll = rand::rng().random::<f64>();
    let Some((first, rule)) = route(&p.spec, order, key, roll) else {
        return;
    };
    if let Some(i) = order.iter().position(|c| *c == first) {
        order[..=i].rotate_right(1);
    }
    let service = p.key.to_string();
    shared
        .policy_metrics
        .routed(&service, first.as_str(), rule.as_str());
    decided(d, rule.as_str(), &first);
}

/// Fault injection for a connection about to go to `destination`: the delay
/// to wait before opening the stream, or `Err` to reset it instead.
pub fn fault(
    shared: &Shared,
    p: &ServicePolicy,
    destination: &ClusterId,
    d: &mut Vec<String>,
) -> Result<Option<Duration>, ()> {
    let Some(f) = p
        .spec
        .fault
        .as_ref()
        .filter(|f| f.scoped(&shared.local.name, destination))
    else {
        return Ok(None);
    };
    let mut rng = rand::rng();
    let action = f.decide(rng.random(), rng.random());
    let service = p.key.to_string();
    if action.abort {
        shared.policy_metrics.fault(&service, "abort");
        decided(d, "fault", "abort");
        return Err(());
    }
    if let Some(delay) = action.delay {
        shared.policy_metrics.fault(&service, "delay");
        decided(d, "fault", format_args!("delay={}ms", delay.as_millis()));
    }
    Ok(action.delay)
}

/// Whether this connection is mirrored (the policy's share of them).
pub fn mirrored(p: &ServicePolicy) -> Option<&causeway_policy::Mirror> {
    let m = p.spec.mirror.as_ref()?;
    (rand::rng().random::<f64>() * 100.0 < m.percent).then_some(m)
}
