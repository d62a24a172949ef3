//! The attacks of findings 3 and 5, against the pure admission step.

use std::net::SocketAddr;

use causeway_catalog::{ClusterId, Endpoint, ExportTo, Port};

use super::*;

fn export(key: &str, ports: usize, endpoints: usize) -> Export {
    Export {
        key: key.parse().unwrap(),
        ports: (0..ports)
            .map(|i| Port::tcp(&format!("p{i}"), 1000 + i as u16))
            .collect(),
        endpoints: (0..endpoints)
            .map(|i| Endpoint {
                addr: SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8], 80)),
                ready: true,
                hostname: None,
            })
            .collect(),
        export_to: ExportTo::All,
        created_at: UnixMillis(0),
        serve_stale: false,
        headless: false,
        props: Default::default(),
    }
}

fn admit(policy: &PeerPolicy, exports: &[Export]) -> (Vec<Export>, Refused) {
    let mut refused = Refused::new();
    (admit_exports(policy, exports, &mut refused), refused)
}

fn keys(list: &[Export]) -> Vec<String> {
    list.iter().map(|e| e.key.to_string()).collect()
}

#[test]
fn protected_namespaces_need_an_explicit_allow() {
    let exports = [
        export("kube-system/kube-dns", 1, 1),
        export("shop/web", 1, 1),
    ];
    let (kept, refused) = admit(&PeerPolicy::default(), &exports);
    assert_eq!(keys(&kept), ["shop/web"]);
    assert_eq!(refused[&Reason::Namespace], 1);
    let mut policy = PeerPolicy::default();
    policy.import.namespaces = vec!["kube-system".into()];
    let (kept, refused) = admit(&policy, &exports);
    assert_eq!(keys(&kept), ["kube-system/kube-dns"]);
    assert_eq!(refused[&Reason::Namespace], 1);
}

#[test]
fn the_service_allow_list_is_exact() {
    let mut policy = PeerPolicy::default();
    policy.import.services = vec!["shop/web".parse().unwrap()];
    let exports = [export("shop/db", 1, 1), export("shop/web", 1, 1)];
    let (kept, refused) = admit(&policy, &exports);
    assert_eq!(keys(&kept), ["shop/web"]);
    assert_eq!(refused[&Reason::Service], 1);
}

/// 10,000 exports with 10,000 ports: only what the quotas allow is kept, the
/// rest of the peer's catalog still is.
#[test]
fn quotas_cut_only_what_is_over_them() {
    let mut exports: Vec<Export> = (0..10_000)
        .map(|i| export(&format!("ns/s{i:05}"), 1, 1))
        .collect();
    exports.push(export("ns/wide", 200, 1));
    let (kept, refused) = admit(&PeerPolicy::default(), &exports);
    assert_eq!(kept.len(), 1000);
    assert_eq!(refused[&Reason::Exports], 9000);
    assert_eq!(refused[&Reason::PortsPerExport], 1);
    assert_eq!(kept[0].key.to_string(), "ns/s00000");
    let mut policy = PeerPolicy::default();
    policy.limits.max_ports = 10;
    policy.limits.max_exports = 100_000;
    let (kept, refused) = admit(&policy, &exports);
    assert_eq!(kept.len(), 10);
    assert_eq!(refused[&Reason::Ports], 9990);
}

#[test]
fn the_byte_quota_counts_encoded_exports() {
    let mut policy = PeerPolicy::default();
    policy.limits.max_bytes = 1024;
    let exports: Vec<Export> = (0..100)
        .map(|i| export(&format!("ns/s{i:03}"), 1, 1))
        .collect();
    let (kept, refused) = admit(&policy, &exports);
    assert!(!kept.is_empty() && kept.len() < 100, "{}", kept.len());
    let used: usize = kept.iter().map(|e| export_to_proto(e).encoded_len()).sum();
    assert!(used <= 1024, "{used}");
    assert_eq!(refused[&Reason::Bytes], 100 - kept.len());
}

#[test]
fn endpoints_are_kept_as_a_capped_count_of_ready_ones() {
    let mut policy = PeerPolicy::default();
    policy.limits.max_endpoints_per_export = 5;
    let mut e = export("ns/a", 1, 20);
    e.endpoints[0].ready = false;
    let stored = intake(&policy, e, None, UnixMillis(1));
    assert_eq!(stored.endpoints.len(), 6);
    assert!(stored.endpoints.iter().all(|e| e.ready));
    let (kept, refused) = admit(&policy, &[stored]);
    assert_eq!(kept[0].ready_endpoints(), 5);
    assert_eq!(refused[&Reason::Endpoints], 1);
}

/// A peer claims its export is from 1970 to win MCS conflicts: the time is
/// clamped to when this cluster first saw it (less the tolerance for honest
/// skew), and repeating the claim never moves it back.
#[test]
fn created_at_is_clamped_to_first_seen() {
    let policy = PeerPolicy::default();
    let now = UnixMillis(1_000_000);
    let first = intake(&policy, export("ns/a", 1, 0), None, now);
    assert_eq!(
        first.created_at,
        UnixMillis(1_000_000 - CREATED_AT_TOLERANCE_MS)
    );
    let again = intake(
        &policy,
        export("ns/a", 1, 0),
        Some(first.created_at),
        UnixMillis(9_000_000),
    );
    assert_eq!(again.created_at, first.created_at);
    // An honest claim within the tolerance is kept as is.
    let mut recent = export("ns/b", 1, 0);
    recent.created_at = UnixMillis(990_000);
    assert_eq!(
        intake(&policy, recent, None, now).created_at,
        UnixMillis(990_000)
    );
    let mut later = export("ns/a", 1, 0);
    later.created_at = UnixMillis(7_000_000);
    assert_eq!(
        intake(
            &policy,
            later,
            Some(first.created_at),
            UnixMillis(9_000_000)
        )
        .created_at,
        UnixMillis(7_000_000)
    );
}

/// A peer says it is in this cluster's region to draw traffic: the region
/// and zone come from local config, and the gateway list is capped.
#[test]
fn place_comes_from_local_config() {
    let claimed = ClusterInfo {
        name: ClusterId::new("west").unwrap(),
        region: "here".into(),
        zone: "here-a".into(),
        trust_domain: "west.test".into(),
        gateways: (0..40)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 443)))
            .collect(),
    };
    let mut refused = Refused::new();
    let info = admit_info(&PeerPolicy::default(), claimed.clone(), &mut refused);
    assert_eq!((info.region.as_str(), info.zone.as_str()), ("", ""));
    assert_eq!(info.gateways.len(), 16);
    assert_eq!(refused[&Reason::Gateways], 24);
    let policy = PeerPolicy {
        region: Some("far".into()),
        zone: Some("far-b".into()),
        ..PeerPolicy::default()
    };
    let info = admit_info(&policy, claimed, &mut Refused::new());
    assert_eq!((info.region.as_str(), info.zone.as_str()), ("far", "far-b"));
}

#[test]
fn policies_are_validated() {
    let mut p = PeerPolicy::default();
    p.validate("west").unwrap();
    p.limits.max_ports = 0;
    let e = p.validate("west").unwrap_err().to_string();
    assert!(e.contains("peers.west.limits.max_ports"), "{e}");
    let mut p = PeerPolicy::default();
    p.import.namespaces = vec!["Kube System".into()];
    let e = p.validate("west").unwrap_err().to_string();
    assert!(e.contains("peers.west.import.namespaces"), "{e}");
    let bad: Result<PeerLimits, _> = serde_json::from_str(r#"{"max_export": 3}"#);
    assert!(bad.is_err());
}
