//! Entry points for the fuzz targets in `fuzz/` (not a stable API). Each
//! takes untrusted bytes the way the federation does, and panics only when
//! an invariant the rest of causeway relies on is broken.

use std::sync::Arc;
use std::time::Instant;

use causeway_catalog::{CatalogSnapshot, ClusterId, Export, LeaseConfig, UnixMillis, VipState};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use prost::Message;

use crate::admit::{PeerLimits, PeerPolicy};
use crate::k8s::crd::ServiceExport;
use crate::persist::SavedLocal;
use crate::proto;
use crate::view::{PeerView, SavedView};

/// Small limits, so the fuzzer reaches every quota.
fn policy() -> Arc<PeerPolicy> {
    Arc::new(PeerPolicy {
        limits: PeerLimits {
            max_exports: 8,
            max_ports_per_export: 4,
            max_ports: 12,
            max_endpoints_per_export: 3,
            max_gateways: 2,
            max_bytes: 2048,
        },
        ..PeerPolicy::default()
    })
}

/// Length-delimited `Update` messages from a peer, applied in order.
pub fn peer_view_apply(mut data: &[u8]) {
    let peer = ClusterId::new("x").unwrap_or_else(|_| unreachable!());
    let mut view = PeerView::new(peer).with_policy(policy());
    view.begin_session();
    let (now, mut wall) = (Instant::now(), 1_000);
    while let Ok(update) = proto::Update::decode_length_delimited(&mut data) {
        wall += 1;
        let _ = view.apply_at(update, now, UnixMillis(wall));
        check_view(&view);
    }
}

fn check_view(view: &PeerView) {
    let p = policy();
    let list = view.exports();
    assert!(list.len() <= p.limits.max_exports);
    let ports: usize = list.iter().map(|e| e.ports.len()).sum();
    assert!(ports <= p.limits.max_ports);
    for e in list.iter() {
        assert!(e.validate().is_ok(), "an admitted export is invalid: {e:?}");
        assert!(e.endpoints.len() <= p.limits.max_endpoints_per_export);
        assert!(!crate::admit::is_protected(e.key.namespace()));
    }
    if let Some(info) = view.info() {
        assert!(info.gateways.len() <= p.limits.max_gateways);
        assert!(info.region.is_empty());
    }
}

/// A state file of any kind, read back as the federation does at start.
pub fn state_file(data: &[u8]) {
    if let Ok(saved) = serde_json::from_slice::<SavedView>(data) {
        let name = saved.info.name.clone();
        let lease = LeaseConfig::default();
        let view = PeerView::restore(name, saved, &lease, Instant::now()).with_policy(policy());
        check_view(&view);
    }
    let _ = serde_json::from_slice::<SavedLocal>(data);
    let _ = serde_json::from_slice::<VipState>(data);
    watch_message(data);
}

/// A `WatchCatalog` message body, decoded as the gateway and DNS do.
pub fn watch_message(data: &[u8]) {
    if let Ok(c) = serde_json::from_slice::<CatalogSnapshot>(data) {
        let again = serde_json::to_vec(&c).unwrap_or_default();
        let back: Option<CatalogSnapshot> = serde_json::from_slice(&again).ok();
        assert_eq!(back.as_ref(), Some(&c), "the catalog does not round-trip");
    }
    let _ = serde_json::from_slice::<Vec<Export>>(data);
}

/// A ServiceExport, its Service and EndpointSlices (JSON), turned into an Export.
pub fn service_export(data: &[u8]) {
    type Objects = (ServiceExport, Option<Service>, Vec<EndpointSlice>);
    let Ok((se, svc, slices)) = serde_json::from_slice::<Objects>(data) else {
        return;
    };
    let slices: Vec<&EndpointSlice> = slices.iter().collect();
    if let Ok(e) = crate::k8s::exports::build_export(&se, svc.as_ref(), &slices) {
        assert!(e.validate().is_ok(), "build_export made an invalid export");
    }
}
